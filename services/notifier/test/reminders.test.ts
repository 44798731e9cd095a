// Deadline reminders: the notifications projection keeps a reminder per commitment and offset,
// moving and removing them with the ledger: a `remind` job in graphile-worker's table when it is due
// within QUEUE_AHEAD_MS, and otherwise a row of reminders_scheduled, which the worker's rounds move
// into the queue as it comes due; the task reminds each party once. The clock is the tests' own,
// except in the end-to-end runs, whose offset is five seconds.
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MIGRATIONS_DIR, openNotificationTexts } from '@connect/db';
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
import { type DeliveryQueue, openDeliveryQueue } from '../src/queue/setup.ts';
import { migrateDeliveryQueue, startDeliveryWorker } from '../src/queue/worker.ts';
import {
  QUEUE_AHEAD_MS,
  queueDueReminders,
  REMIND_TASK,
  REMOVE_OTHER_REMINDERS,
  type ReminderJob,
  reminderJobKey,
  reminderSchedule,
  type Schedule,
} from '../src/reminders/schedule.ts';
import { duration, remind, remindTask } from '../src/reminders/task.ts';
import { deliveryConfigWithoutProviders } from './queue-support.ts';

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

interface ReminderRow {
  key: string;
  run_at: Date;
  payload: ReminderJob;
  /** Where it waits: a job in the queue, or a row of the schedule. */
  place: 'queue' | 'schedule';
}

/** A commitment's reminders, queued and scheduled, by time. */
const remindersOf = async (id: string) =>
  (
    await database.pool.query<ReminderRow>(
      `select job.key, job.run_at, job.payload::jsonb, 'queue' as place
         from graphile_worker._private_jobs as job
         join graphile_worker._private_tasks as task on task.id = job.task_id
        where job.key like $1 and task.identifier = $2
       union all
       select job_key, run_at, payload, 'schedule' from reminders_scheduled where commitment_id = $3
       order by run_at`,
      [`reminder:${id}:%`, REMIND_TASK, id],
    )
  ).rows;

/** The job ids of a commitment's queued reminders, by key. */
const queuedJobIds = async (id: string) =>
  Object.fromEntries(
    (
      await database.pool.query<{ key: string; id: string }>(
        'select key, id::text from graphile_worker._private_jobs where key like $1',
        [`reminder:${id}:%`],
      )
    ).rows.map((row) => [row.key, row.id]),
  );

