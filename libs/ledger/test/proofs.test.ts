import {
  fromBase64,
  openCheckpoint,
  rootFromLeaves,
  verifyConsistency,
  verifyInclusion,
} from '@connect/crypto';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { TestDatabase } from '../../../test/support/database.ts';
import {
  checkpointAt,
  clearBodies,
  consistencyProof,
  inclusionProof,
  type Ledger,
  ProofRequestError,
  readEntries,
  rootAt,
  treeNodeCache,
  warmTreeNodeCache,
} from '../src/index.ts';
import { event, KEY, ORIGIN, testLedger } from './support.ts';

let database: TestDatabase;
let ledger: Ledger;
let leaves: Uint8Array[];
const SIZE = 70;

beforeAll(async () => {
  ({ database, ledger } = await testLedger());
  for (let i = 0; i < SIZE; i++) {
    await ledger.append({
      stream: `p-${i % 3}`,
      expectedVersion: 'any',
      actor: null,
      events: [event('E', { i })],
    });
  }
  leaves = (await readEntries(database.db, { origin: ORIGIN, cipher: clearBodies }, 0, SIZE)).map((e) =>
    fromBase64(e.leafHash),
  );
});
afterAll(() => database.close());

test('every past size has a signed checkpoint whose root is the root of its leaves', async () => {
  for (let size = 1; size <= SIZE; size++) {
    const checkpoint = await checkpointAt(database.db, size);
    const opened = openCheckpoint(checkpoint?.note ?? '', [KEY]);
    expect(Buffer.from(opened.rootHash)).toEqual(Buffer.from(rootFromLeaves(leaves.slice(0, size))));
    expect(Buffer.from(await rootAt(database.pool, size))).toEqual(Buffer.from(opened.rootHash));
  }
});

test('inclusion proofs verify for every index at every size', async () => {
  for (let size = 1; size <= SIZE; size += 3) {
    const root = rootFromLeaves(leaves.slice(0, size));
    for (let index = 0; index < size; index++) {
      const proof = await inclusionProof(database.pool, index, size);
      const ok = verifyInclusion(
        { index, treeSize: size, hashes: proof.hashes.map(fromBase64) },
        leaves[index] as Uint8Array,
        root,
      );
      if (!ok) expect.fail(`proof of ${index} in ${size}`);
    }
  }
});

test('consistency proofs verify between any two sizes', async () => {
  for (let from = 0; from <= SIZE; from += 5) {
    for (let to = from; to <= SIZE; to += 4) {
      const proof = await consistencyProof(database.pool, from, to);
      const ok = verifyConsistency(
        { from, to, hashes: proof.hashes.map(fromBase64) },
        rootFromLeaves(leaves.slice(0, from)),
        rootFromLeaves(leaves.slice(0, to)),
      );
      if (!ok) expect.fail(`consistency ${from} → ${to}`);
    }
  }
});

test.each([
  ['index', () => inclusionProof(database.pool, SIZE, SIZE)],
  ['index', () => inclusionProof(database.pool, -1, SIZE)],
  ['treeSize', () => inclusionProof(database.pool, 0, SIZE + 1)],
  ['treeSize', () => inclusionProof(database.pool, 0, 0)],
  ['to', () => consistencyProof(database.pool, 1, SIZE + 1)],
  ['from', () => consistencyProof(database.pool, 10, 5)],
  ['from', () => consistencyProof(database.pool, 1.5, 5)],
])('an out-of-range request names %s', async (parameter, request) => {
  const error = await request().catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ProofRequestError);
  expect((error as ProofRequestError).parameter).toBe(parameter);
});

/** The test database's pool, counting the statements sent through it. */
function countingQueries() {
  const counting = {
    queries: 0,
    query: ((...args: unknown[]) => {
      counting.queries++;
      return (database.pool.query as (...a: unknown[]) => unknown)(...args);
    }) as typeof database.pool.query,
  };
  return counting;
}

test('proofs served from the node cache are the stored ones, with no round trip once warm, and the head is still checked', async () => {
  const cache = treeNodeCache();
  const counting = countingQueries();
  for (let pass = 0; pass < 2; pass++) {
    const before = counting.queries;
    for (let size = 1; size <= SIZE; size += 7) {
      for (let index = 0; index < size; index += 2)
        expect(await inclusionProof(counting, index, size, cache)).toEqual(
          await inclusionProof(database.pool, index, size),
        );
      for (let from = 0; from <= size; from += 3)
        expect(await consistencyProof(counting, from, size, cache)).toEqual(
          await consistencyProof(database.pool, from, size),
        );
    }
    // The second pass finds every node in the cache and the head known to reach each size.
    if (pass === 1) expect(counting.queries).toBe(before);
  }
  expect(counting.queries).toBeGreaterThan(0);
  // A size beyond the head is refused however warm the cache is: it asks the database.
  const error = await inclusionProof(counting, 0, SIZE + 1, cache).catch((e: unknown) => e);
  expect((error as ProofRequestError).parameter).toBe('treeSize');
  const beyond = await consistencyProof(counting, 1, SIZE + 1, cache).catch((e: unknown) => e);
  expect((beyond as ProofRequestError).parameter).toBe('to');
});

