// Adding delivery jobs in the caller's transaction, through graphile-worker's SQL API
// (graphile_worker.add_job), so a job exists exactly when the row it delivers is committed.
import type pg from 'pg';
import type { Notification } from '../notification.ts';
import {
  DELIVERY_TASKS,
  type DeliveryTask,
  type NotificationJob,
  notificationJobKey,
  type QueuedChannel,
  type WebhookJob,
  webhookJobKey,
} from './tasks.ts';

export interface DeliveryJob {
  task: DeliveryTask;
  payload: NotificationJob | WebhookJob;
  /** Unique while the job exists: adding the same key again adds nothing. */
  key: string;
  maxAttempts: number;
  /** Not before; now when absent. */
  runAt?: Date;
}

/**
 * Adds the jobs in the client's transaction. A key that names an existing job (waiting, running or
 * dead) adds nothing ('unsafe_dedupe': the existing job is neither replaced nor rescheduled), so a
 * replayed batch cannot deliver twice; a job that completed is gone and frees its key.
 */
export async function addDeliveryJobs(client: pg.ClientBase, jobs: readonly DeliveryJob[]): Promise<void> {
  if (jobs.length === 0) return;
  await client.query(
    `select graphile_worker.add_job(
       identifier => job.task,
       payload => job.payload,
       run_at => job.run_at,
       max_attempts => job.max_attempts,
       job_key => job.key,
       job_key_mode => 'unsafe_dedupe')
     from unnest($1::text[], $2::json[], $3::timestamptz[], $4::smallint[], $5::text[])
       as job(task, payload, run_at, max_attempts, key)`,
    [
      jobs.map((job) => job.task),
      jobs.map((job) => JSON.stringify(job.payload)),
      jobs.map((job) => job.runAt ?? null),
      jobs.map((job) => job.maxAttempts),
      jobs.map((job) => job.key),
    ],
  );
}

/** One job per notification and channel that reaches its recipient (`reach`: the recipients by channel). */
export function notificationJobs(
  notifications: readonly Notification[],
  reach: ReadonlyMap<QueuedChannel, ReadonlySet<string>>,
  maxAttempts: number,
): DeliveryJob[] {
  return notifications.flatMap((notification) =>
    [...reach]
      .filter(([, recipients]) => recipients.has(notification.recipientId))
      .map(([channel]) => ({
        task: DELIVERY_TASKS[channel],
        payload: { notificationId: notification.id, recipientId: notification.recipientId, channel },
        key: notificationJobKey(notification.id, channel),
        maxAttempts,
      })),
  );
}

/**
 * The job of a webhook delivery's attempt number `attempt` (0 for the first). Its retries follow the
 * Standard Webhooks schedule (the task re-adds itself at the next attempt's time); graphile-worker's
 * own attempts only cover a task that fails before recording an attempt (e.g. the database).
 */
export function webhookJob(deliveryId: string, attempt: number, runAt?: Date): DeliveryJob {
  return {
    task: DELIVERY_TASKS.webhook,
    payload: { deliveryId },
    key: webhookJobKey(deliveryId, attempt),
    maxAttempts: WEBHOOK_JOB_ATTEMPTS,
    ...(runAt ? { runAt } : {}),
  };
}

export const WEBHOOK_JOB_ATTEMPTS = 10;
