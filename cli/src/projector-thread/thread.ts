// `connect start` runs its projector on a thread of its own (worker.ts). This is the main
// thread's side: a Projector whose calls are messages, plus the thread's metrics.
import { Worker } from 'node:worker_threads';
import type { Checkpoint } from '@connect/crypto';
import type { Metrics } from '@connect/http';
import type { Projector } from '@connect/projector';
import type { FastifyBaseLogger } from 'fastify';
import type { Call, CallMessage, SignedMessage, ThreadData, ThreadMessage } from './protocol.ts';

export interface ProjectorThread extends Projector {
  /** The thread's own metrics (the audit's, the delivery queue's, its pools'), for the server's /metrics. */
  metrics(): Promise<Metrics>;
  /** Tells the thread's continuous audit of a checkpoint this process signed (the appender's observer). */
  signed(checkpoint: Checkpoint, note: string): void;
}

/** How long the thread may take to answer a call; its close may take the shutdown's time. */
const CALL_TIMEOUT_MS = 10_000;

/**
 * Starts the projector thread; resolves once its projections run, rejects with why it could not.
 * Should the thread stop later of itself, `onStopped` is told why (`connect start` then shuts
 * down, as it would have had the projector failed on the main thread).
 */
export async function startProjectorThread(
  options: ThreadData & {
    log: FastifyBaseLogger;
    onStopped?(reason: string): void;
    closeTimeoutMs?: number;
  },
): Promise<ProjectorThread> {
  const { config, verifierKey } = options;
  const worker = new Worker(new URL('./worker.js', import.meta.url), {
    workerData: { config, verifierKey } satisfies ThreadData,
  });
  const answers = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  let lastId = 0;
  let running = false;
  /** Why the thread is gone, once it is. */
  let stopped: string | undefined;
  let closed: Promise<void> | undefined;

  const started = new Promise<void>((resolve, reject) => {
    const stop = (reason: string, error: Error) => {
      if (stopped) return;
      stopped = reason;
      reject(error);
      for (const answer of answers.values()) answer.reject(new Error(`projector thread ${reason}`));
      answers.clear();
      if (running && !closed) {
        options.log.error({ err: error }, 'the projector thread stopped');
        options.onStopped?.(reason);
      }
    };
    worker.on('message', (message: ThreadMessage) => {
      if ('started' in message) {
        running = true;
        return resolve();
      }
      const answer = answers.get(message.id);
      answers.delete(message.id);
      if ('error' in message) answer?.reject(new Error(message.error));
      else answer?.resolve(message.value);
    });
    worker.on('error', (error) => stop(`failed: ${error.message}`, error));
    worker.on('exit', (code) => {
      const reason = `exited (code ${code})`;
      stop(reason, new Error(`projector thread ${reason}`));
    });
  });

  const call = <T>(name: Call, timeoutMs = CALL_TIMEOUT_MS): Promise<T> => {
    if (stopped) return Promise.reject(new Error(`projector thread ${stopped}`));
    const id = ++lastId;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        answers.delete(id);
        reject(new Error(`projector thread did not answer ${name} within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      const settle =
        <V>(then: (value: V) => void) =>
        (value: V) => {
          clearTimeout(timer);
          then(value);
        };
      answers.set(id, { resolve: settle(resolve as (value: unknown) => void), reject: settle(reject) });
      worker.postMessage({ id, call: name } satisfies CallMessage);
    });
  };

  await started;
  return {
    readiness: () => call('readiness'),
    status: () => call('status'),
    metrics: () => call('metrics'),
    signed(checkpoint, note) {
      if (!stopped) worker.postMessage({ signed: { checkpoint, note } } satisfies SignedMessage);
    },
    close() {
      closed ??= (async () => {
        if (stopped) return;
        try {
          await call('close', options.closeTimeoutMs ?? CALL_TIMEOUT_MS);
        } finally {
          await worker.terminate();
        }
      })();
      return closed;
    },
  };
}
