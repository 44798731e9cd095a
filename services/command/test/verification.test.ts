// Verifying an email, and moving an account to another one, through mail a real SMTP server
// receives from the notifier's worker.
import { createHash } from 'node:crypto';
import { ACCOUNT_MAIL_TASK, type DeliveryQueue, waitForSmtpTask } from '@connect/notifier';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type Inbox, mailWorker, smtpInbox, tokenIn } from './mail-support.ts';
import { signUp, type TestApp, testApp } from './support.ts';

let t: TestApp;
let inbox: Inbox;
let queue: DeliveryQueue;

beforeAll(async () => {
  t = await testApp();
  inbox = await smtpInbox();
  queue = await mailWorker(t, inbox.url);
});
afterAll(async () => {
  await queue.close();
  await inbox.close();
  await t.close();
});

const post = (url: string, payload: object, headers: Record<string, string> = {}) =>
  t.app.inject({ method: 'POST', url, payload, headers });
const me = async (auth: { authorization: string }) =>
  (await t.app.inject({ method: 'GET', url: '/v1/auth/me', headers: auth })).json();

describe('verifying the email', () => {
  test('signup mails a link; following it verifies the address, once', async () => {
    const ana = await signUp(t.app, 'Ana');
    expect(await me(ana.auth)).toMatchObject({ email: ana.email, emailVerified: false });

    const mail = await inbox.next(ana.email);
    expect(mail.subject).toBe('Confirm your email address');
    const token = tokenIn(mail, 'verify-email');
    // Only a hash of it is stored; the queue's job never held it.
    const stored = await t.database.pool.query(
      "select encode(token_hash, 'hex') as hash, purpose from account_tokens",
    );
    expect(stored.rows).toEqual([
      { hash: createHash('sha256').update(token).digest('hex'), purpose: 'verify-email' },
    ]);

    const verified = await post('/v1/auth/verify', { token });
    expect(verified.statusCode).toBe(200);
    expect(verified.json().user).toMatchObject({ id: ana.userId, emailVerified: true });
    expect(await me(ana.auth)).toMatchObject({ emailVerified: true });
    const login = await post('/v1/auth/token', {
      grant_type: 'password',
      email: ana.email,
      password: 'correct horse battery',
    });
    expect(login.json().user).toMatchObject({ emailVerified: true });

    const again = await post('/v1/auth/verify', { token });
    expect(again.statusCode).toBe(400);
    expect(again.headers['content-type']).toContain('application/problem+json');
    expect(again.json().errors).toEqual([{ path: 'body.token', message: expect.any(String) }]);
    expect(again.body).not.toContain(token);
  });

  test('bad input and unknown tokens are 400 naming body.token', async () => {
    for (const payload of [{}, { token: '' }, { token: 'x'.repeat(201) }, { token: 'unknown-token' }]) {
      const response = await post('/v1/auth/verify', payload);
      expect(response.statusCode).toBe(400);
      expect(response.json().errors.map((e: { path: string }) => e.path)).toEqual(['body.token']);
    }
  });
});

describe('changing the email', () => {
  test('needs the password; applies only once the link mailed to the new address is followed', async () => {
    const ben = await signUp(t.app, 'Ben');
    await inbox.next(ben.email);
    const newEmail = `ben-new-${Date.now()}@example.test`;

    const wrong = await post('/v1/auth/email', { email: newEmail, password: 'not it at all' }, ben.auth);
    expect(wrong.statusCode).toBe(400);
    expect(wrong.json().errors).toEqual([{ path: 'body.password', message: expect.any(String) }]);
    const same = await post(
      '/v1/auth/email',
      { email: ben.email, password: 'correct horse battery' },
      ben.auth,
    );
    expect(same.json().errors).toEqual([{ path: 'body.email', message: expect.any(String) }]);
    const bad = await post('/v1/auth/email', { email: 'nope', password: 'correct horse battery' }, ben.auth);
    expect(bad.json().errors.map((e: { path: string }) => e.path)).toEqual(['body.email']);
    const cat = await signUp(t.app, 'Cat');
    const taken = await post(
      '/v1/auth/email',
      { email: cat.email, password: 'correct horse battery' },
      ben.auth,
    );
    expect(taken.statusCode).toBe(409);
    expect(
      (await post('/v1/auth/email', { email: newEmail, password: 'x' })).statusCode,
      'without a token',
    ).toBe(401);

    const asked = await post(
      '/v1/auth/email',
      { email: newEmail, password: 'correct horse battery' },
      ben.auth,
    );
    expect(asked.statusCode).toBe(202);
    const notice = await inbox.next(ben.email);
    expect(notice.subject).toMatch(/moving to another email address/);
    expect(notice.text).not.toContain(newEmail);
    expect(notice.text).toContain('@example.test');
    const link = await inbox.next(newEmail);
    const token = tokenIn(link, 'verify-email');
    // Nothing changed yet.
    expect(await me(ben.auth)).toMatchObject({ email: ben.email });

    const followed = await post('/v1/auth/verify', { token });
    expect(followed.statusCode).toBe(200);
    expect(followed.json().user).toMatchObject({ email: newEmail, emailVerified: true });
    expect(await me(ben.auth)).toMatchObject({ email: newEmail, emailVerified: true });
    const login = (email: string) =>
      post('/v1/auth/token', { grant_type: 'password', email, password: 'correct horse battery' });
    expect((await login(newEmail)).statusCode).toBe(200);
    expect((await login(ben.email)).statusCode).toBeGreaterThanOrEqual(400);
    expect((await post('/v1/auth/verify', { token })).statusCode).toBe(400);
  });
});

