// What every Connect HTTP service shares: logging without secrets, problem+json errors, and
// the operations endpoints /healthz, /readyz and /metrics.
import { createHash, timingSafeEqual } from 'node:crypto';
import { errorCode, isConnectionFailure, isConnectionWaitOver } from '@connect/db';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyRequest } from 'fastify';
import { collectDefaultMetrics, Histogram, Registry } from 'prom-client';
import {
  combinedMetrics,
  eventLoopMetrics,
  type MetricsSource,
  type PoolCounts,
  poolGauge,
} from './metrics.ts';
import { badRequest, HttpProblem, type Problem, type ProblemName, problem, sendProblem } from './problem.ts';
import { registerRequestIdentity, requestIdentityOptions } from './request-context.ts';
import { registerSecurity } from './security.ts';

export interface ServerOptions {
  logLevel?: string;
  /** Throws (or rejects) with a reason when the service cannot serve yet; may say more when it can. */
  checkReady(): Promise<unknown>;
  bodyLimit?: number;
  timeouts?: Partial<HttpTimeouts>;
  /** Origins whose browsers may call the API (CONNECT_CORS_ORIGINS); none → no CORS headers. */
  corsOrigins?: readonly string[];
  /** CONNECT_TRUSTED_PROXIES: proxies whose X-Forwarded-* headers say who the client is; none → ignored. */
  trustedProxies?: readonly string[];
  /** CONNECT_METRICS_TOKEN: /metrics wants it as a Bearer token; unset → loopback requests only. */
  metricsToken?: string;
  /** Where log lines go (tests capture them); standard output by default. */
  logStream?: { write(line: string): void };
}

/** What a service takes for its server from its configuration (loadConfig), the same for every service. */
export function serverOptionsOf(config: {
  logLevel: string;
  httpTimeouts: HttpTimeouts;
  corsOrigins: readonly string[];
  trustedProxies: readonly string[];
  metricsToken: string | undefined;
}): Omit<ServerOptions, 'checkReady'> {
  return {
    logLevel: config.logLevel,
    timeouts: config.httpTimeouts,
    corsOrigins: config.corsOrigins,
    trustedProxies: config.trustedProxies,
    metricsToken: config.metricsToken,
  };
}

export interface HttpTimeouts {
  /** The whole request, body included, must arrive within this; else 408 and the connection closes. */
  requestMs: number;
  /** The request line and headers must arrive within this (at most requestMs). */
  headersMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveMs: number;
}

// Long enough for a 25 MB document on a ~2 Mbit/s uplink; a stalled client holds a connection
// for two minutes at most.
export const DEFAULT_HTTP_TIMEOUTS: HttpTimeouts = {
  requestMs: 120_000,
  headersMs: 10_000,
  // Longer than the usual load balancer idle timeout (60 s), so the balancer closes first and never
  // reuses a connection the service is closing.
  keepAliveMs: 72_000,
};

function timeoutOptions(options: Partial<HttpTimeouts> = {}) {
  const { requestMs, headersMs, keepAliveMs } = { ...DEFAULT_HTTP_TIMEOUTS, ...options };
  const headersTimeout = Math.min(headersMs, requestMs);
  return {
    requestTimeout: requestMs,
    keepAliveTimeout: keepAliveMs,
    http: {
      requestTimeout: requestMs,
      headersTimeout,
      // Node enforces both only when it sweeps its connections (every 30 s by default).
      connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.floor(headersTimeout / 4))),
    },
  };
}

/**
 * An error that says why something may not happen, by kind (the domain's Refusal has this shape):
 * the error handler answers it with the problem its kind means, so no route translates it.
 */
export interface Refused {
  kind: string;
  reason: string;
  /** The invalid field, for kind `invalid`. */
  field?: string;
  /** The policy rule that refused it (e.g. `createdBy: verified`), answered as the problem's `rule`. */
  rule?: string;
}

const REFUSED: Readonly<Record<string, { status: number; type: ProblemName }>> = {
  invalid: { status: 400, type: 'invalid-input' },
  forbidden: { status: 403, type: 'forbidden' },
  'not-found': { status: 404, type: 'not-found' },
  conflict: { status: 409, type: 'state-conflict' },
  busy: { status: 409, type: 'busy' },
  stale: { status: 412, type: 'version-conflict' },
};

/** The problem a refusal answers with; undefined for any other error. */
export function refusedProblem(error: unknown): Problem | undefined {
  const { kind, reason, field, rule } = (error ?? {}) as Partial<Refused>;
  if (typeof kind !== 'string' || !Object.hasOwn(REFUSED, kind) || typeof reason !== 'string')
    return undefined;
  const { status, type } = REFUSED[kind] as (typeof REFUSED)[string];
  const errors = kind === 'invalid' ? [{ path: `body.${field ?? ''}`, message: reason }] : undefined;
  const answer = problem(status, reason, errors, type);
  return typeof rule === 'string' ? { ...answer, rule } : answer;
}

