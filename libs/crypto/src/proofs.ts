// RFC 9162 §2.1.3 inclusion and §2.1.4 consistency proofs. Building a proof is split in two
// so the core stays pure: a plan names the stored subtree hashes it needs, the caller reads
// them (from PostgreSQL, memory, …), then the plan folds them into the proof.
import { equalBytes } from './bytes.ts';
import {
  foldRange,
  type LeafRange,
  nodeHash,
  nodeKey,
  rangeNodes,
  splitPoint,
  type TreeNode,
} from './merkle.ts';

export interface InclusionProof {
  index: number;
  treeSize: number;
  hashes: Uint8Array[];
}

export interface ConsistencyProof {
  from: number;
  to: number;
  hashes: Uint8Array[];
}

export interface ProofPlan {
  /** Every complete subtree whose stored hash the proof needs. */
  nodes: TreeNode[];
  /** Folds the hashes of `nodes` (looked up by nodeKey) into the proof's hashes. */
  assemble(read: (node: TreeNode) => Uint8Array): Uint8Array[];
}

export class ProofRangeError extends RangeError {}

function assertSize(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0)
    throw new ProofRangeError(`${name} must be a non-negative integer`);
}

function planFromRanges(ranges: LeafRange[]): ProofPlan {
  const perRange = ranges.map(rangeNodes);
  const unique = new Map<string, TreeNode>();
  for (const node of perRange.flat()) unique.set(nodeKey(node), node);
  return {
    nodes: [...unique.values()],
    assemble: (read) => perRange.map((nodes) => foldRange(nodes.map(read))),
  };
}

/** The leaf ranges whose hashes form PATH(index, D[0:treeSize]), leaf to root. */
export function inclusionRanges(index: number, treeSize: number): LeafRange[] {
  assertSize('treeSize', treeSize);
  assertSize('index', index);
  if (index >= treeSize) throw new ProofRangeError('index must be below treeSize');
  const siblings: LeafRange[] = [];
  let start = 0;
  let end = treeSize;
  while (end - start > 1) {
    const mid = start + splitPoint(end - start);
    if (index < mid) {
      siblings.push([mid, end]);
      end = mid;
    } else {
      siblings.push([start, mid]);
      start = mid;
    }
  }
  return siblings.reverse();
}

/** The leaf ranges whose hashes form PROOF(from, D[0:to]) (RFC 9162 SUBPROOF), in proof order. */
export function consistencyRanges(from: number, to: number): LeafRange[] {
  assertSize('from', from);
  assertSize('to', to);
  if (from > to) throw new ProofRangeError('from must not exceed to');
  if (from === 0 || from === to) return [];
  const ranges: LeafRange[] = [];
  let start = 0;
  let end = to;
  let whole = true;
  for (;;) {
    const size = end - start;
    const rel = from - start;
    if (rel === size) {
      if (!whole) ranges.push([start, end]);
      break;
    }
    const k = splitPoint(size);
    if (rel <= k) {
      ranges.push([start + k, end]);
      end = start + k;
    } else {
      ranges.push([start, start + k]);
      start += k;
      whole = false;
    }
  }
  return ranges.reverse();
}

export function inclusionPlan(index: number, treeSize: number): ProofPlan {
  return planFromRanges(inclusionRanges(index, treeSize));
}

export function consistencyPlan(from: number, to: number): ProofPlan {
  return planFromRanges(consistencyRanges(from, to));
}

export function rootPlan(treeSize: number): ProofPlan {
  assertSize('treeSize', treeSize);
  return planFromRanges([[0, treeSize]]);
}

const half = (n: number) => Math.floor(n / 2);
const isPowerOfTwo = (n: number) => n >= 1 && splitPoint(n + 1) === n;
const odd = (n: number) => n % 2 === 1;

/** The root an inclusion proof leads to, or null when the proof cannot be well formed (RFC 9162 §2.1.3.2). */
export function rootFromInclusionProof(proof: InclusionProof, leaf: Uint8Array): Uint8Array | null {
  const { index, treeSize, hashes } = proof;
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(treeSize) || index < 0 || index >= treeSize) {
    return null;
  }
  let fn = index;
  let sn = treeSize - 1;
  let r = leaf;
  for (const p of hashes) {
    if (sn === 0) return null;
    if (odd(fn) || fn === sn) {
      r = nodeHash(p, r);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 ? r : null;
}

export function verifyInclusion(proof: InclusionProof, leaf: Uint8Array, root: Uint8Array): boolean {
  const computed = rootFromInclusionProof(proof, leaf);
  return computed !== null && equalBytes(computed, root);
}

/** RFC 9162 §2.1.4.2; a tree is consistent with the empty tree only by an empty proof. */
export function verifyConsistency(
  proof: ConsistencyProof,
  fromRoot: Uint8Array,
  toRoot: Uint8Array,
): boolean {
  const { from, to, hashes } = proof;
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 0 || from > to) return false;
  if (from === 0) return hashes.length === 0;
  if (from === to) return hashes.length === 0 && equalBytes(fromRoot, toRoot);
  if (hashes.length === 0) return false;
  const path = isPowerOfTwo(from) ? [fromRoot, ...hashes] : hashes;
  let fn = from - 1;
  let sn = to - 1;
  while (odd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = path[0] as Uint8Array;
  let sr = fr;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (odd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && equalBytes(fr, fromRoot) && equalBytes(sr, toRoot);
}
