// An account and its ledger profile go together: signup and a first social login both create one
// here, so there is no account without a profile and no profile without an account.
import { randomUUID } from 'node:crypto';
import { type Database, normalizeEmail, type UserEmails } from '@connect/db';
import { PROFILE_REGISTERED, profileStream } from '@connect/domain';
import type { Ledger } from '@connect/ledger';
import type { Kysely, Transaction } from 'kysely';
import { insertUser, type User } from './accounts.ts';

export interface NewAccount {
  /** Kept from the system an account is imported from; a new id when absent. */
  id?: string;
  email: string;
  displayName: string;
  /** Null: the account signs in only through a social login until its owner sets a password. */
  passwordHash: string | null;
  /** When the email was verified (a provider vouched for it); null: not yet. */
  emailVerifiedAt?: Date | null;
  /** Makes the profile's append safe to retry (an import run again after a crash). */
  idempotencyKey?: string;
}

/**
 * Inserts the user and appends its ProfileRegistered event in the caller's transaction (or one of
 * its own); undefined when the email is taken. A failed append throws, so the account is not kept.
 */
export async function createAccount(
  db: Kysely<Database> | Transaction<Database>,
  ledger: Ledger,
  emails: UserEmails,
  account: NewAccount,
): Promise<User | undefined> {
  if (!db.isTransaction)
    return db.transaction().execute((trx) => createAccount(trx, ledger, emails, account));
  const user: User = {
    id: account.id ?? randomUUID(),
    email: normalizeEmail(account.email),
    displayName: account.displayName,
    isAdmin: false,
    roles: [],
    emailVerified: Boolean(account.emailVerifiedAt),
    avatarUrl: null,
  };
  if (
    !(await insertUser(db, emails, {
      ...user,
      passwordHash: account.passwordHash,
      emailVerifiedAt: account.emailVerifiedAt,
    }))
  )
    return undefined;
  const profile = await ledger.append({
    stream: profileStream(user.id),
    expectedVersion: 'no_stream',
    actor: user.id,
    idempotencyKey: account.idempotencyKey,
    events: [{ type: PROFILE_REGISTERED, data: { userId: user.id, displayName: user.displayName } }],
  });
  if (profile.outcome !== 'appended' && profile.outcome !== 'replayed')
    throw new Error(`profile append: ${profile.outcome}`);
  return user;
}
