import {
  formatVerifierKey,
  openCheckpoint,
  openStreamHead,
  type ReceiptBundle,
  signCheckpoint,
  signingKeyFromSeed,
  verifyCheckpointConsistency,
  verifyReceipt,
} from '@connect/crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { TestDatabase } from '../../../test/support/database.ts';
import {
  buildReceipt,
  checkpointAt,
  consistencyProof,
  type Ledger,
  latestCheckpoint,
  treeNodeCache,
  warmTreeNodeCache,
} from '../src/index.ts';
import { event, KEY, ORIGIN, testLedger } from './support.ts';

let database: TestDatabase;
let ledger: Ledger;
let receipt: ReceiptBundle;

beforeAll(async () => {
  ({ database, ledger } = await testLedger());
  for (let i = 0; i < 20; i++) {
    await ledger.append({
      stream: 'commitment-r',
      expectedVersion: 'any',
      actor: 'ana',
      events: [event('Noted', { i })],
    });
    await ledger.append({
      stream: `other-${i % 3}`,
      expectedVersion: 'any',
      actor: 'ben',
      events: [event('Other', { i })],
    });
  }
  receipt = await buildReceipt(
    {
      db: database.db,
      pool: database.pool,
      origin: ORIGIN,
      cipher: ledger.cipher,
      verifierKey: ledger.verifierKey,
      key: KEY,
    },
    'commitment-r',
  );
});
afterAll(() => database.close());

const copy = (): ReceiptBundle => JSON.parse(JSON.stringify(receipt));
const failing = (bundle: unknown, key = KEY) =>
  verifyReceipt(bundle, key)
    .checks.filter((c) => !c.ok && !c.notMade)
    .map((c) => c.name);

