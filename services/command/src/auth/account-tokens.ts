// Using the single-use tokens mailed for account changes (the notifier makes and mails them:
// services/notifier/src/email/account-mail.ts). A token is used by the hash of what was presented;
// it works once, for its purpose, until it expires.
import { accountTokenEmailPlace, type Database, type FieldCipher, userSubject } from '@connect/db';
import { badRequest } from '@connect/http';
import { type AccountTokenPurpose, hashAccountToken } from '@connect/notifier';
import type { Kysely, Transaction } from 'kysely';

export interface UsedAccountToken {
  userId: string;
  purpose: AccountTokenPurpose;
  /** The blind index of the address it was mailed to. */
  emailIndex: Uint8Array | null;
  /** That address (opened); undefined once its user's key is erased. */
  email: string | undefined;
}

/**
 * Marks the token used and answers what it was for; undefined when it is unknown, used, expired
 * or for another purpose. Call inside the transaction that acts on it, so a failure leaves it unused.
 */
export async function useAccountToken(
  trx: Transaction<Database>,
  fields: FieldCipher,
  token: string,
  purposes: readonly AccountTokenPurpose[],
  now: Date,
): Promise<UsedAccountToken | undefined> {
  const tokenHash = hashAccountToken(token);
  const row = await trx
    .updateTable('account_tokens')
    .set({ used_at: now })
    .where('token_hash', '=', tokenHash)
    .where('purpose', 'in', purposes)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .returning(['user_id', 'purpose', 'email', 'email_index', 'email_sealed'])
    .executeTakeFirst();
  if (!row) return undefined;
  const [email] = row.email_sealed
    ? await fields.open<string>([
        {
          subject: userSubject(row.user_id),
          place: accountTokenEmailPlace(tokenHash),
          stored: row.email_sealed,
        },
      ])
    : [row.email ?? undefined];
  return { userId: row.user_id, purpose: row.purpose, emailIndex: row.email_index, email };
}

/** Voids the user's unused tokens of these purposes (e.g. a pending email change, at a password reset). */
export async function voidAccountTokens(
  db: Kysely<Database>,
  userId: string,
  purposes: readonly AccountTokenPurpose[],
  now: Date,
): Promise<void> {
  await db
    .updateTable('account_tokens')
    .set({ used_at: now })
    .where('user_id', '=', userId)
    .where('purpose', 'in', purposes)
    .where('used_at', 'is', null)
    .execute();
}

/** The one answer to a token that does not work, whatever the reason, naming body.token. */
export const invalidToken = () =>
  badRequest(
    [{ path: 'body.token', message: 'is invalid, expired or already used; ask for a new link' }],
    'The link is invalid, expired or already used.',
  );
