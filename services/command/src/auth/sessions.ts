// Sessions and their refresh tokens: started at login, extended by each refresh until the idle
// timeout or the absolute lifetime ends them, revoked by logout or by a refresh token's reuse.
import { announceSessionEnded } from '@connect/auth';
import type { Database, UserEmails } from '@connect/db';
import type { Kysely, Transaction } from 'kysely';
import { openUser, type User, userRoles } from './accounts.ts';
import { hashRefreshToken, newRefreshToken, openSuccessor, sealSuccessor } from './refresh-tokens.ts';

type Db = Kysely<Database>;

export const REFRESH_REUSE_GRACE_MS = 10_000;
/** Characters of a User-Agent kept with a session. */
export const USER_AGENT_MAX = 512;

export interface SessionLifetimes {
  /** Seconds without a refresh after which a session lapses. */
  idleSeconds: number;
  /** Seconds after login after which a session ends, however active. */
  maxSeconds: number;
}

export const DEFAULT_SESSION_LIFETIMES: SessionLifetimes = {
  idleSeconds: 7 * 24 * 3600,
  maxSeconds: 30 * 24 * 3600,
};

const after = (now: Date, seconds: number) => new Date(now.getTime() + seconds * 1000);
const earlier = (a: Date, b: Date) => (a < b ? a : b);

export async function startSession(
  db: Db,
  session: {
    id: string;
    userId: string;
    refreshHash: Buffer;
    /** The client that opened it, as its owner will see it in their list of sessions. */
    userAgent?: string | undefined;
    address?: string | undefined;
  },
  now: Date,
  lifetimes: SessionLifetimes,
): Promise<void> {
  const expiresAt = after(now, lifetimes.maxSeconds);
  await db.transaction().execute(async (trx) => {
    await trx
      .insertInto('sessions')
      .values({
        id: session.id,
        user_id: session.userId,
        revoked_at: null,
        created_at: now,
        last_active_at: now,
        expires_at: expiresAt,
        active_until: earlier(after(now, lifetimes.idleSeconds), expiresAt),
        user_agent: session.userAgent?.slice(0, USER_AGENT_MAX) ?? null,
        address: session.address ?? null,
      })
      .execute();
    await trx
      .insertInto('refresh_tokens')
      .values({ token_hash: session.refreshHash, session_id: session.id, issued_at: now, used_at: null })
      .execute();
  });
}

export type Rotation =
  | { outcome: 'rotated'; sessionId: string; user: User; refreshToken: string }
  | { outcome: 'invalid' }
  | { outcome: 'expired'; sessionId: string }
  | { outcome: 'reused'; sessionId: string };

/**
 * Uses a refresh token once, answering with its successor and extending the session's idle
 * deadline. Used again within the grace window (two tabs refreshing together), it answers with
 * the same successor; used again later, it revokes the session.
 */
export async function rotateRefreshToken(
  db: Db,
  emails: UserEmails,
  token: string,
  now: Date,
  lifetimes: SessionLifetimes,
): Promise<Rotation> {
  const tokenHash = hashRefreshToken(token);
  return db.transaction().execute(async (trx) => {
    const row = await trx
      .selectFrom('refresh_tokens')
      .innerJoin('sessions', 'sessions.id', 'refresh_tokens.session_id')
      .select([
        'refresh_tokens.session_id',
        'refresh_tokens.used_at',
        'refresh_tokens.successor',
        'sessions.revoked_at',
        'sessions.user_id',
        'sessions.expires_at',
        'sessions.active_until',
      ])
      .where('refresh_tokens.token_hash', '=', tokenHash)
      .forUpdate()
      .executeTakeFirst();
    if (!row || row.revoked_at) return { outcome: 'invalid' } as const;
    if (row.active_until <= now) return { outcome: 'expired', sessionId: row.session_id } as const;

    let successor: string | undefined;
    if (row.used_at) {
      const withinGrace = now.getTime() - row.used_at.getTime() <= REFRESH_REUSE_GRACE_MS;
      if (withinGrace && row.successor) successor = openSuccessor(token, row.successor);
      if (!successor) {
        await trx.updateTable('sessions').set({ revoked_at: now }).where('id', '=', row.session_id).execute();
        await announceSessionEnded(trx, row.session_id);
        return { outcome: 'reused', sessionId: row.session_id } as const;
      }
    } else {
      const next = newRefreshToken();
      successor = next.token;
      await trx
        .updateTable('refresh_tokens')
        .set({ used_at: now, successor: sealSuccessor(token, next.token) })
        .where('token_hash', '=', tokenHash)
        .execute();
      await trx
        .insertInto('refresh_tokens')
        .values({ token_hash: next.hash, session_id: row.session_id, issued_at: now, used_at: null })
        .execute();
    }
    await trx
      .updateTable('sessions')
      .set({
        last_active_at: now,
        active_until: earlier(after(now, lifetimes.idleSeconds), row.expires_at),
      })
      .where('id', '=', row.session_id)
      .execute();
    const user = await trx
      .selectFrom('users')
      .selectAll()
      .select(userRoles)
      .where('id', '=', row.user_id)
      .executeTakeFirstOrThrow();
    return {
      outcome: 'rotated',
      sessionId: row.session_id,
      user: await openUser(emails, user),
      refreshToken: successor,
    };
  });
}

/**
 * Ends a user's live sessions inside the caller's transaction, announcing each end: all of them, or
 * `only` one, or all `except` one. Answers the ids it ended; the caller tells its session gate to
 * forget them once the transaction commits.
 */
export async function endSessions(
  trx: Transaction<Database>,
  which: { userId: string; only?: string; except?: string },
  now: Date,
): Promise<string[]> {
  const ended = await trx
    .updateTable('sessions')
    .set({ revoked_at: now })
    .where('user_id', '=', which.userId)
    .where('revoked_at', 'is', null)
    .where('active_until', '>', now)
    .$if(which.only !== undefined, (query) => query.where('id', '=', which.only ?? ''))
    .$if(which.except !== undefined, (query) => query.where('id', '!=', which.except ?? ''))
    .returning('id')
    .execute();
  for (const { id } of ended) await announceSessionEnded(trx, id);
  return ended.map(({ id }) => id);
}

export interface SessionListing {
  id: string;
  createdAt: Date;
  lastActiveAt: Date;
  userAgent: string | null;
  address: string | null;
}

/** The user's live sessions, the most recently active first. */
export async function listSessions(db: Db, userId: string, now: Date): Promise<SessionListing[]> {
  const rows = await db
    .selectFrom('sessions')
    .select(['id', 'created_at', 'last_active_at', 'user_agent', 'address'])
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
    .where('active_until', '>', now)
    .orderBy('last_active_at', 'desc')
    .orderBy('created_at', 'desc')
    .execute();
  return rows.map((row) => ({
    id: row.id,
    createdAt: row.created_at,
    lastActiveAt: row.last_active_at,
    userAgent: row.user_agent,
    address: row.address,
  }));
}
