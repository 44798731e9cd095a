// The notifier follows the ledger as a projection of its own ('notifications'): the projector's
// runner gives it its checkpoint, one active runner (advisory lock), batches and quarantine. Each
// batch folds the touched commitments' states from the ledger (not from another projection, which
// may be behind or ahead), turns each event into notifications (rules.ts) and writes them, with the
// checkpoint, in one transaction: a notification exists exactly when its entry is projected. The
// states before each batch are kept (commitment-states.ts), so the next folds only what follows.

import {
  type FieldCipher,
  NOTIFICATIONS_PROJECTION,
  preparedQuery,
  sealNotificationTexts,
} from '@connect/db';
import {
  applyRecorded,
  COMMITMENT_STREAMS,
  type Commitment,
  commitmentIdOf,
  initialState,
  PROFILE_REGISTERED,
  PROFILE_UPDATED,
  profileStated,
  profileStream,
  profileUserOf,
} from '@connect/domain';
import { type BodyCipher, type Entry, entryColumnsOf } from '@connect/ledger';
import { type Projection, ProjectionError } from '@connect/projector';
import type pg from 'pg';
import { type CommitmentStates, commitmentStates } from './commitment-states.ts';
import type { Notification } from './notification.ts';
import type { Schedule } from './reminders/schedule.ts';
import { type Happening, notificationsFor, usersOf } from './rules.ts';

const TABLE = 'notifications';

/**
 * Hands the notifications a batch created to the other channels (email, push, webhooks: a job
 * queue), inside the batch's transaction, so each is enqueued exactly when it is recorded. Not
 * called when a replay rebuilds the table: what was delivered once is not delivered again.
 */
export type Enqueue = (client: pg.ClientBase, notifications: readonly Notification[]) => Promise<void>;

/**
 * Hands every commitment event of a batch (whoever it notifies) to the integrations (webhooks),
 * inside the batch's transaction; like `enqueue`, not called when a replay rebuilds the table.
 */
export type Publish = (client: pg.ClientBase, happenings: readonly Happening[]) => Promise<void>;

export interface NotifierOptions {
  /** The web app's base URL (CONNECT_APP_URL): a notification links to its commitment there. */
  appUrl: string;
  enqueue?: Enqueue;
  publish?: Publish;
  /** Keeps the deadline reminders in step with the batch's commitments (reminders/schedule.ts). */
  schedule?: Schedule;
}

/**
 * The notifier's batches under a stream of appends: at most one every 60 ms (the projector's
 * default is 10). A batch costs the same handful of statements whether it holds one entry or ten
 * (the entries and their streams, names, notifications, webhook endpoints, push subscriptions),
 * and what it feeds (email, push, webhooks, the notifications feed) need not follow the ledger
 * within milliseconds as a commitment read after a command does.
 */
const NOTIFIER_BATCH_SPACING_MS = 60;

export function notificationsProjection(options: NotifierOptions): Projection {
  const states = commitmentStates(apply);
  return {
    name: NOTIFICATIONS_PROJECTION,
    tables: [TABLE],
    streams: [COMMITMENT_STREAMS],
    batchSpacingMs: NOTIFIER_BATCH_SPACING_MS,
    async apply(client, entries, tables, cipher) {
      const mine = entries.filter((entry) => commitmentIdOf(entry.stream) !== undefined);
      if (mine.length === 0) return;
      const happenings = await happeningsOf(client, cipher, mine, states);
      const names = await displayNames(client, cipher, [...new Set(happenings.flatMap(usersOf))]);
      const notifications = happenings.flatMap((h) => notificationsFor(h, { names, appUrl: options.appUrl }));
      const table = tables[TABLE] as string;
      const created = await insertNotifications(client, table, notifications, cipher.fields);
      if (table !== TABLE) return;
      if (options.enqueue && created.length > 0) await options.enqueue(client, created);
      // History brought over by an import is not news to integrators; its deadlines still are.
      const news = happenings.filter((happening) => !happening.imported);
      if (options.publish && news.length > 0) await options.publish(client, news);
      if (options.schedule && happenings.length > 0) await options.schedule(client, happenings);
    },
  };
}

/**
 * Ensures the notifier has a checkpoint, starting at the ledger's head the first time: a notifier
 * added to a running ledger tells people about what happens from then on, not about its past.
 * (Inserted here rather than by the migration: a checkpoint no runner moves would hold back every
 * read's Connect-Min-Index, so it exists only once some process runs this projection.)
 */
export async function ensureNotifierCheckpoint(pool: pg.Pool | pg.ClientBase): Promise<void> {
  await pool.query(
    `insert into projection_checkpoints (projection, last_index)
     values ($1, coalesce((select tree_size - 1 from ledger_head), -1))
     on conflict (projection) do nothing`,
    [NOTIFICATIONS_PROJECTION],
  );
}

