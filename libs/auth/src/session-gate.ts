// Whether a session is still open, and the roles its user holds now, without a query per request:
// both are remembered for about a minute (never past the moment the session lapses), and every process
// forgets them the moment the session is revoked or the user's roles change, told by NOTIFY from
// the transaction that did it. While the notification connection is down, nothing is remembered.
// A session lapses on its own at active_until, which the command service sets from its idle
// timeout and absolute lifetime; a refresh moves it later.
import { compiledOnce, type Database, groupedCalls, isUuidText, listen, prepared } from '@connect/db';
import type { UserRole } from '@connect/domain';
import { type Kysely, sql } from 'kysely';
import type pg from 'pg';

export const SESSIONS_CHANNEL = 'connect_sessions_ended';
/** Payload: the id of a user whose roles changed. */
export const ROLES_CHANNEL = 'connect_roles_changed';
/**
 * How long a session is remembered: a random time between the two. Sessions first seen together
 * (a restart, a burst of requests) would otherwise all be looked up again together a minute later,
 * and go on doing so, a burst every minute on the main pool, each finding the connections the one
 * before opened just closed (they close after a minute idle, POOL_IDLE_MS).
 */
export const REMEMBER_MS = { least: 45_000, most: 60_000 } as const;
const CAPACITY = 50_000;

/** An open session: whose it is and the roles that user holds. */
export interface SessionAccess {
  userId: string;
  roles: readonly UserRole[];
}

export interface SessionGate {
  /** The session's access while it is open; undefined once it ended (or never was). */
  check(sessionId: string): Promise<SessionAccess | undefined>;
  isActive(sessionId: string): Promise<boolean>;
  /** This process ended the session: stop trusting it here at once, before the notification. */
  forget(sessionId: string): void;
  /** This process changed the user's roles: forget them here at once, before the notification. */
  forgetUser(userId: string): void;
  close(): Promise<void>;
}

/** Tells every process that a session ended; call inside the transaction that ends it. */
export async function announceSessionEnded(db: Kysely<Database>, sessionId: string): Promise<void> {
  await sql`select pg_notify(${SESSIONS_CHANNEL}, ${sessionId})`.execute(db);
}

/** Tells every process that a user's roles changed; call inside the transaction that changes them. */
export async function announceRolesChanged(db: Kysely<Database>, userId: string): Promise<void> {
  await sql`select pg_notify(${ROLES_CHANNEL}, ${userId})`.execute(db);
}

interface Remembered extends SessionAccess {
  until: number;
}

