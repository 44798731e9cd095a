// Operations: /metrics counts the delivery queue's jobs, the deliveries by channel and outcome and
// how far each projection is behind the ledger; /readyz names a projection that is stuck.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Entry } from '@connect/ledger';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type Stack, testStack } from '../../../test/support/stack.ts';
import { type Account, signUp } from '../../command/test/support.ts';
import { buildApp } from '../../projector/src/app.ts';
import type { Projection } from '../../projector/src/projection.ts';
import { ORIGIN, projectorLedger, registerProfile } from '../../projector/test/support.ts';
import { listDeadLetters } from '../src/queue/dead-letters.ts';
import { type DeliveryQueue, openDeliveryQueue } from '../src/queue/setup.ts';
import { createEndpoint } from '../src/webhooks/store.ts';
import { deliveryConfigWithoutProviders } from './queue-support.ts';
import { receiver } from './webhooks-support.ts';

/** The value of `name{labels…}` in a Prometheus text exposition, or undefined when absent. */
function sample(body: string, name: string, labels: Record<string, string>): number | undefined {
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
  for (const line of body.split('\n')) {
    const match = /^([a-z_]+)\{(.*)\} (\S+)$/.exec(line);
    if (match?.[1] !== name) continue;
    const present = (match[2] ?? '').split(',');
    if (wanted.every((pair) => present.includes(pair))) return Number(match[3]);
  }
  return undefined;
}

