// The notifier's deliveries as a process runs them: graphile-worker's schema migrated, the channels
// configured (email while CONNECT_SMTP_URL is set; push and SMS register their handlers through
// `channels`), the projection's hooks for those channels, and the worker.
import type { Config, Database } from '@connect/db';
import { DEFAULT_APP_URL } from '@connect/db';
import type { PoolCounts } from '@connect/http';
import type { BodyCipher } from '@connect/ledger';
import type { Runner } from 'graphile-worker';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Registry } from 'prom-client';
import {
  ACCOUNT_MAIL_TASK,
  accountMailTask,
  createAccountMailer,
  requeueWaitingAccountMail,
  waitForSmtpTask,
} from '../email/account-mail.ts';
import { emailChannelFromConfig } from '../email/deliver.ts';
import { pushChannelFromConfig } from '../push/deliver.ts';
import type { VapidConfig } from '../push/keys.ts';
import {
  QUEUE_AHEAD_MS,
  queueDueReminders,
  REMIND_TASK,
  reminderSchedule,
  type Schedule,
} from '../reminders/schedule.ts';
import { remindTask } from '../reminders/task.ts';
import { smsChannelFromConfig } from '../sms/deliver.ts';
import { type QueueHooks, queueHooks } from './enqueue.ts';
import { registerDeliveryMetrics } from './metrics.ts';
import { rounds } from './rounds.ts';
import type { ChannelHandlers, QueuedChannel } from './tasks.ts';
import { migrateDeliveryQueue, startDeliveryWorker, type WorkerLog } from './worker.ts';

export interface DeliveryQueue {
  /** For the notifications projection (openNotifier's options). */
  hooks: QueueHooks & { schedule?: Schedule };
  /** The channels that get jobs. */
  channels: QueuedChannel[];
  /** Starts the worker (once the projection is attached: jobs may already wait), logging to `log`. */
  start(log?: WorkerLog): Promise<void>;
  /** Stops the worker, letting the jobs in hand finish, and closes the channels. */
  close(): Promise<void>;
  /** Throws when the worker was started and has since stopped or crashed (for /readyz). */
  assertHealthy(): void;
  /**
   * Puts the queue's depth, its deliveries by channel and outcome, and the worker's connections
   * (pool "delivery") on the server's /metrics.
   */
  registerMetrics(server: { metrics: Registry; watchPool(name: string, pool: PoolCounts): void }): void;
}

