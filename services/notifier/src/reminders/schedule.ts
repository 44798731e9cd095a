// Deadline reminders as graphile-worker jobs, one per commitment and offset (job key
// `reminder:<commitment>:<offset seconds>`), due `offset` before the due date. The notifications
// projection keeps them in step with the ledger inside its batch transaction: a commitment that
// becomes active with a due date gets them, a new due date moves them (adding with the same key
// replaces the job's payload and run_at), and one that ends or loses its due date loses them. Jobs
// live in the database, so they outlive restarts and run once however many workers there are.
import { type Companion, queryPipelined } from '@connect/db';
import type { Commitment } from '@connect/domain';
import type pg from 'pg';
import type { Happening } from '../rules.ts';

export const REMIND_TASK = 'remind';

/** A reminder job's payload: the due date it was scheduled for, and the entry that set it. */
export interface ReminderJob {
  commitmentId: string;
  offsetSeconds: number;
  dueAt: string;
  ledgerIndex: number;
}

/** Hands a batch's commitment events to the reminders, inside the batch's transaction. */
export type Schedule = (client: pg.ClientBase, happenings: readonly Happening[]) => Promise<void>;

const reminderKeyPrefix = (commitmentId: string) => `reminder:${commitmentId}:`;

export const reminderJobKey = (commitmentId: string, offsetSeconds: number) =>
  `${reminderKeyPrefix(commitmentId)}${offsetSeconds}`;

const REMINDER_ATTEMPTS = 5;

/** The due date a commitment's parties are to be reminded of: while it is active, not yet overdue. */
export function remindedDueAt(state: Commitment): string | null {
  return state.exists && state.status === 'active' && !state.overdue ? state.dueAt : null;
}

/**
 * The projection's hook: reschedules the reminders of each commitment whose reminded due date the
 * batch changed, skipping the offsets whose time has passed by `now`.
 */
export function reminderSchedule(options: { offsets: readonly number[]; now?: () => Date }): Schedule {
  const now = options.now ?? (() => new Date());
  return async (client, happenings) => {
    const changes = reminderChanges(happenings);
    if (changes.length > 0) await reschedule(client, changes, options.offsets, now());
  };
}

interface Change {
  commitmentId: string;
  dueAt: string | null;
  ledgerIndex: number;
}

/** Per commitment, its reminded due date after the batch, when it differs from the one before it. */
export function reminderChanges(happenings: readonly Happening[]): Change[] {
  const first = new Map<string, string | null>();
  const last = new Map<string, Change>();
  for (const { index, before, after } of happenings) {
    if (!first.has(after.id)) first.set(after.id, remindedDueAt(before));
    const dueAt = remindedDueAt(after);
    if (last.get(after.id)?.dueAt !== dueAt) {
      last.set(after.id, { commitmentId: after.id, dueAt, ledgerIndex: index });
    }
  }
  return [...last.values()].filter((change) => first.get(change.commitmentId) !== change.dueAt);
}

/**
 * Removes a commitment's reminder jobs ($1: their keys' prefix, `reminder:<id>:%`) but those with
 * the keys in $2. The prefix is looked up in an index whatever the database's collation (the one
 * on job keys serves `like` only under C; migrateDeliveryQueue adds one of text_pattern_ops), so
 * a removal does not read every job; it is a statement per commitment so that its pattern is a
 * value the plan is made for.
 */
export const REMOVE_OTHER_REMINDERS = `select graphile_worker.remove_job(key) from graphile_worker.jobs
     where key like $1 and not (key = any($2::text[]))`;

/**
 * The batch's changes in one round trip: for each commitment, its jobs no longer wanted removed,
 * then the wanted jobs of them all added or replaced.
 */
async function reschedule(client: pg.ClientBase, changes: Change[], offsets: readonly number[], now: Date) {
  const planned = changes.map(({ commitmentId, dueAt, ledgerIndex }) => {
    const jobs = dueAt === null ? [] : reminderJobs({ commitmentId, dueAt, ledgerIndex }, offsets, now);
    return { commitmentId, jobs, keys: jobs.map((job) => reminderJobKey(commitmentId, job.offsetSeconds)) };
  });
  const statements: Companion[] = planned.map(({ commitmentId, keys }) => ({
    text: REMOVE_OTHER_REMINDERS,
    values: [`${reminderKeyPrefix(commitmentId)}%`, keys],
  }));
  const jobs = planned.flatMap((plan) => plan.jobs);
  if (jobs.length > 0)
    statements.push({
      text: `select graphile_worker.add_job(
         identifier => $1,
         payload => job.payload,
         run_at => job.run_at,
         max_attempts => $2,
         job_key => job.key,
         job_key_mode => 'replace')
       from unnest($3::json[], $4::timestamptz[], $5::text[]) as job(payload, run_at, key)`,
      values: [
        REMIND_TASK,
        REMINDER_ATTEMPTS,
        jobs.map((job) => JSON.stringify(job)),
        jobs.map((job) => runAtOf(job)),
        planned.flatMap((plan) => plan.keys),
      ],
    });
  const last = statements.pop();
  if (last) await queryPipelined(client, last, { before: statements });
}

function reminderJobs(
  due: { commitmentId: string; dueAt: string; ledgerIndex: number },
  offsets: readonly number[],
  now: Date,
): ReminderJob[] {
  return [...new Set(offsets)]
    .map((offsetSeconds) => ({ ...due, offsetSeconds }))
    .filter((job) => runAtOf(job) > now);
}

export const runAtOf = (job: Pick<ReminderJob, 'dueAt' | 'offsetSeconds'>) =>
  new Date(Date.parse(job.dueAt) - job.offsetSeconds * 1000);
