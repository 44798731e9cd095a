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
  type WebhookBatchJob,
  type WebhookJob,
  webhookJobKey,
} from './tasks.ts';

export interface DeliveryJob {
  task: DeliveryTask;
  payload: NotificationJob | WebhookJob | WebhookBatchJob;
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

/** Deliveries per batch job: enough to save round trips, few enough to spread over the workers. */
export const WEBHOOK_BATCH = 64;

/**
 * The first attempts of new deliveries, one job per endpoint and at most WEBHOOK_BATCH deliveries
 * (graphile-worker's batch jobs: the payload is the list of delivery ids).
 */
export function webhookBatchJobs(deliveries: readonly { id: string; endpointId: string }[]): DeliveryJob[] {
  const byEndpoint = new Map<string, string[]>();
  for (const { id, endpointId } of deliveries)
    byEndpoint.set(endpointId, [...(byEndpoint.get(endpointId) ?? []), id]);
  const jobs: DeliveryJob[] = [];
  for (const ids of byEndpoint.values()) {
    for (let i = 0; i < ids.length; i += WEBHOOK_BATCH) {
      const batch = ids.slice(i, i + WEBHOOK_BATCH);
      jobs.push({
        task: DELIVERY_TASKS.webhook,
        payload: batch,
        key: webhookJobKey(batch[0] as string, 0),
        maxAttempts: WEBHOOK_JOB_ATTEMPTS,
      });
    }
  }
  return jobs;
}
