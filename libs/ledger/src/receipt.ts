// A receipt bundle (LEDGER.md): the latest checkpoint, the verifier key, and every entry of one
// stream with its inclusion proof to that checkpoint; it verifies offline on its own.
import { inclusionPlan, nodeKey, type ReceiptBundle, type TreeNode, toBase64 } from '@connect/crypto';
import type { Database } from '@connect/db';
import type { Kysely } from 'kysely';
import { latestCheckpoint } from './checkpoints.ts';
import { readStream } from './entries.ts';
import { MissingTreeHashError, type Queryable, readNodes } from './tree-store.ts';

export async function buildReceipt(
  deps: { db: Kysely<Database>; pool: Queryable; origin: string; verifierKey: string },
  stream: string,
): Promise<Omit<ReceiptBundle, 'state'>> {
  const checkpoint = await latestCheckpoint(deps.db);
  const treeSize = checkpoint?.treeSize ?? 0;
  const entries = (await readStream(deps.db, deps.origin, stream)).filter((e) => e.index < treeSize);
  const plans = entries.map((entry) => inclusionPlan(entry.index, treeSize));
  const hashes = await readNodes(
    deps.pool,
    plans.flatMap((plan) => plan.nodes),
  );
  const read = (node: TreeNode) => {
    const hash = hashes.get(nodeKey(node));
    if (!hash) throw new MissingTreeHashError(`stored tree hash ${nodeKey(node)} is missing`);
    return hash;
  };
  return {
    origin: deps.origin,
    verifierKey: deps.verifierKey,
    checkpoint: checkpoint?.note ?? '',
    entries: entries.map((entry, i) => ({
      ...entry,
      proof: {
        index: entry.index,
        treeSize,
        hashes: (plans[i] as (typeof plans)[number]).assemble(read).map(toBase64),
      },
    })),
  };
}
