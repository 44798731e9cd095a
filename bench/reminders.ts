// npm run bench -- reminders: what deadline reminders waiting for their time cost the delivery
// queue. BENCH_REMINDERS (default 200,000) reminders, three for each dated commitment (a week, a
// day and an hour before a due date 30 to 90 days off), are scheduled through the notifications
// projection's hook, BENCH_REMINDERS_BATCH (500) commitments a batch. A worker like the notifier's
// then runs BENCH_REMINDERS_JOBS (2,000) jobs that arrive one at a time, BENCH_REMINDERS_RATE
// (100) a second, as deliveries trickle in: each costs the fetch that finds it and the one after
// that finds nothing more. Its CPU is this process's and the database server's (which must run on
// this machine), in trials that take turns: the reminders scheduled, then all queued, twice over.
//   reminders.scheduled_per_s          reminders scheduled a second through the hook
//   reminders.job_cpu_us_none          CPU a trickled job costs with no reminder anywhere: the floor
//   reminders.job_cpu_us               the same, the reminders waiting out of the queue (as they
//                                      do); the mean of its two trials
//   reminders.job_cpu_us_queued        the same, every reminder a future job in the queue (as they
//                                      were before reminders_scheduled)
//   reminders.queued_ratio             job_cpu_us_queued ÷ job_cpu_us
//   reminders.round_ms_empty           the median worker round with no reminder coming due
//   reminders.round_us_per_reminder    a round moving BENCH_REMINDERS_DUE (5,000) coming due into
//                                      the queue, per reminder
import { randomUUID } from 'node:crypto';
import { type Commitment, type CommitmentEvent, initialState } from '@connect/domain';
import {
  type Happening,
  migrateDeliveryQueue,
  QUEUE_AHEAD_MS,
  queueDueReminders,
  REMIND_TASK,
  reminderSchedule,
  workerPreset,
} from '@connect/notifier';
import { Logger, run } from 'graphile-worker';
import {
  type BenchDatabase,
  benchDatabase,
  type Metrics,
  median,
  notifierWorkerPool,
  postgresCpuMs,
  processCpuMs,
  round,
  WORKER_CONCURRENCY,
} from './support.ts';

const REMINDERS = Number(process.env.BENCH_REMINDERS ?? 200_000);
const BATCH = Number(process.env.BENCH_REMINDERS_BATCH ?? 500);
const JOBS = Number(process.env.BENCH_REMINDERS_JOBS ?? 2000);
const RATE = Number(process.env.BENCH_REMINDERS_RATE ?? 100);
const DUE = Number(process.env.BENCH_REMINDERS_DUE ?? 5000);
const OFFSETS = [7 * 86_400, 86_400, 3600];
const quiet = new Logger(() => () => {});

/** A commitment that became active with a due date: what makes the hook schedule its reminders. */
function activated(index: number, dueAt: string): Happening {
  const before = initialState(randomUUID());
  const after: Commitment = { ...before, exists: true, status: 'active', dueAt };
  const event = { type: 'CommitmentActivated', data: {} } as CommitmentEvent;
  return { index, actor: null, recordedAt: new Date().toISOString(), event, before, after };
}

/** Schedules REMINDERS reminders through the projection's hook, a batch a transaction; per second. */
async function scheduleReminders(database: BenchDatabase): Promise<number> {
  const schedule = reminderSchedule({ offsets: OFFSETS });
  const commitments = Math.ceil(REMINDERS / OFFSETS.length);
  const day = 86_400_000;
  const started = performance.now();
  const client = await database.pool.connect();
  try {
    for (let done = 0; done < commitments; done += BATCH) {
      const batch = Array.from({ length: Math.min(BATCH, commitments - done) }, (_, i) =>
        activated(done + i, new Date(Date.now() + 30 * day + ((done + i) % 60) * day).toISOString()),
      );
      await client.query('begin');
      await schedule(client, batch);
      await client.query('commit');
    }
  } finally {
    client.release();
  }
  return (commitments * OFFSETS.length) / ((performance.now() - started) / 1000);
}

