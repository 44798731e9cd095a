// Bodies sealed at rest: the rows hold ciphertext, every reader gets the bodies as appended, the
// leaf hashes and proofs are what they would be in the clear, a body moved to another row does
// not open (nor one altered after it was read), and an erased stream key leaves entries that
// read as redacted and still audit.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dataHash, fromBase64 } from '@connect/crypto';
import { eraseDataKey, type KeyRing, keyRing, localMasterKeys } from '@connect/db';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.ts';
import {
  auditLedger,
  bodyCipher,
  buildReceipt,
  type Entry,
  type Ledger,
  openLedger,
  readEntries,
  readStream,
  streamKeySubject,
} from '../src/index.ts';
import { KEY, ORIGIN } from './support.ts';

const MARKER = 'IBAN-DE89-SEALED-MARKER';
let database: TestDatabase;
let keys: KeyRing;
let ledger: Ledger;
let appended: Entry[];

beforeAll(async () => {
  database = await createTestDatabase();
  const dataDir = await mkdtemp(path.join(tmpdir(), 'connect-sealed-'));
  keys = keyRing(database.pool, await localMasterKeys({ dataDir }), { listen: false });
  ledger = await openLedger({
    pool: database.pool,
    db: database.db,
    origin: ORIGIN,
    key: KEY,
    cipher: bodyCipher(keys, { sealNew: true }),
  });
  appended = [];
  for (const stream of ['commitment-a', 'commitment-b', 'profile-ana']) {
    const result = await ledger.append({
      stream,
      expectedVersion: 'any',
      actor: 'ana',
      events: [
        { type: 'Noted', data: { terms: `${MARKER} ${stream}`, amount: 125 } },
        { type: 'Checked', data: {} },
      ],
    });
    if (result.outcome !== 'appended') throw new Error(result.outcome);
    appended.push(...result.entries);
  }
});
afterAll(async () => {
  await keys.close();
  await database.close();
});

test('rows hold ciphertext only; readers get each body as appended, its hashes unchanged', async () => {
  const { rows } = await database.pool.query('select data, salt, sealed from ledger_entries order by index');
  for (const row of rows) expect(row).toMatchObject({ data: null, salt: null, sealed: expect.any(Buffer) });
  const dump = await database.pool.query("select string_agg(t::text, '') as all from ledger_entries t");
  expect(dump.rows[0].all).not.toContain(MARKER);
  expect(dump.rows[0].all).not.toContain(Buffer.from(MARKER).toString('hex'));

  const read = await readEntries(database.db, ledger, 0, 100);
  expect(read).toEqual(appended);
  for (const entry of read) {
    expect(dataHash(fromBase64(entry.salt as string), entry.data as never)).toBe(entry.dataHash);
  }
  expect((await readStream(database.db, ledger, 'commitment-a'))[0]?.data).toEqual({
    terms: `${MARKER} commitment-a`,
    amount: 125,
  });
});

test('a receipt and the audit work on sealed bodies', async () => {
  const receipt = await buildReceipt({ ...ledger, db: database.db, pool: database.pool }, 'commitment-a');
  expect(receipt.entries.map((e) => e.data)).toEqual(appended.slice(0, 2).map((e) => e.data));
  expect(await auditLedger(database.db, KEY, { cipher: ledger.cipher })).toMatchObject({ ok: true });
});

/** Sets a row's sealed body as a hostile operator would (triggers off); returns the one it had. */
async function setSealed(index: number, sealed: Buffer): Promise<Buffer> {
  const client = await database.pool.connect();
  try {
    await client.query('begin');
    await client.query('set local session_replication_role = replica');
    const { rows } = await client.query('select sealed from ledger_entries where index = $1', [index]);
    await client.query('update ledger_entries set sealed = $2 where index = $1', [index, sealed]);
    await client.query('commit');
    return rows[0].sealed;
  } finally {
    client.release();
  }
}

