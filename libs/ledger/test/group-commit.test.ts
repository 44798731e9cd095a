import { expect, test } from 'vitest';
import { groupCommit } from '../src/group-commit.ts';

/** A commit the test releases by hand, recording each batch it was given. */
function gatedCommit(fail: (item: number) => boolean = () => false) {
  const batches: { items: number[]; retry: boolean }[] = [];
  const gates: (() => void)[] = [];
  const commit = async (items: number[], retry: boolean) => {
    batches.push({ items, retry });
    await new Promise<void>((open) => gates.push(open));
    if (items.some(fail)) throw new Error(`failed: ${items.join(',')}`);
    return items.map((item) => item * 10);
  };
  const openNext = async () => {
    await expect.poll(() => gates.length).toBeGreaterThan(0);
    (gates.shift() as () => void)();
  };
  return { batches, commit, openNext };
}

test('one batch in flight; the next takes everything queued meanwhile, up to the weight', async () => {
  const gated = gatedCommit();
  const queue = groupCommit({ maxBatchWeight: 5, weight: (item: number) => item, commit: gated.commit });
  const results = [1, 2, 2, 3, 9, 1].map((item) => queue.submit(item));
  await gated.openNext(); // [1] went alone: the others queued behind it
  await gated.openNext();
  await gated.openNext();
  await gated.openNext();
  await gated.openNext();
  expect(await Promise.all(results)).toEqual([10, 20, 20, 30, 90, 10]);
  expect(gated.batches.map((b) => b.items)).toEqual([[1], [2, 2], [3], [9], [1]]);
  await queue.drain();
});

test('a failed batch is committed again item by item, and only the culprit fails', async () => {
  const gated = gatedCommit((item) => item === 3);
  const queue = groupCommit({ maxBatchWeight: 100, weight: () => 1, commit: gated.commit });
  const first = queue.submit(1);
  const rest = Promise.allSettled([2, 3, 4].map((item) => queue.submit(item)));
  for (let i = 0; i < 5; i++) await gated.openNext();
  expect(await first).toBe(10);
  const settled = await rest;
  expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
  expect(gated.batches).toEqual([
    { items: [1], retry: false },
    { items: [2, 3, 4], retry: false },
    { items: [2], retry: true },
    { items: [3], retry: true },
    { items: [4], retry: true },
  ]);
});

test('an error no item caused fails the whole batch at once, with no item retried alone', async () => {
  const noConnection = new Error('timeout exceeded when trying to connect');
  const batches: number[][] = [];
  const queue = groupCommit({
    maxBatchWeight: 100,
    weight: () => 1,
    commit: async (items: number[]) => {
      batches.push(items);
      if (items.includes(1)) return [10];
      throw items.includes(3) ? noConnection : new Error('an item failed');
    },
    failsWholeBatch: (error) => error === noConnection,
  });
  const first = queue.submit(1);
  const rest = Promise.allSettled([2, 3, 4].map((item) => queue.submit(item)));
  expect(await first).toBe(10);
  const settled = await rest;
  expect(settled.map((s) => (s.status === 'rejected' ? s.reason : s.value))).toEqual([
    noConnection,
    noConnection,
    noConnection,
  ]);
  expect(batches).toEqual([[1], [2, 3, 4]]);
});

test('drain waits for what is queued and committing', async () => {
  const gated = gatedCommit();
  const queue = groupCommit({ maxBatchWeight: 1, weight: () => 1, commit: gated.commit });
  await queue.drain(); // idle: at once
  void queue.submit(1);
  void queue.submit(2);
  let drained = false;
  const draining = queue.drain().then(() => {
    drained = true;
  });
  await gated.openNext();
  await Promise.resolve();
  expect(drained).toBe(false);
  await gated.openNext();
  await draining;
  expect(drained).toBe(true);
});

/** A group commit whose batches say they are sent at once, then wait to be let commit by hand. */
function sentAtOnce(maxBatchWeight: number) {
  const begun: number[][] = [];
  const gates: (() => void)[] = [];
  const queue = groupCommit({
    maxBatchWeight,
    weight: () => 1,
    commit: async (items: number[], _retry, sent) => {
      begun.push(items);
      sent();
      await new Promise<void>((open) => gates.push(open));
      return items.map((item) => item * 10);
    },
  });
  return { queue, begun, gates };
}

test('a batch that says it is sent lets the next begin while it commits', async () => {
  const { queue, begun, gates } = sentAtOnce(2);
  const results = [1, 2, 3, 4, 5].map((item) => queue.submit(item));
  // Each batch said it was sent at once, so all are in flight before the first commits.
  expect(begun).toEqual([[1], [2], [3], [4], [5]]);
  let drained = false;
  const draining = queue.drain().then(() => {
    drained = true;
  });
  for (const open of gates.splice(0, 4)) open();
  await Promise.resolve();
  expect(drained).toBe(false);
  for (const open of gates.splice(0)) open();
  expect(await Promise.all(results)).toEqual([10, 20, 30, 40, 50]);
  await draining;
});

test('a small batch waits for the one in flight to commit, gathering what arrives meanwhile', async () => {
  const { queue, begun, gates } = sentAtOnce(4);
  const results = [1, 2].map((item) => queue.submit(item));
  expect(begun).toEqual([[1]]); // 2 alone is less than half a batch: it waits
  const more = [3, 4].map((item) => queue.submit(item));
  expect(begun).toEqual([[1], [2, 3]]); // half a batch queued: begun while [1] commits
  (gates.shift() as () => void)();
  expect(await results[0]).toBe(10);
  expect(begun).toHaveLength(2); // [2, 3] is still committing: [4] waits for it
  (gates.shift() as () => void)();
  await expect.poll(() => begun.length).toBe(3); // nothing in flight: [4] goes, however small
  expect(begun[2]).toEqual([4]);
  (gates.shift() as () => void)();
  expect(await Promise.all([...results, ...more])).toEqual([10, 20, 30, 40]);
  await queue.drain();
});
