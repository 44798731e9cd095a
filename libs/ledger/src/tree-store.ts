// Reads stored complete-subtree hashes: level 0 is an entry's leaf hash, higher levels live in ledger_tree.
import {
  consistencyPlan,
  type HashedNode,
  nodeKey,
  type ProofPlan,
  rootPlan,
  type TreeNode,
  treePeaks,
} from '@connect/crypto';
import type pg from 'pg';
import { type SharedReads, sharedReads } from './shared-reads.ts';

/** A pg pool or client. Proof reads use named statements, parsed and planned once per connection. */
export type Queryable = Pick<pg.Pool, 'query'>;

export class MissingTreeHashError extends Error {}

/**
 * Node hashes already read, for serving proofs: a leaf or a complete subtree's hash never changes
 * once written, and the head only grows, so what was read once answers again without a round
 * trip. Not for the audit, which must read what is stored.
 */
export interface TreeNodeCache {
  hashes: Map<string, Uint8Array>;
  /** The largest head tree size read so far: the head is at least this. */
  headAtLeast: number;
  maxNodes: number;
  /** The reads of nodes the cache lacks, sharing round trips. */
  reads: SharedReads<Queryable, TreeNode, ReadHashes>;
}

export const treeNodeCache = (maxNodes = 250_000, maxReadsInFlight = 4): TreeNodeCache => ({
  hashes: new Map(),
  headAtLeast: 0,
  maxNodes,
  reads: sharedReads((db: Queryable, nodes: TreeNode[]) => readStoredNodes(db, uniqueNodes(nodes)), {
    maxInFlight: maxReadsInFlight,
  }),
});

function uniqueNodes(nodes: readonly TreeNode[]): TreeNode[] {
  const byKey = new Map<string, TreeNode>();
  for (const node of nodes) byKey.set(nodeKey(node), node);
  return [...byKey.values()];
}

export interface ReadNodesOptions {
  cache?: TreeNodeCache;
  /** The tree size the caller needs the head to reach: the cache answers alone only when it knows it does. */
  within?: number;
}

type ReadHashes = Map<string, Uint8Array> & { treeSize: number };

/**
 * Stored hashes of the given nodes, and the head's tree size, in one round trip (none when the
 * cache holds every node and knows the head reaches `within`; treeSize is then that lower bound).
 * With a cache, the round trip may be shared with other reads waiting at the same time.
 */
export async function readNodes(
  db: Queryable,
  nodes: readonly TreeNode[],
  { cache, within = 0 }: ReadNodesOptions = {},
): Promise<ReadHashes> {
  if (!cache) return readStoredNodes(db, nodes);
  const found: ReadHashes = Object.assign(new Map<string, Uint8Array>(), { treeSize: cache.headAtLeast });
  const missing: TreeNode[] = [];
  for (const node of nodes) {
    const key = nodeKey(node);
    const hash = cache.hashes.get(key);
    if (hash) found.set(key, hash);
    else missing.push(node);
  }
  if (missing.length === 0 && within <= cache.headAtLeast) return found;
  const read = await cache.reads.read(db, missing);
  cache.headAtLeast = Math.max(cache.headAtLeast, read.treeSize);
  found.treeSize = read.treeSize;
  for (const node of missing) {
    const key = nodeKey(node);
    const hash = read.get(key);
    if (!hash) continue;
    found.set(key, hash);
    // Dropped wholesale when full: the hot nodes (the upper levels) come back with the next reads.
    if (cache.hashes.size >= cache.maxNodes) cache.hashes.clear();
    cache.hashes.set(key, hash);
  }
  return found;
}

async function readStoredNodes(db: Queryable, nodes: readonly TreeNode[]): Promise<ReadHashes> {
  const leaves = nodes.filter((node) => node.level === 0).map((node) => node.index);
  const inner = nodes.filter((node) => node.level > 0);
  // Leaves come from the entries, inner nodes from the stored subtree hashes; level -1 carries the size.
  const { rows } = await db.query<{ level: number; idx: number; hash: Uint8Array | null }>({
    name: 'ledger-read-nodes',
    text: `select -1::smallint as level, tree_size as idx, null::bytea as hash from ledger_head
      union all
      select 0::smallint, index, leaf_hash from ledger_entries where index = any($1::bigint[])
      union all
      select t.level, t.idx, t.hash
      from unnest($2::smallint[], $3::bigint[]) as q(level, idx)
      join ledger_tree t using (level, idx)`,
    values: [leaves, inner.map((n) => n.level), inner.map((n) => n.index)],
  });
  const found: ReadHashes = Object.assign(new Map<string, Uint8Array>(), { treeSize: 0 });
  for (const row of rows) {
    if (row.level < 0) found.treeSize = row.idx;
    else if (row.hash) found.set(nodeKey({ level: row.level, index: row.idx }), row.hash);
  }
  return found;
}

/** The hash of a node among those readNodes read; a MissingTreeHashError when it is not stored. */
export function storedHash(hashes: ReadonlyMap<string, Uint8Array>, node: TreeNode): Uint8Array {
  const hash = hashes.get(nodeKey(node));
  if (!hash) throw new MissingTreeHashError(`stored tree hash ${nodeKey(node)} is missing`);
  return hash;
}

/** Runs a proof plan against the stored hashes. */
export async function runPlan(db: Queryable, plan: ProofPlan): Promise<Uint8Array[]> {
  const hashes = await readNodes(db, plan.nodes);
  return plan.assemble((node) => storedHash(hashes, node));
}

export async function loadPeaks(db: Queryable, treeSize: number): Promise<HashedNode[]> {
  const nodes = treePeaks(treeSize);
  const hashes = await readNodes(db, nodes);
  return nodes.map((node) => ({ ...node, hash: storedHash(hashes, node) }));
}

export async function rootAt(db: Queryable, treeSize: number): Promise<Uint8Array> {
  return (await runPlan(db, rootPlan(treeSize)))[0] as Uint8Array;
}

export async function consistencyHashes(db: Queryable, from: number, to: number): Promise<Uint8Array[]> {
  return runPlan(db, consistencyPlan(from, to));
}
