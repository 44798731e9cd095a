import { compiledOnce, type Database, prepared } from '@connect/db';
import type { Kysely } from 'kysely';

export interface SignedCheckpoint {
  treeSize: number;
  rootHash: Uint8Array;
  /** The C2SP signed note, as served. */
  note: string;
  signedAt: Date;
}

type Db = Kysely<Database>;

/**
 * The newest checkpoint's row; prepared, as receipts, the checkpoint route and each audit round read
 * it. Its columns are named: a prepared `*` fails once a migration adds one to the table.
 */
export const newestCheckpointRow = compiledOnce(
  (db: Db) =>
    db
      .selectFrom('ledger_checkpoints')
      .select(['tree_size', 'root_hash', 'note', 'signed_at'])
      .orderBy('tree_size', 'desc')
      .limit(1),
  (query) => prepared('newest-checkpoint', query),
);

export async function latestCheckpoint(db: Db): Promise<SignedCheckpoint | undefined> {
  const [row] = await newestCheckpointRow(db);
  return row && { treeSize: row.tree_size, rootHash: row.root_hash, note: row.note, signedAt: row.signed_at };
}

export async function checkpointAt(db: Db, treeSize: number): Promise<SignedCheckpoint | undefined> {
  const row = await db
    .selectFrom('ledger_checkpoints')
    .selectAll()
    .where('tree_size', '=', treeSize)
    .executeTakeFirst();
  return row && { treeSize: row.tree_size, rootHash: row.root_hash, note: row.note, signedAt: row.signed_at };
}
