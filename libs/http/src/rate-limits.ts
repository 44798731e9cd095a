// Rate limits every instance of a service shares: @fastify/rate-limit counting in
// PostgreSQL (table rate_limits, migration 019) rather than in one process's memory, so a client
// spreading its requests over many instances meets the same limit. Hits are counted by atomic
// `insert … on conflict do update … returning` statements, each for the hits that arrived while
// the one before ran. If the database cannot count, the request
// goes through (fail-open) and a warning is logged: a limiter must not take the service down.
import { type Database, groupedCalls, prepared } from '@connect/db';
import rateLimit, {
  type FastifyRateLimitStore,
  type FastifyRateLimitStoreCtor,
  type RateLimitPluginOptions,
} from '@fastify/rate-limit';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { type Kysely, sql } from 'kysely';
import { HttpProblem, problem } from './problem.ts';

export const RATE_LIMIT_WINDOW_MS = 60_000;
/** How often one process deletes rows whose window passed (those never hit again). */
const SWEEP_EVERY_MS = 60_000;
const SWEEP_ROWS = 1000;
/** How often one process says, at most, that it could not count. */
const WARN_EVERY_MS = 60_000;

export interface Hit {
  /** Hits in the current window, this one included. */
  count: number;
  /** When the window ends. */
  resetAt: Date;
}

/** Counts a hit of `key`, in a window of `windowMs` from the window's first hit; a passed window starts over. */
export type CountHit = (key: string, windowMs: number, at: Date) => Promise<Hit>;

/**
 * Counts hits in groups, as the ledger groups appends: the hits that arrive while one statement
 * runs go in the next, one atomic `insert … on conflict do update … returning` for them all (a key hit n
 * times adds n). Each hit still gets its own exact count: the n hits of a key in one statement
 * are numbered up to the count it returns.
 */
export function rateLimitCounter(db: Kysely<Database>): CountHit {
  const countHit = groupedCalls(async (hits: readonly PendingHit[]) => {
    const counted = await countGroup(db, hits);
    const seen = new Map<string, number>();
    return hits.map((hit): Hit => {
      const row = counted.get(hit.key) as { count: number; resetAt: Date; hits: number };
      const later = row.hits - 1 - (seen.get(hit.key) ?? 0);
      seen.set(hit.key, (seen.get(hit.key) ?? 0) + 1);
      return { count: row.count - later, resetAt: row.resetAt };
    });
  });
  return (key, windowMs, at) => countHit({ key, windowMs, at });
}

interface PendingHit {
  key: string;
  windowMs: number;
  at: Date;
}

/** One statement for a group of hits; by key, its count and window end after them, and how many it took. */
async function countGroup(
  db: Kysely<Database>,
  hits: readonly PendingHit[],
): Promise<Map<string, { count: number; resetAt: Date; hits: number }>> {
  const byKey = new Map<string, { at: Date; windowMs: number; hits: number }>();
  for (const { key, at, windowMs } of hits) {
    const group = byKey.get(key);
    if (group) {
      group.hits++;
      // The earliest: a group that straddles the end of a window counts in the old one (a few
      // milliseconds' hits too strict, never a hit let through that the old window would stop).
      if (at < group.at) group.at = at;
    } else byKey.set(key, { at, windowMs, hits: 1 });
  }
  // Sorted, so two instances counting the same keys lock their rows in one order.
  const keys = [...byKey.keys()].sort();
  const groups = keys.map((key) => byKey.get(key) as { at: Date; windowMs: number; hits: number });
  const counting = sql<{ key: string; count: number; expires_at: Date }>`
    insert into rate_limits as r (key, window_start, expires_at, count)
    select * from unnest(
      ${keys}::text[],
      ${groups.map((group) => group.at)}::timestamptz[],
      ${groups.map((group) => new Date(group.at.getTime() + group.windowMs))}::timestamptz[],
      ${groups.map((group) => group.hits)}::int[])
    on conflict (key) do update set
      window_start = case when r.expires_at <= excluded.window_start then excluded.window_start else r.window_start end,
      expires_at = case when r.expires_at <= excluded.window_start then excluded.expires_at else r.expires_at end,
      count = case when r.expires_at <= excluded.window_start then excluded.count else r.count + excluded.count end
    returning key, count, expires_at`.compile(db);
  const { rows } = await db.executeQuery(prepared('rate-limits-count', counting));
  const counted = new Map(
    rows.map((row) => [
      row.key,
      { count: row.count, resetAt: row.expires_at, hits: byKey.get(row.key)?.hits ?? 0 },
    ]),
  );
  if (counted.size !== keys.length) throw new Error('rate limit upsert returned fewer rows than keys');
  return counted;
}

/**
 * Deletes up to `limit` rows whose window passed before `at` (a row hit again meanwhile stays).
 * Rows being counted are skipped, and the rest locked in key order as the counter locks them:
 * a grouped count and a sweep never wait on each other in a cycle.
 */
