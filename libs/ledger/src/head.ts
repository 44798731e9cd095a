import { EMPTY_ROOT, formatVerifierKey, type SigningKey, signCheckpoint } from '@connect/crypto';
import type { Database } from '@connect/db';
import type { Kysely } from 'kysely';

export interface LedgerHead {
  origin: string;
  verifierKey: string;
  treeSize: number;
  rootHash: Uint8Array;
}

export async function readHead(db: Kysely<Database>): Promise<LedgerHead | undefined> {
  const row = await db.selectFrom('ledger_head').selectAll().executeTakeFirst();
  return (
    row && {
      origin: row.origin,
      verifierKey: row.verifier_key,
      treeSize: row.tree_size,
      rootHash: row.root_hash,
    }
  );
}

export class LedgerIdentityError extends Error {}

/**
 * Creates the head on a new ledger, with a signed checkpoint of the empty tree, or checks that
 * this process's origin and key are the ones the ledger was started with: a ledger signed by
 * two keys, or under two origins, is no ledger.
 */
export async function ensureHead(db: Kysely<Database>, origin: string, key: SigningKey): Promise<LedgerHead> {
  const verifierKey = formatVerifierKey(key);
  await db.transaction().execute(async (trx) => {
    const created = await trx
      .insertInto('ledger_head')
      .values({ origin, verifier_key: verifierKey })
      .onConflict((oc) => oc.doNothing())
      .returning('tree_size')
      .executeTakeFirst();
    if (created) {
      const note = signCheckpoint({ origin, treeSize: 0, rootHash: EMPTY_ROOT }, key);
      await trx
        .insertInto('ledger_checkpoints')
        .values({ tree_size: 0, root_hash: EMPTY_ROOT, note })
        .execute();
    }
  });
  const head = await readHead(db);
  if (!head) throw new LedgerIdentityError('the ledger head is missing');
  if (head.origin !== origin) {
    throw new LedgerIdentityError(
      `CONNECT_LEDGER_ORIGIN is "${origin}" but this ledger's origin is "${head.origin}"`,
    );
  }
  if (head.verifierKey !== verifierKey) {
    throw new LedgerIdentityError(
      `the ledger key (CONNECT_LEDGER_KEY or the key file) is not the key this ledger is signed with (${head.verifierKey})`,
    );
  }
  return head;
}
