// The `remind` task: when a reminder job comes due, the commitment is replayed from the ledger and,
// if it is still active and still due when the job was scheduled for, each of its parties gets a
// 'reminder' notification, written and handed to the channels in one transaction. A notification's
// id names the entry that set the due date and the offset, so a job run twice reminds once.
import { applyRecorded, type Commitment, commitmentStream, initialState } from '@connect/domain';
import type { BodyCipher } from '@connect/ledger';
import type { Task } from 'graphile-worker';
import type pg from 'pg';
import type { Notification } from '../notification.ts';
import { displayNames, type Enqueue, insertNotifications } from '../projection.ts';
import { commitmentLink, UNKNOWN_NAME } from '../rules.ts';
import { type ReminderJob, remindedDueAt } from './schedule.ts';

export interface RemindDeps {
  pool: pg.Pool;
  /** Opens the ledger's sealed bodies. */
  cipher: BodyCipher;
  /** The web app's base URL (CONNECT_APP_URL). */
  appUrl: string;
  /** Hands the reminders to the other channels (the queue's hook), in the same transaction. */
  enqueue?: Enqueue;
  now?: () => Date;
}

export function remindTask(deps: RemindDeps): Task {
  return async (payload) => {
    const client = await deps.pool.connect();
    try {
      await client.query('begin');
      await remind(client, payload as ReminderJob, deps);
      await client.query('commit');
    } catch (error) {
      await client.query('rollback').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  };
}

/** Writes and enqueues the reminders a job stands for; returns those it wrote (none if it is stale). */
export async function remind(
  client: pg.ClientBase,
  job: ReminderJob,
  deps: Pick<RemindDeps, 'cipher' | 'appUrl' | 'enqueue' | 'now'>,
): Promise<Notification[]> {
  const now = deps.now?.() ?? new Date();
  const state = await replayCommitment(client, deps.cipher, job.commitmentId);
  // Ended, moved to another date, or already past it (the overdue notice says the rest).
  if (remindedDueAt(state) !== job.dueAt || Date.parse(job.dueAt) <= now.getTime()) return [];
  const recipients = state.parties.filter((p) => p.response === 'accepted').map((p) => p.userId);
  const names = await displayNames(client, deps.cipher, recipients);
  const title = `Reminder: “${state.title}” is due in ${duration(job.offsetSeconds)}`;
  const nameOf = (userId: string) => names.get(userId) ?? UNKNOWN_NAME;
  const notifications = recipients.map((recipientId) => ({
    id: reminderNotificationId(job, recipientId),
    recipientId,
    kind: 'reminder' as const,
    title,
    body: `It is due ${when(job.dueAt)}${withOthers(recipients.filter((id) => id !== recipientId).map(nameOf))}.`,
    link: commitmentLink(deps.appUrl, state.id),
    commitmentId: state.id,
    ledgerIndex: job.ledgerIndex,
    createdAt: now.toISOString(),
  }));
  const created = await insertNotifications(client, 'notifications', notifications, deps.cipher.fields);
  if (deps.enqueue && created.length > 0) await deps.enqueue(client, created);
  return created;
}

/**
 * `<ledger index>-<offset>s:<recipient>:reminder`: the shape of every notification id (recipient
 * and kind last, which the dead letters read), the index being the entry that set the due date.
 */
export const reminderNotificationId = (job: ReminderJob, recipientId: string) =>
  `${job.ledgerIndex}-${job.offsetSeconds}s:${recipientId}:reminder`;

async function replayCommitment(client: pg.ClientBase, cipher: BodyCipher, id: string): Promise<Commitment> {
  const { rows } = await client.query('select * from ledger_entries where stream = $1 order by index', [
    commitmentStream(id),
  ]);
  return (await cipher.entries(rows, '')).reduce<Commitment>(
    (state, entry) => applyRecorded(state, entry).state,
    initialState(id),
  );
}

const UNITS: [seconds: number, name: string][] = [
  [7 * 24 * 3600, 'week'],
  [24 * 3600, 'day'],
  [3600, 'hour'],
  [60, 'minute'],
  [1, 'second'],
];

/** An offset as a person reads it, in its largest whole unit: 1 week, 2 days, 90 minutes. */
export function duration(seconds: number): string {
  const [size, name] = UNITS.find(([size]) => seconds % size === 0 && seconds >= size) ?? [1, 'second'];
  const count = seconds / size;
  return `${count} ${name}${count === 1 ? '' : 's'}`;
}

const withOthers = (names: string[]) =>
  names.length === 0
    ? ''
    : `, with ${names.length === 1 ? names[0] : `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`}`;

/** An instant as a person reads it, in UTC (as the other notifications word it). */
const when = (instant: string) => `${instant.slice(0, 10)} ${instant.slice(11, 16)} UTC`;