export async function sweepRateLimits(db: Kysely<Database>, at: Date, limit = SWEEP_ROWS): Promise<void> {
  await sql`
    delete from rate_limits
    where key in (select key from rate_limits where expires_at < ${at}
                  order by key limit ${limit} for update skip locked)
      and expires_at < ${at}`.execute(db);
}

export interface RateLimitStoreDeps {
  db: Kysely<Database>;
  log: FastifyBaseLogger;
  /** The clock windows are counted by (tests move it). */
  now?: () => Date;
}

/** A @fastify/rate-limit store class over the rate_limits table. */
export function postgresRateLimitStore(deps: RateLimitStoreDeps): FastifyRateLimitStoreCtor {
  const now = deps.now ?? (() => new Date());
  const countHit = rateLimitCounter(deps.db);
  let sweptAt = 0;
  let warnedAt = Number.NEGATIVE_INFINITY;

  function sweepNowAndThen(at: Date) {
    if (at.getTime() - sweptAt < SWEEP_EVERY_MS) return;
    sweptAt = at.getTime();
    sweepRateLimits(deps.db, at).catch(() => {
      // the next sweep tries again; counting said what is wrong
    });
  }

  class PostgresRateLimitStore implements FastifyRateLimitStore {
    /** `prefix`: the route a child store counts for, so each route has counters of its own. */
    constructor(
      _options: unknown,
      private readonly prefix = '',
    ) {}

    incr(
      key: string,
      callback: (error: Error | null, result?: { current: number; ttl: number }) => void,
      timeWindow = RATE_LIMIT_WINDOW_MS,
    ): void {
      const at = now();
      countHit(`${this.prefix}${key}`, timeWindow, at).then(
        (hit) => {
          sweepNowAndThen(at);
          callback(null, { current: hit.count, ttl: Math.max(0, hit.resetAt.getTime() - at.getTime()) });
        },
        (error: unknown) => {
          if (at.getTime() - warnedAt >= WARN_EVERY_MS) {
            warnedAt = at.getTime();
            deps.log.warn(
              { error: error instanceof Error ? error.message : String(error) },
              'rate limits cannot be counted (database unreachable?); requests go through unlimited',
            );
          }
          callback(null, { current: 0, ttl: timeWindow });
        },
      );
    }

    child(routeOptions: RouteOptions & { path: string; prefix: string }): FastifyRateLimitStore {
      const route = (routeOptions as { routeInfo?: { method?: unknown; url?: unknown } }).routeInfo;
      const prefix = typeof route?.url === 'string' ? `${String(route.method)} ${route.url}:` : this.prefix;
      return new PostgresRateLimitStore(undefined, prefix);
    }
  }
  return PostgresRateLimitStore;
}

const tooMany = (what: string, seconds: number) =>
  new HttpProblem(
    problem(429, `Too many ${what}; try again in ${seconds} seconds.`, undefined, 'rate-limited'),
  );

/**
 * Registers @fastify/rate-limit on `app`, counting in PostgreSQL, for route configs
 * (`config.rateLimit`) and `sharedRateLimit` hooks under it. Register it once per service: a second
 * registration below would count its routes twice.
 */
export async function registerSharedRateLimits(
  app: FastifyInstance,
  deps: RateLimitStoreDeps,
): Promise<void> {
  const options: RateLimitPluginOptions = {
    global: false,
    store: postgresRateLimitStore(deps),
    timeWindow: RATE_LIMIT_WINDOW_MS,
    errorResponseBuilder: (_request, context) => tooMany('requests', Math.ceil(context.ttl / 1000)),
  };
  await app.register(rateLimit, options);
}

export interface SharedLimit {
  /** Hits per minute. */
  max: number;
  /** The key counted, naming what is limited and by what; undefined: not limited by this one. */
  key(request: FastifyRequest): string | undefined | Promise<string | undefined>;
}

/**
 * A hook counting the request against each limit (all of them, so each stays a true count);
 * past any of them, 429 `/problems/rate-limited` with Retry-After (the longest wait).
 */
export function sharedRateLimit(
  app: FastifyInstance,
  limits: readonly SharedLimit[],
  what: string,
): (request: FastifyRequest, reply: FastifyReply) => Promise<void> {
  const checks = limits.map((limit) =>
    app.createRateLimit({
      max: limit.max,
      timeWindow: RATE_LIMIT_WINDOW_MS,
      keyGenerator: async (request) => (await limit.key(request)) ?? '',
      allowList: (_request, key) => key === '',
    }),
  );
  return async (request, reply) => {
    const results = await Promise.all(checks.map((check) => check(request)));
    let wait: number | undefined;
    let remaining: number | undefined;
    for (const result of results) {
      if (result.isAllowed) continue;
      remaining = Math.min(remaining ?? result.remaining, result.remaining);
      if (result.isExceeded) wait = Math.max(wait ?? 0, result.ttlInSeconds);
    }
    if (remaining !== undefined) reply.header('x-ratelimit-remaining', remaining);
    if (wait === undefined) return;
    reply.header('retry-after', wait);
    throw tooMany(what, wait);
  };
}