/** The payload of a commitment's reminder at `offsetSeconds`, wherever it waits. */
const reminderPayload = async (id: string, offsetSeconds: number) => {
  const reminder = (await remindersOf(id)).find((row) => row.payload.offsetSeconds === offsetSeconds);
  if (!reminder) throw new Error(`no reminder ${offsetSeconds} s before for ${id}`);
  return reminder.payload;
};

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

  test('an active commitment gets a reminder per offset still ahead, due that long before its due date; none due within ten minutes waits in the queue', async () => {
    const dueAt = later(3 * DAY);
    const id = await activeDue('Return the drill', dueAt);
    await project();

    const reminders = await remindersOf(id);
    // A week before is already past.
    expect(reminders.map((r) => [r.key, r.run_at.toISOString(), r.place])).toEqual([
      [reminderJobKey(id, DAY), later(2 * DAY), 'schedule'],
      [reminderJobKey(id, HOUR), later(3 * DAY - HOUR), 'schedule'],
    ]);
    expect(reminders[0]?.payload).toEqual({
      commitmentId: id,
      offsetSeconds: DAY,
      dueAt,
      ledgerIndex: expect.any(Number),
    });
  });

  test('a reminder due within ten minutes is a job in the queue at once', async () => {
    const soon = QUEUE_AHEAD_MS / 1000;
    const id = await activeDue('Return the saw', later(DAY + soon));
    await project();

    expect((await remindersOf(id)).map((r) => [r.key, r.run_at.toISOString(), r.place])).toEqual([
      [reminderJobKey(id, DAY), later(soon), 'queue'],
      [reminderJobKey(id, HOUR), later(DAY + soon - HOUR), 'schedule'],
    ]);
  });

  test('amending the due date moves the reminders, between the queue and the schedule as their time asks', async () => {
    const id = await activeDue('Paint the shed', later(DAY + 300));
    await project();
    const queued = await queuedJobIds(id);
    expect(Object.keys(queued)).toEqual([reminderJobKey(id, DAY)]);
    const placed = async () =>
      (await remindersOf(id)).map((r) => [r.key, r.run_at.toISOString(), r.place, r.payload.dueAt]);

    // Still soon: the queued job is moved in place (same key, same job, new run_at).
    await amendDueAt(id, later(DAY + 200));
    await project();
    expect(await placed()).toEqual([
      [reminderJobKey(id, DAY), later(200), 'queue', later(DAY + 200)],
      [reminderJobKey(id, HOUR), later(DAY + 200 - HOUR), 'schedule', later(DAY + 200)],
    ]);
    expect(await queuedJobIds(id)).toEqual(queued);

    // Further off: the queued one leaves the queue, and the offsets now ahead are added.
    await amendDueAt(id, later(10 * DAY));
    await project();
    expect(await placed()).toEqual([
      [reminderJobKey(id, 7 * DAY), later(3 * DAY), 'schedule', later(10 * DAY)],
      [reminderJobKey(id, DAY), later(9 * DAY), 'schedule', later(10 * DAY)],
      [reminderJobKey(id, HOUR), later(10 * DAY - HOUR), 'schedule', later(10 * DAY)],
    ]);

    // Sooner again: the day-before one comes back into the queue, and the week-before one is past.
    await amendDueAt(id, later(DAY + 120));
    await project();
    expect(await placed()).toEqual([
      [reminderJobKey(id, DAY), later(120), 'queue', later(DAY + 120)],
      [reminderJobKey(id, HOUR), later(DAY + 120 - HOUR), 'schedule', later(DAY + 120)],
    ]);
  });

  test('cancelling the commitment, or clearing its due date, removes its reminders from the queue and the schedule', async () => {
    const cancelled = await activeDue('Walk the dog', later(DAY + 300));
    const undated = await activeDue('Water the plants', later(DAY + 300));
    await project();
    expect((await remindersOf(cancelled)).map((r) => r.place)).toEqual(['queue', 'schedule']);
    expect((await remindersOf(undated)).map((r) => r.place)).toEqual(['queue', 'schedule']);

    await append(cancelled, alice, { type: 'CommitmentCancelled', data: { reason: 'Moved away' } });
    await amendDueAt(undated, null);
    await project();

    expect(await remindersOf(cancelled)).toEqual([]);
    expect(await remindersOf(undated)).toEqual([]);
  });

  test("one batch's commitments are rescheduled together, in one round trip", async () => {
    const moved = await activeDue('Fix the fence', later(DAY + 300));
    const ended = await activeDue('Bake the cake', later(DAY + 300));
    await project();
    const started = await activeDue('Mow the lawn', later(DAY + 300));
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
    expect((await remindersOf(started)).map((r) => [r.key, r.place])).toEqual([
      [reminderJobKey(started, DAY), 'queue'],
      [reminderJobKey(started, HOUR), 'schedule'],
    ]);
    expect((await remindersOf(moved)).map((r) => [r.run_at.toISOString(), r.place])).toEqual([
      [later(3 * DAY), 'schedule'],
      [later(9 * DAY), 'schedule'],
      [later(10 * DAY - HOUR), 'schedule'],
    ]);
    expect(await remindersOf(ended)).toEqual([]);
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
    expect(await remindersOf(id)).toEqual([]);
  });

  test('a round moves the scheduled reminders due by its horizon into the queue, as the jobs the projection adds', async () => {
    const id = await activeDue('Sweep the yard', later(3 * DAY));
    const sooner = await activeDue('Rake the leaves', later(2 * DAY));
    await project();
    const [dayBefore, hourBefore] = await remindersOf(id);
    const scheduled = async () =>
      Number((await database.pool.query('select count(*) from reminders_scheduled')).rows[0].count);
    const waiting = await scheduled();

    // Two at a time (three are due): a round goes on until none is left.
    const moved = await queueDueReminders(database.pool, new Date(later(2 * DAY)), 2);

    expect(moved).toBeGreaterThanOrEqual(3);
    expect(waiting - (await scheduled())).toBe(moved);
    expect(await remindersOf(id)).toEqual([
      { ...dayBefore, place: 'queue' },
      { ...hourBefore, place: 'schedule' },
    ]);
    expect((await remindersOf(sooner)).map((r) => r.place)).toEqual(['queue', 'queue']);
    const { rows } = await database.pool.query(
      'select max_attempts, attempts, locked_at from graphile_worker._private_jobs where key = $1',
      [reminderJobKey(id, DAY)],
    );
    expect(rows).toEqual([{ max_attempts: 5, attempts: 0, locked_at: null }]);
    expect(await queueDueReminders(database.pool, new Date(later(2 * DAY)))).toBe(0);
    await expect(queueDueReminders(database.pool, new Date(later(2 * DAY)), 0)).rejects.toThrow(RangeError);
  });

  test('a round skips the rows another transaction holds, without waiting, and the next one moves them', async () => {
    const id = await activeDue('Clean the gutters', later(3 * DAY));
    await project();
    const holder = await database.pool.connect();
    try {
      await holder.query('begin');
      await holder.query('select 1 from reminders_scheduled where commitment_id = $1 for update', [id]);
      const round = queueDueReminders(database.pool, new Date(later(3 * DAY)));
      const waited = new Promise((resolve) => setTimeout(resolve, 3000, 'waited'));
      expect(await Promise.race([round, waited])).toEqual(expect.any(Number));
      expect((await remindersOf(id)).map((r) => r.place)).toEqual(['schedule', 'schedule']);
    } finally {
      await holder.query('rollback');
      holder.release();
    }
    await queueDueReminders(database.pool, new Date(later(3 * DAY)));
    expect((await remindersOf(id)).map((r) => r.place)).toEqual(['queue', 'queue']);
  });

  test('a round drops a scheduled row whose key is already a job, as a notifier older than the schedule adds, and keeps the job', async () => {
    const id = await activeDue('Oil the hinges', later(3 * DAY));
    await project();
    // An older notifier, still running in a rolling restart, moved the due date: it replaced the
    // job and left the row.
    const newer = { commitmentId: id, offsetSeconds: DAY, dueAt: later(4 * DAY), ledgerIndex: 999_999 };
    await database.pool.query(
      `select graphile_worker.add_job($1, $2::json, run_at => $3, max_attempts => 5, job_key => $4)`,
      [REMIND_TASK, JSON.stringify(newer), later(3 * DAY), reminderJobKey(id, DAY)],
    );

    await queueDueReminders(database.pool, new Date(later(2 * DAY)));

    const reminders = await remindersOf(id);
    expect(reminders.map((r) => [r.key, r.place, r.payload.dueAt])).toEqual([
      [reminderJobKey(id, HOUR), 'schedule', later(3 * DAY)],
      [reminderJobKey(id, DAY), 'queue', later(4 * DAY)],
    ]);
  });

  test('migration 035 moves the reminders a notifier queued before into the schedule, but those due within ten minutes, being run or retried', async () => {
    const id = randomUUID();
    const inSeconds = (seconds: number) => new Date(Date.now() + seconds * 1000);
    const queue = async (offsetSeconds: number, runAt: Date) => {
      const payload = {
        commitmentId: id,
        offsetSeconds,
        dueAt: inSeconds(8 * DAY).toISOString(),
        ledgerIndex: 7,
      };
      await database.pool.query(
        `select graphile_worker.add_job($1, $2::json, run_at => $3, max_attempts => 5, job_key => $4)`,
        [REMIND_TASK, JSON.stringify(payload), runAt, reminderJobKey(id, offsetSeconds)],
      );
    };
    await queue(7 * DAY, inSeconds(DAY));
    await queue(DAY, inSeconds(7 * DAY));
    await queue(HOUR, inSeconds(300));
    await queue(60, inSeconds(2 * DAY));
    await queue(120, inSeconds(2 * DAY));
    await database.pool.query(
      `update graphile_worker._private_jobs set locked_at = now(), locked_by = 'a worker' where key = $1`,
      [reminderJobKey(id, 60)],
    );
    // Run and failed once: graphile-worker owns its retries.
    await database.pool.query(`update graphile_worker._private_jobs set attempts = 1 where key = $1`, [
      reminderJobKey(id, 120),
    ]);

    await database.pool.query(
      await readFile(path.join(MIGRATIONS_DIR, '035_reminders_out_of_queue.sql'), 'utf8'),
    );

    expect(
      Object.fromEntries((await remindersOf(id)).map((r) => [r.payload.offsetSeconds, r.place])),
    ).toEqual({ [7 * DAY]: 'schedule', [DAY]: 'schedule', [HOUR]: 'queue', 60: 'queue', 120: 'queue' });
    const { rows } = await database.pool.query(
      'select job_key, payload from reminders_scheduled where commitment_id = $1 order by run_at',
      [id],
    );
    expect(rows.map((row) => [row.job_key, row.payload.offsetSeconds])).toEqual([
      [reminderJobKey(id, 7 * DAY), 7 * DAY],
      [reminderJobKey(id, DAY), DAY],
    ]);
  });
});