export function createServer(options: ServerOptions): FastifyInstance {
  const app = Fastify({
    logger: {
      level: options.logLevel ?? 'info',
      redact: {
        paths: ['req.headers.authorization', 'req.headers.cookie', 'req.headers["idempotency-key"]'],
        remove: true,
      },
      serializers: { req: requestForLog },
      ...(options.logStream ? { stream: options.logStream } : {}),
    },
    ...requestIdentityOptions(),
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    // The client's address keys the per-address rate limits and is recorded with each session. Only
    // a listed proxy is believed when it forwards one: trusting every hop would let any client name
    // its own address in X-Forwarded-For.
    trustProxy: options.trustedProxies?.length ? [...options.trustedProxies] : false,
    ...timeoutOptions(options.timeouts),
    // While it closes, the server answers new requests itself (below), as problems.
    return503OnClosing: false,
    // What Fastify refuses before routing (a URL that does not decode, a bad content type) is a
    // problem too.
    frameworkErrors: (error, request, reply) =>
      sendProblem(
        reply.header('x-request-id', request.id),
        problem(error.statusCode && error.statusCode < 500 ? error.statusCode : 400, error.message),
      ),
  });

  registerSecurity(app, options.corsOrigins);
  registerRequestIdentity(app);

  // Draining (app.close(), on SIGTERM): the listener is closed, so no new connection is taken;
  // a request that still comes on a kept-alive connection gets 503 and the connection closes,
  // and the answers to requests under way close theirs, so clients go to another instance.
  let draining = false;
  app.addHook('preClose', async () => {
    draining = true;
  });
  app.addHook('onRequest', async (request, reply) => {
    if (!draining) return;
    reply.header('connection', 'close').header('retry-after', '1');
    const detail =
      request.url === '/readyz'
        ? 'Not ready: shutting down'
        : 'This instance is shutting down; send the request again.';
    return sendProblem(reply, problem(503, detail, undefined, 'not-ready'));
  });
  app.addHook('onSend', async (_request, reply) => {
    if (draining) reply.header('connection', 'close');
  });

  // JSON only: a text body is refused with 415 rather than parsed as a string.
  app.removeContentTypeParser('text/plain');

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof HttpProblem) return sendProblem(reply, error.body);
    const refused = refusedProblem(error);
    if (refused) return sendProblem(reply, refused);
    if (error.validation) {
      const context = error.validationContext ?? 'body';
      return sendProblem(
        reply,
        badRequest(
          error.validation.map((v) => ({
            path: `${context}${v.instancePath.replaceAll('/', '.')}`,
            message: v.message ?? 'is invalid',
          })),
        ).body,
      );
    }
    const status = error.statusCode ?? 500;
    const unavailable = status >= 500 ? databaseTrouble(error) : undefined;
    if (unavailable) {
      request.log.warn({ err: error }, unavailable.log);
      reply.header('retry-after', '1');
      return sendProblem(reply, problem(503, unavailable.detail, undefined, 'not-ready'));
    }
    if (status >= 500) {
      request.log.error({ err: error }, 'request failed');
      return sendProblem(reply, problem(500, 'Something went wrong on our side; try again.'));
    }
    return sendProblem(reply, problem(status, error.message));
  });

  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, problem(404, `No route for ${request.method} ${request.url.split('?')[0]}.`)),
  );

  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const stopLoopMetrics = eventLoopMetrics(registry, 'main');
  app.addHook('onClose', async () => stopLoopMetrics());
  const durations = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request durations by route and status',
    labelNames: ['method', 'route', 'status'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  app.addHook('onResponse', async (request, reply) => {
    durations.observe(
      {
        method: request.method,
        route: request.routeOptions.url ?? 'unknown',
        status: String(reply.statusCode),
      },
      reply.elapsedTime / 1000,
    );
  });
  app.decorate('metrics', registry);
  app.decorate('watchPool', poolGauge(registry));
  const sources: MetricsSource[] = [];
  app.decorate('addMetricsSource', (source: MetricsSource) => {
    sources.push(source);
  });
  const readinessChecks: (() => void)[] = [];
  app.decorate('addReadinessCheck', (check: () => void) => {
    readinessChecks.push(check);
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (request, reply) => {
    try {
      for (const check of readinessChecks) check();
      const details = await withinTime(options.checkReady(), READY_CHECK_MS);
      return { status: 'ready', ...(typeof details === 'object' ? details : {}) };
    } catch (error) {
      request.log.warn({ err: error }, 'not ready');
      reply.header('retry-after', '1');
      return sendProblem(reply, problem(503, `Not ready: ${(error as Error).message}`));
    }
  });
  const mayScrape = metricsAccess(options.metricsToken);
  app.get('/metrics', async (request, reply) => {
    if (!mayScrape(request)) {
      return sendProblem(
        reply,
        options.metricsToken
          ? problem(401, 'Send CONNECT_METRICS_TOKEN as a Bearer token.')
          : problem(403, 'Metrics are served to loopback requests only; set CONNECT_METRICS_TOKEN.'),
      );
    }
    return reply
      .type(registry.contentType)
      .send(
        await combinedMetrics(registry, sources, (error) =>
          request.log.warn({ err: error }, 'metrics of another thread left out'),
        ),
      );
  });
  return app;
}

// A database not accepting connections (55000 from ALLOW_CONNECTIONS false) or not there (3D000).
const DATABASE_CLOSED_CODES = /^(55000|3D000)$/;

/** Whether an error says the database cannot be reached, rather than something about the request. */
function isDatabaseUnreachable(error: unknown): boolean {
  return isConnectionFailure(error) || DATABASE_CLOSED_CODES.test(errorCode(error) ?? '');
}

/**
 * PostgreSQL stopped the statement (57014 query_canceled): at its statement_timeout, or cancelled
 * by an operator; or a read got no connection within that time limit (the query service's reader
 * fails it with the same code). By its code alone: the message is in the server's language.
 */
function isStatementTimeout(error: unknown): boolean {
  return errorCode(error) === '57014';
}

/** What a client is told of a statement stopped at its time limit (REST and GraphQL alike). */
const STATEMENT_TIMEOUT_DETAIL = 'The database took too long to answer; try again shortly.';

/**
 * A failure of the database rather than of the request (answered 503 with Retry-After over REST,
 * SERVICE_UNAVAILABLE over GraphQL): what to log and say.
 */
export function databaseTrouble(error: unknown): { log: string; detail: string } | undefined {
  if (isConnectionWaitOver(error))
    return {
      log: 'no database connection within the pool wait (all busy, or the server not answering)',
      detail: 'No database connection came free in time; try again shortly.',
    };
  if (isDatabaseUnreachable(error))
    return { log: 'database unreachable', detail: 'The database is unreachable; try again shortly.' };
  if (isStatementTimeout(error))
    return {
      log: 'stopped at its time limit (running, or waiting for a connection)',
      detail: STATEMENT_TIMEOUT_DETAIL,
    };
  return undefined;
}

/** Query parameters that carry a secret (an unsubscribe token, an OAuth code), kept out of logs. */
const SECRET_PARAMETER = /token|code|secret|password|key|signature|state/i;

/** A URL as logged: calendar feed tokens (in the path) and secret query parameters redacted. */
export function urlForLog(url: string): string {
  const queryAt = url.indexOf('?');
  const pathname = queryAt === -1 ? url : url.slice(0, queryAt);
  const path = pathname.replace(/^(\/v1\/calendar\/)[^/]+?(\.ics)?$/, '$1[redacted]$2');
  if (queryAt === -1) return path;
  const query = url
    .slice(queryAt + 1)
    .split('&')
    .map((pair) => {
      const [name = '', ...value] = pair.split('=');
      return value.length > 0 && SECRET_PARAMETER.test(decodeURIComponentSafe(name))
        ? `${name}=[redacted]`
        : pair;
    })
    .join('&');
  return `${path}?${query}`;
}

function decodeURIComponentSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** Fastify's request serializer, with the URL as urlForLog writes it. */
function requestForLog(request: FastifyRequest) {
  return {
    method: request.method,
    url: urlForLog(request.url),
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  };
}

/** How long /readyz waits for the service's checks (a database that does not answer at all). */
const READY_CHECK_MS = 5000;

function withinTime<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`database unreachable (no answer within ${ms / 1000} s)`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

const isLoopback = (address: string) =>
  address === '127.0.0.1' || address === '::1' || address === '::ffff:127.0.0.1';

/**
 * Who may read /metrics: with a token, whoever sends it as a Bearer token (compared in constant
 * time); without one, requests from the machine itself only.
 */
function metricsAccess(token: string | undefined): (request: FastifyRequest) => boolean {
  if (!token) {
    // Both the connection and, through a trusted proxy on this machine, the client it forwards for.
    return (request) => isLoopback(request.socket.remoteAddress ?? '') && isLoopback(request.ip);
  }
  const expected = createHash('sha256').update(`Bearer ${token}`).digest();
  return (request) => {
    const sent = createHash('sha256')
      .update(request.headers.authorization ?? '')
      .digest();
    return timingSafeEqual(sent, expected);
  };
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Registry;
    /** Reports the pool on /metrics as connect_db_pool_connections{pool=name}. */
    watchPool(name: string, pool: PoolCounts): void;
    /** Adds metrics collected elsewhere (another thread's) to /metrics. */
    addMetricsSource(source: MetricsSource): void;
    /** Adds a check /readyz runs first: it throws, naming what is wrong, when the service is not ready. */
    addReadinessCheck(check: () => void): void;
  }
}
