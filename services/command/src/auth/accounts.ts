// Users: plain functions over a kysely handle. Sessions are in sessions.ts.

import type { Database } from '@connect/db';
import type { Kysely } from 'kysely';

type Db = Kysely<Database>;

export interface User {
  id: string;
  email: string;
  displayName: string;
  isAdmin: boolean;
  /** Whether its owner followed a link mailed to the address. */
  emailVerified: boolean;
}

export const toUser = (row: {
  id: string;
  email: string;
  display_name: string;
  is_admin: boolean;
  email_verified_at: Date | null;
}): User => ({
  id: row.id,
  email: row.email,
  displayName: row.display_name,
  isAdmin: row.is_admin,
  emailVerified: row.email_verified_at !== null,
});

export const normalizeEmail = (email: string) => email.trim().toLowerCase();

export async function findUserByEmail(
  db: Db,
  email: string,
): Promise<(User & { passwordHash: string | null }) | undefined> {
  const row = await db
    .selectFrom('users')
    .selectAll()
    .where('email', '=', normalizeEmail(email))
    .executeTakeFirst();
  return row && { ...toUser(row), passwordHash: row.password_hash };
}

export async function findUser(db: Db, id: string): Promise<User | undefined> {
  const row = await db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
  return row && toUser(row);
}

/** Inserts the user; false when the email is taken. */
export async function insertUser(
  db: Db,
  user: {
    id: string;
    email: string;
    /** Null for an account that signs in only through a social login. */
    passwordHash: string | null;
    displayName: string;
    emailVerifiedAt?: Date | null;
  },
): Promise<boolean> {
  const inserted = await db
    .insertInto('users')
    .values({
      id: user.id,
      email: normalizeEmail(user.email),
      password_hash: user.passwordHash,
      display_name: user.displayName,
      email_verified_at: user.emailVerifiedAt ?? null,
    })
    .onConflict((oc) => oc.column('email').doNothing())
    .returning('id')
    .executeTakeFirst();
  return inserted !== undefined;
}

/** Makes the user with this email an admin; false when there is none. */
export async function grantAdmin(db: Db, email: string): Promise<boolean> {
  const result = await db
    .updateTable('users')
    .set({ is_admin: true })
    .where('email', '=', normalizeEmail(email))
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}
