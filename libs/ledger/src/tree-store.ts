// Reads stored complete-subtree hashes: level 0 is an entry's leaf hash, higher levels live in ledger_tree.
import {
  consistencyPlan,
  type HashedNode,
  inclusionPlan,
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
  const [leafRows, innerRows] = await Promise.all([
    leaves.length === 0
      ? []
      : db.selectFrom('ledger_entries').select(['index', 'leaf_hash']).where('index', 'in', leaves).execute(),
    inner.length === 0
      ? []
      : sql<{ level: number; idx: number; hash: Uint8Array }>`
          select t.level, t.idx, t.hash
          from unnest(${inner.map((n) => n.level)}::smallint[], ${inner.map((n) => n.index)}::bigint[]) as q(level, idx)
          join ledger_tree t using (level, idx)`
          .execute(db)
          .then((result) => result.rows),
  ]);
  for (const row of leafRows) found.set(nodeKey({ level: 0, index: row.index }), row.leaf_hash);
  for (const row of innerRows) found.set(nodeKey({ level: row.level, index: row.idx }), row.hash);
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

export async function inclusionHashes(db: Db, index: number, treeSize: number): Promise<Uint8Array[]> {
  return runPlan(db, inclusionPlan(index, treeSize));
}

export async function consistencyHashes(db: Db, from: number, to: number): Promise<Uint8Array[]> {
  return runPlan(db, consistencyPlan(from, to));
}
