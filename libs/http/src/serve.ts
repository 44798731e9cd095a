import type { FastifyInstance } from 'fastify';
import { startTelemetry } from './telemetry.ts';

/**
 * Connections the kernel holds for the server until it accepts them (capped by net.core.somaxconn).
 * Node's default, 511, overflowed when thousands of clients connected at once (after a restart, at
 * the start of the load benchmark) while the event loop was busy: each connection dropped is
 * retried by its client only after 1, 3, 7, 15… s, and showed as requests of a minute.
 */
export const LISTEN_BACKLOG = 4096;

/** How long requests under way may take to finish once a shutdown starts (CONNECT_SHUTDOWN_TIMEOUT_MS). */
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;

/**
 * Listens, and on SIGINT or SIGTERM shuts down gracefully (closeGracefully), then releases what
 * the app holds (`onClose`: runners, queued ledger appends, pools, the embedded database) and
 * exits 0. A second signal of the same kind ends the process at once.
 */
export async function serve(
  app: FastifyInstance,
  options: { port: number; host: string; shutdownTimeoutMs?: number; onClose(): Promise<void> },
): Promise<string> {
  const timeoutMs = options.shutdownTimeoutMs ?? DEFAULT_SHUTDOWN_TIMEOUT_MS;
  const telemetry = await startTelemetry(process.env);
  if (telemetry) app.log.info({}, 'exporting traces over OTLP (OTEL_EXPORTER_OTLP_ENDPOINT)');
  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal, timeoutMs }, 'shutting down: finishing the requests under way');
    // Whatever hangs past the bound (a stuck pool, a peer that never answers) does not keep the
    // process from ending.
    const giveUp = setTimeout(() => {
      app.log.error({ timeoutMs }, 'shutdown did not finish in time; exiting anyway');
      process.exit(1);
    }, timeoutMs + 10_000);
    giveUp.unref();
    try {
      await closeGracefully(app, timeoutMs);
      await options.onClose();
      await telemetry?.shutdown().catch((error: unknown) => {
        app.log.warn({ err: error }, 'could not export the last traces');
      });
      // The exit code stays as it was: 0, unless a failure set another before asking for this
      // shutdown (connect start's projector thread stopping).
      app.log.info({ signal }, 'shut down');
    } catch (error) {
      app.log.error({ err: error }, 'shutdown failed');
      process.exitCode = 1;
    }
    clearTimeout(giveUp);
    // Everything is released; a handle some library forgot must not keep a stopped service up.
    setTimeout(() => process.exit(), 1000).unref();
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
  try {
    return await app.listen({ port: options.port, host: options.host, backlog: LISTEN_BACKLOG });
  } catch (error) {
    // Not serving: the caller releases what it opened, and a signal meanwhile is not a shutdown.
    process.off('SIGINT', shutdown);
    process.off('SIGTERM', shutdown);
    await telemetry?.shutdown().catch(() => undefined);
    throw error;
  }
}

/**
 * Stops taking connections (the listener closes; idle keep-alive connections are closed, and a
 * request that still arrives on one is answered 503 with `Connection: close`), closes WebSocket
 * subscriptions with 1001 "going away", and waits for the requests under way: those still running
 * after `timeoutMs` have their connections closed. Then the app's onClose hooks run.
 */
export async function closeGracefully(app: FastifyInstance, timeoutMs: number): Promise<void> {
  const cutOff = setTimeout(() => {
    app.log.warn(
      { timeoutMs },
      'requests still under way at the shutdown timeout: closing their connections',
    );
    app.server.closeAllConnections();
  }, timeoutMs);
  try {
    await app.close();
  } finally {
    clearTimeout(cutOff);
  }
}

/** A service while it opens: what it has opened, to release, and its app once built. */
export interface Opening {
  /** Released at shutdown, or at once should the start fail; the last added first. */
  release(part: () => unknown): void;
  /** The app, once built: a start that fails after this closes it first (its hooks stop what it runs). */
  built(app: FastifyInstance): FastifyInstance;
}

/**
 * Opens a service (`open` builds its app, telling `opening` what it opens) and serves it. A
 * service that cannot start (a dependency it cannot read, its port taken) closes its app and
 * releases, within the shutdown's bound, each part it had opened even if one before it fails,
 * then rethrows: it does not run on unreachable, nor leave an embedded database or locked jobs
 * behind.
 */
export async function openAndServe(
  options: { port: number; host: string; shutdownTimeoutMs: number },
  open: (opening: Opening) => Promise<FastifyInstance>,
): Promise<{ app: FastifyInstance; address: string }> {
  const parts: Array<() => unknown> = [];
  let released: Promise<void> | undefined;
  const release = () => {
    released ??= releaseEach(parts.toReversed());
    return released;
  };
  let app: FastifyInstance | undefined;
  try {
    const opened = await open({
      release: (part) => parts.push(part),
      built: (built) => {
        app = built;
        return built;
      },
    });
    app = opened;
    const { port, host, shutdownTimeoutMs } = options;
    const address = await serve(opened, { port, host, shutdownTimeoutMs, onClose: release });
    return { app: opened, address };
  } catch (error) {
    setTimeout(() => process.exit(1), options.shutdownTimeoutMs + 10_000).unref();
    const failed = app;
    const log = (message: string) => (failure: unknown) =>
      failed ? failed.log.error({ err: failure }, message) : console.error(message, failure);
    await failed?.close().catch(log('could not close the app'));
    await release().catch(log('could not release everything the service opened'));
    throw error;
  }
}

/** Runs each of `parts` in turn, even after one fails; then throws what failed, if anything did. */
export async function releaseEach(parts: Array<() => unknown>): Promise<void> {
  const failures: unknown[] = [];
  for (const part of parts)
    await Promise.resolve()
      .then(part)
      .catch((error: unknown) => failures.push(error));
  if (failures.length > 0) throw new AggregateError(failures, 'could not release everything');
}