/** The notifier's projection, its checkpoint ensured: what a process that runs it starts with. */
export async function openNotifier(pool: pg.Pool, options: NotifierOptions): Promise<Projection> {
  await ensureNotifierCheckpoint(pool);
  return notificationsProjection(options);
}

/** Each entry's event with the commitment's state before and after it. */
async function happeningsOf(
  client: pg.ClientBase,
  cipher: BodyCipher,
  entries: Entry[],
  states: CommitmentStates,
): Promise<Happening[]> {
  const ids = [...new Set(entries.map((entry) => commitmentIdOf(entry.stream) as string))];
  const folded = await states.before(client, cipher, ids, (entries[0] as Entry).index);
  const happenings: Happening[] = [];
  for (const entry of entries) {
    const id = commitmentIdOf(entry.stream) as string;
    const before = folded.get(id)?.state ?? initialState(id);
    const { state: after, event } = apply(before, entry);
    folded.set(id, { state: after, version: entry.version, index: entry.index });
    if (event) {
      happenings.push({
        index: entry.index,
        actor: entry.actor,
        recordedAt: entry.recordedAt,
        imported: typeof entry.meta?.importedFrom === 'string',
        event,
        before,
        after,
      });
    }
  }
  return happenings;
}

function apply(state: Commitment, entry: Entry) {
  try {
    return applyRecorded(state, entry);
  } catch (error) {
    throw ProjectionError.of(entry.index, error);
  }
}

/**
 * The newest ProfileRegistered or ProfileUpdated of each of these profile streams ($1), in no
 * order. Each holds the whole profile as it stands after it, so it alone gives the name: what a
 * batch reads does not grow with how often its users changed their profiles. Planned for each
 * call: a kept plan made while the ledger was young scanned it whole as it grew.
 */
const LATEST_PROFILE_ENTRIES = `select ${entryColumnsOf('e')} from unnest($1::text[]) as s(stream)
     cross join lateral (
       select ${entryColumnsOf()} from ledger_entries
        where stream = s.stream and type = any($2::text[]) order by version desc limit 1) e`;

/**
 * Display names as the users last stated them in the ledger; an erased or unknown one is left out.
 * An erased last statement leaves no older name standing in for it.
 */
export async function displayNames(
  client: pg.ClientBase,
  cipher: BodyCipher,
  userIds: string[],
): Promise<Map<string, string>> {
  if (userIds.length === 0) return new Map();
  const { rows } = await client.query(LATEST_PROFILE_ENTRIES, [
    [...new Set(userIds)].map(profileStream),
    [PROFILE_REGISTERED, PROFILE_UPDATED],
  ]);
  const names = new Map<string, string>();
  for (const entry of await cipher.entries(rows, '')) {
    const userId = profileUserOf(entry.stream);
    const stated = profileStated(entry);
    if (userId !== undefined && stated !== undefined) names.set(userId, stated.displayName);
  }
  return names;
}

const ident = (name: string) => `"${name.replaceAll('"', '""')}"`;

/**
 * Writes the notifications not yet there, their text sealed under each recipient's key; returns
 * those it wrote. A recipient whose key is erased (an erased user) gets none.
 */
export async function insertNotifications(
  client: pg.ClientBase,
  table: string,
  notifications: readonly Notification[],
  fields: FieldCipher,
): Promise<Notification[]> {
  const texts = await sealNotificationTexts(fields, notifications);
  // Each beside its sealed text (spreading it into a literal that adds `sealed` is slow in this V8).
  const kept = notifications.flatMap((notification, i) => {
    const sealed = texts[i];
    return sealed ? [{ notification, sealed }] : [];
  });
  if (kept.length === 0) return [];
  const { rows } = await client.query<{ id: string }>(
    preparedQuery(
      `insert into ${ident(table)}
       (id, recipient_id, kind, sealed, link, commitment_id, ledger_index, created_at)
     select * from unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[],
                          $6::uuid[], $7::bigint[], $8::timestamptz[])
     on conflict (id) do nothing
     returning id`,
      [
        kept.map(({ notification }) => notification.id),
        kept.map(({ notification }) => notification.recipientId),
        kept.map(({ notification }) => notification.kind),
        kept.map(({ sealed }) => sealed),
        kept.map(({ notification }) => notification.link),
        kept.map(({ notification }) => notification.commitmentId),
        kept.map(({ notification }) => notification.ledgerIndex),
        kept.map(({ notification }) => notification.createdAt),
      ],
    ),
  );
  const created = new Set(rows.map((row) => row.id));
  return notifications.filter((n) => created.has(n.id));
}