export function sessionGate(deps: {
  db: Kysely<Database>;
  pool: pg.Pool;
  now?: () => Date;
  /** In [0, 1): where in REMEMBER_MS each remembered session's time falls. */
  random?: () => number;
}): SessionGate {
  const now = () => (deps.now ? deps.now().getTime() : Date.now());
  const random = deps.random ?? Math.random;
  const rememberMs = () => REMEMBER_MS.least + (REMEMBER_MS.most - REMEMBER_MS.least) * random();
  const open = new Map<string, Remembered>();
  // Counts what was heard: a lookup that overlapped a notification is not remembered, since it
  // may have read the state from before the change.
  let heard = 0;
  const forgetUser = (userId: string) => {
    heard++;
    for (const [sessionId, remembered] of open) if (remembered.userId === userId) open.delete(sessionId);
  };

  // While no LISTEN is in force, a revocation could go unheard: nothing is remembered then.
  const listener = listen(
    deps.pool,
    [SESSIONS_CHANNEL, ROLES_CHANNEL],
    (message) => {
      if (!message.payload) return;
      if (message.channel === ROLES_CHANNEL) return forgetUser(message.payload);
      heard++;
      open.delete(message.payload);
    },
    {
      onDown: () => {
        heard++;
        open.clear();
      },
      // A lookup that began before LISTEN took effect may have read a session revoked unheard.
      onListening: () => {
        heard++;
      },
    },
  );
  const listening = () => listener.isListening();
  // Every process looks each of its sessions up again about once a minute: with thousands held
  // open, lookups asked for while one statement runs go together in the next.
  const lookUp = groupedCalls((sessionIds: readonly string[]) => sessionAccesses(deps.db, sessionIds));

  async function check(given: string): Promise<SessionAccess | undefined> {
    // Remembered and forgotten as the database spells it, so the NOTIFY of its end finds it.
    const sessionId = given.toLowerCase();
    const remembered = listening() ? open.get(sessionId) : undefined;
    if (remembered && remembered.until > now()) return { userId: remembered.userId, roles: remembered.roles };
    const before = heard;
    const row = await lookUp(sessionId);
    if (!row || row.activeUntil.getTime() <= now()) return undefined;
    const access = { userId: row.userId, roles: row.roles };
    if (listening() && heard === before) {
      if (open.size >= CAPACITY) open.delete(open.keys().next().value as string);
      open.set(sessionId, { ...access, until: Math.min(now() + rememberMs(), row.activeUntil.getTime()) });
    }
    return access;
  }

  return {
    check,
    isActive: async (sessionId) => (await check(sessionId)) !== undefined,
    forget: (sessionId) => {
      heard++;
      open.delete(sessionId.toLowerCase());
    },
    forgetUser,
    async close() {
      await listener.close();
      open.clear();
    },
  };
}

/** Open (not revoked) sessions, with their users' roles. */
const openSessions = (db: Kysely<Database>) =>
  db
    .selectFrom('sessions')
    .select([
      'id',
      'user_id',
      'active_until',
      sql<
        UserRole[]
      >`array(select role from user_roles where user_roles.user_id = sessions.user_id order by role)`.as(
        'roles',
      ),
    ])
    .where('revoked_at', 'is', null);

// Both prepared: every process checks each of its sessions about once a minute. One session has a
// statement of its own, a lookup by key rather than the group's `id = any($1)`.
const sessionRow = compiledOnce(
  (db: Kysely<Database>, sessionId: string) => openSessions(db).where('id', '=', sessionId),
  (query) => prepared('session-access', query),
);
const sessionRows = compiledOnce(
  (db: Kysely<Database>, sessionIds: readonly string[]) =>
    openSessions(db).where(sql<boolean>`id = any(${sessionIds}::uuid[])`),
  (query) => prepared('session-accesses', query),
);

/** A stored session's access, and when it lapses unless refreshed. */
export interface StoredAccess {
  userId: string;
  roles: UserRole[];
  activeUntil: Date;
}

/**
 * Each open (not revoked) session's user, its roles and when it lapses unless refreshed, in the
 * order given (undefined: no such open session): one query, none when no id is a UUID. Session ids
 * are UUIDs: anything else names no session, and must not fail the others' statement.
 */
export async function sessionAccesses(
  db: Kysely<Database>,
  sessionIds: readonly string[],
): Promise<(StoredAccess | undefined)[]> {
  const unique = [
    ...new Set(sessionIds.flatMap((sessionId) => (isUuidText(sessionId) ? [sessionId.toLowerCase()] : []))),
  ];
  const [only] = unique;
  const rows =
    only === undefined
      ? []
      : unique.length === 1
        ? await sessionRow(db, only)
        : await sessionRows(db, unique);
  const byId = new Map(
    rows.map((row) => [row.id, { userId: row.user_id, roles: row.roles, activeUntil: row.active_until }]),
  );
  return sessionIds.map((sessionId) => byId.get(sessionId.toLowerCase()));
}

/** The open (not revoked) session's user, its roles and when it lapses unless refreshed: one query. */
export async function sessionAccess(
  db: Kysely<Database>,
  sessionId: string,
): Promise<StoredAccess | undefined> {
  const [access] = await sessionAccesses(db, [sessionId]);
  return access;
}
