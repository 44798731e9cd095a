// RFC 9162 §2.1 Merkle tree hashing over SHA-256, addressed by complete subtrees
// as Go's sumdb/tlog stores them. Sizes and indexes are plain numbers (exact up to
// 2^53), so this file uses arithmetic, never 32-bit bitwise operators.
import { sha256 } from './sha256.ts';

const LEAF_PREFIX = new Uint8Array([0x00]);
const NODE_PREFIX = new Uint8Array([0x01]);

export const EMPTY_ROOT: Uint8Array = sha256(new Uint8Array(0));

/** The hash of a leaf; a leaf input given as text is its UTF-8 bytes. */
export function leafHash(leafInput: Uint8Array | string): Uint8Array {
  // As text, the prefix goes in front as U+0000, whose UTF-8 is the byte 0x00: one part to hash.
  return typeof leafInput === 'string' ? sha256(`\u0000${leafInput}`) : sha256(LEAF_PREFIX, leafInput);
}

export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return sha256(NODE_PREFIX, left, right);
}

/** The complete subtree holding leaves [index·2^level, (index+1)·2^level). Level 0 is a leaf. */
export interface TreeNode {
  level: number;
  index: number;
}

export interface HashedNode extends TreeNode {
  hash: Uint8Array;
}

/** A half-open range of leaves [start, end). */
export type LeafRange = readonly [start: number, end: number];

export function nodeKey(node: TreeNode): string {
  return `${node.level}/${node.index}`;
}

/** Largest power of two strictly below n (n ≥ 2), as RFC 9162 splits a tree. */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/**
 * The complete subtrees that make up the tree hash of [start, end), left to right.
 * Valid for the ranges RFC 9162 recursion produces (start aligned to the range's split).
 */
export function rangeNodes([start, end]: LeafRange): TreeNode[] {
  const nodes: TreeNode[] = [];
  let at = start;
  while (at < end) {
    let level = 0;
    let width = 1;
    while (at % (width * 2) === 0 && at + width * 2 <= end) {
      level++;
      width *= 2;
    }
    nodes.push({ level, index: at / width });
    at += width;
  }
  return nodes;
}

/** MTH of a range from the hashes of its complete subtrees (as listed by rangeNodes). */
export function foldRange(hashes: Uint8Array[]): Uint8Array {
  if (hashes.length === 0) return EMPTY_ROOT;
  let hash = hashes[hashes.length - 1] as Uint8Array;
  for (let i = hashes.length - 2; i >= 0; i--) hash = nodeHash(hashes[i] as Uint8Array, hash);
  return hash;
}

/** The complete subtrees ("peaks") that cover a tree of the given size; its root folds them. */
export function treePeaks(treeSize: number): TreeNode[] {
  return rangeNodes([0, treeSize]);
}

/**
 * Appends one leaf to a tree given by its peaks (left to right). Returns the new peaks and every
 * complete subtree the leaf completes, the leaf itself first: exactly the hashes to store.
 */
export function appendLeaf(
  peaks: readonly HashedNode[],
  index: number,
  hash: Uint8Array,
): { peaks: HashedNode[]; completed: HashedNode[] } {
  const next = [...peaks];
  let node: HashedNode = { level: 0, index, hash };
  const completed: HashedNode[] = [node];
  for (let top = next.at(-1); top !== undefined && top.level === node.level; top = next.at(-1)) {
    next.pop();
    node = { level: node.level + 1, index: top.index / 2, hash: nodeHash(top.hash, node.hash) };
    completed.push(node);
  }
  next.push(node);
  return { peaks: next, completed };
}

export function rootFromPeaks(peaks: readonly HashedNode[]): Uint8Array {
  return foldRange(peaks.map((peak) => peak.hash));
}

/** The root of a whole list of leaf hashes, in memory; for small trees and tests. */
export function rootFromLeaves(leafHashes: readonly Uint8Array[]): Uint8Array {
  let peaks: HashedNode[] = [];
  leafHashes.forEach((hash, index) => {
    peaks = appendLeaf(peaks, index, hash).peaks;
  });
  return rootFromPeaks(peaks);
}