async function eventually<T>(check: () => Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('/metrics of an app with the notifier', () => {
  let s: Stack;
  let queue: DeliveryQueue;
  let dataDir: string;
  let hook: Awaited<ReturnType<typeof receiver>>;
  let ana: Account;
  let ben: Account;
  let cat: Account;
  const texted: string[] = [];

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'connect-metrics-'));
    s = await testStack({
      notifierHooks: async (database, cipher) => {
        queue = await openDeliveryQueue({
          pool: database.pool,
          db: database.db,
          cipher,
          config: {
            ...deliveryConfigWithoutProviders(dataDir),
            deliveryMaxAttempts: 1,
            deliveryConcurrency: 4,
          },
          // Texts reach Ben; for Cat the provider fails, and with one attempt her job is dead.
          channels: {
            sms: {
              deliver: async (notification) => {
                if (notification.recipientId === cat.userId) throw new Error('Twilio is down');
                texted.push(notification.recipientId);
                return 'sent';
              },
            },
          },
          pollInterval: 200,
        });
        return queue.hooks;
      },
    });
    queue.registerMetrics(s.app);
    await queue.start();
    hook = await receiver(() => ({ status: 200 }));
    await createEndpoint(s.database.db, s.query.cipher.fields, { url: hook.url });
    ana = await signUp(s.app, 'Ana');
    ben = await signUp(s.app, 'Ben');
    cat = await signUp(s.app, 'Cat');
    // Both have confirmed phones, so their notifications get SMS jobs.
    for (const [who, phone] of [
      [ben, '+14155552671'],
      [cat, '+14155550123'],
    ] as const) {
      await s.database.pool.query(
        `insert into phone_numbers (user_id, phone, confirmed_at)
         values ($1, convert_to(to_json($2::text)::text, 'UTF8'), now())`,
        [who.userId, phone],
      );
    }
  }, 60_000);
  afterAll(async () => {
    await queue?.close();
    await s?.close();
    await hook?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  async function command(url: string, payload: object) {
    const response = await s.app.inject({ method: 'POST', url, payload, headers: ana.auth });
    expect(response.statusCode, response.body).toBeLessThan(300);
    return response.json() as { commitmentId: string };
  }

  const metrics = async () => (await s.app.inject({ method: 'GET', url: '/metrics' })).body;

  test('shows queue depth, deliveries by channel and outcome, and projection lag', async () => {
    const { commitmentId } = await command('/v1/commitments', { type: 'personal', title: 'Paint the fence' });
    await command(`/v1/commitments/${commitmentId}/invite`, { userId: ben.userId, role: 'participant' });
    await command(`/v1/commitments/${commitmentId}/invite`, { userId: cat.userId, role: 'witness' });

    const body = await eventually(async () => {
      const text = await metrics();
      const done =
        (sample(text, 'connect_notification_deliveries_total', { channel: 'sms', outcome: 'sent' }) ?? 0) >=
          1 &&
        (sample(text, 'connect_notification_deliveries_total', { channel: 'sms', outcome: 'error' }) ?? 0) >=
          1 &&
        (sample(text, 'connect_notification_deliveries_total', {
          channel: 'webhook',
          outcome: 'delivered',
        }) ?? 0) >= 3 &&
        sample(text, 'connect_notification_queue_jobs', { task: 'deliver-sms', state: 'dead' }) === 1 &&
        sample(text, 'connect_notification_queue_jobs', { task: 'deliver-push', state: 'waiting' }) === 0;
      return done && text;
    });
    expect(texted).toEqual([ben.userId]);
    // Nobody has a push subscription: no push job was added, so none was attempted.
    expect(sample(body, 'connect_notification_deliveries_total', { channel: 'push', outcome: 'sent' })).toBe(
      undefined,
    );
    expect(
      sample(body, 'connect_notification_deliveries_total', { channel: 'push', outcome: 'no-subscription' }),
    ).toBe(undefined);
    expect(body).toContain('# TYPE connect_notification_deliveries_total counter');
    // The dead job stays (an admin may retry it); nothing else waits.
    for (const state of ['waiting', 'retrying', 'running']) {
      expect(sample(body, 'connect_notification_queue_jobs', { task: 'deliver-sms', state })).toBe(0);
    }
    // The worker's own connections, which ran those jobs.
    expect(sample(body, 'connect_db_pool_connections', { pool: 'delivery', state: 'total' })).toBeGreaterThan(
      0,
    );
    expect(sample(body, 'connect_db_pool_connections', { pool: 'delivery', state: 'waiting' })).toBe(0);
    expect(sample(body, 'connect_notification_queue_jobs', { task: 'deliver-email', state: 'waiting' })).toBe(
      0,
    );

    const caughtUp = await eventually(async () => {
      const text = await metrics();
      return sample(text, 'connect_projection_lag_entries', { projection: 'notifications' }) === 0 && text;
    });
    for (const projection of ['profiles', 'commitments']) {
      expect(sample(caughtUp, 'connect_projection_lag_entries', { projection })).toBe(0);
      expect(sample(caughtUp, 'connect_projection_lag_seconds', { projection })).toBe(0);
    }
    expect(() => queue.assertHealthy()).not.toThrow();
  }, 40_000);

  test('counts a job on its last attempt as running, not dead', async () => {
    const key = 'metrics-test:last-attempt';
    const deadBefore = sample(await metrics(), 'connect_notification_queue_jobs', {
      task: 'deliver-sms',
      state: 'dead',
    });
    // As the worker leaves a job it has taken for its only attempt (attempts are counted as it is taken).
    await s.database.pool.query(
      `select graphile_worker.add_job('deliver-sms', '{}'::json, run_at => now() + interval '1 day',
                                      max_attempts => 1, job_key => $1)`,
      [key],
    );
    await s.database.pool.query(
      `update graphile_worker._private_jobs set attempts = 1, locked_at = now(), locked_by = 'metrics-test'
        where key = $1`,
      [key],
    );
    try {
      const body = await metrics();
      expect(sample(body, 'connect_notification_queue_jobs', { task: 'deliver-sms', state: 'running' })).toBe(
        1,
      );
      expect(sample(body, 'connect_notification_queue_jobs', { task: 'deliver-sms', state: 'dead' })).toBe(
        deadBefore,
      );
      // Nor is it a dead letter for an admin to retry.
      const { rows } = await s.database.pool.query<{ id: string }>(
        'select id::text from graphile_worker.jobs where key = $1',
        [key],
      );
      expect(rows).toHaveLength(1);
      const letters = await listDeadLetters(s.database.pool);
      expect(letters.map((letter) => letter.id)).not.toContain(rows[0]?.id);
    } finally {
      await s.database.pool.query('delete from graphile_worker._private_jobs where key = $1', [key]);
    }
  });

  test('counts a job not due yet as scheduled, not as waiting', async () => {
    const key = 'metrics-test:scheduled';
    await s.database.pool.query(
      `select graphile_worker.add_job('deliver-push', '{}'::json, run_at => now() + interval '1 day', job_key => $1)`,
      [key],
    );
    try {
      const body = await metrics();
      expect(
        sample(body, 'connect_notification_queue_jobs', { task: 'deliver-push', state: 'scheduled' }),
      ).toBe(1);
      expect(
        sample(body, 'connect_notification_queue_jobs', { task: 'deliver-push', state: 'waiting' }),
      ).toBe(0);
    } finally {
      await s.database.pool.query('select graphile_worker.remove_job($1)', [key]);
    }
    expect(
      sample(await metrics(), 'connect_notification_queue_jobs', {
        task: 'deliver-push',
        state: 'scheduled',
      }),
    ).toBe(0);
  });

  test('counts account mail waiting for SMTP, out of the queue, as waiting', async () => {
    // Without SMTP the worker moves each sign-up's verification mail out of the queue.
    const body = await eventually(async () => {
      const { rows } = await s.database.pool.query<{ jobs: number }>(
        `select count(*)::int as jobs from graphile_worker.jobs where task_identifier = 'send-account-mail'`,
      );
      return rows[0]?.jobs === 0 && metrics();
    });
    const { rows } = await s.database.pool.query<{ mails: number }>(
      'select count(*)::int as mails from account_mail_waiting',
    );
    expect(rows[0]?.mails).toBeGreaterThanOrEqual(3);
    expect(
      sample(body, 'connect_notification_queue_jobs', { task: 'send-account-mail', state: 'waiting' }),
    ).toBe(rows[0]?.mails);
  });
  test('counts reminders not due soon, waiting out of the queue, as scheduled', async () => {
    const commitmentId = randomUUID();
    const payload = { commitmentId, offsetSeconds: 3600, dueAt: '2031-01-02T00:00:00.000Z', ledgerIndex: 1 };
    const scheduled = async () =>
      sample(await metrics(), 'connect_notification_queue_jobs', { task: 'remind', state: 'scheduled' });
    // Counted as 0, not left out, when there are none.
    const before = (await scheduled()) as number;
    expect(before).toBeTypeOf('number');
    await s.database.pool.query(
      `insert into reminders_scheduled (commitment_id, job_key, run_at, payload)
       values ($1, $2, '2031-01-01T23:00:00Z', $3), ($1, $4, '2030-12-31T00:00:00Z', $3)`,
      [commitmentId, `reminder:${commitmentId}:3600`, payload, `reminder:${commitmentId}:172800`],
    );
    try {
      expect(await scheduled()).toBe(before + 2);
    } finally {
      await s.database.pool.query('delete from reminders_scheduled where commitment_id = $1', [commitmentId]);
    }
    expect(await scheduled()).toBe(before);
  });
});

