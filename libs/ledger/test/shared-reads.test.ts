import { expect, test } from 'vitest';
import { sharedReads } from '../src/shared-reads.ts';

/** A run that records what each statement read and answers when told to. */
function recordingRun() {
  const statements: { items: number[]; answer: (value: string) => void; fail: (error: Error) => void }[] = [];
  const run = (_db: string, items: number[]) =>
    new Promise<string>((answer, fail) => {
      statements.push({ items, answer, fail });
    });
  return { statements, run };
}

const settled = () => new Promise((resolve) => setImmediate(resolve));

test('alone, an ask goes at once; asks made while the statements are in flight go together after', async () => {
  const { statements, run } = recordingRun();
  const reads = sharedReads(run, { maxInFlight: 2 });
  const first = reads.read('db', [1]);
  const second = reads.read('db', [2, 3]);
  const waiting = [reads.read('db', [4]), reads.read('db', [5, 6]), reads.read('db', [7])];
  expect(statements.map((s) => s.items)).toEqual([[1], [2, 3]]);
  statements[0]?.answer('a');
  expect(await first).toBe('a');
  await settled();
  expect(statements.map((s) => s.items)).toEqual([[1], [2, 3], [4, 5, 6, 7]]);
  statements[2]?.answer('b');
  expect(await Promise.all(waiting)).toEqual(['b', 'b', 'b']);
  statements[1]?.answer('c');
  expect(await second).toBe('c');
});

test('a statement joins at most maxJoined asks, and each database handle gets its own', async () => {
  const { statements, run } = recordingRun();
  const reads = sharedReads(run, { maxInFlight: 1, maxJoined: 2 });
  const asks = [0, 1, 2, 3, 4].map((item) => reads.read(item === 2 ? 'other' : 'db', [item]));
  for (let i = 0; i < 5; i++) {
    statements.at(-1)?.answer(`answer ${statements.length}`);
    await settled();
  }
  // [1] and [3] fill the second statement; [4] waits for a fourth, after the other handle's.
  expect(statements.map((s) => s.items)).toEqual([[0], [1, 3], [2], [4]]);
  expect(await Promise.all(asks)).toEqual(['answer 1', 'answer 2', 'answer 3', 'answer 2', 'answer 4']);
});

test('a failed statement fails the asks that went with it, and the next asks go on', async () => {
  let calls = 0;
  const reads = sharedReads(
    (_db: string, items: number[]) => {
      calls++;
      if (calls === 1) throw new Error('thrown at once');
      if (calls === 2) return Promise.reject(new Error('failed later'));
      return Promise.resolve(items.join(','));
    },
    { maxInFlight: 1 },
  );
  await expect(reads.read('db', [1])).rejects.toThrow('thrown at once');
  await expect(reads.read('db', [2])).rejects.toThrow('failed later');
  expect(await reads.read('db', [3])).toBe('3');
});

test('no statements in flight, or a fraction of one, is refused', () => {
  const run = async () => 'x';
  for (const maxInFlight of [0, Number.NaN, 1.5])
    expect(() => sharedReads(run, { maxInFlight })).toThrow(RangeError);
  expect(() => sharedReads(run, { maxInFlight: 1, maxJoined: 0 })).toThrow(/maxJoined/);
});