describe('without SMTP', () => {
  test('the mail waits out of the queue, holding no token, until a worker with SMTP sends it', async () => {
    const bare = await testApp();
    const warnings: string[] = [];
    const idle = await mailWorker(bare, undefined, { warn: (_, message) => warnings.push(message) });
    let resumed: DeliveryQueue | undefined;
    const queued = async () =>
      (
        await sql<{ payload: Record<string, unknown> }>`
          select job.payload from graphile_worker._private_jobs as job
          join graphile_worker._private_tasks as task on task.id = job.task_id
          where task.identifier = ${ACCOUNT_MAIL_TASK}`.execute(bare.database.db)
      ).rows;
    const waiting = async () =>
      (
        await sql<{ payload: Record<string, unknown> }>`
          select payload from account_mail_waiting`.execute(bare.database.db)
      ).rows;
    try {
      const dan = await signUp(bare.app, 'Dan');
      expect(warnings).toEqual([expect.stringContaining('CONNECT_SMTP_URL is unset')]);
      // The worker takes the job out of the queue, so no job fetch steps past it.
      const until = Date.now() + 10_000;
      while ((await waiting()).length === 0 && Date.now() < until)
        await new Promise((resolve) => setTimeout(resolve, 50));
      expect(await waiting()).toEqual([
        {
          payload: {
            purpose: 'verify-email',
            userId: dan.userId,
            // The blind index of the address it is asked for, never the address.
            emailIndex: expect.any(String),
            requestedAt: expect.any(String),
          },
        },
      ]);
      expect(await queued()).toEqual([]);
      expect(JSON.stringify(await waiting())).not.toContain(dan.email);
      expect(await bare.database.db.selectFrom('account_tokens').selectAll().execute()).toEqual([]);

      await idle.close();
      resumed = await mailWorker(bare, inbox.url);
      const token = tokenIn(await inbox.next(dan.email), 'verify-email');
      const verified = await bare.app.inject({ method: 'POST', url: '/v1/auth/verify', payload: { token } });
      expect(verified.json().user).toMatchObject({ id: dan.userId, emailVerified: true });
      expect(await waiting()).toEqual([]);
      expect(await queued()).toEqual([]);

      // A worker with SMTP also takes back what waits later (a worker without it elsewhere left it).
      const eve = await signUp(bare.app, 'Eve');
      tokenIn(await inbox.next(eve.email), 'verify-email');
      const { rows } = await sql<{ index: string }>`
        select encode(email_index, 'base64') as index from users where id = ${eve.userId}`.execute(
        bare.database.db,
      );
      const again = { purpose: 'verify-email', userId: eve.userId, emailIndex: rows[0]?.index };
      await sql`insert into account_mail_waiting (job_id, payload)
        values (0, ${JSON.stringify({ ...again, requestedAt: new Date().toISOString() })}::jsonb)`.execute(
        bare.database.db,
      );
      tokenIn(await inbox.next(eve.email), 'verify-email');
      expect(await waiting()).toEqual([]);
    } finally {
      await resumed?.close();
      await idle.close();
      await bare.close();
    }
  });

  test('mail for an account being erased, or for none, does not stay waiting', async () => {
    const bare = await testApp();
    try {
      const fay = await signUp(bare.app, 'Fay');
      for (const email of [fay.email, `nobody-${Date.now()}@example.test`]) {
        const asked = await bare.app.inject({ method: 'POST', url: '/v1/auth/recover', payload: { email } });
        expect(asked.statusCode).toBe(202);
      }
      const { rows: jobs } = await sql<{ id: string; payload: unknown }>`
        select job.id, job.payload from graphile_worker._private_jobs as job
        join graphile_worker._private_tasks as task on task.id = job.task_id
        where task.identifier = ${ACCOUNT_MAIL_TASK}`.execute(bare.database.db);
      // Fay's verification and recovery, and a recovery of an address with no account.
      expect(jobs).toHaveLength(3);
      const waitForSmtp = waitForSmtpTask(bare.database.db);
      // As the erasure does: the account locked, then marked erased and its address's index let go.
      const eraser = await bare.database.pool.connect();
      try {
        await eraser.query('begin');
        await eraser.query('select from users where id = $1 for update', [fay.userId]);
        let parked = 0;
        const parking = jobs.map(async (job) => {
          await waitForSmtp(job.payload, { job } as unknown as Parameters<typeof waitForSmtp>[1]);
          parked++;
        });
        await new Promise((resolve) => setTimeout(resolve, 300));
        // Only the recovery without an account went through; Fay's two wait for the erasure.
        expect(parked).toBe(1);
        await eraser.query('update users set erased_at = now(), email_index = null where id = $1', [
          fay.userId,
        ]);
        await eraser.query('commit');
        await Promise.all(parking);
      } finally {
        eraser.release();
      }
      const left = await sql`select job_id from account_mail_waiting`.execute(bare.database.db);
      expect(left.rows).toEqual([]);
      const queued = await sql`select id from graphile_worker._private_jobs`.execute(bare.database.db);
      expect(queued.rows).toEqual([]);
    } finally {
      await bare.close();
    }
  });
});