export async function openDeliveryQueue(deps: {
  pool: pg.Pool;
  db: Kysely<Database>;
  /** Opens the ledger's sealed bodies (reminders replay commitments). */
  cipher: BodyCipher;
  config: Pick<
    Config,
    | 'smtpUrl'
    | 'mailFrom'
    | 'dataDir'
    | 'publicApiUrl'
    | 'webhooksAllowPrivate'
    | 'deliveryMaxAttempts'
    | 'deliveryConcurrency'
    | 'twilio'
  > &
    /** Both set: the worker sends deadline reminders (and the projection schedules them). */
    Partial<Pick<Config, 'reminderOffsets' | 'appUrl'>> &
    VapidConfig;
  log?: WorkerLog;
  /** Handlers of other channels (push, SMS), when they are configured. */
  channels?: ChannelHandlers;
  /** How often the worker looks for jobs that became due (ms); new jobs it hears of at once. */
  pollInterval?: number;
  /**
   * With SMTP: how often account mail that waited for it is put back into the queue (ms; default
   * a minute), besides at start: a worker without SMTP elsewhere (another instance, the old one
   * in a rolling restart) may have taken some since.
   */
  requeueWaitingMailEvery?: number;
  /**
   * With reminders: how often the reminders coming due are moved from their schedule into the
   * queue (ms; default a minute, well inside QUEUE_AHEAD_MS), besides at start.
   */
  queueDueRemindersEvery?: number;
}): Promise<DeliveryQueue> {
  const { pool, db, config } = deps;
  let log = deps.log;
  await migrateDeliveryQueue(pool);
  const email = await emailChannelFromConfig(config, {
    db,
    fields: deps.cipher.fields,
    apiUrl: config.publicApiUrl,
  });
  const sms = await smsChannelFromConfig(config, { db, cipher: deps.cipher.fields });
  // Push needs no outside account (its keys are generated): a person gets it once subscribed.
  const push = await pushChannelFromConfig(config, { db });
  const handlers: ChannelHandlers = {
    push,
    ...(email ? { email } : {}),
    ...(sms ? { sms } : {}),
    ...deps.channels,
  };
  const channels = (Object.keys(handlers) as QueuedChannel[]).filter((channel) => handlers[channel]);
  const hooks = queueHooks({ channels, maxAttempts: config.deliveryMaxAttempts, cipher: deps.cipher.fields });
  const { reminderOffsets, appUrl } = config;
  const reminders =
    reminderOffsets && appUrl !== undefined ? { offsets: reminderOffsets, appUrl } : undefined;
  // Verification, recovery and email-change mail need SMTP; without it they wait out of the queue.
  const accountMailer = config.smtpUrl
    ? createAccountMailer({ smtpUrl: config.smtpUrl, from: config.mailFrom })
    : undefined;
  // The worker's own connections commit without waiting for the disk: a job whose completion a
  // database crash loses runs again, which a receiver drops by its stable id; the jobs themselves
  // are added by the projection's transactions, which wait as usual, so nothing is lost.
  const connectWorker = () => {
    const workerPool = new pg.Pool({
      ...pool.options,
      max: config.deliveryConcurrency + 2,
      options: '-c synchronous_commit=off',
    });
    // The message and code only: pg hangs the whole client (its parsed statements…) on the error.
    workerPool.on('error', (error: Error & { code?: string }) =>
      log?.warn({ err: { message: error.message, code: error.code } }, 'delivery worker connection lost'),
    );
    workerPool.on('connect', (client) => client.on('error', () => undefined));
    return {
      pool: workerPool,
      db: new Kysely<Database>({ dialect: new PostgresDialect({ pool: workerPool }) }),
    };
  };
  let worker: ReturnType<typeof connectWorker> | undefined;
  let runner: Runner | undefined;
  let watched: Runner | undefined;
  let stopped: string | undefined;
  const everyMs = (option: string, ms = 60_000, below?: number) => {
    if (!(ms > 0) || (below !== undefined && ms >= below))
      throw new RangeError(`${option} must be above 0${below === undefined ? '' : ` and below ${below}`} ms`);
    return ms;
  };
  const requeueWaitingMail = rounds(
    async () => {
      const jobs = await requeueWaitingAccountMail(db);
      if (jobs > 0) log?.info({ jobs }, 'account emails that waited for SMTP are queued');
    },
    {
      everyMs: everyMs('requeueWaitingMailEvery', deps.requeueWaitingMailEvery),
      onError: (error) =>
        log?.warn({ err: { message: error.message } }, 'account emails that waited for SMTP stay waiting'),
    },
  );
  const queueReminders = rounds(
    async () => {
      const jobs = await queueDueReminders(pool, new Date(Date.now() + QUEUE_AHEAD_MS));
      if (jobs > 0) log?.debug({ jobs }, 'reminders coming due are queued');
    },
    {
      // A reminder is moved in by a round that runs within its last QUEUE_AHEAD_MS.
      everyMs: everyMs('queueDueRemindersEvery', deps.queueDueRemindersEvery, QUEUE_AHEAD_MS),
      onError: (error) =>
        log?.warn({ err: { message: error.message } }, 'reminders coming due are not queued yet'),
    },
  );
  return {
    hooks: reminders ? { ...hooks, schedule: reminderSchedule(reminders) } : hooks,
    channels,
    async start(logTo) {
      log = logTo ?? log;
      if (!runner && !accountMailer)
        log?.warn(
          {},
          'CONNECT_SMTP_URL is unset: account emails (verification, recovery, email change) wait until a worker has it set',
        );
      if (!runner && accountMailer) await requeueWaitingMail.run();
      if (!runner && reminders) await queueReminders.run();
      worker ??= connectWorker();
      runner ??= await startDeliveryWorker({
        pool: worker.pool,
        db: worker.db,
        fields: deps.cipher.fields,
        channels: handlers,
        webhooks: {
          cipher: deps.cipher.fields,
          allowPrivate: config.webhooksAllowPrivate,
          onDisabled: (endpoint) => log?.warn({ endpoint }, 'webhook endpoint disabled'),
        },
        concurrency: config.deliveryConcurrency,
        tasks: {
          ...(reminders
            ? {
                [REMIND_TASK]: remindTask({
                  pool,
                  cipher: deps.cipher,
                  appUrl: reminders.appUrl,
                  enqueue: hooks.enqueue,
                }),
              }
            : {}),
          [ACCOUNT_MAIL_TASK]: accountMailer
            ? accountMailTask({
                db,
                fields: deps.cipher.fields,
                mailer: accountMailer,
                appUrl: appUrl ?? DEFAULT_APP_URL,
              })
            : waitForSmtpTask(db),
        },
        ...(deps.pollInterval ? { pollInterval: deps.pollInterval } : {}),
        ...(log ? { log } : {}),
      });
      if (accountMailer) requeueWaitingMail.repeat();
      if (reminders) queueReminders.repeat();
      if (watched === runner) return;
      const current = runner;
      watched = current;
      stopped = undefined;
      // Settles when it stops; unless close() stopped it, that is a worker /readyz must name.
      const ended = (why: string) => {
        if (runner === current) stopped = why;
      };
      current.promise.then(
        () => ended('the delivery worker stopped'),
        (error: Error) => ended(`the delivery worker crashed: ${error.message}`),
      );
    },
    async close() {
      await requeueWaitingMail.stop();
      await queueReminders.stop();
      const current = runner;
      runner = undefined;
      await current?.stop();
      await worker?.db.destroy();
      // Kysely ends the pool only if it ran a query itself; graphile-worker's connections stay otherwise.
      if (worker && !worker.pool.ending && !worker.pool.ended) await worker.pool.end();
      worker = undefined;
      email?.close();
      accountMailer?.close();
    },
    assertHealthy() {
      if (stopped) throw new Error(`notifier: ${stopped}`);
    },
    registerMetrics(server) {
      registerDeliveryMetrics(server.metrics, pool);
      // The worker's pool comes and goes with start() and close(): its counts are read through.
      server.watchPool('delivery', {
        get totalCount() {
          return worker?.pool.totalCount ?? 0;
        },
        get idleCount() {
          return worker?.pool.idleCount ?? 0;
        },
        get waitingCount() {
          return worker?.pool.waitingCount ?? 0;
        },
      });
    },
  };
}
