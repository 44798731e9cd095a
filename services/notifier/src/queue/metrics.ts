// The delivery queue on /metrics: how many jobs are scheduled, wait, run, retry or lie dead per
// task (read from graphile-worker's jobs at each scrape), and each delivery attempt's outcome per
// channel.
import type pg from 'pg';
import { Counter, Gauge, type Registry } from 'prom-client';
import { ACCOUNT_MAIL_TASK } from '../email/account-mail.ts';
import { REMIND_TASK } from '../reminders/schedule.ts';
import { DEAD_JOB } from './dead-letters.ts';
import { DELIVERY_TASKS } from './tasks.ts';

/**
 * A job's state as the queue-depth gauge counts it. Scheduled: first run not due yet (a reminder
 * set for its date), so not a backlog; waiting: due and not taken yet.
 */
export const JOB_STATES = ['scheduled', 'waiting', 'retrying', 'running', 'dead'] as const;

/**
 * Delivery attempts by channel (email, push, sms, webhook) and outcome: what the channel answered
 * (sent, not-wanted, no-subscription…; a webhook's delivered, failed or dead), 'gone' when the
 * notification or delivery no longer exists, 'error' when the attempt threw (the job is retried).
 * One per process, registered on an app's registry by registerDeliveryMetrics.
 */
export const deliveriesTotal = new Counter({
  name: 'connect_notification_deliveries_total',
  help: 'Notification delivery attempts by channel and outcome',
  labelNames: ['channel', 'outcome'],
  registers: [],
});

/** Counts one attempt; `outcome` is the channel's answer when it is a string, else 'done'. */
export function recordDelivery(channel: string, outcome: unknown): void {
  deliveriesTotal.inc({ channel, outcome: typeof outcome === 'string' ? outcome : 'done' });
}

/** Runs `attempt`, counting its outcome (`outcomeOf` its result; or 'error', rethrown) on `channel`. */
export async function countedDelivery<T>(
  channel: string,
  attempt: () => Promise<T>,
  outcomeOf: (result: T) => unknown = (result) => result,
): Promise<T> {
  try {
    const result = await attempt();
    recordDelivery(channel, outcomeOf(result));
    return result;
  } catch (error) {
    recordDelivery(channel, 'error');
    throw error;
  }
}

/** The delivery jobs by task and state (dead as the dead letters are: never run again). */
export async function queueDepth(
  db: pg.Pool | pg.ClientBase,
): Promise<{ task: string; state: (typeof JOB_STATES)[number]; jobs: number }[]> {
  const { rows } = await db.query<{ task: string; state: (typeof JOB_STATES)[number]; jobs: number }>(
    `select task, state, sum(jobs)::int as jobs from (
       select task_identifier as task,
              case when ${DEAD_JOB} then 'dead'
                   when locked_at is not null then 'running'
                   when attempts > 0 then 'retrying'
                   when run_at > now() then 'scheduled'
                   else 'waiting' end as state,
              count(*) as jobs
         from graphile_worker.jobs group by 1, 2
       union all
       -- Account mail waiting for SMTP out of the queue (migration 033) is waiting all the same.
       select $1, 'waiting', count(*) from account_mail_waiting having count(*) > 0
       union all
       -- Reminders not due soon wait out of the queue (migration 034), scheduled all the same.
       select $2, 'scheduled', count(*) from reminders_scheduled having count(*) > 0
     ) as depth group by 1, 2 order by 1, 2`,
    [ACCOUNT_MAIL_TASK, REMIND_TASK],
  );
  return rows;
}

/** Puts the deliveries counter and the queue-depth gauge on `registry` (once per registry). */
export function registerDeliveryMetrics(registry: Registry, pool: pg.Pool): void {
  if (!registry.getSingleMetric('connect_notification_deliveries_total'))
    registry.registerMetric(deliveriesTotal);
  if (registry.getSingleMetric('connect_notification_queue_jobs')) return;
  new Gauge({
    name: 'connect_notification_queue_jobs',
    help: 'Jobs in the queue by task and state (scheduled, waiting, retrying, running, dead); account mail waiting for SMTP is waiting, reminders not due soon are scheduled',
    labelNames: ['task', 'state'],
    registers: [registry],
    async collect() {
      const rows = await queueDepth(pool);
      this.reset();
      for (const task of [...Object.values(DELIVERY_TASKS), REMIND_TASK, ACCOUNT_MAIL_TASK]) {
        for (const state of JOB_STATES) this.set({ task, state }, 0);
      }
      for (const row of rows) this.set({ task: row.task, state: row.state }, row.jobs);
    },
  });
}
