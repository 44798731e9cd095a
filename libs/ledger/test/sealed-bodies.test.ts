// Bodies sealed at rest: the rows hold ciphertext, every reader gets the bodies as appended, the
// leaf hashes and proofs are what they would be in the clear, a body moved to another row does
// not open (nor one altered after it was read), and an erased stream key leaves entries that
// read as redacted and still audit.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dataHash, fromBase64 } from '@connect/crypto';
import { eraseDataKey, type KeyRing, keyRing, localMasterKeys } from '@connect/db';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
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

/** A ledger that seals new bodies with the keys of `ring`. */
const sealingLedger = (ring: KeyRing) =>
  openLedger({
    pool: database.pool,
    db: database.db,
    origin: ORIGIN,
    key: KEY,
    cipher: bodyCipher(ring, { sealNew: true }),
  });

beforeAll(async () => {
  database = await createTestDatabase();
  const dataDir = await mkdtemp(path.join(tmpdir(), 'connect-sealed-'));
  keys = keyRing(database.pool, await localMasterKeys({ dataDir }), { listen: false });
  ledger = await sealingLedger(keys);
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

test('drain waits for an append whose stream key is still being read or made', async () => {
  const appended = ledger.append({
    stream: 'commitment-drained',
    expectedVersion: 'any',
    actor: 'ana',
    events: [{ type: 'Noted', data: { terms: 'drained' } }],
  });
  await ledger.drain();
  expect((await readStream(database.db, ledger, 'commitment-drained')).map((e) => e.data)).toEqual([
    { terms: 'drained' },
  ]);
  expect((await appended).outcome).toBe('appended');
});

describe("a new stream's key", () => {
  /** A process of its own: another key ring (nothing cached) and a ledger on it. */
  async function otherProcess() {
    const ring = keyRing(database.pool, keys.masterKeys, { listen: false });
    return { ring, ledger: await sealingLedger(ring) };
  }
  const storedKey = async (stream: string) =>
    (
      await database.pool.query<{ wrapped_key: Buffer | null }>(
        'select wrapped_key from data_keys where subject = $1',
        [streamKeySubject(stream)],
      )
    ).rows[0]?.wrapped_key;
  const create = (on: Ledger, stream: string, terms: string, id?: string) =>
    on.append({
      stream,
      expectedVersion: 'no_stream',
      actor: 'ana',
      events: [{ id, type: 'Noted', data: { terms } }],
    });

  test("is stored by its first append, in that append's statement, and opens its body anywhere", async () => {
    const queries = vi.spyOn(database.pool, 'query');
    try {
      const result = await create(ledger, 'commitment-new-key', 'first words');
      expect(result.outcome).toBe('appended');
      const keyStatements = queries.mock.calls.filter(([query]) =>
        JSON.stringify(query).includes('data_keys'),
      );
      expect(keyStatements).toEqual([]);
    } finally {
      queries.mockRestore();
    }
    expect(await storedKey('commitment-new-key')).toBeInstanceOf(Buffer);
    const other = await otherProcess();
    expect((await readStream(database.db, other.ledger, 'commitment-new-key')).map((e) => e.data)).toEqual([
      { terms: 'first words' },
    ]);
  });

  test('is not stored when the append is refused', async () => {
    const taken = appended[0]?.id as string;
    expect((await create(ledger, 'commitment-refused', 'never', taken)).outcome).toBe('duplicate_event_id');
    expect(await storedKey('commitment-refused')).toBeUndefined();
  });

  test('stored already by another process, it is the key the append seals with', async () => {
    const other = await otherProcess();
    const made = (await other.ring.keys([streamKeySubject('commitment-keyed-first')], { create: true })).get(
      streamKeySubject('commitment-keyed-first'),
    );
    const wrapped = await storedKey('commitment-keyed-first');
    expect((await create(ledger, 'commitment-keyed-first', 'sealed with the first key')).outcome).toBe(
      'appended',
    );
    expect(await storedKey('commitment-keyed-first')).toEqual(wrapped);
    expect(
      (await keys.keys([streamKeySubject('commitment-keyed-first')])).get(
        streamKeySubject('commitment-keyed-first'),
      ),
    ).toEqual(made);
    expect((await readStream(database.db, other.ledger, 'commitment-keyed-first'))[0]?.data).toEqual({
      terms: 'sealed with the first key',
    });
  });

  test('of a stream that another process began, leaves that stream and its key as they were', async () => {
    const other = await otherProcess();
    expect((await create(other.ledger, 'commitment-begun-elsewhere', 'theirs')).outcome).toBe('appended');
    const wrapped = await storedKey('commitment-begun-elsewhere');
    expect((await create(ledger, 'commitment-begun-elsewhere', 'mine')).outcome).toBe('version_conflict');
    expect(await storedKey('commitment-begun-elsewhere')).toEqual(wrapped);
    expect((await readStream(database.db, ledger, 'commitment-begun-elsewhere')).map((e) => e.data)).toEqual([
      { terms: 'theirs' },
    ]);
  });

  test('is not made again by a process that finds its append committed before', async () => {
    const id = '5b0e4a57-8c1e-4a53-9d3c-3c1f2b7e9a01';
    expect((await create(ledger, 'commitment-sent-twice', 'once', id)).outcome).toBe('appended');
    const other = await otherProcess();
    expect((await create(other.ledger, 'commitment-sent-twice', 'once', id)).outcome).toBe('appended');
    const more = await other.ledger.append({
      stream: 'commitment-sent-twice',
      expectedVersion: 1,
      actor: 'ana',
      events: [{ type: 'Noted', data: { terms: 'then more' } }],
    });
    expect(more.outcome).toBe('appended');
    expect((await readStream(database.db, ledger, 'commitment-sent-twice')).map((e) => e.data)).toEqual([
      { terms: 'once' },
      { terms: 'then more' },
    ]);
  });

  test('stored already for one stream of a batch, the batch still appends them all', async () => {
    const other = await otherProcess();
    await other.ring.keys([streamKeySubject('commitment-batch-keyed')], { create: true });
    // The first goes alone; the other two are batched while it commits.
    const streams = ['commitment-batch-1', 'commitment-batch-2', 'commitment-batch-keyed'];
    const results = await Promise.all(streams.map((stream) => create(ledger, stream, stream)));
    expect(results.map((r) => r.outcome)).toEqual(['appended', 'appended', 'appended']);
    for (const stream of streams)
      expect((await readStream(database.db, other.ledger, stream)).map((e) => e.data)).toEqual([
        { terms: stream },
      ]);
  });

  test('erased before the stream began (a tombstone), refuses the append', async () => {
    await database.pool.query(
      'insert into data_keys (subject, wrapped_key, master_key_id, erased_at) values ($1, null, null, now())',
      [streamKeySubject('commitment-tombstoned')],
    );
    await expect(create(ledger, 'commitment-tombstoned', 'gone')).rejects.toThrow(/erased/);
    expect(await readStream(database.db, ledger, 'commitment-tombstoned')).toEqual([]);
  });
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
