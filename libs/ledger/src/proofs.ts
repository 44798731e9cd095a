import { consistencyPlan, inclusionPlan, type TreeNode, toBase64 } from '@connect/crypto';
import { type Queryable, readNodes, storedHash, type TreeNodeCache } from './tree-store.ts';

/** A proof request outside the ledger as it stands; `parameter` names the culprit. */
export class ProofRequestError extends RangeError {
  constructor(
    readonly parameter: string,
    message: string,
  ) {
    super(`${parameter}: ${message}`);
  }
}

export interface InclusionProofJson {
  index: number;
  treeSize: number;
  leafHash: string;
  hashes: string[];
}

export interface ConsistencyProofJson {
  from: number;
  to: number;
  hashes: string[];
}

function checkSize(parameter: string, value: number, max: number, min = 0): void {
  if (!Number.isSafeInteger(value) || value < min)
    throw new ProofRequestError(parameter, `must be an integer ≥ ${min}`);
  if (value > max) throw new ProofRequestError(parameter, `must be at most ${max}`);
}

export async function inclusionProof(
  db: Queryable,
  index: number,
  treeSize: number,
  cache?: TreeNodeCache,
): Promise<InclusionProofJson> {
  checkSize('treeSize', treeSize, Number.MAX_SAFE_INTEGER, 1);
  checkSize('index', index, treeSize - 1);
  const plan = inclusionPlan(index, treeSize);
  const leaf = { level: 0, index };
  // The head check and the hash reads share one round trip; the proof is only built within the head.
  const hashes = await readNodes(db, [...plan.nodes, leaf], { cache, within: treeSize });
  checkSize('treeSize', treeSize, hashes.treeSize, 1);
  const read = (node: TreeNode) => storedHash(hashes, node);
  return { index, treeSize, leafHash: toBase64(read(leaf)), hashes: plan.assemble(read).map(toBase64) };
}

export async function consistencyProof(
  db: Queryable,
  from: number,
  to: number,
  cache?: TreeNodeCache,
): Promise<ConsistencyProofJson> {
  checkSize('to', to, Number.MAX_SAFE_INTEGER);
  checkSize('from', from, to);
  const plan = consistencyPlan(from, to);
  const hashes = await readNodes(db, plan.nodes, { cache, within: to });
  checkSize('to', to, hashes.treeSize);
  return { from, to, hashes: plan.assemble((node) => storedHash(hashes, node)).map(toBase64) };
}
