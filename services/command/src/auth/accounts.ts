// Users, sessions and refresh tokens: plain functions over a kysely handle.

import { announceSessionEnded } from '@connect/auth';
import type { Database } from '@connect/db';
import type { Kysely } from 'kysely';

type Db = Kysely<Database>;

export interface User {
  id: string;
  email: string;
  displayName: string;
  isAdmin: boolean;
}

export const REFRESH_REUSE_GRACE_MS = 10_000;

const toUser = (row: { id: string; email: string; display_name: string; is_admin: boolean }): User => ({
  id: row.id,
  email: row.email,
  displayName: row.display_name,
  isAdmin: row.is_admin,
});

export const normalizeEmail = (email: string) => email.trim().toLowerCase();

export async function findUserByEmail(
  db: Db,
  email: string,
): Promise<(User & { passwordHash: string }) | undefined> {
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
  user: { id: string; email: string; passwordHash: string; displayName: string },
): Promise<boolean> {
  const inserted = await db
    .insertInto('users')
    .values({
      id: user.id,
      email: normalizeEmail(user.email),
      password_hash: user.passwordHash,
      display_name: user.displayName,
    })
    .onConflict((oc) => oc.column('email').doNothing())
    .returning('id')
    .executeTakeFirst();
  return inserted !== undefined;
}

export async function startSession(
  db: Db,
  session: { id: string; userId: string; refreshHash: Buffer },
): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx
      .insertInto('sessions')
      .values({ id: session.id, user_id: session.userId, revoked_at: null })
      .execute();
    await trx
      .insertInto('refresh_tokens')
      .values({ token_hash: session.refreshHash, session_id: session.id, used_at: null })
      .execute();
  });
}

export type Rotation =
  | { outcome: 'rotated'; sessionId: string; user: User }
  | { outcome: 'invalid' }
  | { outcome: 'reused'; sessionId: string };

/**
 * Uses a refresh token once, storing its successor. A token used again within the grace window
 * (two tabs refreshing together) gets a successor too; used again later, it revokes the session.
 */
export async function rotateRefreshToken(
  db: Db,
  tokenHash: Buffer,
  nextHash: Buffer,
  now: Date,
): Promise<Rotation> {
  return db.transaction().execute(async (trx) => {
    const token = await trx
      .selectFrom('refresh_tokens')
      .innerJoin('sessions', 'sessions.id', 'refresh_tokens.session_id')
      .select([
        'refresh_tokens.session_id',
        'refresh_tokens.used_at',
        'sessions.revoked_at',
        'sessions.user_id',
      ])
      .where('refresh_tokens.token_hash', '=', tokenHash)
      .forUpdate()
      .executeTakeFirst();
    if (!token || token.revoked_at) return { outcome: 'invalid' } as const;
    if (token.used_at && now.getTime() - token.used_at.getTime() > REFRESH_REUSE_GRACE_MS) {
      await trx.updateTable('sessions').set({ revoked_at: now }).where('id', '=', token.session_id).execute();
      await announceSessionEnded(trx, token.session_id);
      return { outcome: 'reused', sessionId: token.session_id } as const;
    }
    if (!token.used_at) {
      await trx
        .updateTable('refresh_tokens')
        .set({ used_at: now })
        .where('token_hash', '=', tokenHash)
        .execute();
    }
    await trx
      .insertInto('refresh_tokens')
      .values({ token_hash: nextHash, session_id: token.session_id, used_at: null })
      .execute();
    const user = await trx
      .selectFrom('users')
      .selectAll()
      .where('id', '=', token.user_id)
      .executeTakeFirstOrThrow();
    return { outcome: 'rotated', sessionId: token.session_id, user: toUser(user) } as const;
  });
}

export async function revokeSession(db: Db, sessionId: string, now: Date): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx
      .updateTable('sessions')
      .set({ revoked_at: now })
      .where('id', '=', sessionId)
      .where('revoked_at', 'is', null)
      .execute();
    await announceSessionEnded(trx, sessionId);
  });
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
