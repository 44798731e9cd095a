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
import { named } from '@connect/db';
import type pg from 'pg';
import { type SharedReads, sharedReads } from './shared-reads.ts';
import { levelWidth, NodeHashes, topLevel } from './tree-node-cache.ts';

/** A pg pool or client. Proof reads use named statements, parsed and planned once per connection. */
export type Queryable = Pick<pg.Pool, 'query'>;

export class MissingTreeHashError extends Error {}

/** Node hashes already read (tree-node-cache.ts), and the reads of those it lacks, sharing round trips. */
export interface TreeNodeCache {
  nodes: NodeHashes;
  reads: SharedReads<Queryable, TreeNode, ReadHashes>;
}

/**
 * A cache for proofs: 2^20 nodes (33 MiB) hold every node of a ledger of half a million entries,
 * and the upper levels of a larger one.
 */
export const treeNodeCache = (maxNodes = 1 << 20, maxReadsInFlight = 4): TreeNodeCache => ({
  nodes: new NodeHashes(maxNodes),
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
  const { nodes: held } = cache;
  const found: ReadHashes = Object.assign(new Map<string, Uint8Array>(), { treeSize: held.headAtLeast });
  const missing: TreeNode[] = [];
  for (const node of nodes) {
    const hash = held.get(node);
    if (hash) found.set(nodeKey(node), hash);
    else missing.push(node);
  }
  if (missing.length === 0 && within <= held.headAtLeast) return found;
  const read = await cache.reads.read(db, missing);
  held.sawHead(read.treeSize);
  found.treeSize = read.treeSize;
  for (const node of missing) {
    const key = nodeKey(node);
    const hash = read.get(key);
    if (!hash) continue;
    found.set(key, hash);
    held.set(node, hash);
  }
  return found;
}

async function readStoredNodes(db: Queryable, nodes: readonly TreeNode[]): Promise<ReadHashes> {
  const leaves = nodes.filter((node) => node.level === 0).map((node) => node.index);
  const inner = nodes.filter((node) => node.level > 0);
  // Leaves come from the entries, inner nodes from the stored subtree hashes; level -1 carries the size.
  const { rows } = await db.query<{ level: number; idx: number; hash: Uint8Array | null }>(
    named({
      name: 'ledger-read-nodes',
      text: `select -1::smallint as level, tree_size as idx, null::bytea as hash from ledger_head
      union all
      select 0::smallint, index, leaf_hash from ledger_entries where index = any($1::bigint[])
      union all
      select t.level, t.idx, t.hash
      from unnest($2::smallint[], $3::bigint[]) as q(level, idx)
      join ledger_tree t using (level, idx)`,
      values: [leaves, inner.map((n) => n.level), inner.map((n) => n.index)],
    }),
  );
  const found: ReadHashes = Object.assign(new Map<string, Uint8Array>(), { treeSize: 0 });
  for (const row of rows) {
    if (row.level < 0) found.treeSize = row.idx;
    else if (row.hash) found.set(nodeKey({ level: row.level, index: row.idx }), row.hash);
  }
  return found;
}

/**
 * Fills the cache with every node of the levels it keeps, up to the head as it is now, a page of
 * rows a statement, from the top level down: then a proof within that head needs no round trip.
 * `stopped` is asked before each page (a server closing). Returns how many hashes it read.
 */
export async function warmTreeNodeCache(
  db: Queryable,
  cache: TreeNodeCache,
  { pageSize = 10_000, stopped = () => false }: { pageSize?: number; stopped?: () => boolean } = {},
): Promise<number> {
  if (!Number.isSafeInteger(pageSize) || pageSize < 1)
    throw new RangeError('pageSize must be a whole number ≥ 1');
  const { rows } = await db.query<{ tree_size: number }>('select tree_size from ledger_head');
  const head = rows[0]?.tree_size ?? 0;
  const { nodes } = cache;
  nodes.sawHead(head);
  let read = 0;
  for (let level = topLevel(head); level >= nodes.lowestKept; level--) {
    const width = levelWidth(level, head);
    for (let from = 0; from < width && !stopped(); from += pageSize) {
      const to = Math.min(width, from + pageSize);
      // Unnamed: run at a start, they need not stay prepared on every connection.
      const page = await db.query<{ idx: number; hash: Uint8Array | null }>(
        level === 0
          ? 'select index as idx, leaf_hash as hash from ledger_entries where index >= $1 and index < $2'
          : 'select idx, hash from ledger_tree where level = $3 and idx >= $1 and idx < $2',
        level === 0 ? [from, to] : [from, to, level],
      );
      for (const row of page.rows) if (row.hash) nodes.set({ level, index: row.idx }, row.hash);
      read += page.rows.length;
    }
  }
  return read;
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
