// An account and its ledger profile go together: signup and a first social login both create one
// here, so there is no account without a profile and no profile without an account.
import { randomUUID } from 'node:crypto';
import { type Database, normalizeEmail, type UserEmails } from '@connect/db';
import { PROFILE_REGISTERED, profileStream } from '@connect/domain';
import type { Ledger } from '@connect/ledger';
import type { Kysely, Transaction } from 'kysely';
import { insertUsers, type User } from './accounts.ts';

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
  const [user] = await createAccounts(db as Transaction<Database>, ledger, emails, [account]);
  return user;
}

/**
 * createAccount for many (an import): one insert, and the profiles appended together so they share
 * group commits. One result per account, undefined where the email is taken (also by an earlier
 * account of the same call). A failed append throws once every append has settled, so the caller's
 * transaction keeps none of the accounts; the profiles that were appended stay in the ledger, and
 * an append retried under the same idempotency key replays them.
 */
export async function createAccounts(
  trx: Transaction<Database>,
  ledger: Ledger,
  emails: UserEmails,
  accounts: readonly NewAccount[],
): Promise<(User | undefined)[]> {
  const users = accounts.map(
    (account): User => ({
      id: account.id ?? randomUUID(),
      email: normalizeEmail(account.email),
      displayName: account.displayName,
      isAdmin: false,
      roles: [],
      emailVerified: Boolean(account.emailVerifiedAt),
      avatarUrl: null,
    }),
  );
  const inserted = await insertUsers(
    trx,
    emails,
    users.map((user, i) => ({
      ...user,
      passwordHash: accounts[i]?.passwordHash ?? null,
      emailVerifiedAt: accounts[i]?.emailVerifiedAt,
    })),
  );
  const settled = await Promise.allSettled(
    users.map(async (user, i) => {
      if (!inserted.has(user.id)) return undefined;
      const profile = await ledger.append({
        stream: profileStream(user.id),
        expectedVersion: 'no_stream',
        actor: user.id,
        idempotencyKey: accounts[i]?.idempotencyKey,
        events: [{ type: PROFILE_REGISTERED, data: { userId: user.id, displayName: user.displayName } }],
      });
      if (profile.outcome !== 'appended' && profile.outcome !== 'replayed')
        throw new Error(`profile append: ${profile.outcome}`);
      return user;
    }),
  );
  const failed = settled.find((result) => result.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((result) => (result.status === 'fulfilled' ? result.value : undefined));
}
