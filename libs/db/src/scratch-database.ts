import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createKysely, createPool, type DatabaseHandle } from './database.ts';
import { migrate } from './migrate.ts';

async function onServer(adminUrl: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/**
 * A new, migrated database on the server `adminUrl` points at, for tests and benchmarks;
 * `close` drops it. Several can live side by side, so test files run in parallel.
 */
export async function createScratchDatabase(
  adminUrl: string,
  prefix: string,
  poolSize = 10,
): Promise<DatabaseHandle> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  await onServer(adminUrl, `create database ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const pool = createPool(url.toString(), poolSize);
  await migrate(pool);
  const db = createKysely(pool);
  return {
    url: url.toString(),
    pool,
    db,
    close: async () => {
      await db.destroy();
      await onServer(adminUrl, `drop database if exists ${name} with (force)`);
    },
  };
}
