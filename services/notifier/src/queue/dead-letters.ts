// Dead letters: delivery jobs that used up their attempts. graphile-worker keeps such a job in its
// jobs table with attempts = max_attempts and never runs it again; admins list them here and may
// give one a fresh set of attempts.
import type pg from 'pg';
import { DELIVERY_TASKS } from './tasks.ts';

export interface DeadLetter {
  /** The job's id in graphile_worker.jobs. */
  id: string;
  task: string;
  /** The notification it delivers (email, push, SMS), or null for a webhook delivery. */
  notificationId: string | null;
  recipientId: string | null;
  /** email, push, sms or webhook. */
  channel: string;
  /** The webhook delivery it attempts, or null. */
  webhookDeliveryId: string | null;
  attempts: number;
  maxAttempts: number;
  lastError: string | null;
  createdAt: string;
  updatedAt: string;
}

interface JobRow {
  id: string;
  task_identifier: string;
  key: string | null;
  attempts: number;
  max_attempts: number;
  last_error: string | null;
  created_at: Date;
  updated_at: Date;
}

const TASKS = Object.values(DELIVERY_TASKS);

/**
 * A dead job, as a condition on graphile_worker.jobs: its attempts used up and none under way.
 * graphile-worker counts an attempt as it takes a job, so one on its last attempt has used them up
 * while it runs.
 */
export const DEAD_JOB = 'attempts >= max_attempts and locked_at is null';

/** Whether graphile-worker's schema is there (the notifier migrates it when it starts). */
async function queueExists(db: pg.Pool | pg.ClientBase): Promise<boolean> {
  const { rows } = await db.query<{ present: boolean }>(
    `select to_regclass('graphile_worker.jobs') is not null as present`,
  );
  return rows[0]?.present ?? false;
}

/** The dead delivery jobs, the most recently failed first. */
export async function listDeadLetters(db: pg.Pool | pg.ClientBase, limit = 100): Promise<DeadLetter[]> {
  if (!(await queueExists(db))) return [];
  const { rows } = await db.query<JobRow>(
    `select id::text, task_identifier, key, attempts, max_attempts, last_error, created_at, updated_at
     from graphile_worker.jobs
     where task_identifier = any($1::text[]) and ${DEAD_JOB}
     order by updated_at desc, id desc
     limit $2`,
    [TASKS, limit],
  );
  return rows.map(deadLetterOf);
}

/**
 * Gives a dead job its attempts back and runs it now; false when there is no such dead job (or it
 * is running). The job key is unchanged, so it stays the one job of its notification and channel.
 */
export async function retryDeadLetter(db: pg.Pool | pg.ClientBase, id: string): Promise<boolean> {
  if (!(await queueExists(db))) return false;
  const { rows } = await db.query(
    `select graphile_worker.reschedule_jobs(array[job.id], run_at => now(), attempts => 0)
     from graphile_worker.jobs as job
     where job.id = $1::bigint and job.task_identifier = any($2::text[]) and ${DEAD_JOB}`,
    [id, TASKS],
  );
  return rows.length > 0;
}

/** The notification id and channel of a key `<notification id>:<channel>` (see notificationJobKey). */
function deadLetterOf(row: JobRow): DeadLetter {
  const key = row.key ?? '';
  const webhook = row.task_identifier === DELIVERY_TASKS.webhook;
  const cut = key.lastIndexOf(':');
  const notificationId = webhook || cut < 0 ? null : key.slice(0, cut);
  // A notification id is `<ledger index>:<recipient>:<kind>`.
  const recipientId = notificationId?.split(':').slice(1, -1).join(':') || null;
  return {
    id: row.id,
    task: row.task_identifier,
    notificationId,
    recipientId,
    channel: webhook ? 'webhook' : key.slice(cut + 1),
    webhookDeliveryId: webhook ? (key.split(':')[1] ?? null) : null,
    attempts: row.attempts,
    maxAttempts: row.max_attempts,
    lastError: row.last_error,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}
