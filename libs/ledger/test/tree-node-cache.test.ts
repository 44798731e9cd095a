import { expect, test } from 'vitest';
import { levelWidth, NodeHashes, topLevel } from '../src/tree-node-cache.ts';

const hashOf = (level: number, index: number) => new Uint8Array(32).fill((level * 31 + index) % 251);

test('the levels of a tree: how many complete nodes each has, and the highest', () => {
  expect([0, 1, 2, 3].map((level) => levelWidth(level, 13))).toEqual([13, 6, 3, 1]);
  expect([0, 1, 2, 7, 8].map(topLevel)).toEqual([-1, 0, 1, 2, 3]);
  expect([2 ** 52 - 1, 2 ** 52, 2 ** 53 - 1].map(topLevel)).toEqual([51, 52, 52]);
});

test('levels that fill the bound exactly are kept', () => {
  const nodes = new NodeHashes(7);
  nodes.sawHead(70); // from the top: 1, 2 and 4 nodes, then 8
  expect(nodes.lowestKept).toBe(4);
});

test('a hash kept is given back as it was, across the growth of its level', () => {
  const nodes = new NodeHashes(1000);
  nodes.sawHead(400);
  nodes.set({ level: 0, index: 0 }, hashOf(0, 0));
  const before = nodes.get({ level: 0, index: 0 });
  for (let index = 3; index < 400; index += 3) nodes.set({ level: 0, index }, hashOf(0, index));
  // The level grew from its first 64 slots; what was given out before still reads the same.
  expect(before).toEqual(hashOf(0, 0));
  expect(nodes.slots).toBe(400);
  for (let index = 0; index < 400; index++)
    expect(nodes.get({ level: 0, index })).toEqual(index % 3 === 0 ? hashOf(0, index) : undefined);
  expect(nodes.size).toBe(134);
  // Kept once: setting a node again changes nothing.
  nodes.set({ level: 0, index: 3 }, hashOf(9, 9));
  expect(nodes.get({ level: 0, index: 3 })).toEqual(hashOf(0, 3));
  expect(nodes.size).toBe(134);
});

test('only complete nodes within the head seen, and 32-byte hashes, are kept', () => {
  const nodes = new NodeHashes(1000);
  nodes.sawHead(10);
  nodes.set({ level: 1, index: 5 }, hashOf(1, 5)); // covers leaves 10 and 11: not complete at 10
  nodes.set({ level: 0, index: -1 }, hashOf(0, 0));
  nodes.set({ level: 0, index: 2 }, new Uint8Array(31));
  expect(nodes.size).toBe(0);
  nodes.sawHead(12);
  nodes.set({ level: 1, index: 5 }, hashOf(1, 5));
  expect(nodes.get({ level: 1, index: 5 })).toEqual(hashOf(1, 5));
});

test('as the head grows, the lowest levels are let go so the nodes kept stay within the bound', () => {
  const nodes = new NodeHashes(100);
  nodes.sawHead(40); // 40 + 20 + 10 + 5 + 2 + 1 = 78 nodes: every level fits
  expect(nodes.lowestKept).toBe(0);
  for (let level = 0; level <= topLevel(40); level++)
    for (let index = 0; index < levelWidth(level, 40); index++)
      nodes.set({ level, index }, hashOf(level, index));
  expect(nodes.size).toBe(78);
  nodes.sawHead(80); // the leaves (80) no longer fit beside the 78 nodes above them
  expect(nodes.lowestKept).toBe(1);
  expect(nodes.get({ level: 0, index: 0 })).toBeUndefined();
  expect(nodes.get({ level: 1, index: 7 })).toEqual(hashOf(1, 7));
  expect(nodes.size).toBe(38);
  nodes.set({ level: 0, index: 1 }, hashOf(0, 1));
  expect(nodes.size).toBe(38);
  for (let level = 1; level <= topLevel(80); level++)
    for (let index = 0; index < levelWidth(level, 80); index++)
      nodes.set({ level, index }, hashOf(level, index));
  expect(nodes.slots).toBeLessThanOrEqual(100);
  // A smaller head than one seen changes nothing.
  nodes.sawHead(20);
  expect(nodes.lowestKept).toBe(1);
});
