// The delivery worker: graphile-worker, on the service's own pool and database, running one task
// per channel. Jobs live in its tables (schema graphile_worker), so a crash or a restart loses
// nothing: a job whose worker died is unlocked and run again. A channel that is down or slow holds
// only its own jobs: each fails within its channel's timeout and waits out its backoff, while the
// other channels' jobs run on the other worker slots.
import { type Database, type FieldCipher, openNotificationTexts } from '@connect/db';
import { type JobHelpers, Logger, type Runner, run, runMigrations, type TaskList } from 'graphile-worker';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import type { Notification, NotificationKind } from '../notification.ts';
import { type AttemptDeps, attemptDeliveries } from '../webhooks/store.ts';
import { addDeliveryJobs, webhookJob } from './jobs.ts';
import { countedDelivery, recordDelivery } from './metrics.ts';
import {
  type ChannelHandlers,
  DELIVERY_TASKS,
  type NotificationJob,
  QUEUED_CHANNELS,
  type WebhookBatchJob,
  type WebhookJob,
} from './tasks.ts';

export interface WorkerLog {
  error(object: object, message: string): void;
  warn(object: object, message: string): void;
  info(object: object, message: string): void;
  debug(object: object, message: string): void;
}

export interface DeliveryWorkerOptions {
  pool: pg.Pool;
  db: Kysely<Database>;
  /** Opens the notifications' sealed text. */
  fields: FieldCipher;
  /** The channels delivered through the queue; one that is absent runs no jobs (and gets none). */
  channels: ChannelHandlers;
  /** How webhook deliveries are attempted (allowPrivate, timeouts); webhooks always run. */
  webhooks: AttemptDeps;
  concurrency?: number;
  /** How often to look for due jobs besides being notified of new ones (ms). */
  pollInterval?: number;
  log?: WorkerLog;
  /** Other tasks the worker runs (the deadline reminders). */
  tasks?: TaskList;
}

/** Creates or updates graphile-worker's schema in the database (idempotent; run at start). */
export async function migrateDeliveryQueue(pool: pg.Pool): Promise<void> {
  await runMigrations({ pgPool: pool, logger: quietLogger });
  await indexJobKeyPrefixes(pool);
}

const KEY_PREFIX_INDEX = 'graphile_worker.connect_jobs_key_prefix';

/**
 * Reminder jobs are found by their key's prefix (reminders/schedule.ts): graphile-worker's own index
 * on keys serves `like 'prefix%'` only under the C collation, this one under any. Made once: a start
 * that finds it takes no lock. Creating it holds up writes of jobs, so it waits for the table at most
 * LOCK_WAIT and otherwise leaves it to the next start (removals read every job meanwhile, as before).
 */
async function indexJobKeyPrefixes(pool: pg.Pool): Promise<void> {
  const exists = async (client: pg.Pool | pg.PoolClient) =>
    (
      await client.query<{ found: boolean }>('select to_regclass($1) is not null as found', [
        KEY_PREFIX_INDEX,
      ])
    ).rows[0]?.found;
  if (await exists(pool)) return;
  const client = await pool.connect();
  try {
    await client.query('begin');
    // Processes starting together would race to create it.
    await client.query("select pg_advisory_xact_lock(hashtext('connect_jobs_key_prefix'))");
    if (!(await exists(client))) {
      await client.query(`set local lock_timeout = '${LOCK_WAIT}'`);
      await client.query(
        'create index connect_jobs_key_prefix on graphile_worker._private_jobs (key text_pattern_ops)',
      );
    }
    await client.query('commit');
  } catch (error) {
    await client.query('rollback').catch(() => undefined);
    if ((error as { code?: string }).code !== LOCK_NOT_AVAILABLE) throw error;
  } finally {
    client.release();
  }
}

const LOCK_WAIT = '5s';
const LOCK_NOT_AVAILABLE = '55P03';

/**
 * Jobs fetched (and locked) a batch at a time and completed in batches: a delivery costs about its
 * own work rather than two round trips to the queue's tables.
 */
export const workerPreset = (concurrency: number) => ({
  worker: { localQueue: { size: concurrency * 4 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 },
});

/** Starts the worker; `stop()` waits for the jobs in hand to finish. */
export async function startDeliveryWorker(options: DeliveryWorkerOptions): Promise<Runner> {
  const concurrency = options.concurrency ?? 8;
  return run({
    pgPool: options.pool,
    taskList: deliveryTasks(options),
    concurrency,
    preset: workerPreset(concurrency),
    pollInterval: options.pollInterval ?? 2000,
    noHandleSignals: true,
    logger: options.log ? loggerOf(options.log) : quietLogger,
  });
}

export function deliveryTasks({
  pool,
  db,
  fields,
  channels,
  webhooks,
  ...options
}: DeliveryWorkerOptions): TaskList {
  const tasks: TaskList = { ...options.tasks };
  for (const channel of QUEUED_CHANNELS) {
    const handler = channels[channel];
    if (!handler) continue;
    tasks[DELIVERY_TASKS[channel]] = async (payload) => {
      const { notificationId } = payload as NotificationJob;
      const notification = await readNotification(db, fields, notificationId);
      // Gone (the notifications table was rebuilt without it, or its recipient erased): nothing to deliver.
      if (!notification) return recordDelivery(channel, 'gone');
      await countedDelivery(channel, () => handler.deliver(notification));
    };
  }
  tasks[DELIVERY_TASKS.webhook] = async (payload, helpers: JobHelpers) => {
    const ids = Array.isArray(payload) ? (payload as WebhookBatchJob) : [(payload as WebhookJob).deliveryId];
    const results = await attemptDeliveries(db, ids, webhooks).catch((error: unknown) => {
      recordDelivery('webhook', 'error');
      throw error;
    });
    // A delivery not there had its endpoint deleted, and its deliveries with it.
    for (let gone = ids.length - results.length; gone > 0; gone--) recordDelivery('webhook', 'gone');
    for (const result of results) recordDelivery('webhook', result.delivery.status);
    const retries = results.flatMap((result) =>
      result.nextAttemptAt
        ? [webhookJob(result.delivery.id, result.delivery.attempts, result.nextAttemptAt)]
        : [],
    );
    if (retries.length === 0) return;
    const client = await pool.connect();
    try {
      await addDeliveryJobs(client, retries);
    } finally {
      client.release();
    }
    helpers.logger.debug(`${retries.length} webhook deliveries failed; each is tried again later`);
  };
  return tasks;
}

async function readNotification(
  db: Kysely<Database>,
  fields: FieldCipher,
  id: string,
): Promise<Notification | undefined> {
  const row = await db.selectFrom('notifications').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) return undefined;
  const [text] = await openNotificationTexts(fields, [{ ...row, recipientId: row.recipient_id }]);
  if (!text) return undefined;
  return {
    id: row.id,
    recipientId: row.recipient_id,
    kind: row.kind as NotificationKind,
    title: text.title,
    body: text.body,
    link: row.link,
    commitmentId: row.commitment_id,
    ledgerIndex: Number(row.ledger_index),
    createdAt: new Date(row.created_at).toISOString(),
  };
}

const quietLogger = new Logger(() => () => {});

function loggerOf(log: WorkerLog): Logger {
  return new Logger((scope) => (level, message, meta) => {
    const fields = { scope, ...meta };
    if (level === 'error') log.error(fields, message);
    else if (level === 'warning') log.warn(fields, message);
    else if (level === 'info') log.info(fields, message);
    else log.debug(fields, message);
  });
}
