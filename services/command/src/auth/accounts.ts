// Users: plain functions over a kysely handle. Sessions are in sessions.ts.

import {
  type Database,
  type KeyRing,
  normalizeEmail,
  type StoredUserEmail,
  type UserEmails,
  userEmails,
} from '@connect/db';
import type { UserRole } from '@connect/domain';
import type { Ledger } from '@connect/ledger';
import { type Kysely, sql } from 'kysely';

export { normalizeEmail };

type Db = Kysely<Database>;

export interface User {
  id: string;
  email: string;
  displayName: string;
  /** Holds the admin role. */
  isAdmin: boolean;
  /** The roles held now (user_roles; granted and revoked in roles.ts). */
  roles: UserRole[];
  /** Whether its owner followed a link mailed to the address. */
  emailVerified: boolean;
  /** An https URL of the owner's picture (PATCH /v1/me); null: none. */
  avatarUrl: string | null;
}

/** The roles of the user of the `users` row a query selects; select it with the user for toUser. */
export const userRoles = sql<
  UserRole[]
>`array(select role from user_roles where user_roles.user_id = users.id order by role)`.as('roles');

/** A users row with its roles (selected with userRoles), as toUser reads it. */
export interface UserRow extends StoredUserEmail {
  display_name: string;
  roles: UserRole[];
  email_verified_at: Date | null;
  avatar_url: string | null;
}

/** The user of a row, with `email` its opened address. */
export const toUser = (row: Omit<UserRow, 'email' | 'email_sealed'>, email: string): User => ({
  id: row.id,
  email,
  displayName: row.display_name,
  isAdmin: row.roles.includes('admin'),
  roles: row.roles,
  emailVerified: row.email_verified_at !== null,
  avatarUrl: row.avatar_url,
});

/** The user of a row, its address opened ('' for an erased one). */
export async function openUser(emails: UserEmails, row: UserRow): Promise<User> {
  const [email] = await emails.open([row]);
  return toUser(row, email ?? '');
}

/** The addresses of the command service: indexed and sealed with its keys. */
export const accountEmails = (deps: { keys: KeyRing; ledger: Ledger }) =>
  userEmails(deps.keys, deps.ledger.cipher.fields);

/** The user with this email; undefined when there is none or they were erased. */
export async function findUserByEmail(
  db: Db,
  emails: UserEmails,
  email: string,
): Promise<(User & { passwordHash: string | null }) | undefined> {
  const row = await db
    .selectFrom('users')
    .selectAll()
    .select(userRoles)
    .where('email_index', '=', await emails.index(email))
    .where('erased_at', 'is', null)
    .executeTakeFirst();
  return row && { ...(await openUser(emails, row)), passwordHash: row.password_hash };
}

/** The user with this id; undefined when there is none or they were erased. */
export async function findUser(db: Db, emails: UserEmails, id: string): Promise<User | undefined> {
  const row = await db
    .selectFrom('users')
    .selectAll()
    .select(userRoles)
    .where('id', '=', id)
    .where('erased_at', 'is', null)
    .executeTakeFirst();
  return row && openUser(emails, row);
}

/** Inserts the users in one statement; the ids of those inserted (the others' emails are taken). */
export async function insertUsers(
  db: Db,
  emails: UserEmails,
  users: readonly {
    id: string;
    email: string;
    /** Null for an account that signs in only through a social login. */
    passwordHash: string | null;
    displayName: string;
    emailVerifiedAt?: Date | null;
  }[],
): Promise<Set<string>> {
  if (users.length === 0) return new Set();
  const rows = await Promise.all(
    users.map(async (user) => ({
      id: user.id,
      ...(await emails.columns(user.id, user.email)),
      password_hash: user.passwordHash,
      display_name: user.displayName,
      email_verified_at: user.emailVerifiedAt ?? null,
    })),
  );
  const inserted = await db
    .insertInto('users')
    .values(rows)
    .onConflict((oc) => oc.column('email_index').doNothing())
    .returning('id')
    .execute();
  return new Set(inserted.map((row) => row.id));
}

/** The id of the user with this email; undefined when there is none (or they were erased). */
export async function userIdByEmail(
  db: Db,
  emails: Pick<UserEmails, 'index'>,
  email: string,
): Promise<string | undefined> {
  const row = await db
    .selectFrom('users')
    .select('id')
    .where('email_index', '=', await emails.index(email))
    .where('erased_at', 'is', null)
    .executeTakeFirst();
  return row?.id;
}

/** Until when the user may not sign in (banned in the project an import came from); undefined: they may. */
export async function bannedUntil(db: Db, userId: string, now: Date): Promise<Date | undefined> {
  const row = await db
    .selectFrom('users')
    .select('banned_until')
    .where('id', '=', userId)
    .where('banned_until', '>', now)
    .executeTakeFirst();
  return row?.banned_until ?? undefined;
}
