// Deadline reminders: the notifications projection keeps a `remind` job per commitment and offset
// in graphile-worker's table, moving and removing them with the ledger; the task reminds each party
// once. The clock is the tests' own, except in the end-to-end run, whose offset is five seconds.
import { randomUUID } from 'node:crypto';
import { openNotificationTexts } from '@connect/db';
import { commitmentStream } from '@connect/domain';
import type { Ledger, NewEvent } from '@connect/ledger';
import { startProjector } from '@connect/projector';
import type { FastifyBaseLogger } from 'fastify';
import type { Runner } from 'graphile-worker';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { TestDatabase } from '../../../test/support/database.ts';
import { ORIGIN, projectorLedger, registerProfile } from '../../projector/test/support.ts';
import type { Notification } from '../src/notification.ts';
import { type Enqueue, ensureNotifierCheckpoint, openNotifier } from '../src/projection.ts';
import { queueHooks } from '../src/queue/enqueue.ts';
import { migrateDeliveryQueue, startDeliveryWorker } from '../src/queue/worker.ts';
import {
  REMIND_TASK,
  REMOVE_OTHER_REMINDERS,
  type ReminderJob,
  reminderJobKey,
  reminderSchedule,
  type Schedule,
} from '../src/reminders/schedule.ts';
import { duration, remind, remindTask } from '../src/reminders/task.ts';

const APP = 'https://app.example.com';
const HOUR = 3600;
const DAY = 24 * HOUR;
const quiet = { info() {}, warn() {}, error() {} } as unknown as FastifyBaseLogger;

let database: TestDatabase;
let ledger: Ledger;
let alice: string;
let bob: string;
/** The projection's clock: what "already past" means when it schedules. */
let now = new Date('2031-06-01T12:00:00.000Z');
let offsets: number[] = [7 * DAY, DAY, HOUR];
const enqueued: Notification[] = [];
const recordEnqueued: Enqueue = async (_client, notifications) => {
  enqueued.push(...notifications);
};

beforeAll(async () => {
  ({ database, ledger } = await projectorLedger());
  await migrateDeliveryQueue(database.pool);
  alice = await registerProfile(ledger, 'Alice');
  bob = await registerProfile(ledger, 'Bob');
  // The notifier follows the ledger from here on.
  await ensureNotifierCheckpoint(database.pool);
}, 60_000);
afterAll(async () => {
  await ledger.drain();
  await database.close();
});

const later = (seconds: number, from = now) => new Date(from.getTime() + seconds * 1000).toISOString();

/** Runs the notifications projection up to the ledger's head. */
async function project(schedule: Schedule = reminderSchedule({ offsets, now: () => now })): Promise<void> {
  const notifier = await openNotifier(database.pool, { appUrl: APP, enqueue: recordEnqueued, schedule });
  const projector = startProjector(
    { pool: database.pool, origin: ORIGIN, cipher: ledger.cipher, log: quiet },
    { projections: [notifier], pollMs: 25 },
  );
  const atHead = async () => {
    const { rows } = await database.pool.query<{ behind: boolean }>(
      `select last_index < (select tree_size - 1 from ledger_head) as behind
         from projection_checkpoints where projection = 'notifications'`,
    );
    return rows[0]?.behind === false;
  };
  await expect.poll(atHead, { timeout: 15_000, interval: 25 }).toBe(true);
  await projector.close();
  // A batch whose hooks failed would be quarantined, its notifications and reminders lost.
  const quarantined = await database.pool.query('select stream, error from projection_quarantine');
  expect(quarantined.rows).toEqual([]);
}

async function append(id: string, actor: string | null, ...events: NewEvent[]) {
  await ledger.append({ stream: commitmentStream(id), expectedVersion: 'any', actor, events });
}

/** Alice and Bob's commitment, active and due at `dueAt`. */
async function activeDue(title: string, dueAt: string): Promise<string> {
  const id = randomUUID();
  await append(
    id,
    alice,
    {
      type: 'CommitmentDrafted',
      schema: 2,
      data: {
        type: 'personal',
        creatorId: alice,
        title,
        description: '',
        terms: 'As agreed',
        amount: null,
        dueAt,
      },
    },
    { type: 'PartyInvited', data: { userId: bob, role: 'participant' } },
    { type: 'CommitmentProposed', data: {} },
    { type: 'InvitationAccepted', data: { userId: bob } },
    { type: 'CommitmentActivated', data: {} },
  );
  return id;
}

