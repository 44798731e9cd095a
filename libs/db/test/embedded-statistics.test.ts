// A table of the embedded PostgreSQL is analysed within seconds of growing, not up to a minute
// later: until then, a lookup of a hundred keys is planned as if it matched half the table, a scan
// of all of it.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { type EmbeddedPostgres, startEmbeddedPostgres } from '../src/embedded-postgres.ts';

let dir: string | undefined;
let embedded: EmbeddedPostgres | undefined;
let client: pg.Client | undefined;

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
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('a table that grows is analysed within seconds, and its key lookups then read the index', async () => {
  const db = client as pg.Client;
  expect((await db.query('show autovacuum_naptime')).rows[0].autovacuum_naptime).toBe('10s');
  // Left alone by autovacuum until the lookup has been planned without statistics.
  await db.query(
    'create table grows (id int primary key, stream text not null) with (autovacuum_enabled = false)',
  );
  await db.query('create index on grows (stream)');
  await db.query(`insert into grows select i, 'stream-' || (i / 4) from generate_series(1, 50000) i`);
  const keys = Array.from({ length: 100 }, (_, i) => `stream-${i * 7}`);
  const lookupPlan = async () =>
    (await db.query(`explain select * from grows where stream = any($1::text[])`, [keys])).rows[0][
      'QUERY PLAN'
    ] as string;
  expect(await lookupPlan()).toMatch(/^Seq Scan/);

  await db.query('alter table grows set (autovacuum_enabled = true)');
  const started = Date.now();
  const analysed = async () =>
    (
      await db.query<{ at: Date | null }>(
        `select last_autoanalyze as at from pg_stat_user_tables where relname = 'grows'`,
      )
    ).rows[0]?.at;
  while (!(await analysed()) && Date.now() - started < 40_000) {
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  expect(await analysed()).toBeInstanceOf(Date);
  expect(Date.now() - started).toBeLessThan(25_000);
  expect(await lookupPlan()).toMatch(/^(Bitmap Heap Scan|Index Scan)/);
}, 60_000);
