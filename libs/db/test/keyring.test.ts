// Data keys: made once per subject, wrapped by the master key, rewrapped by a rotation while in
// use, and gone for every process once erased.
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openText, sealText } from '@connect/crypto/envelope';
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test, vi } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.ts';
import {
  addPrimaryMasterKey,
  assertMasterKeysHeld,
  createPool,
  dataKeyRows,
  dataKeysByMasterKey,
  dropOldMasterKeys,
  eraseDataKey,
  insertDataKeysSql,
  type KeyRing,
  keyRing,
  localMasterKeys,
  MASTER_KEY_FILE,
  type MasterKeys,
  rewrapDataKeys,
} from '../src/index.ts';

vi.setConfig({ testTimeout: 20_000 });

let database: TestDatabase;
let dataDir: string;
const rings: KeyRing[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  dataDir = await mkdtemp(path.join(tmpdir(), 'connect-keys-'));
});
afterAll(async () => {
  await Promise.all(rings.map((ring) => ring.close()));
  await database.close();
});

/** A process's key ring; only those that must hear erasures LISTEN (each holds a connection). */
async function ring(keys?: string[], options: { listen?: boolean; pool?: pg.Pool } = {}) {
  const made = keyRing(options.pool ?? database.pool, await localMasterKeys({ keys, dataDir }), {
    listen: options.listen ?? false,
  });
  rings.push(made);
  return made;
}

describe('the master key file', () => {
  test('is made once with mode 0600 and holds one base64 key', async () => {
    const first = await localMasterKeys({ dataDir });
    const second = await localMasterKeys({ dataDir });
    expect(await first.primaryId()).toBe(await second.primaryId());
    const file = path.join(dataDir, MASTER_KEY_FILE);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await readFile(file, 'utf8')).trim()).toMatch(/^[A-Za-z0-9+/]{43}=$/);
  });

  test('a CONNECT_MASTER_KEY that is not 32 bytes is refused', async () => {
    await expect(localMasterKeys({ keys: ['c2hvcnQ='], dataDir })).rejects.toThrow(/32 bytes/);
  });
});

