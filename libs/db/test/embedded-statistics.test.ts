// A table of the embedded PostgreSQL is analysed within seconds of growing, not up to a minute
// later: until then, a lookup of a hundred keys is planned as if it matched half the table.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { type EmbeddedPostgres, startEmbeddedPostgres } from '../src/embedded-postgres.ts';

let dir: string;
let embedded: EmbeddedPostgres;
let client: pg.Client;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'connect-stats-'));
  await chmod(dir, 0o711);
  embedded = await startEmbeddedPostgres(dir);
  client = new pg.Client({ connectionString: embedded.url });
  await client.connect();
}, 60_000);

afterAll(async () => {
  await client?.end();
  await embedded?.stop();
  await rm(dir, { recursive: true, force: true });
});

test('a table that grows is analysed within seconds', async () => {
  expect((await client.query('show autovacuum_naptime')).rows[0].autovacuum_naptime).toBe('10s');
  await client.query('create table grows (id int primary key, stream text not null)');
  const started = Date.now();
  await client.query(`insert into grows select i, 'stream-' || (i / 4) from generate_series(1, 50000) i`);
  const analysed = async () =>
    (
      await client.query<{ at: Date | null }>(
        `select last_autoanalyze as at from pg_stat_user_tables where relname = 'grows'`,
      )
    ).rows[0]?.at;
  while (!(await analysed()) && Date.now() - started < 40_000) {
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  expect(await analysed()).toBeInstanceOf(Date);
  expect(Date.now() - started).toBeLessThan(25_000);
  // What the planner then estimates a key lookup from: how many distinct keys the column holds.
  const stats = await client.query<{ n_distinct: number }>(
    `select n_distinct from pg_stats where tablename = 'grows' and attname = 'stream'`,
  );
  expect(stats.rows[0]?.n_distinct).toBeLessThan(0); // a fraction of the rows: grows with the table
}, 60_000);
