// Erasing a user (crypto-shredding): their data keys are destroyed, so what the ledger holds of
// them (their profile stream) is unreadable even with the master key, and their personal data is
// overwritten or deleted in every table that holds it, all in one transaction. The account row
// stays, marked erased, so the commitments they took part in keep their party, shown as
// "(erased user)". Then a UserErased event (only the id) is appended to the erasures stream. Each
// step is idempotent: running it again on an erased user finishes an erasure interrupted between
// the transaction and the append.

import { createHash } from 'node:crypto';
import { SESSIONS_CHANNEL, type SessionGate } from '@connect/auth';
import {
  type Database,
  eraseDataKey,
  type FieldCipher,
  isUuidText,
  type KeyRing,
  openNotificationTexts,
  sealNotificationTexts,
  userSubject,
} from '@connect/db';
import {
  ERASED_USER_NAME,
  ERASURES_STREAM,
  profileStated,
  profileStream,
  USER_ERASED,
  type UserErased,
} from '@connect/domain';
import { type Ledger, readStream, redactEntries, streamKeySubject } from '@connect/ledger';
import { ACCOUNT_MAIL_TASK } from '@connect/notifier';
import type { Kysely } from 'kysely';
import type pg from 'pg';

export interface EraseUserDeps {
  pool: pg.Pool;
  db: Kysely<Database>;
  ledger: Ledger;
  keys: KeyRing;
  /** This process's session gate, told at once that the user's sessions ended. */
  sessions?: SessionGate;
  now?: () => Date;
}

export type EraseOutcome =
  | { outcome: 'erased'; event: { index: number; id: string; leafHash: string } }
  | { outcome: 'no-user' };

/** The data key subjects of a user: their profile stream's, and their own (data sealed per user). */
export const userKeySubjects = (userId: string) => [
  streamKeySubject(profileStream(userId)),
  userSubject(userId),
];

export async function eraseUser(
  deps: EraseUserDeps,
  requested: string,
  options: { actor: string | null; correlationId?: string } = { actor: null },
): Promise<EraseOutcome> {
  if (!isUuidText(requested)) return { outcome: 'no-user' };
  const userId = requested.toLowerCase();
  const at = (deps.now ?? (() => new Date()))();
  // The names they went by, read while their key still opens the profile stream (a rerun finds none).
  const stream = profileStream(userId);
  const names = new Set<string>();
  for (const entry of await readStream(deps.db, deps.ledger, stream)) {
    const name = profileStated(entry)?.displayName;
    if (name) names.add(name);
  }
  const ended = await inTransaction(deps.pool, (client) =>
    erasePersonalData(client, deps.ledger.cipher.fields, userId, names, at),
  );
  if (!ended) return { outcome: 'no-user' };
  for (const subject of userKeySubjects(userId)) deps.keys.forget(subject);
  // The old row versions still hold the wrapped keys until vacuumed (WAL and backups keep them
  // until they age out: see README, Encryption at rest).
  await deps.pool.query('vacuum data_keys').catch(() => undefined);
  for (const sessionId of ended.sessions) deps.sessions?.forget(sessionId);

  // Bodies of the profile stream written before encryption (or with it off) are in the clear: a
  // destroyed key does not reach them, a redaction does.
  const clear = await deps.db
    .selectFrom('ledger_entries')
    .select('index')
    .where('stream', '=', stream)
    .where('data', 'is not', null)
    .executeTakeFirst();
  if (clear)
    await redactEntries(
      { db: deps.db, ledger: deps.ledger },
      { stream },
      { reason: 'the user was erased', by: options.actor ?? 'system' },
    );

  const event = erasureEventId(userId);
  const recorded = await erasureEntry(deps.db, event);
  if (recorded) return { outcome: 'erased', event: recorded };
  const data: UserErased = { userId };
  const meta = options.correlationId ? { correlationId: options.correlationId } : undefined;
  const appended = await deps.ledger.append({
    stream: ERASURES_STREAM,
    expectedVersion: 'any',
    actor: options.actor,
    events: [{ id: event, type: USER_ERASED, data, ...(meta ? { meta } : {}) }],
  });
  if (appended.outcome === 'appended') {
    const [entry] = appended.entries;
    if (!entry) throw new Error('erasure append: no entry');
    return { outcome: 'erased', event: { index: entry.index, id: entry.id, leafHash: entry.leafHash } };
  }
  // Another erasure of the same user recorded it meanwhile.
  const raced = appended.outcome === 'duplicate_event_id' && (await erasureEntry(deps.db, event));
  if (!raced) throw new Error(`erasure append: ${appended.outcome}`);
  return { outcome: 'erased', event: raced };
}