test('a body moved to another entry does not open, and the audit names the entry', async () => {
  const { rows } = await database.pool.query('select sealed from ledger_entries where index = 0');
  const original = await setSealed(1, rows[0].sealed);
  try {
    await expect(readEntries(database.db, ledger, 0, 100)).rejects.toThrow(/ledger_entries:.* does not open/);
    expect(await auditLedger(database.db, KEY, { cipher: ledger.cipher })).toMatchObject({
      ok: false,
      index: 1,
      problem: expect.stringMatching(/does not open/),
    });
  } finally {
    await setSealed(1, original);
  }
});

test('a body read before is opened again once its stored bytes change: the audit checks what is stored', async () => {
  expect((await readEntries(database.db, ledger, 2, 1))[0]?.data).toMatchObject({ amount: 125 });
  const { rows } = await database.pool.query('select sealed from ledger_entries where index = 2');
  const altered = Buffer.from(rows[0].sealed);
  altered[20] = (altered[20] as number) ^ 1; // a ciphertext byte, the tag kept
  const original = await setSealed(2, altered);
  try {
    await expect(readEntries(database.db, ledger, 2, 1)).rejects.toThrow(/ledger_entries:.* does not open/);
    expect(await auditLedger(database.db, KEY, { cipher: ledger.cipher })).toMatchObject({
      ok: false,
      index: 2,
    });
  } finally {
    await setSealed(2, original);
  }
  expect((await readEntries(database.db, ledger, 2, 1))[0]?.data).toMatchObject({ amount: 125 });
});

test('a body kept by its sealer is refused once its stored bytes change, though never opened', async () => {
  const result = await ledger.append({
    stream: 'commitment-c',
    expectedVersion: 'any',
    actor: 'ana',
    events: [{ type: 'Noted', data: { terms: 'kept at sealing', amount: 7 } }],
  });
  if (result.outcome !== 'appended') throw new Error(result.outcome);
  const index = result.entries[0]?.index as number;
  const { rows } = await database.pool.query('select sealed from ledger_entries where index = $1', [index]);
  const altered = Buffer.from(rows[0].sealed);
  altered[20] = (altered[20] as number) ^ 1;
  const original = await setSealed(index, altered);
  try {
    await expect(readEntries(database.db, ledger, index, 1)).rejects.toThrow(/does not open/);
  } finally {
    await setSealed(index, original);
  }
  expect((await readEntries(database.db, ledger, index, 1))[0]?.data).toEqual({
    terms: 'kept at sealing',
    amount: 7,
  });
});

test('drain waits for an append whose new stream key is still being made', async () => {
  const appended = ledger.append({
    stream: 'commitment-drained',
    expectedVersion: 'no_stream',
    actor: 'ana',
    events: [{ type: 'Noted', data: { terms: 'drained' } }],
  });
  await ledger.drain();
  expect((await readStream(database.db, ledger, 'commitment-drained')).map((e) => e.data)).toEqual([
    { terms: 'drained' },
  ]);
  expect((await appended).outcome).toBe('appended');
});

test('after its stream key is erased, a stream reads as redacted, and proofs and the audit still hold', async () => {
  const client = await database.pool.connect();
  try {
    await client.query('begin');
    await eraseDataKey(client, streamKeySubject('profile-ana'));
    await client.query('commit');
  } finally {
    client.release();
  }
  keys.forget(streamKeySubject('profile-ana'));
  const profile = await readStream(database.db, ledger, 'profile-ana');
  expect(profile.map((e) => [e.data, e.salt, e.redacted])).toEqual([
    [null, null, true],
    [null, null, true],
  ]);
  expect(profile.map((e) => e.leafHash)).toEqual(appended.slice(4).map((e) => e.leafHash));
  expect((await readStream(database.db, ledger, 'commitment-b'))[0]?.data).toMatchObject({ amount: 125 });
  const audit = await auditLedger(database.db, KEY, { cipher: ledger.cipher });
  expect(audit, JSON.stringify(audit)).toMatchObject({ ok: true });
  const appendMore = await ledger
    .append({
      stream: 'profile-ana',
      expectedVersion: 'any',
      actor: 'ana',
      events: [{ type: 'Again', data: {} }],
    })
    .catch((error: Error) => error.message);
  expect(appendMore).toMatch(/erased/);
});