describe('receipt bundles', () => {
  test('a receipt verifies offline: every event, its proof, the signed checkpoint', () => {
    expect(receipt.entries.map((e) => e.version)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const result = verifyReceipt(receipt, KEY);
    expect(result.valid).toBe(true);
    expect(result.checks.length).toBeGreaterThan(60);
  });

  test('its stream head is signed for the checkpoint’s tree and names the last entry', async () => {
    const checkpoint = openCheckpoint(receipt.checkpoint, [KEY]);
    const head = openStreamHead(receipt.streamHead, [KEY]);
    const last = receipt.entries.at(-1);
    expect(head).toEqual({
      origin: ORIGIN,
      stream: 'commitment-r',
      version: 20,
      index: last?.index,
      treeSize: checkpoint.treeSize,
      rootHash: checkpoint.rootHash,
    });
    expect(checkpoint.treeSize).toBe((await latestCheckpoint(database.db))?.treeSize);
    expect(receipt.entries.every((e) => e.proof.treeSize === checkpoint.treeSize)).toBe(true);
    // Without the domain's rules, the replay is the one check not made.
    const notMade = verifyReceipt(receipt, KEY).checks.filter((c) => c.notMade);
    expect(notMade.map((c) => c.name)).toEqual(['state is what the entries replay to']);
  });

  test('entries cut off the end are caught by the stream head', () => {
    const bundle = copy();
    bundle.entries.splice(-3);
    expect(failing(bundle)).toEqual(['stream head’s latest entry is the receipt’s last (version and index)']);
  });

  test('a stream with no entry in the tree has no stream head, and does not verify', async () => {
    const empty = await buildReceipt(
      {
        db: database.db,
        pool: database.pool,
        origin: ORIGIN,
        cipher: ledger.cipher,
        verifierKey: ledger.verifierKey,
        key: KEY,
      },
      'commitment-none',
    );
    expect(empty).toMatchObject({ entries: [], streamHead: '' });
    expect(failing(empty)).toContain('stream head is signed by the key');
  });

  test('profile streams named by the caller come along, proven to the same checkpoint', async () => {
    const bundle = await buildReceipt(
      {
        db: database.db,
        pool: database.pool,
        origin: ORIGIN,
        cipher: ledger.cipher,
        verifierKey: ledger.verifierKey,
        key: KEY,
      },
      'commitment-r',
      { profiles: (entries) => (entries.length === 20 ? ['other-1', 'other-2', 'commitment-r'] : []) },
    );
    expect(bundle.profiles?.map((e) => e.stream)).toEqual([
      ...Array(7).fill('other-1'),
      ...Array(6).fill('other-2'),
    ]);
    expect(verifyReceipt(bundle, KEY).valid).toBe(true);
    const forged = JSON.parse(JSON.stringify(bundle)) as ReceiptBundle;
    (forged.profiles?.[0]?.data as { i: number }).i = 7;
    expect(failing(forged)).toEqual([
      `profile entry ${forged.profiles?.[0]?.index} (other-1): dataHash matches salt and data`,
    ]);
  });

  test('the proofs of a receipt and of its profiles are read in one statement, and from a warm cache in none', async () => {
    let statements = 0;
    const pool = {
      query: ((...args: unknown[]) => {
        statements++;
        return (database.pool.query as (...a: unknown[]) => unknown)(...args);
      }) as typeof database.pool.query,
    };
    const deps = {
      db: database.db,
      pool,
      origin: ORIGIN,
      cipher: ledger.cipher,
      verifierKey: ledger.verifierKey,
      key: KEY,
    };
    const profiles = () => ['other-1', 'other-2'];
    const uncached = await buildReceipt(deps, 'commitment-r', { profiles });
    expect(statements).toBe(1);
    const nodes = treeNodeCache();
    await warmTreeNodeCache(database.pool, nodes);
    const cached = await buildReceipt({ ...deps, nodes }, 'commitment-r', { profiles });
    expect(statements).toBe(1);
    expect(cached).toEqual(uncached);
    expect(verifyReceipt(cached, KEY).valid).toBe(true);
  });

  test('a changed data byte is named', () => {
    const bundle = copy();
    (bundle.entries[4] as { data: Record<string, number> }).data.i = 99;
    expect(failing(bundle)).toEqual([
      `entry ${bundle.entries[4]?.index} (version 5): dataHash matches salt and data`,
    ]);
  });

  test('a changed header field breaks that leaf and its proof', () => {
    const bundle = copy();
    (bundle.entries[7] as { actor: string }).actor = 'eve';
    const label = `entry ${bundle.entries[7]?.index} (version 8)`;
    expect(failing(bundle)).toEqual([
      `${label}: leaf hash matches the header`,
      `${label}: included in the checkpoint`,
    ]);
    const rehashed = copy();
    const entry = rehashed.entries[7] as { actor: string; leafHash: string };
    entry.actor = 'eve';
    entry.leafHash = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
    expect(failing(rehashed).some((name) => name.endsWith('included in the checkpoint'))).toBe(true);
  });

  test('swapped and dropped entries are caught', () => {
    const swapped = copy();
    [swapped.entries[2], swapped.entries[3]] = [swapped.entries[3] as never, swapped.entries[2] as never];
    expect(failing(swapped)).toContain('entries are one stream, versions 1..k in order');
    const dropped = copy();
    dropped.entries.splice(5, 1);
    expect(failing(dropped)).toEqual(['entries are one stream, versions 1..k in order']);
  });

  test('a checkpoint signed by another key, or another trusted key, fails', () => {
    const other = signingKeyFromSeed(ORIGIN, new Uint8Array(32).fill(9));
    const forged = copy();
    const size = forged.entries[0]?.proof.treeSize ?? 0;
    forged.checkpoint = signCheckpoint(
      { origin: ORIGIN, treeSize: size, rootHash: new Uint8Array(32) },
      other,
    );
    expect(failing(forged)).toContain('checkpoint is signed by the key');
    expect(failing(receipt, other)).toContain('verifier key is the trusted key');
    expect(failing(receipt, other)).toContain('stream head is signed by the key');
  });

  test('without a trusted key nothing is verified', () => {
    expect(verifyReceipt(receipt, undefined)).toMatchObject({
      valid: false,
      checks: [{ name: 'a trusted verifier key is given', ok: false }],
    });
  });

  test('a redacted entry (data and salt erased) still verifies', () => {
    const bundle = copy();
    Object.assign(bundle.entries[3] as object, { data: null, salt: null, redacted: true });
    expect(verifyReceipt(bundle, KEY).valid).toBe(true);
  });

  test('anything that is not a receipt is refused, not crashed on', () => {
    for (const junk of [null, 'x', 42, {}, { entries: 'no' }])
      expect(verifyReceipt(junk, KEY).valid).toBe(false);
  });
});

describe('checkpoint consistency', () => {
  test('an older checkpoint is consistent with the latest, and a rolled-back or forked one is not', async () => {
    const older = await checkpointAt(database.db, 10);
    const newer = await latestCheckpoint(database.db);
    const proof = await consistencyProof(database.pool, 10, newer?.treeSize ?? 0);
    const ok = verifyCheckpointConsistency({ from: older?.note ?? '', to: newer?.note ?? '', proof }, KEY);
    expect(ok.valid).toBe(true);
    // A server that rewrote history signs a different root for size 10: the proof no longer links them.
    const forkedOld = signCheckpoint(
      { origin: ORIGIN, treeSize: 10, rootHash: new Uint8Array(32).fill(1) },
      KEY,
    );
    const forked = verifyCheckpointConsistency({ from: forkedOld, to: newer?.note ?? '', proof }, KEY);
    expect(forked.checks.filter((c) => !c.ok).map((c) => c.detail)).toEqual([
      'the ledger was forked or rewritten between these checkpoints',
    ]);
    expect(formatVerifierKey(KEY)).toBe(ledger.verifierKey);
  });
});