/** Jobs added one at a time at RATE a second to a worker like the notifier's; CPU µs per job. */
async function trickle(database: BenchDatabase): Promise<number> {
  const workerPool = notifierWorkerPool(database.url);
  let done = 0;
  let allDone = () => {};
  const finished = new Promise<void>((resolve) => {
    allDone = resolve;
  });
  const runner = await run({
    pgPool: workerPool,
    concurrency: WORKER_CONCURRENCY,
    noHandleSignals: true,
    logger: quiet,
    pollInterval: 2000,
    preset: workerPreset(WORKER_CONCURRENCY),
    taskList: {
      noop: async () => {
        if (++done === JOBS) allDone();
      },
    },
  });
  try {
    const client = await database.pool.connect();
    try {
      const before = processCpuMs() + (await postgresCpuMs(database.pool));
      const started = performance.now();
      for (let i = 0; i < JOBS; i++) {
        await client.query(`select graphile_worker.add_job('noop', json_build_object('i', $1::int))`, [i]);
        const wait = started + ((i + 1) * 1000) / RATE - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      }
      await finished;
      return ((processCpuMs() + (await postgresCpuMs(database.pool)) - before) / JOBS) * 1000;
    } finally {
      client.release();
    }
  } finally {
    await runner.stop();
    await workerPool.end();
  }
}

/**
 * Every scheduled reminder made a future job in the queue, as the hook queued them before: the
 * worker's round, with a horizon past every due date.
 */
async function queueAllReminders(database: BenchDatabase): Promise<void> {
  await queueDueReminders(database.pool, new Date(Date.now() + 365 * 86_400_000));
  await settle(database);
}

/** Every queued reminder back in the schedule. */
async function scheduleAllReminders(database: BenchDatabase): Promise<void> {
  await database.pool.query(
    `with moved as (
       delete from graphile_worker._private_jobs as job
        using graphile_worker._private_tasks as task
        where task.id = job.task_id and task.identifier = $1
       returning job.key, job.run_at, job.payload)
     insert into reminders_scheduled (commitment_id, job_key, run_at, payload)
     select (payload ->> 'commitmentId')::uuid, key, run_at, payload::jsonb from moved`,
    [REMIND_TASK],
  );
  await settle(database);
}

/** Statistics fresh and dirty pages written, so that no trial pays for the one before. */
async function settle(database: BenchDatabase): Promise<void> {
  await database.pool.query('vacuum analyze graphile_worker._private_jobs, reminders_scheduled');
  await database.pool.query('checkpoint');
}

/** A round's wall time (ms), moving what is due by QUEUE_AHEAD_MS from now. */
async function timedRound(database: BenchDatabase): Promise<{ ms: number; moved: number }> {
  const started = performance.now();
  const moved = await queueDueReminders(database.pool, new Date(Date.now() + QUEUE_AHEAD_MS));
  return { ms: performance.now() - started, moved };
}

export async function benchReminders(): Promise<Metrics> {
  const database = await benchDatabase(4);
  try {
    await migrateDeliveryQueue(database.pool);
    await settle(database);
    console.log(`${JOBS} trickled jobs with no reminders…`);
    const none = await trickle(database);
    console.log(`${REMINDERS} reminders scheduled…`);
    const scheduledPerSecond = await scheduleReminders(database);
    await settle(database);
    const trials = { scheduled: [] as number[], queued: [] as number[] };
    for (let turn = 0; turn < 2; turn++) {
      trials.scheduled.push(await trickle(database));
      await queueAllReminders(database);
      trials.queued.push(await trickle(database));
      await scheduleAllReminders(database);
      console.log(
        `trial ${turn + 1}: ${round(trials.scheduled[turn] ?? 0, 0)} µs a job scheduled, ${round(trials.queued[turn] ?? 0, 0)} µs queued`,
      );
    }
    const empty: number[] = [];
    for (let i = 0; i < 21; i++) empty.push((await timedRound(database)).ms);
    await database.pool.query(
      `update reminders_scheduled set run_at = now() + interval '5 minutes'
        where (commitment_id, job_key) in (select commitment_id, job_key from reminders_scheduled limit $1)`,
      [DUE],
    );
    await settle(database);
    const moving = await timedRound(database);
    if (moving.moved !== DUE) throw new Error(`the round moved ${moving.moved} reminders, not ${DUE}`);
    const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;
    const scheduled = mean(trials.scheduled);
    const queued = mean(trials.queued);
    return {
      'reminders.scheduled_per_s': { value: round(scheduledPerSecond, 0), unit: 'reminders/s' },
      'reminders.job_cpu_us_none': { value: round(none, 0), unit: 'µs per job' },
      'reminders.job_cpu_us': { value: round(scheduled, 0), unit: 'µs per job' },
      'reminders.job_cpu_us_queued': { value: round(queued, 0), unit: 'µs per job' },
      'reminders.queued_ratio': { value: round(queued / scheduled), unit: '×' },
      'reminders.round_ms_empty': { value: round(median(empty)), unit: 'ms' },
      'reminders.round_us_per_reminder': { value: round((moving.ms / DUE) * 1000, 1), unit: 'µs' },
    };
  } finally {
    await database.close();
  }
}
