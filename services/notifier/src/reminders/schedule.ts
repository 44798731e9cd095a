// Deadline reminders, one per commitment and offset (job key `reminder:<commitment>:<offset
// seconds>`), due `offset` before the due date. The notifications projection keeps them in step
// with the ledger inside its batch transaction: a commitment that becomes active with a due date
// gets them, a new due date moves them, and one that ends or loses its due date loses them.
// A reminder due within QUEUE_AHEAD_MS is a graphile-worker job at once (adding with the same key
// replaces the job's payload and run_at); a later one waits in reminders_scheduled (migration 034),
// out of the queue whose every fetch would walk it, until the worker's round moves it in
// (queueDueReminders). Both live in the database, so they outlive restarts and run once however
// many workers there are.
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

/**
 * How far ahead a reminder is put into the queue. The worker's round (a minute apart) moves those
 * due within it, so a reminder is queued several rounds before its time and runs on time.
 */
export const QUEUE_AHEAD_MS = 10 * 60_000;

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
 * The batch's changes in one round trip: the commitments' scheduled reminders removed; for each
 * commitment, its queued jobs removed but those still to be queued; the reminders due within the
 * horizon added to the queue (or replaced there), and the later ones scheduled.
 */
async function reschedule(client: pg.ClientBase, changes: Change[], offsets: readonly number[], now: Date) {
  const horizon = now.getTime() + QUEUE_AHEAD_MS;
  const wanted = changes.flatMap(({ commitmentId, dueAt, ledgerIndex }) =>
    dueAt === null ? [] : reminderJobs({ commitmentId, dueAt, ledgerIndex }, offsets, now),
  );
  const queued = wanted.filter((job) => runAtOf(job).getTime() <= horizon);
  const scheduled = wanted.filter((job) => runAtOf(job).getTime() > horizon);
  const queuedKeys = new Map<string, string[]>();
  for (const job of queued)
    queuedKeys.set(job.commitmentId, [...(queuedKeys.get(job.commitmentId) ?? []), keyOf(job)]);
  const statements: Companion[] = [
    {
      text: 'delete from reminders_scheduled where commitment_id = any($1::uuid[])',
      values: [changes.map((change) => change.commitmentId)],
    },
    ...changes.map(({ commitmentId }) => ({
      text: REMOVE_OTHER_REMINDERS,
      values: [`${reminderKeyPrefix(commitmentId)}%`, queuedKeys.get(commitmentId) ?? []],
    })),
  ];
  if (queued.length > 0)
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
        queued.map((job) => JSON.stringify(job)),
        queued.map(runAtOf),
        queued.map(keyOf),
      ],
    });
  if (scheduled.length > 0)
    statements.push({
      text: `insert into reminders_scheduled (commitment_id, job_key, run_at, payload)
             select * from unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::jsonb[])`,
      values: [
        scheduled.map((job) => job.commitmentId),
        scheduled.map(keyOf),
        scheduled.map(runAtOf),
        scheduled.map((job) => JSON.stringify(job)),
      ],
    });
  const last = statements.pop();
  if (last) await queryPipelined(client, last, { before: statements });
}

/** The most reminders a round moves in one transaction; it goes on with the next until none is left. */
const ROUND_LIMIT = 5000;

/**
 * The worker's round: moves the scheduled reminders due by `until` into the queue, `limit` at a
 * time, each statement deleting the rows as it adds their jobs; returns how many it queued.
 * - Rows another transaction holds are skipped (`skip locked`): a projection batch replacing them,
 *   or another worker's round. A round so never waits on a lock, nor deadlocks with a batch that
 *   deletes a commitment's rows in another order; what it skipped, the next round finds.
 * - A row whose key is already a job in the queue is dropped, not queued: only a notifier older
 *   than reminders_scheduled (still running in a rolling restart) adds a job without removing the
 *   row, and that job is the later one. Left to that rolling restart: a job such a notifier commits
 *   while this statement runs is replaced by the row (its reminder is then skipped as stale), and
 *   its batch may deadlock with the round (the projector retries the batch).
 * - One already past is queued all the same: its task reminds only while the due date is ahead.
 */
export async function queueDueReminders(
  db: pg.Pool | pg.ClientBase,
  until: Date,
  limit = ROUND_LIMIT,
): Promise<number> {
  if (!(limit >= 1)) throw new RangeError('a round moves at least one reminder at a time');
  let queued = 0;
  for (;;) {
    const { rows } = await db.query<{ taken: number; jobs: number }>(
      `with due as (
         delete from reminders_scheduled
          where (commitment_id, job_key) in (
            select commitment_id, job_key from reminders_scheduled
             where run_at <= $1 order by run_at limit $4 for update skip locked)
         returning job_key, run_at, payload
       ),
       specs as (
         select array_agg(
           ($2::text, payload::json, null, run_at, $3::int, job_key, null, null)::graphile_worker.job_spec
           order by run_at) as specs
         from due
         where not exists (select 1 from graphile_worker._private_jobs as job where job.key = due.job_key)
       )
       select (select count(*) from due)::int as taken,
              (select count(*) from specs, graphile_worker.add_jobs(specs.specs)
                where specs.specs is not null)::int as jobs`,
      [until, REMIND_TASK, REMINDER_ATTEMPTS, limit],
    );
    queued += rows[0]?.jobs ?? 0;
    if ((rows[0]?.taken ?? 0) < limit) return queued;
  }
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

const keyOf = (job: ReminderJob) => reminderJobKey(job.commitmentId, job.offsetSeconds);

export const runAtOf = (job: Pick<ReminderJob, 'dueAt' | 'offsetSeconds'>) =>
  new Date(Date.parse(job.dueAt) - job.offsetSeconds * 1000);
