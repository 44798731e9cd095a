// The notifier's deliveries as a process runs them: graphile-worker's schema migrated, the channels
// configured (email while CONNECT_SMTP_URL is set; push and SMS register their handlers through
// `channels`), the projection's hooks for those channels, and the worker.
import type { Config, Database } from '@connect/db';
import type { Runner } from 'graphile-worker';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import { emailChannelFromConfig } from '../email/deliver.ts';
import { pushChannelFromConfig } from '../push/deliver.ts';
import type { VapidConfig } from '../push/keys.ts';
import { smsChannelFromConfig } from '../sms/deliver.ts';
import { type QueueHooks, queueHooks } from './enqueue.ts';
import type { ChannelHandlers, QueuedChannel } from './tasks.ts';
import { migrateDeliveryQueue, startDeliveryWorker, type WorkerLog } from './worker.ts';

export interface DeliveryQueue {
  /** For the notifications projection (openNotifier's options). */
  hooks: QueueHooks;
  /** The channels that get jobs. */
  channels: QueuedChannel[];
  /** Starts the worker (once the projection is attached: jobs may already wait), logging to `log`. */
  start(log?: WorkerLog): Promise<void>;
  /** Stops the worker, letting the jobs in hand finish, and closes the channels. */
  close(): Promise<void>;
}

export async function openDeliveryQueue(deps: {
  pool: pg.Pool;
  db: Kysely<Database>;
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
    VapidConfig;
  log?: WorkerLog;
  /** Handlers of other channels (push, SMS), when they are configured. */
  channels?: ChannelHandlers;
  /** How often the worker looks for jobs that became due (ms); new jobs it hears of at once. */
  pollInterval?: number;
}): Promise<DeliveryQueue> {
  const { pool, db, config } = deps;
  let log = deps.log;
  await migrateDeliveryQueue(pool);
  const email = await emailChannelFromConfig(config, { db, apiUrl: config.publicApiUrl });
  const sms = await smsChannelFromConfig(config, { db });
  // Push needs no outside account (its keys are generated): a person gets it once subscribed.
  const push = await pushChannelFromConfig(config, { db });
  const handlers: ChannelHandlers = {
    push,
    ...(email ? { email } : {}),
    ...(sms ? { sms } : {}),
    ...deps.channels,
  };
  const channels = (Object.keys(handlers) as QueuedChannel[]).filter((channel) => handlers[channel]);
  let runner: Runner | undefined;
  return {
    hooks: queueHooks({ channels, maxAttempts: config.deliveryMaxAttempts }),
    channels,
    async start(logTo) {
      log = logTo ?? log;
      runner ??= await startDeliveryWorker({
        pool,
        db,
        channels: handlers,
        webhooks: {
          allowPrivate: config.webhooksAllowPrivate,
          onDisabled: (endpoint) => log?.warn({ endpoint }, 'webhook endpoint disabled'),
        },
        concurrency: config.deliveryConcurrency,
        ...(deps.pollInterval ? { pollInterval: deps.pollInterval } : {}),
        ...(log ? { log } : {}),
      });
    },
    async close() {
      await runner?.stop();
      runner = undefined;
      email?.close();
    },
  };
}
