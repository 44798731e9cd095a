import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Config } from './config.ts';
import { startEmbeddedPostgres } from './embedded-postgres.ts';
import { namedStatementsPool } from './named-statements.ts';
import type { Database } from './schema.ts';

// bigint (int8) columns hold ledger indexes and sizes, all below 2^53: read them as numbers.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

export interface DatabaseHandle {
  url: string;
  pool: pg.Pool;
  db: Kysely<Database>;
  /** Closes the pool, then stops the embedded PostgreSQL if this process started it. */
  close(): Promise<void>;
}

/**
 * How long a pooled connection may sit idle before it is closed. pg's default, 10 s, closed
 * connections between the bursts of a steady load, and each one opened again cost a server process,
 * its catalog caches and every statement prepared anew: a stall in the requests that waited for it.
 * A minute keeps them through such gaps and still gives a peak's connections back to the server.
 */
export const POOL_IDLE_MS = 60_000;

/**
 * Longest a query waits for a pooled connection: every one busy, or a server that does not answer a
 * new one. pg's default is to wait without end, so a request held up behind a stuck pool hung with
 * it; now it fails ("timeout exceeded when trying to connect") and is answered 503 with Retry-After.
 */
export const POOL_WAIT_MS = 10_000;

/**
 * A named statement is planned once per connection (named-statements.ts): PostgreSQL's default,
 * `auto`, plans it again at every execution whenever its plan for the values looks cheaper than the
 * generic one. It did so for the projector's claim and skip, which read their bounds from the
 * checkpoint rather than from a parameter, and for reads by `id = any($1)` with a short array: the
 * same plan made anew each time, the planning costing more than the statement. Statements whose
 * plan must follow their values stay unnamed.
 */
const GENERIC_PLANS = '-c plan_cache_mode=force_generic_plan';

/** A pool with these settings; `extra` overrides them, but its `options` (server settings) add to them. */
export function createPool(url: string, max = 20, extra: pg.PoolConfig = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max,
    idleTimeoutMillis: POOL_IDLE_MS,
    connectionTimeoutMillis: POOL_WAIT_MS,
    // An idle connection a firewall or load balancer dropped is found before a query waits on it.
    keepAlive: true,
    keepAliveInitialDelayMillis: 30_000,
    ...extra,
    options: [GENERIC_PLANS, extra.options].filter(Boolean).join(' '),
  });
  // A client whose connection dies (server restart, network), idle or checked out between two
  // queries, must not crash the process; its next query fails instead.
  pool.on('error', () => undefined);
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

export function createKysely(pool: pg.Pool): Kysely<Database> {
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool: namedStatementsPool(pool) }) });
}

/** Where a database is, for a message: the data directory, or the URL without its password. */
function describe(config: Pick<Config, 'databaseUrl' | 'dataDir'>): string {
  if (!config.databaseUrl) return `${config.dataDir} (CONNECT_DATA_DIR)`;
  const url = new URL(config.databaseUrl);
  url.password = '';
  return `${url} (DATABASE_URL)`;
}

async function assertCreated(pool: pg.Pool, config: Pick<Config, 'databaseUrl' | 'dataDir'>): Promise<void> {
  const { rows } = await pool.query<{ exists: boolean }>(
    `select to_regclass('schema_migrations') is not null as exists`,
  );
  if (!rows[0]?.exists) {
    throw new Error(
      `no Connect database in ${describe(config)}: it was never migrated; point it at the service's database, or run connect migrate first`,
    );
  }
}

/**
 * Connects to DATABASE_URL, or starts the embedded PostgreSQL when it is unset. With `create`
 * false, a database Connect never migrated (or an embedded one never initialised) is refused.
 */
export async function openDatabase(
  config: Pick<Config, 'databaseUrl' | 'dataDir'> & Partial<Pick<Config, 'walArchive'>>,
  options: { create?: boolean } = {},
): Promise<DatabaseHandle> {
  const embedded = config.databaseUrl
    ? undefined
    : await startEmbeddedPostgres(config.dataDir, { create: options.create, walArchive: config.walArchive });
  const url = config.databaseUrl ?? embedded?.url;
  if (!url) throw new Error('no database: set DATABASE_URL or let the embedded PostgreSQL start');
  const pool = createPool(url, 40);
  const db = createKysely(pool);
  const close = async () => {
    await db.destroy();
    // Kysely ends the pool only if it ever ran a query itself.
    if (!pool.ending && !pool.ended) await pool.end();
    await embedded?.stop();
  };
  if (options.create === false) {
    try {
      await assertCreated(pool, config);
    } catch (error) {
      await close();
      throw error;
    }
  }
  return { url, pool, db, close };
}
