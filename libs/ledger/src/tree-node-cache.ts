// Node hashes already read, for serving proofs: a leaf or a complete subtree's hash never changes
// once written, and the head only grows, so what was read once answers again without a round
// trip. Not for the audit, which must read what is stored.
import { type TreeNode, treePeaks } from '@connect/crypto';

const HASH_BYTES = 32;

/** One level's hashes side by side: slot i holds node (level, i) once known[i] is 1. */
interface Level {
  hashes: Uint8Array;
  known: Uint8Array;
  held: number;
}

/** How many complete nodes a level has in a tree of `treeSize` leaves. */
export const levelWidth = (level: number, treeSize: number) => Math.floor(treeSize / 2 ** level);

/** The highest level with a complete node in a tree of `treeSize` leaves, its first peak's (-1 when empty). */
export const topLevel = (treeSize: number) => treePeaks(treeSize)[0]?.level ?? -1;

/**
 * Hashes by level, each level one buffer indexed by node (33 bytes a node, where a map of keys
 * and small arrays took several times that). The levels kept are the upper ones, as many as
 * hold at most `maxNodes` nodes at the head: every proof passes through them, and as the ledger
 * grows the lowest levels are let go first.
 */
export class NodeHashes {
  /** The largest head tree size read so far: the head is at least this. */
  headAtLeast = 0;
  /** The lowest level kept: from it up, the levels have at most maxNodes nodes at headAtLeast. */
  lowestKept = 0;
  private readonly levels: (Level | undefined)[] = [];

  constructor(readonly maxNodes: number) {
    if (!Number.isSafeInteger(maxNodes) || maxNodes < 1)
      throw new RangeError('maxNodes must be a whole number ≥ 1');
  }

  /** How many node hashes it holds. */
  get size(): number {
    return this.levels.reduce((sum, level) => sum + (level?.held ?? 0), 0);
  }

  /** How many nodes its buffers have room for: at most maxNodes. */
  get slots(): number {
    return this.levels.reduce((sum, level) => sum + (level?.known.length ?? 0), 0);
  }

  get(node: TreeNode): Uint8Array | undefined {
    const level = this.levels[node.level];
    if (level?.known[node.index] !== 1) return undefined;
    const start = node.index * HASH_BYTES;
    return level.hashes.subarray(start, start + HASH_BYTES);
  }

  /** Keeps a stored node's hash, if its level is kept (call sawHead with the head read with it first). */
  set(node: TreeNode, hash: Uint8Array): void {
    if (node.level < this.lowestKept || hash.byteLength !== HASH_BYTES) return;
    const width = levelWidth(node.level, this.headAtLeast);
    // Only complete subtrees are stored, so a node beyond the head's width was not read as one.
    if (!Number.isSafeInteger(node.index) || node.index < 0 || node.index >= width) return;
    const level = this.room(node.level, node.index, width);
    if (level.known[node.index] === 1) return;
    level.hashes.set(hash, node.index * HASH_BYTES);
    level.known[node.index] = 1;
    level.held++;
  }

  /** Notes that the head reaches `treeSize`, and lets go of the levels that no longer fit. */
  sawHead(treeSize: number): void {
    if (treeSize <= this.headAtLeast) return;
    this.headAtLeast = treeSize;
    let nodes = 0;
    let lowest = topLevel(treeSize) + 1;
    while (lowest > 0 && nodes + levelWidth(lowest - 1, treeSize) <= this.maxNodes)
      nodes += levelWidth(--lowest, treeSize);
    this.lowestKept = lowest;
    for (let level = 0; level < lowest; level++) this.levels[level] = undefined;
  }

  /** The level's buffers, grown (by doubling, up to the level's width) to hold `index`. */
  private room(levelNumber: number, index: number, width: number): Level {
    const level = this.levels[levelNumber];
    if (level && index < level.known.length) return level;
    const capacity = Math.min(width, Math.max(index + 1, 2 * (level?.known.length ?? 0), 64));
    const grown: Level = {
      hashes: new Uint8Array(capacity * HASH_BYTES),
      known: new Uint8Array(capacity),
      held: level?.held ?? 0,
    };
    if (level) {
      grown.hashes.set(level.hashes);
      grown.known.set(level.known);
    }
    this.levels[levelNumber] = grown;
    return grown;
  }
}