describe('data keys', () => {
  test('a subject gets one key, whichever process makes it first', async () => {
    const [a, b] = [await ring(), await ring()];
    const [fromA, fromB] = await Promise.all([
      a.keys(['commitment:race'], { create: true }),
      b.keys(['commitment:race'], { create: true }),
    ]);
    expect(fromA.get('commitment:race')).toHaveLength(32);
    expect(fromA.get('commitment:race')?.equals(fromB.get('commitment:race') as Buffer)).toBe(true);
    const stored = await database.pool.query('select wrapped_key from data_keys where subject = $1', [
      'commitment:race',
    ]);
    expect(stored.rows[0].wrapped_key.includes(fromA.get('commitment:race'))).toBe(false);
  });

  test('many processes making many keys at once agree on each, made or read in one go', async () => {
    // Each process asks in an order of its own (as requests arrive), so two inserts meet in the
    // middle of each other's lists; ten rounds, to give a lock-order deadlock its chance.
    for (let round = 0; round < 10; round++) {
      const rings = await Promise.all([ring(), ring(), ring(), ring()]);
      const subjects = Array.from({ length: 100 }, (_, i) => `commitment:crowd-${round}-${i}`);
      const orders = [
        subjects,
        [...subjects].reverse(),
        [...subjects.slice(50), ...subjects.slice(0, 50)],
        subjects.filter((_, i) => i % 2).concat(subjects.filter((_, i) => i % 2 === 0).reverse()),
      ];
      const seen = await Promise.all(rings.map((r, i) => r.keys(orders[i] ?? [], { create: true })));
      for (const subject of subjects) {
        const key = seen[0]?.get(subject) as Buffer;
        expect(key).toHaveLength(32);
        for (const other of seen) expect(other.get(subject)?.equals(key)).toBe(true);
      }
      const later = await (await ring()).keys(subjects);
      for (const subject of subjects)
        expect(later.get(subject)?.equals(seen[0]?.get(subject) as Buffer)).toBe(true);
    }
  });

  test('one process asked for a new key by several callers at once makes it in one round trip', async () => {
    const pool = createPool(database.url, 2);
    const queries = vi.spyOn(pool, 'query');
    try {
      const keys = await ring(undefined, { pool });
      const asked = await Promise.all([
        keys.keys(['commitment:asked-twice'], { create: true }),
        keys.keys(['commitment:asked-twice', 'commitment:asked-once'], { create: true }),
        keys.keys(['commitment:asked-twice'], { create: true }),
      ]);
      const key = asked[0].get('commitment:asked-twice') as Buffer;
      expect(key).toHaveLength(32);
      for (const each of asked) expect(each.get('commitment:asked-twice')?.equals(key)).toBe(true);
      expect(asked[1].get('commitment:asked-once')).toHaveLength(32);
      expect(queries).toHaveBeenCalledTimes(1); // asked for in one tick: made together
    } finally {
      await pool.end();
    }
  });

  test('new keys asked for while a round trip makes others are made together in the next one', async () => {
    const pool = createPool(database.url, 2);
    const queries = vi.spyOn(pool, 'query');
    try {
      const keys = await ring(undefined, { pool });
      const first = keys.keys(['commitment:grouped-0'], { create: true });
      await new Promise((resolve) => setImmediate(resolve)); // its round trip is under way
      const subjects = Array.from({ length: 10 }, (_, i) => `commitment:grouped-${i + 1}`);
      const rest = await Promise.all(subjects.map((subject) => keys.keys([subject], { create: true })));
      const made = [
        (await first).get('commitment:grouped-0'),
        ...rest.map((got, i) => got.get(subjects[i] as string)),
      ];
      expect(queries).toHaveBeenCalledTimes(2);
      for (const key of made) expect(key).toHaveLength(32);
      expect(new Set(made.map((key) => key?.toString('hex'))).size).toBe(11);
      const stored = await (await ring()).keys(['commitment:grouped-0', ...subjects]);
      for (const [i, subject] of ['commitment:grouped-0', ...subjects].entries())
        expect(stored.get(subject)?.equals(made[i] as Buffer)).toBe(true);
    } finally {
      await pool.end();
    }
  });

  test('without create, a subject with no key has none', async () => {
    expect((await (await ring()).keys(['user:nobody'])).has('user:nobody')).toBe(false);
    expect(
      (await database.pool.query("select 1 from data_keys where subject = 'user:nobody'")).rowCount,
    ).toBe(0);
  });

  test('a wrapped key moved to another subject does not unwrap', async () => {
    const keys = await ring();
    await keys.keys(['user:moved-from', 'user:moved-to'], { create: true });
    await database.pool.query(
      `update data_keys set wrapped_key = (select wrapped_key from data_keys where subject = 'user:moved-from')
       where subject = 'user:moved-to'`,
    );
    await expect((await ring()).keys(['user:moved-to'])).rejects.toThrow(/does not open/);
  });

  test('an erased key is gone for every process, also with the master key', async () => {
    const [writer, reader] = [await ring(), await ring(undefined, { listen: true })];
    const key = (await writer.keys(['user:erase-me'], { create: true })).get('user:erase-me') as Buffer;
    const sealed = sealText(key, 'ana@example.com', 'users:erase-me:email', writer.nonce());
    expect((await reader.keys(['user:erase-me'])).get('user:erase-me')?.equals(key)).toBe(true);

    const client = await database.pool.connect();
    try {
      await client.query('begin');
      expect(await eraseDataKey(client, 'user:erase-me')).toBe(true);
      await client.query('commit');
    } finally {
      client.release();
    }
    await expect.poll(async () => (await reader.keys(['user:erase-me'])).get('user:erase-me')).toBeNull();
    expect((await (await ring()).keys(['user:erase-me'], { create: true })).get('user:erase-me')).toBeNull();
    const row = await database.pool.query('select wrapped_key, erased_at from data_keys where subject = $1', [
      'user:erase-me',
    ]);
    expect(row.rows[0]).toMatchObject({ wrapped_key: null, erased_at: expect.any(Date) });
    expect(() => openText(Buffer.alloc(32), sealed, 'users:erase-me:email')).toThrow();
  });

  test('a key read while it is being erased is used once, not kept', async () => {
    const writer = await ring();
    await writer.keys(['user:racing'], { create: true });
    // The reader's unwrap waits at a gate, as a slow key service would, while the erase commits.
    const local = await localMasterKeys({ dataDir });
    let open: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    let reached: () => void = () => undefined;
    const atGate = new Promise<void>((resolve) => {
      reached = resolve;
    });
    const slow: MasterKeys = {
      ...local,
      unwrap: async (...args) => {
        reached();
        await gate;
        return local.unwrap(...args);
      },
    };
    const reader = keyRing(database.pool, slow, { listen: true });
    rings.push(reader);
    await new Promise((resolve) => setTimeout(resolve, 500)); // its LISTEN takes effect
    const reading = reader.keys(['user:racing']);
    await atGate; // the wrapped key was read before the erase
    const client = await database.pool.connect();
    try {
      await eraseDataKey(client, 'user:racing');
    } finally {
      client.release();
    }
    await new Promise((resolve) => setTimeout(resolve, 200)); // the NOTIFY arrives
    open();
    expect((await reading).get('user:racing')).toHaveLength(32);
    expect((await reader.keys(['user:racing'])).get('user:racing')).toBeNull();
  });

  test('a process must hold every master key that wraps a live data key', async () => {
    const keys = await ring();
    await keys.keys(['commitment:held'], { create: true });
    await expect(assertMasterKeysHeld(database.pool, keys.masterKeys)).resolves.toBeUndefined();
    const stranger = await localMasterKeys({ keys: [Buffer.alloc(32, 9).toString('base64')], dataDir });
    await expect(assertMasterKeysHeld(database.pool, stranger)).rejects.toThrow(
      new RegExp(`master key ${await keys.masterKeys.primaryId()}, which is not configured`),
    );
  });

  test('derived keys are stable across processes and differ by purpose', async () => {
    const [a, b] = [await ring(), await ring()];
    expect((await a.derivedKey('email index')).equals(await b.derivedKey('email index'))).toBe(true);
    expect((await a.derivedKey('email index')).equals(await a.derivedKey('phone index'))).toBe(false);
  });
});