describe('the remind task', () => {
  test('reminds each party once, with the title and the time left', async () => {
    const dueAt = later(2 * DAY);
    const id = await activeDue('Lend a bike', dueAt);
    await project();
    const job = await reminderPayload(id, DAY);
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
    const job = await reminderPayload(id, DAY);

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
      expect((await remindersOf(id)).map((r) => r.place)).toEqual(['queue']);

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
        // The job's completion is committed after its emails are queued, and may come after they are sent.
        await expect.poll(() => remindersOf(id), { timeout: 10_000, interval: 100 }).toEqual([]);
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

  test('reminders scheduled out of the queue are moved into it by the delivery queue, as it starts and by its rounds, and remind on time', async () => {
    const saved = { now, offsets };
    // The projection's clock an hour behind: a reminder due in seconds looks an hour off, so it waits
    // in the schedule.
    now = new Date(Date.now() - HOUR * 1000);
    offsets = [5];
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'connect-reminders-'));
    const inSeconds = (seconds: number) => new Date(Date.now() + seconds * 1000).toISOString();
    const reminded = async (id: string) =>
      (
        await database.pool.query<{ created_at: Date }>(
          `select created_at from notifications where commitment_id = $1 and kind = 'reminder'`,
          [id],
        )
      ).rows.map((row) => row.created_at.getTime());
    let queue: DeliveryQueue | undefined;
    try {
      const beforeStart = inSeconds(40);
      const fish = await activeDue('Feed the fish', beforeStart);
      await project();
      expect((await remindersOf(fish)).map((r) => r.place)).toEqual(['schedule']);

      const options = {
        pool: database.pool,
        db: database.db,
        cipher: ledger.cipher,
        config: {
          ...deliveryConfigWithoutProviders(dataDir),
          deliveryMaxAttempts: 3,
          deliveryConcurrency: 2,
          reminderOffsets: offsets,
          appUrl: APP,
        },
        pollInterval: 100,
        queueDueRemindersEvery: 200,
      };
      // A round must come within the horizon, or a reminder could be queued after its time.
      await expect(openDeliveryQueue({ ...options, queueDueRemindersEvery: QUEUE_AHEAD_MS })).rejects.toThrow(
        `queueDueRemindersEvery must be above 0 and below ${QUEUE_AHEAD_MS} ms`,
      );
      queue = await openDeliveryQueue(options);
      await queue.start();
      // Moved as the queue started (and perhaps run already, on a slow machine).
      expect((await remindersOf(fish)).map((r) => r.place)).not.toContain('schedule');

      // Scheduled once the queue runs: only a later round moves it.
      const afterStart = inSeconds(20);
      const bird = await activeDue('Feed the bird', afterStart);
      await project();

      for (const [id, dueAt] of [
        [fish, beforeStart],
        [bird, afterStart],
      ] as const) {
        await expect
          .poll(async () => (await reminded(id)).length, { timeout: 60_000, interval: 200 })
          .toBe(2);
        for (const at of await reminded(id)) expect(at).toBeGreaterThanOrEqual(Date.parse(dueAt) - 5_000);
        expect(await remindersOf(id)).toEqual([]);
      }
    } finally {
      await queue?.close();
      ({ now, offsets } = saved);
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 150_000);
});
