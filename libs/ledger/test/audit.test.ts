import { signCheckpoint, signingKeyFromSeed } from '@connect/crypto';
import { afterAll, beforeAll, beforeEach, expect, test } from 'vitest';
import type { TestDatabase } from '../../../test/support/database.ts';
import { auditLedger, type Ledger } from '../src/index.ts';
import { event, KEY, testLedger } from './support.ts';

let database: TestDatabase;
let ledger: Ledger;

beforeAll(async () => {
  ({ database, ledger } = await testLedger());
  for (let i = 0; i < 40; i++) {
    await ledger.append({
      stream: `s-${i % 5}`,
      expectedVersion: 'any',
      actor: 'ana',
      events: [event('Noted', { text: `note ${i}`, n: i }), event('Checked')],
    });
  }
});
afterAll(() => database.close());

// Tampering as a hostile operator would: as the table owner, with the immutability triggers off.
async function tamper(sql: string): Promise<void> {
  const client = await database.pool.connect();
  try {
    await client.query('begin');
    await client.query('set local session_replication_role = replica');
    await client.query(sql);
    await client.query('commit');
  } catch (error) {
    await client.query('rollback');
    throw error;
  } finally {
    client.release();
  }
}

const TABLES = ['ledger_entries', 'ledger_tree', 'ledger_checkpoints'] as const;
let snapshot: Record<string, unknown[]> | undefined;
beforeEach(async () => {
  if (!snapshot) {
    snapshot = {};
    for (const table of TABLES) snapshot[table] = (await database.pool.query(`select * from ${table}`)).rows;
  }
  const client = await database.pool.connect();
  try {
    await client.query('set session_replication_role = replica');
    for (const table of TABLES) {
      await client.query(`delete from ${table}`);
      await client.query(
        `insert into ${table} select * from jsonb_populate_recordset(null::${table}, $1::jsonb)`,
        [JSON.stringify((snapshot[table] ?? []).map(hexBytes))],
      );
    }
    await client.query('set session_replication_role = origin');
  } finally {
    client.release();
  }
});

function hexBytes(row: unknown): unknown {
  return Object.fromEntries(
    Object.entries(row as Record<string, unknown>).map(([k, v]) => [
      k,
      Buffer.isBuffer(v) ? `\\x${v.toString('hex')}` : v,
    ]),
  );
}

test('an untouched ledger passes the audit', async () => {
  expect(await auditLedger(database.db, KEY, { pageSize: 7 })).toEqual({
    ok: true,
    treeSize: 80,
    checkpoints: 41,
  });
});

test('the audit names an entry whose data changed by one byte', async () => {
  await tamper(`update ledger_entries set data = jsonb_set(data, '{text}', '"note 2X"') where index = 26`);
  expect(await auditLedger(database.db, KEY, { pageSize: 7 })).toMatchObject({
    ok: false,
    index: 26,
    problem: 'dataHash does not match the data and salt',
  });
});

test('the audit names an entry whose header changed', async () => {
  await tamper(`update ledger_entries set actor = 'eve' where index = 33`);
  expect(await auditLedger(database.db, KEY)).toMatchObject({ ok: false, index: 33 });
});

test('the audit names an entry whose salt changed', async () => {
  await tamper(`update ledger_entries set salt = set_byte(salt, 0, get_byte(salt, 0) # 1) where index = 5`);
  expect(await auditLedger(database.db, KEY)).toMatchObject({ ok: false, index: 5 });
});

test('the audit names the entry completing a stored subtree hash that changed', async () => {
  await tamper(
    `update ledger_tree set hash = set_byte(hash, 3, get_byte(hash, 3) # 1) where level = 3 and idx = 2`,
  );
  // Node (3, 2) covers leaves 16..23 and is completed by entry 23.
  expect(await auditLedger(database.db, KEY)).toMatchObject({
    ok: false,
    index: 23,
    problem: 'stored tree hash 3/2 does not match',
  });
});

test('the audit names a missing entry', async () => {
  await tamper(`delete from ledger_entries where index = 50`);
  expect(await auditLedger(database.db, KEY)).toMatchObject({ ok: false, index: 50 });
});