async function amendDueAt(id: string, dueAt: string | null) {
  const amendmentId = randomUUID();
  await append(
    id,
    alice,
    { type: 'AmendmentProposed', data: { amendmentId, userId: alice, changes: { dueAt } } },
    { type: 'AmendmentAccepted', data: { amendmentId, userId: bob } },
    { type: 'AmendmentApplied', data: { amendmentId } },
  );
}

interface JobRow {
  id: string;
  key: string;
  run_at: Date;
  payload: ReminderJob;
  task_identifier: string;
}

const reminderJobs = async (id: string) =>
  (
    await database.pool.query<JobRow>(
      `select job.id::text, job.key, job.run_at, job.payload, task.identifier as task_identifier
       from graphile_worker._private_jobs as job
       join graphile_worker._private_tasks as task on task.id = job.task_id
       where job.key like $1 order by job.run_at`,
      [`reminder:${id}:%`],
    )
  ).rows;

async function remindNow(job: ReminderJob, at: Date): Promise<Notification[]> {
  const client = await database.pool.connect();
  try {
    return await remind(client, job, {
      cipher: ledger.cipher,
      appUrl: APP,
      enqueue: recordEnqueued,
      now: () => at,
    });
  } finally {
    client.release();
  }
}

describe('scheduling', () => {
  test('a start does not wait on a busy jobs table: with the index there it takes no lock, without it it gives up after 5 s', async () => {
    const indexed = async () =>
      (
        await database.pool.query<{ found: boolean }>(
          "select to_regclass('graphile_worker.connect_jobs_key_prefix') is not null as found",
        )
      ).rows[0]?.found;
    const holder = await database.pool.connect();
    try {
      await holder.query('begin');
      await holder.query('lock table graphile_worker._private_jobs in access exclusive mode');
      let started = performance.now();
      await migrateDeliveryQueue(database.pool);
      expect(performance.now() - started).toBeLessThan(2000);

      await holder.query('rollback');
      await database.pool.query('drop index graphile_worker.connect_jobs_key_prefix');
      await holder.query('begin');
      await holder.query('lock table graphile_worker._private_jobs in access exclusive mode');
      started = performance.now();
      await migrateDeliveryQueue(database.pool);
      expect(performance.now() - started).toBeGreaterThanOrEqual(4900);
      expect(await indexed()).toBe(false);
    } finally {
      await holder.query('rollback');
      holder.release();
    }
    // The next start, with the table free, makes it.
    await migrateDeliveryQueue(database.pool);
    expect(await indexed()).toBe(true);
  }, 30_000);

  test('a commitment’s jobs are looked up by their key’s prefix in an index, whatever the collation', async () => {
    const client = await database.pool.connect();
    try {
      await client.query('begin');
      // graphile-worker's unique index on keys serves the prefix under the C collation (the
      // embedded PostgreSQL's) only: without it, the plan shows whether ours serves it under any.
      const { rows: unique } = await client.query<{ conname: string }>(
        `select conname from pg_constraint
          where conrelid = 'graphile_worker._private_jobs'::regclass and contype = 'u'`,
      );
      for (const { conname } of unique)
        await client.query(`alter table graphile_worker._private_jobs drop constraint "${conname}"`);
      // Seq scans off: the plan shows whether an index can serve the prefix, however few jobs there are.
      await client.query('set local enable_seqscan = off');
      const { rows } = await client.query<{ 'QUERY PLAN': string }>(`explain ${REMOVE_OTHER_REMINDERS}`, [
        `reminder:${randomUUID()}:%`,
        [],
      ]);
      const plan = rows.map((row) => row['QUERY PLAN']).join('\n');
      expect(plan).not.toMatch(/Seq Scan on _private_jobs/);
      expect(plan).toMatch(/Index Scan (using|on) connect_jobs_key_prefix/);
      expect(plan).toMatch(/Index Cond: \(\(key ~>=~ 'reminder:[0-9a-f-]+:'::text\) AND/);
    } finally {
      await client.query('rollback');
      client.release();
    }
  });

  test('an active commitment gets a remind job per offset still ahead, due that long before its due date', async () => {
    const dueAt = later(3 * DAY);
    const id = await activeDue('Return the drill', dueAt);
    await project();

    const jobs = await reminderJobs(id);
    // A week before is already past.
    expect(jobs.map((job) => job.key)).toEqual([reminderJobKey(id, DAY), reminderJobKey(id, HOUR)]);
    expect(jobs.map((job) => job.run_at.toISOString())).toEqual([later(2 * DAY), later(3 * DAY - HOUR)]);
    expect(jobs.every((job) => job.task_identifier === REMIND_TASK)).toBe(true);
    expect(jobs[0]?.payload).toMatchObject({ commitmentId: id, offsetSeconds: DAY, dueAt });
  });

  test('amending the due date moves the jobs (same keys, new run_at), and adds the offsets now ahead', async () => {
    const id = await activeDue('Paint the shed', later(3 * DAY));
    await project();
    const before = await reminderJobs(id);

    const dueAt = later(10 * DAY);
    await amendDueAt(id, dueAt);
    await project();

    const after = await reminderJobs(id);
    expect(after.map((job) => job.key)).toEqual([7 * DAY, DAY, HOUR].map((s) => reminderJobKey(id, s)));
    expect(after.map((job) => job.run_at.toISOString())).toEqual([
      later(3 * DAY),
      later(9 * DAY),
      later(10 * DAY - HOUR),
    ]);
    expect(after.every((job) => job.payload.dueAt === dueAt)).toBe(true);
    const dayBefore = (jobs: JobRow[]) => jobs.find((job) => job.key === reminderJobKey(id, DAY))?.id;
    expect(dayBefore(after)).toBe(dayBefore(before));
  });

  test('cancelling the commitment, or clearing its due date, removes its jobs', async () => {
    const cancelled = await activeDue('Walk the dog', later(3 * DAY));
    const undated = await activeDue('Water the plants', later(3 * DAY));
    await project();
    expect(await reminderJobs(cancelled)).toHaveLength(2);

    await append(cancelled, alice, { type: 'CommitmentCancelled', data: { reason: 'Moved away' } });
    await amendDueAt(undated, null);
    await project();

    expect(await reminderJobs(cancelled)).toEqual([]);
    expect(await reminderJobs(undated)).toEqual([]);
  });

  test("one batch's commitments are rescheduled together, in one round trip", async () => {
    const moved = await activeDue('Fix the fence', later(3 * DAY));
    const ended = await activeDue('Bake the cake', later(3 * DAY));
    await project();
    const started = await activeDue('Mow the lawn', later(3 * DAY));
    await amendDueAt(moved, later(10 * DAY));
    await append(ended, alice, { type: 'CommitmentCancelled', data: { reason: 'No oven' } });
    const roundTrips: number[] = [];
    const schedule = reminderSchedule({ offsets, now: () => now });
    await project(async (client, happenings) => {
      let sent = 0;
      const counted = Object.create(client, {
        query: {
          value: (...args: unknown[]) => {
            sent++;
            return (client.query as (...a: unknown[]) => unknown).apply(client, args);
          },
        },
      }) as pg.ClientBase;
      await schedule(counted, happenings);
      roundTrips.push(sent);
    });
    expect(roundTrips).toEqual([1]);
    expect((await reminderJobs(started)).map((job) => job.key)).toEqual([
      reminderJobKey(started, DAY),
      reminderJobKey(started, HOUR),
    ]);
    expect((await reminderJobs(moved)).map((job) => job.run_at.toISOString())).toEqual([
      later(3 * DAY),
      later(9 * DAY),
      later(10 * DAY - HOUR),
    ]);
    expect(await reminderJobs(ended)).toEqual([]);
  });

  test('a draft with a due date has no reminders until it is active', async () => {
    const id = randomUUID();
    await append(id, alice, {
      type: 'CommitmentDrafted',
      schema: 2,
      data: {
        type: 'personal',
        creatorId: alice,
        title: 'Not yet',
        description: '',
        terms: '',
        amount: null,
        dueAt: later(3 * DAY),
      },
    });
    await project();
    expect(await reminderJobs(id)).toEqual([]);
  });
});

describe('the remind task', () => {
  test('reminds each party once, with the title and the time left', async () => {
    const dueAt = later(2 * DAY);
    const id = await activeDue('Lend a bike', dueAt);
    await project();
    const job = (await reminderJobs(id)).find((row) => row.payload.offsetSeconds === DAY)
      ?.payload as ReminderJob;
    const at = new Date(later(DAY));
    enqueued.length = 0;

    const first = await remindNow(job, at);
    const again = await remindNow(job, at);

    expect(first.map((n) => n.recipientId).sort()).toEqual([alice, bob].sort());
    expect(again).toEqual([]);
    expect(enqueued.map((n) => n.id).sort()).toEqual(first.map((n) => n.id).sort());
    const toBob = first.find((n) => n.recipientId === bob);
    expect(toBob).toMatchObject({
      kind: 'reminder',
      title: 'Reminder: “Lend a bike” is due in 1 day',
      body: `It is due ${dueAt.slice(0, 10)} 12:00 UTC, with Alice.`,
      link: `${APP}/commitments/${id}`,
      commitmentId: id,
      createdAt: at.toISOString(),
    });
    const { rows } = await database.pool.query('select recipient_id from notifications where id = any($1)', [
      first.map((n) => n.id),
    ]);
    expect(rows).toHaveLength(2);
  });

  test('a job for a due date since moved, or a commitment since ended, reminds no one', async () => {
    const dueAt = later(2 * DAY);
    const id = await activeDue('Fix the gate', dueAt);
    await project();
    const job = (await reminderJobs(id)).find((row) => row.payload.offsetSeconds === DAY)
      ?.payload as ReminderJob;

    await amendDueAt(id, later(5 * DAY));
    expect(await remindNow(job, new Date(later(DAY)))).toEqual([]);

    await append(id, bob, { type: 'CommitmentCancelled', data: {} });
    const moved = { ...job, dueAt: later(5 * DAY) };
    expect(await remindNow(moved, new Date(later(4 * DAY)))).toEqual([]);
  });

  test('offsets read as a person would say them', () => {
    expect([7 * DAY, DAY, 2 * DAY, HOUR, 90 * 60, 2].map(duration)).toEqual([
      '1 week',
      '1 day',
      '2 days',
      '1 hour',
      '90 minutes',
      '2 seconds',
    ]);
  });
});

describe('end to end', () => {
  test('a job waiting in the table fires once across a restart and two workers; the deadline then tells the parties it is overdue', async () => {
    const saved = { now, offsets };
    now = new Date();
    offsets = [5];
    try {
      const dueAt = later(10);
      const id = await activeDue('Feed the cat', dueAt);
      await project();
      expect(await reminderJobs(id)).toHaveLength(1);

      const emailed: string[] = [];
      const { enqueue } = queueHooks({ channels: ['email'], maxAttempts: 3, cipher: ledger.cipher.fields });
      const worker = () =>
        startDeliveryWorker({
          pool: database.pool,
          db: database.db,
          fields: ledger.cipher.fields,
          channels: { email: { deliver: async (n) => emailed.push(n.id) } },
          webhooks: { cipher: ledger.cipher.fields, allowPrivate: true },
          tasks: {
            [REMIND_TASK]: remindTask({ pool: database.pool, cipher: ledger.cipher, appUrl: APP, enqueue }),
          },
          pollInterval: 100,
        });
      // A worker that stops before the job is due: the job stays in the table.
      await (await worker()).stop();
      const runners: Runner[] = [await worker(), await worker()];
      try {
        const reminders = async () =>
          (
            await database.pool.query<{ recipient_id: string }>(
              `select recipient_id from notifications where commitment_id = $1 and kind = 'reminder'`,
              [id],
            )
          ).rows;
        await expect.poll(async () => (await reminders()).length, { timeout: 15_000, interval: 100 }).toBe(2);
        await expect.poll(() => emailed.length, { timeout: 10_000, interval: 100 }).toBe(2);
        expect(await reminderJobs(id)).toEqual([]);
        expect((await reminders()).map((row) => row.recipient_id).sort()).toEqual([alice, bob].sort());
        expect(new Set(emailed).size).toBe(2);
      } finally {
        for (const runner of runners) await runner.stop();
      }

      // The deadline sweep (the command service) appends DeadlineMissed; the parties hear of it.
      await append(id, null, { type: 'DeadlineMissed', data: { dueAt } });
      await project();
      const lifecycle = await database.pool.query<{ id: string; recipient_id: string; sealed: Buffer }>(
        `select id, recipient_id, sealed from notifications where commitment_id = $1 and kind = 'lifecycle'`,
        [id],
      );
      const texts = await openNotificationTexts(
        ledger.cipher.fields,
        lifecycle.rows.map((row) => ({ ...row, recipientId: row.recipient_id })),
      );
      const rows = lifecycle.rows
        .map((row, i) => ({ recipient_id: row.recipient_id, title: texts[i]?.title ?? '' }))
        .filter((row) => row.title.includes('overdue'));
      expect(rows.map((row) => row.recipient_id).sort()).toEqual([alice, bob].sort());
      expect(rows[0]?.title).toBe('“Feed the cat” is overdue');
    } finally {
      ({ now, offsets } = saved);
    }
  }, 40_000);
});
