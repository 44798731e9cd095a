import { expect, test } from 'vitest';
import { type GroupedCallsOptions, groupedCalls } from '../src/index.ts';

/** A grouped call whose groups are recorded and finish when the test says so. */
function recorded(options?: GroupedCallsOptions) {
  const groups: number[][] = [];
  const finish: (() => void)[] = [];
  const call = groupedCalls(async (items: readonly number[]) => {
    groups.push([...items]);
    await new Promise<void>((resolve) => finish.push(resolve));
    if (items.includes(-1)) throw new Error('the group failed');
    return items.map((item) => item * 10);
  }, options);
  return { call, groups, finish };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

test('calls made in one tick run as one group; each caller gets its own answer', async () => {
  const { call, groups, finish } = recorded();
  const answers = Promise.all([call(1), call(2), call(3)]);
  await tick();
  finish.shift()?.();
  expect(await answers).toEqual([10, 20, 30]);
  expect(groups).toEqual([[1, 2, 3]]);
});

test('calls made while a group runs wait and run together in the next, in the order they came', async () => {
  const { call, groups, finish } = recorded();
  const first = call(1);
  await tick();
  const later = [call(2), call(3), call(4)];
  await tick();
  expect(groups).toEqual([[1]]);
  finish.shift()?.();
  expect(await first).toBe(10);
  await tick();
  expect(groups).toEqual([[1], [2, 3, 4]]);
  finish.shift()?.();
  expect(await Promise.all(later)).toEqual([20, 30, 40]);
});

test('a failed group fails its callers; the next group runs', async () => {
  const { call, groups, finish } = recorded();
  const failing = [call(-1), call(5)];
  await tick();
  const next = call(6);
  finish.shift()?.();
  await expect(failing[0]).rejects.toThrow('the group failed');
  await expect(failing[1]).rejects.toThrow('the group failed');
  await tick();
  finish.shift()?.();
  expect(await next).toBe(60);
  expect(groups).toEqual([[-1, 5], [6]]);
});

test('with isolateFailures a failed group is run again item by item: only the culprit fails', async () => {
  const { call, groups, finish } = recorded({ isolateFailures: true });
  const failing = [call(-1), call(5)];
  await tick();
  const next = call(6);
  finish.shift()?.();
  await tick();
  finish.shift()?.();
  await expect(failing[0]).rejects.toThrow('the group failed');
  await tick();
  finish.shift()?.();
  expect(await failing[1]).toBe(50);
  await tick();
  finish.shift()?.();
  expect(await next).toBe(60);
  expect(groups).toEqual([[-1, 5], [-1], [5], [6]]);
});

test('a group takes at most maxGroup items; the rest go in the next', async () => {
  const groups: number[][] = [];
  const call = groupedCalls(
    async (items: readonly number[]) => {
      groups.push([...items]);
      return items;
    },
    { maxGroup: 2 },
  );
  expect(await Promise.all([1, 2, 3, 4, 5].map(call))).toEqual([1, 2, 3, 4, 5]);
  expect(groups).toEqual([[1, 2], [3, 4], [5]]);
});