describe('rotating the master key', () => {
  // Each test rotates every key of a database of its own.
  let own: TestDatabase;
  beforeEach(async () => {
    own = await createTestDatabase({ poolSize: 3 });
  });
  afterEach(async () => {
    await own.close();
  });
  test('every data key is rewrapped while in use, then the old master key can go', async () => {
    const running = await ring(undefined, { pool: own.pool });
    const before = await running.keys(['commitment:r1', 'commitment:r2', 'user:r3'], { create: true });
    const oldId = await running.masterKeys.primaryId();

    const newId = await addPrimaryMasterKey(dataDir);
    const cli = await localMasterKeys({ dataDir });
    expect(await cli.primaryId()).toBe(newId);
    expect(await rewrapDataKeys(own.pool, cli)).toBeGreaterThanOrEqual(3);
    expect((await dataKeysByMasterKey(own.pool)).get(oldId)).toBeUndefined();
    await dropOldMasterKeys(dataDir);

    // The running process picks the new file up; a restart holds only the new key.
    const restarted = await ring(undefined, { pool: own.pool });
    const after = await restarted.keys(['commitment:r1', 'commitment:r2', 'user:r3']);
    for (const [subject, key] of before) expect(after.get(subject)?.equals(key as Buffer)).toBe(true);
    await expect.poll(() => running.masterKeys.primaryId(), { timeout: 3000 }).toBe(newId);
    running.forget('commitment:r1');
    expect(
      (await running.keys(['commitment:r1']))
        .get('commitment:r1')
        ?.equals(before.get('commitment:r1') as Buffer),
    ).toBe(true);
  });

  test('a key made before a rotation and stored by a transaction after it is wrapped again under the new primary', async () => {
    const keysDir = await mkdtemp(path.join(tmpdir(), 'connect-keys-'));
    const running = keyRing(own.pool, await localMasterKeys({ dataDir: keysDir }), { listen: false });
    rings.push(running);
    const made = await running.unstoredKey('commitment:made-mid-rotation');
    const newId = await addPrimaryMasterKey(keysDir);
    await expect.poll(() => running.masterKeys.primaryId(), { timeout: 3000 }).toBe(newId);
    expect(made.masterKeyId).not.toBe(newId);
    await own.pool.query(insertDataKeysSql('$1', '$2', '$3'), dataKeyRows([made]));
    await running.committed([made]);
    expect(await dataKeysByMasterKey(own.pool)).toEqual(new Map([[newId, 1]]));
    expect(running.cached('commitment:made-mid-rotation')?.equals(made.key)).toBe(true);
    await dropOldMasterKeys(keysDir);
    const onlyNew = keyRing(own.pool, await localMasterKeys({ dataDir: keysDir }), { listen: false });
    rings.push(onlyNew);
    const read = await onlyNew.keys(['commitment:made-mid-rotation']);
    expect(read.get('commitment:made-mid-rotation')?.equals(made.key)).toBe(true);
  });

  test('with CONNECT_MASTER_KEY, keys listed after the first only unwrap', async () => {
    const oldKey = Buffer.alloc(32, 1).toString('base64');
    const newKey = Buffer.alloc(32, 2).toString('base64');
    const old = await ring([oldKey], { pool: own.pool });
    await old.keys(['commitment:env'], { create: true });
    const both = await localMasterKeys({ keys: [newKey, oldKey], dataDir });
    expect(await rewrapDataKeys(own.pool, both)).toBeGreaterThan(0);
    const onlyNew = await ring([newKey], { pool: own.pool });
    expect((await onlyNew.keys(['commitment:env'])).get('commitment:env')).toHaveLength(32);
    await expect((await ring([oldKey], { pool: own.pool })).keys(['commitment:env'])).rejects.toThrow(
      /not configured/,
    );
  });
});

test('nonces are fresh: 12 bytes, no two alike across many draws', async () => {
  const r = await ring();
  const nonces = Array.from({ length: 3000 }, () => r.nonce());
  expect(nonces.every((nonce) => nonce.length === 12)).toBe(true);
  expect(new Set(nonces.map((nonce) => nonce.toString('hex'))).size).toBe(3000);
});
