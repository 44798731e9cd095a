// How the audits read stored subtree hashes from a large tree: by index, never by scanning it.
// (A plain join once hashed a scan of the whole table for every page the continuous audit read,
// which kept two cores busy on an idle server with a ledger of a million entries.)
import { nodeKey } from '@connect/crypto';
import type { Database } from '@connect/db';
import { type Kysely, sql } from 'kysely';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.ts';
import { storedNodesCompletedIn } from '../src/audit.ts';

const LEVELS = 17;
let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
  // The inner nodes of a tree of 2^17 leaves (131,071 rows) in the order appends write them (so
  // the levels are interleaved on disk), with the planner's statistics on them.
  await database.pool.query(
    `insert into ledger_tree (level, idx, hash)
     select level, idx, sha256(int8send(idx))
     from generate_series(1, $1::int) as level,
          lateral generate_series(0, (1::bigint << ($1::int - level)) - 1) as idx
     order by (idx + 1) << level`,
    [LEVELS],
  );
  await database.pool.query('analyze ledger_tree');
}, 60_000);
afterAll(() => database.close());

/** This transaction's scans of ledger_tree so far. */
async function treeScans(trx: Kysely<Database>) {
  const { rows } = await sql<{ seq_scan: string; idx_scan: string }>`
    select seq_scan, idx_scan from pg_stat_xact_user_tables where relname = 'ledger_tree'`.execute(trx);
  return { seq: Number(rows[0]?.seq_scan), index: Number(rows[0]?.idx_scan) };
}

test('a page of the audit reads its stored hashes through the index, whatever the size of the tree', async () => {
  const { stored, before, after } = await database.db.transaction().execute(async (trx) => {
    const before = await treeScans(trx);
    const stored = await storedNodesCompletedIn(trx, 65_536, 65_586);
    return { stored, before, after: await treeScans(trx) };
  });
  // Leaves 65,536..65,585 complete 25 + 12 + 6 + 3 + 1 inner nodes on levels 1–5.
  expect(stored.size).toBe(47);
  expect(stored.get(nodeKey({ level: 1, index: 32_768 }))).toHaveLength(32);
  expect(stored.get(nodeKey({ level: 5, index: 2_048 }))).toHaveLength(32);
  expect(after.seq - before.seq).toBe(0);
  expect(after.index - before.index).toBeGreaterThan(0);
});
