// Whether a session is still open, without a query per request: open sessions are remembered for
// a minute (never past the moment they lapse), and every process forgets one the moment it is
// revoked, told by NOTIFY from the transaction that revoked it. While the notification connection
// is down, nothing is remembered. A session lapses on its own at active_until, which the command
// service sets from its idle timeout and absolute lifetime; a refresh moves it later.
import { type Database, listen } from '@connect/db';
import { type Kysely, sql } from 'kysely';
import type pg from 'pg';

export const SESSIONS_CHANNEL = 'connect_sessions_ended';
const REMEMBER_MS = 60_000;
const CAPACITY = 50_000;

export interface SessionGate {
  isActive(sessionId: string): Promise<boolean>;
  /** This process ended the session: stop trusting it here at once, before the notification. */
  forget(sessionId: string): void;
  close(): Promise<void>;
}

/** Tells every process that a session ended; call inside the transaction that ends it. */
export async function announceSessionEnded(db: Kysely<Database>, sessionId: string): Promise<void> {
  await sql`select pg_notify(${SESSIONS_CHANNEL}, ${sessionId})`.execute(db);
}

export function sessionGate(deps: { db: Kysely<Database>; pool: pg.Pool; now?: () => Date }): SessionGate {
  const now = () => (deps.now ? deps.now().getTime() : Date.now());
  const open = new Map<string, number>();

  // While no LISTEN is in force, a revocation could go unheard: nothing is remembered then.
  const listener = listen(
    deps.pool,
    [SESSIONS_CHANNEL],
    (message) => {
      if (message.payload) open.delete(message.payload);
    },
    { onDown: () => open.clear() },
  );
  const listening = () => listener.isListening();

  return {
    async isActive(sessionId) {
      if (listening() && (open.get(sessionId) ?? 0) > now()) return true;
      const until = await sessionActiveUntil(deps.db, sessionId);
      const active = until !== undefined && until.getTime() > now();
      if (active && listening()) {
        if (open.size >= CAPACITY) open.delete(open.keys().next().value as string);
        open.set(sessionId, Math.min(now() + REMEMBER_MS, until.getTime()));
      }
      return active;
    },
    forget: (sessionId) => {
      open.delete(sessionId);
    },
    async close() {
      await listener.close();
      open.clear();
    },
  };
}

/** Until when the session stays open unless refreshed; undefined when it is revoked or unknown. */
export async function sessionActiveUntil(db: Kysely<Database>, sessionId: string): Promise<Date | undefined> {
  const row = await db
    .selectFrom('sessions')
    .select('active_until')
    .where('id', '=', sessionId)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return row?.active_until;
}