test('rewriting an entry consistently (new dataHash and leaf) still breaks the tree', async () => {
  await tamper(
    `update ledger_entries set leaf_hash = set_byte(leaf_hash, 0, get_byte(leaf_hash, 0) # 1) where index = 12`,
  );
  expect(await auditLedger(database.db, KEY)).toMatchObject({ ok: false, index: 12 });
});

test('without tampering rights, entries cannot be changed or deleted', async () => {
  await expect(
    database.pool.query(`update ledger_entries set actor = 'eve' where index = 1`),
  ).rejects.toThrow(/immutable/);
  await expect(database.pool.query(`delete from ledger_entries where index = 1`)).rejects.toThrow(
    /cannot be deleted/,
  );
  await expect(database.pool.query(`update ledger_tree set hash = '\\x00' where level = 1`)).rejects.toThrow(
    /immutable/,
  );
});

test('the audit catches a checkpoint signed by another key', async () => {
  const other = signingKeyFromSeed(KEY.name, new Uint8Array(32).fill(1));
  const { rows } = await database.pool.query<{ root_hash: Buffer }>(
    'select root_hash from ledger_checkpoints where tree_size = 10',
  );
  const forged = signCheckpoint(
    { origin: KEY.name, treeSize: 10, rootHash: rows[0]?.root_hash ?? new Uint8Array() },
    other,
  );
  await tamper(`update ledger_checkpoints set note = '${forged}' where tree_size = 10`);
  expect(await auditLedger(database.db, KEY)).toMatchObject({
    ok: false,
    problem: expect.stringMatching(/checkpoint of size 10 does not verify/),
  });
});

test('the audit catches a checkpoint for a root the tree never had', async () => {
  const forged = signCheckpoint({ origin: KEY.name, treeSize: 12, rootHash: new Uint8Array(32) }, KEY);
  await tamper(
    `update ledger_checkpoints set note = '${forged}', root_hash = '\\x${'00'.repeat(32)}' where tree_size = 12`,
  );
  expect(await auditLedger(database.db, KEY)).toMatchObject({
    ok: false,
    index: 11,
    problem: 'checkpoint of size 12 does not match the recomputed root',
  });
});

test('the audit names swapped entries', async () => {
  // Entries 20 and 21 trade places: each header now claims the other's position.
  await tamper(`update ledger_entries set index = 1000000 where index = 20`);
  await tamper(`update ledger_entries set index = 20 where index = 21`);
  await tamper(`update ledger_entries set index = 21 where index = 1000000`);
  expect(await auditLedger(database.db, KEY)).toMatchObject({ ok: false, index: 20 });
});

test('the audit catches a ledger rolled back to an earlier size while a later checkpoint stands', async () => {
  // The operator drops the last entries and moves the head back; the checkpoint clients were
  // given for the larger tree is still in the table, and no longer matches anything.
  await tamper(`delete from ledger_entries where index >= 70`);
  await tamper(`delete from ledger_tree where (idx + 1) * (1 << level) > 70`);
  await tamper(`delete from ledger_checkpoints where tree_size > 70 and tree_size < 80`);
  await tamper(
    `update ledger_head set tree_size = 70, root_hash = (select root_hash from ledger_checkpoints where tree_size = 70)`,
  );
  const result = await auditLedger(database.db, KEY);
  expect(result.ok).toBe(false);
  expect(result).toMatchObject({ problem: 'a checkpoint is signed for a size beyond the head' });
});

test('an audit of a ledger that grows meanwhile checks what the head said and passes', async () => {
  // As `connect verify` beside a running service: appends keep arriving while the audit reads.
  await database.pool.query(
    `update ledger_head set tree_size = 80, root_hash = (select root_hash from ledger_checkpoints where tree_size = 80)`,
  );
  let appending = true;
  const appends = (async () => {
    for (let i = 0; appending; i++)
      await ledger.append({
        stream: `growing-${i % 3}`,
        expectedVersion: 'any',
        actor: 'ana',
        events: [event('Noted', { text: `later ${i}`, n: i })],
      });
  })();
  try {
    for (let round = 0; round < 5; round++)
      expect(await auditLedger(database.db, KEY, { pageSize: 7 })).toMatchObject({ ok: true });
  } finally {
    appending = false;
    await appends;
  }
});
