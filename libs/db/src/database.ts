import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Config } from './config.ts';
import { startEmbeddedPostgres } from './embedded-postgres.ts';
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

export function createPool(url: string, max = 20, extra: pg.PoolConfig = {}): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max, ...extra });
  // An idle client whose connection dies (server restart, network) must not crash the process.
  pool.on('error', () => undefined);
  return pool;
}

export function createKysely(pool: pg.Pool): Kysely<Database> {
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}

/** Connects to DATABASE_URL, or starts the embedded PostgreSQL when it is unset. */
export async function openDatabase(config: Pick<Config, 'databaseUrl' | 'dataDir'>): Promise<DatabaseHandle> {
  const embedded = config.databaseUrl ? undefined : await startEmbeddedPostgres(config.dataDir);
  const url = config.databaseUrl ?? embedded?.url;
  if (!url) throw new Error('no database: set DATABASE_URL or let the embedded PostgreSQL start');
  const pool = createPool(url, 40);
  const db = createKysely(pool);
  return {
    url,
    pool,
    db,
    close: async () => {
      await db.destroy();
      await embedded?.stop();
    },
  };
}