/** The id of a user's UserErased event: one per user, however often the erasure runs. */
const erasureEventId = (userId: string) => {
  const hex = createHash('sha256').update(`${USER_ERASED}:${userId}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
};

async function erasureEntry(db: Kysely<Database>, eventId: string) {
  const row = await db
    .selectFrom('ledger_entries')
    .select(['index', 'id', 'leaf_hash'])
    .where('id', '=', eventId)
    .executeTakeFirst();
  return (
    row && { index: Number(row.index), id: row.id, leafHash: Buffer.from(row.leaf_hash).toString('base64') }
  );
}

/** `text` with each of `names` standing as words of its own (not inside a longer word) replaced by ERASED_USER_NAME. */
function unnamed(text: string, names: readonly string[]): string {
  return names.reduce((current, name) => {
    if (!current.includes(name)) return current;
    const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const words = new RegExp(`(^|[^\\p{L}\\p{M}\\p{N}_])${escaped}(?=[^\\p{L}\\p{M}\\p{N}_]|$)`, 'gu');
    return current.replace(words, (_, before: string) => `${before}${ERASED_USER_NAME}`);
  }, text);
}

/**
 * Takes the user's names out of the notifications other people got about the commitments they
 * took part in, in the caller's transaction: each text opened under its recipient's key, the
 * names replaced, sealed again. A row whose recipient's key is erased has nothing left to read.
 */
async function unnameNotifications(
  client: pg.ClientBase,
  fields: FieldCipher,
  userId: string,
  names: readonly string[],
): Promise<void> {
  if (names.length === 0) return;
  const { rows } = await client.query<{ id: string; recipient_id: string; sealed: Buffer }>(
    `select id, recipient_id, sealed from notifications
      where recipient_id <> $1
        and commitment_id in (select commitment_id from commitment_parties where user_id = $1)
      for update`,
    [userId],
  );
  const stored = rows.map((row) => ({ id: row.id, recipientId: row.recipient_id, sealed: row.sealed }));
  const texts = await openNotificationTexts(fields, stored);
  const changed = stored.flatMap((row, i) => {
    const text = texts[i];
    if (!text) return [];
    const title = unnamed(text.title, names);
    const body = unnamed(text.body, names);
    return title === text.title && body === text.body ? [] : [{ ...row, title, body }];
  });
  if (changed.length === 0) return;
  const sealed = await sealNotificationTexts(fields, changed);
  await client.query(
    `update notifications n set sealed = u.sealed
       from unnest($1::text[], $2::bytea[]) as u (id, sealed)
      where n.id = u.id and u.sealed is not null`,
    [changed.map((row) => row.id), sealed],
  );
  // Recipients erased since: their rows go (as an erasure removes its user's own).
  const gone = changed.filter((_, i) => sealed[i] === null).map((row) => row.id);
  if (gone.length > 0) await client.query('delete from notifications where id = any($1::text[])', [gone]);
}

async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    const result = await work(client);
    await client.query('commit');
    return result;
  } catch (error) {
    await client.query('rollback').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

/**
 * Everything personal of the user, in the caller's transaction: undefined when there is no such
 * user; else the sessions it ended (their tokens fail at once in every process).
 */
async function erasePersonalData(
  client: pg.ClientBase,
  fields: FieldCipher,
  userId: string,
  names: ReadonlySet<string>,
  at: Date,
): Promise<{ sessions: string[] } | undefined> {
  const { rows } = await client.query<{
    email_index: Buffer | null;
    display_name: string;
    erased_at: Date | null;
  }>('select email_index, display_name, erased_at from users where id = $1 for update', [userId]);
  const user = rows[0];
  if (!user) return undefined;

  for (const subject of userKeySubjects(userId)) {
    // A subject with no key yet gets an erased one, so no key can be made for it later.
    await client.query(
      `insert into data_keys (subject, wrapped_key, master_key_id, erased_at) values ($1, null, null, $2)
       on conflict (subject) do nothing`,
      [subject, at],
    );
    await eraseDataKey(client, subject);
  }

  // Notifications the other parties got that name them lose the name.
  await unnameNotifications(client, fields, userId, [
    ...new Set([...names, ...(user.erased_at === null ? [user.display_name] : [])]),
  ]);
  await client.query('delete from notifications where recipient_id = $1', [userId]);

  const sessions = await client.query<{ id: string }>(
    `update sessions set revoked_at = coalesce(revoked_at, $2), user_agent = null, address = null
      where user_id = $1 and (revoked_at is null or user_agent is not null or address is not null)
      returning id`,
    [userId, at],
  );
  for (const { id } of sessions.rows) await client.query('select pg_notify($1, $2)', [SESSIONS_CHANNEL, id]);
  await client.query(
    'delete from refresh_tokens where session_id in (select id from sessions where user_id = $1)',
    [userId],
  );

  for (const table of [
    'oidc_identities',
    'oidc_app_codes',
    'phone_numbers',
    'phone_code_sends',
    'push_subscriptions',
    'notification_preferences',
    'calendar_feeds',
    'account_tokens',
    'http_idempotency',
  ])
    await client.query(`delete from ${table} where user_id = $1`, [userId]);

  if (user.erased_at === null) {
    // Invitations by email to their address (they will never claim them), and mail not yet sent
    // to it or about the account.
    await client.query('delete from pending_invitations where email_hash = $1 or accepted_by = $2', [
      user.email_index,
      userId,
    ]);
    const mailFor = [userId, user.email_index?.toString('base64') ?? null];
    await client.query(
      `delete from account_mail_waiting where payload->>'userId' = $1 or payload->>'emailIndex' = $2`,
      mailFor,
    );
    const queue = await client.query<{ exists: boolean }>(
      `select to_regclass('graphile_worker._private_jobs') is not null as exists`,
    );
    if (queue.rows[0]?.exists)
      await client.query(
        `delete from graphile_worker._private_jobs j using graphile_worker._private_tasks t
          where t.id = j.task_id and t.identifier = $1 and j.locked_at is null
            and (j.payload->>'userId' = $2 or j.payload->>'emailIndex' = $3)`,
        [ACCOUNT_MAIL_TASK, ...mailFor],
      );
  }

  // Without its index the address can sign up again; its sealed copy no longer opens anyway.
  await client.query(
    `update users
        set email = null, email_index = null, email_sealed = null, password_hash = null,
            display_name = $2, avatar_url = null, email_verified_at = null,
            erased_at = coalesce(erased_at, $3)
      where id = $1`,
    [userId, ERASED_USER_NAME, at],
  );
  return { sessions: sessions.rows.map((row) => row.id) };
}