describe('/readyz of the notifier', () => {
  test('names a projection that has not advanced while entries wait, until it moves again', async () => {
    const { database, ledger } = await projectorLedger();
    let release: () => void = () => undefined;
    let gate: Promise<void> | undefined;
    const applied: number[] = [];
    // Stands in for the notifications projection, with an apply that waits while the gate is shut.
    const stalling: Projection = {
      name: 'notifications',
      tables: [],
      streams: ['%'],
      async apply(_client, entries: Entry[]) {
        await gate;
        applied.push(...entries.map((entry) => entry.index));
      },
    };
    await database.pool.query(
      `insert into projection_checkpoints (projection, last_index)
       select 'notifications', tree_size - 1 from ledger_head
       on conflict (projection) do update set last_index = excluded.last_index`,
    );
    const app = buildApp(
      {
        pool: database.pool,
        origin: ORIGIN,
        cipher: ledger.cipher,
        options: { projections: [stalling], pollMs: 50, stuckAfterMs: 300 },
      },
      { logLevel: 'silent' },
    );
    try {
      const status = async () => (await app.inject({ url: '/readyz' })).statusCode;
      await eventually(async () => (await status()) === 200);

      gate = new Promise((resolve) => {
        release = resolve;
      });
      await registerProfile(ledger, 'Stuck');
      const readyz = await eventually(async () => {
        const response = await app.inject({ url: '/readyz' });
        return response.statusCode === 503 && response;
      });
      expect(readyz.json().detail).toMatch(/projection notifications stuck at entry \d+/);
      expect(readyz.json().detail).toContain('1 entries waiting');
      const lagging = (await app.inject({ url: '/metrics' })).body;
      expect(sample(lagging, 'connect_projection_lag_entries', { projection: 'notifications' })).toBe(1);
      expect(
        sample(lagging, 'connect_projection_lag_seconds', { projection: 'notifications' }),
      ).toBeGreaterThan(0.2);

      release();
      await eventually(async () => (await status()) === 200);
      expect(applied).toHaveLength(1);
      const caughtUp = (await app.inject({ url: '/metrics' })).body;
      expect(sample(caughtUp, 'connect_projection_lag_entries', { projection: 'notifications' })).toBe(0);
    } finally {
      release();
      await app.close();
      await ledger.drain();
      await database.close();
    }
  }, 30_000);
});
