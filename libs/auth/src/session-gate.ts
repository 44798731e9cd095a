// Whether a session is still open, without a query per request: open sessions are remembered for
// a minute, and every process forgets one the moment it ends, told by NOTIFY from the transaction
// that ended it. While the notification connection is down, nothing is remembered.
import type { Database } from '@connect/db';
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

export function sessionGate(deps: { db: Kysely<Database>; pool: pg.Pool }): SessionGate {
  const open = new Map<string, number>();
  let listener: pg.PoolClient | undefined;
  let closed = false;

  const stopRemembering = () => {
    listener = undefined;
    open.clear();
  };

  async function listen(): Promise<void> {
    try {
      const client = await deps.pool.connect();
      if (closed) return client.release();
      client.on('notification', (message) => {
        if (message.payload) open.delete(message.payload);
      });
      client.on('error', () => {
        if (listener !== client) return;
        stopRemembering();
        client.release(true);
        if (!closed) setTimeout(listen, 1000).unref();
      });
      await client.query(`listen ${SESSIONS_CHANNEL}`);
      if (closed) return client.release();
      listener = client;
    } catch {
      stopRemembering();
      if (!closed) setTimeout(listen, 1000).unref();
    }
  }
  void listen();

  return {
    async isActive(sessionId) {
      if (listener && (open.get(sessionId) ?? 0) > Date.now()) return true;
      const active = await sessionIsActive(deps.db, sessionId);
      if (active && listener) {
        if (open.size >= CAPACITY) open.delete(open.keys().next().value as string);
        open.set(sessionId, Date.now() + REMEMBER_MS);
      }
      return active;
    },
    forget: (sessionId) => {
      open.delete(sessionId);
    },
    async close() {
      closed = true;
      const client = listener;
      stopRemembering();
      if (client) {
        await client.query(`unlisten ${SESSIONS_CHANNEL}`).catch(() => undefined);
        client.release();
      }
    },
  };
}

export async function sessionIsActive(db: Kysely<Database>, sessionId: string): Promise<boolean> {
  const row = await db
    .selectFrom('sessions')
    .select('revoked_at')
    .where('id', '=', sessionId)
    .executeTakeFirst();
  return row !== undefined && row.revoked_at === null;
}
