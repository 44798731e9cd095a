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
import type { Database } from '@connect/db';
import { type Kysely, sql } from 'kysely';

type Db = Kysely<Database>;

export class MissingTreeHashError extends Error {}

export async function readNodes(db: Db, nodes: readonly TreeNode[]): Promise<Map<string, Uint8Array>> {
  const found = new Map<string, Uint8Array>();
  if (nodes.length === 0) return found;
  const leaves = nodes.filter((node) => node.level === 0).map((node) => node.index);
  const inner = nodes.filter((node) => node.level > 0);
  // One round trip: leaves from the entries, inner nodes from the stored subtree hashes.
  const { rows } = await sql<{ level: number; idx: number; hash: Uint8Array }>`
    select 0::smallint as level, index as idx, leaf_hash as hash
    from ledger_entries where index = any(${leaves}::bigint[])
    union all
    select t.level, t.idx, t.hash
    from unnest(${inner.map((n) => n.level)}::smallint[], ${inner.map((n) => n.index)}::bigint[]) as q(level, idx)
    join ledger_tree t using (level, idx)`.execute(db);
  for (const row of rows) found.set(nodeKey({ level: row.level, index: row.idx }), row.hash);
  return found;
}

/** Runs a proof plan against the stored hashes. */
export async function runPlan(db: Db, plan: ProofPlan): Promise<Uint8Array[]> {
  const hashes = await readNodes(db, plan.nodes);
  return plan.assemble((node) => {
    const hash = hashes.get(nodeKey(node));
    if (!hash) throw new MissingTreeHashError(`stored tree hash ${nodeKey(node)} is missing`);
    return hash;
  });
}

export async function loadPeaks(db: Db, treeSize: number): Promise<HashedNode[]> {
  const nodes = treePeaks(treeSize);
  const hashes = await readNodes(db, nodes);
  return nodes.map((node) => {
    const hash = hashes.get(nodeKey(node));
    if (!hash) throw new MissingTreeHashError(`stored tree hash ${nodeKey(node)} is missing`);
    return { ...node, hash };
  });
}

export async function rootAt(db: Db, treeSize: number): Promise<Uint8Array> {
  return (await runPlan(db, rootPlan(treeSize)))[0] as Uint8Array;
}

export async function consistencyHashes(db: Db, from: number, to: number): Promise<Uint8Array[]> {
  return runPlan(db, consistencyPlan(from, to));
}
