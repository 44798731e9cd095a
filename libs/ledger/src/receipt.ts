// A receipt bundle (LEDGER.md): the latest checkpoint, the verifier key, a stream head signed for
// that checkpoint's tree, and every entry of one stream with its inclusion proof to that
// checkpoint; it verifies offline on its own.
import {
  inclusionPlan,
  type ProvenEntry,
  type ReceiptBundle,
  type SigningKey,
  signStreamHead,
  type TreeNode,
  toBase64,
} from '@connect/crypto';
import type { Database } from '@connect/db';
import type { Kysely } from 'kysely';
import type { LedgerSource } from './body-cipher.ts';
import { latestCheckpoint, type SignedCheckpoint } from './checkpoints.ts';
import { readStream } from './entries.ts';
import { type Queryable, readNodes, storedHash, type TreeNodeCache } from './tree-store.ts';
import type { Entry } from './types.ts';

export interface ReceiptDeps extends LedgerSource {
  db: Kysely<Database>;
  pool: Queryable;
  verifierKey: string;
  /** The ledger's signing key: it signs the stream head. */
  key: SigningKey;
  /** Node hashes already read (the proof endpoints'): the proofs read only those it lacks. */
  nodes?: TreeNodeCache;
}

export class ReceiptError extends Error {}

/** Each list of entries with their inclusion proofs to the tree of `treeSize`, the hashes read at once. */
async function prove(
  deps: { pool: Queryable; nodes?: TreeNodeCache },
  lists: readonly Entry[][],
  treeSize: number,
): Promise<ProvenEntry[][]> {
  const planned = lists.map((entries) =>
    entries.map((entry) => ({ entry, plan: inclusionPlan(entry.index, treeSize) })),
  );
  const hashes = await readNodes(
    deps.pool,
    planned.flat().flatMap(({ plan }) => plan.nodes),
    { cache: deps.nodes, within: treeSize },
  );
  const read = (node: TreeNode) => storedHash(hashes, node);
  return planned.map((list) =>
    list.map(({ entry, plan }) => ({
      ...entry,
      proof: { index: entry.index, treeSize, hashes: plan.assemble(read).map(toBase64) },
    })),
  );
}

/**
 * The stream head for a checkpoint's tree: the stream's latest entry below its size. Signed only
 * for a tree the ledger has a checkpoint for, and only when the entries run 1..k, so the head
 * never says what the log contradicts.
 */
export function signedStreamHead(
  key: SigningKey,
  origin: string,
  stream: string,
  checkpoint: SignedCheckpoint,
  entries: readonly Entry[],
): string {
  const last = entries.at(-1);
  if (!last) return '';
  entries.forEach((entry, i) => {
    if (entry.stream !== stream || entry.version !== i + 1 || entry.index >= checkpoint.treeSize)
      throw new ReceiptError(`stream ${stream} is not versions 1..k in the tree of ${checkpoint.treeSize}`);
  });
  return signStreamHead(
    {
      origin,
      stream,
      version: last.version,
      index: last.index,
      treeSize: checkpoint.treeSize,
      rootHash: checkpoint.rootHash,
    },
    key,
  );
}

/**
 * The bundle of one stream at the latest checkpoint. `profiles` names further streams (a
 * commitment's parties' profiles) whose entries come along, proven to the same checkpoint.
 */
export async function buildReceipt(
  deps: ReceiptDeps,
  stream: string,
  options: { profiles?: (entries: Entry[]) => string[] } = {},
): Promise<Omit<ReceiptBundle, 'state'>> {
  const checkpoint = await latestCheckpoint(deps.db);
  const treeSize = checkpoint?.treeSize ?? 0;
  const inTree = async (name: string) =>
    (await readStream(deps.db, deps, name)).filter((e) => e.index < treeSize);
  const entries = await inTree(stream);
  const profileStreams = [...new Set(options.profiles?.(entries) ?? [])].filter((name) => name !== stream);
  const profiles = (await Promise.all(profileStreams.map(inTree))).flat();
  // Signed first: a stream the head cannot be signed for is refused before its proofs are read.
  const streamHead = checkpoint ? signedStreamHead(deps.key, deps.origin, stream, checkpoint, entries) : '';
  const [provenEntries = [], provenProfiles = []] = await prove(deps, [entries, profiles], treeSize);
  return {
    origin: deps.origin,
    verifierKey: deps.verifierKey,
    checkpoint: checkpoint?.note ?? '',
    streamHead,
    entries: provenEntries,
    ...(options.profiles ? { profiles: provenProfiles } : {}),
  };
}
