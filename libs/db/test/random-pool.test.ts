import { expect, test } from 'vitest';
import { randomPool } from '../src/index.ts';

/** The memory a slice lives in, so slices can be checked for overlap. */
const span = (slice: Buffer) => ({
  buffer: slice.buffer,
  from: slice.byteOffset,
  to: slice.byteOffset + slice.length,
});

test('slices have the size asked for and never share a byte, across many draws', () => {
  const take = randomPool(64);
  const sizes = Array.from({ length: 500 }, (_, i) => 1 + (i % 40));
  const slices = sizes.map((size) => take(size));
  expect(slices.map((slice) => slice.length)).toEqual(sizes);
  const spans = slices.map(span);
  for (const [i, a] of spans.entries())
    for (const b of spans.slice(i + 1))
      if (a.buffer === b.buffer) expect(a.to <= b.from || b.to <= a.from).toBe(true);
  // Many draws were made, and what they gave is random: 16-byte slices do not repeat.
  expect(new Set(spans.map((s) => s.buffer)).size).toBeGreaterThan(100);
  const sixteens = Array.from({ length: 2000 }, () => take(16).toString('hex'));
  expect(new Set(sixteens).size).toBe(2000);
});

test('a used draw is never refilled: a slice keeps its bytes while the pool goes on', () => {
  const take = randomPool(32);
  const first = take(16);
  const kept = Buffer.from(first);
  for (let i = 0; i < 100; i++) take(16);
  expect(first.equals(kept)).toBe(true);
});

test('each pool draws buffers of its own', () => {
  const salts = randomPool(4096);
  const nonces = randomPool(4096);
  expect(salts(16).buffer).not.toBe(nonces(12).buffer);
});

test('a request larger than a draw gets a draw of its own', () => {
  const take = randomPool(16);
  const big = take(100);
  expect(big.length).toBe(100);
  expect(big.byteOffset).toBe(0);
});