test('a small node cache keeps the upper levels that fit, and its proofs are still the stored ones', async () => {
  // At 70 leaves the levels from the top hold 1, 2, 4, 8, 17, 35 and 70 nodes: 10 hold the top three.
  const cache = treeNodeCache(10);
  for (let index = 0; index < SIZE; index++)
    expect(await inclusionProof(database.pool, index, SIZE, cache)).toEqual(
      await inclusionProof(database.pool, index, SIZE),
    );
  expect(cache.nodes.lowestKept).toBe(4);
  expect(cache.nodes.size).toBe(7);
  expect(cache.nodes.get({ level: 6, index: 0 })).toBeDefined();
  expect(cache.nodes.get({ level: 3, index: 0 })).toBeUndefined();
});

test('a warmed node cache answers every proof within the head it read with no round trip', async () => {
  const cache = treeNodeCache();
  const counting = countingQueries();
  // Pages of 16 rows: the 70 leaves and 67 inner nodes take several statements a level.
  expect(await warmTreeNodeCache(counting, cache, { pageSize: 16 })).toBe(70 + 35 + 17 + 8 + 4 + 2 + 1);
  const warmed = counting.queries;
  for (let size = 1; size <= SIZE; size++) {
    for (let index = 0; index < size; index += 3)
      expect(await inclusionProof(counting, index, size, cache)).toEqual(
        await inclusionProof(database.pool, index, size),
      );
    expect(await consistencyProof(counting, Math.floor(size / 3), size, cache)).toEqual(
      await consistencyProof(database.pool, Math.floor(size / 3), size),
    );
  }
  expect(counting.queries).toBe(warmed);
});

test('warming stops between pages once asked to', async () => {
  const cache = treeNodeCache();
  let pages = 0;
  const read = await warmTreeNodeCache(database.pool, cache, { pageSize: 1, stopped: () => ++pages > 3 });
  expect(read).toBe(3);
  expect(cache.nodes.size).toBe(3);
  await expect(warmTreeNodeCache(database.pool, cache, { pageSize: 0 })).rejects.toThrow(RangeError);
});

test('concurrent proof requests share round trips: one read in flight serves all that waited for it', async () => {
  const cache = treeNodeCache(250_000, 1);
  const counting = countingQueries();
  const asked = Array.from({ length: 30 }, (_, i) =>
    i % 3 === 0
      ? consistencyProof(counting, i, SIZE, cache)
      : inclusionProof(counting, (i * 7) % SIZE, SIZE - (i % 5), cache),
  );
  // One beyond the head among them is refused alone; the others are answered.
  const beyond = inclusionProof(counting, 0, SIZE + 1, cache).catch((e: unknown) => e);
  const answers = await Promise.all(asked);
  expect(((await beyond) as ProofRequestError).parameter).toBe('treeSize');
  // The first read went alone; everything asked while it was in flight went in a second statement.
  expect(counting.queries).toBe(2);
  for (let i = 0; i < answers.length; i++) {
    expect(answers[i]).toEqual(
      i % 3 === 0
        ? await consistencyProof(database.pool, i, SIZE)
        : await inclusionProof(database.pool, (i * 7) % SIZE, SIZE - (i % 5)),
    );
  }
});

test('a failed shared read fails each request that waited for it, and the next reads go on', async () => {
  const cache = treeNodeCache(250_000, 1);
  let failing = true;
  const flaky = {
    query: ((...args: unknown[]) =>
      failing
        ? Promise.reject(new Error('connection lost'))
        : (database.pool.query as (...a: unknown[]) => unknown)(...args)) as typeof database.pool.query,
  };
  const failed = await Promise.allSettled(
    [1, 2, 3].map((index) => inclusionProof(flaky, index, SIZE, cache)),
  );
  expect(failed.map((result) => result.status)).toEqual(['rejected', 'rejected', 'rejected']);
  failing = false;
  expect(await inclusionProof(flaky, 2, SIZE, cache)).toEqual(await inclusionProof(database.pool, 2, SIZE));
});
