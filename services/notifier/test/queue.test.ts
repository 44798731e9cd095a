// Durable delivery end to end: commands in the stack, the notifier projection adding jobs in its
// batch transaction, graphile-worker running them against a real SMTP server and real webhook
// receivers on 127.0.0.1.

import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { BodyCipher } from '@connect/ledger';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type Stack, testStack } from '../../../test/support/stack.ts';
import { grantAdmin } from '../../command/src/auth/roles.ts';
import { type Account, signUp } from '../../command/test/support.ts';
import { messageIdOf } from '../src/email/mailer.ts';
import { notificationId } from '../src/notification.ts';
import { webhookEventType } from '../src/queue/enqueue.ts';
import { type DeliveryQueue, openDeliveryQueue } from '../src/queue/setup.ts';
import { createEndpoint } from '../src/webhooks/store.ts';
import { type Received, receiver } from './webhooks-support.ts';

interface Inbox {
  url: string;
  mails: ParsedMail[];
  /** Stops listening: the SMTP server is down. */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
}

async function smtpInbox(): Promise<Inbox> {
  const mails: ParsedMail[] = [];
  const make = () =>
    new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      closeTimeout: 100,
      onData(stream, _session, callback) {
        simpleParser(stream).then(
          (parsed) => {
            mails.push(parsed);
            callback();
          },
          (error: Error) => callback(error),
        );
      },
    });
  let server = make();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as AddressInfo;
  return {
    url: `smtp://127.0.0.1:${port}`,
    mails,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
    async start() {
      server = make();
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    },
  };
}

async function eventually<T>(check: () => Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

interface JobRow {
  /** bigint, which the pool parses as a number */
  id: number;
  task_identifier: string;
  attempts: number;
  max_attempts: number;
  last_error: string | null;
  key: string | null;
}

const MAIL_DOMAIN = 'connect.test';
const MAX_ATTEMPTS = 3;

let s: Stack;
let inbox: Inbox;
let dataDir: string;
let queue: DeliveryQueue;
let ana: Account;
let ben: Account;
let cat: Account;
let admin: { authorization: string };
let commitmentId: string;
let good: Awaited<ReturnType<typeof receiver>>;
let flaky: Awaited<ReturnType<typeof receiver>>;
let goodSecret: string;
const smsTried: string[] = [];

function queueOf(stack: { database: Stack['database']; cipher: BodyCipher }): Promise<DeliveryQueue> {
  return openDeliveryQueue({
    pool: stack.database.pool,
    db: stack.database.db,
    cipher: stack.cipher,
    config: {
      smtpUrl: inbox.url,
      mailFrom: `Connect <no-reply@${MAIL_DOMAIN}>`,
      dataDir,
      publicApiUrl: 'https://api.connect.test',
      twilio: undefined,
      webhooksAllowPrivate: true,
      deliveryMaxAttempts: MAX_ATTEMPTS,
      deliveryConcurrency: 4,
    },
    // A text-message provider that is down: its jobs fail, and only its jobs.
    channels: {
      sms: {
        deliver: async (notification) => {
          smsTried.push(notification.id);
          throw new Error('Twilio is down');
        },
      },
    },
    pollInterval: 200,
  });
}

const jobs = async (where: string, params: unknown[] = []) =>
  (
    await s.database.pool.query<JobRow>(
      `select * from graphile_worker.jobs where ${where} order by id`,
      params,
    )
  ).rows;

/** Makes every waiting job of the task due now (graphile-worker's backoff would wait seconds). */
const runNow = (task: string) =>
  s.database.pool.query(
    `select graphile_worker.reschedule_jobs(array_agg(id), run_at => now())
     from graphile_worker.jobs where task_identifier = $1 and locked_at is null`,
    [task],
  );

async function command(who: Account, url: string, payload: unknown = {}) {
  const response = await s.app.inject({ method: 'POST', url, payload: payload as object, headers: who.auth });
  if (response.statusCode >= 300) throw new Error(`${url}: ${response.statusCode} ${response.body}`);
  return response.json() as { commitmentId: string; events: { index: number }[] };
}

const confirmedPhone = (who: Account, phone: string) =>
  s.database.pool.query(
    `insert into phone_numbers (user_id, phone, confirmed_at)
     values ($1, convert_to(to_json($2::text)::text, 'UTF8'), now())`,
    [who.userId, phone],
  );

/** The notification emails `account` received (not the account's own mail, such as its verification). */
const mailsTo = (account: Account) =>
  inbox.mails.filter(
    (mail) =>
      mail.headers.has('list') && // mailparser gathers the List-* headers under 'list'
      mail.to &&
      !Array.isArray(mail.to) &&
      mail.to.value[0]?.address === account.email,
  );

beforeAll(async () => {
  inbox = await smtpInbox();
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'connect-queue-'));
  s = await testStack({
    notifierHooks: async (database, cipher) => {
      queue = await queueOf({ database, cipher });
      return queue.hooks;
    },
  });
  await queue.start();
  good = await receiver(() => ({ status: 200 }));
  flaky = await receiver((_request, index) => ({ status: index === 0 ? 500 : 200 }));
  goodSecret = (await createEndpoint(s.database.db, s.query.cipher.fields, { url: good.url })).secret;
  await createEndpoint(s.database.db, s.query.cipher.fields, {
    url: flaky.url,
    events: ['commitment.drafted'],
  });
  ana = await signUp(s.app, 'Ana');
  ben = await signUp(s.app, 'Ben');
  cat = await signUp(s.app, 'Cat');
  // Ben can get text messages (the provider is down, though): his notifications get SMS jobs.
  await confirmedPhone(ben, '+14155552671');
  await grantAdmin(s.command, ana.email);
  const login = await s.app.inject({
    method: 'POST',
    url: '/v1/auth/token',
    payload: { grant_type: 'password', email: ana.email, password: 'correct horse battery' },
  });
  admin = { authorization: `Bearer ${login.json().access_token}` };
  commitmentId = (await command(ana, '/v1/commitments', { type: 'personal', title: 'Paint the fence' }))
    .commitmentId;
}, 60_000);
afterAll(async () => {
  await queue?.close();
  await s?.close();
  await inbox?.stop();
  await good?.close();
  await flaky?.close();
  await rm(dataDir, { recursive: true, force: true });
});

describe('email', () => {
  test('an invitation is one email to the invitee, with a Message-ID from the ledger index', async () => {
    const receipt = await command(ana, `/v1/commitments/${commitmentId}/invite`, {
      userId: ben.userId,
      role: 'participant',
    });
    const index = receipt.events[0]?.index as number;
    const id = notificationId(index, ben.userId, 'invitation');
    const [mail] = await eventually(async () => mailsTo(ben).length > 0 && mailsTo(ben));
    expect(mail?.messageId).toBe(messageIdOf({ id }, MAIL_DOMAIN));
    expect(mail?.subject).toContain('Paint the fence');
    // The job is done and gone; nothing more is sent.
    await eventually(async () => (await jobs('key = $1', [`${id}:email`])).length === 0);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(mailsTo(ben)).toHaveLength(1);
    expect(mailsTo(ana)).toHaveLength(0);
  });

  test('while the SMTP server is down the job is retried, then delivered once it is back', async () => {
    await inbox.stop();
    const receipt = await command(ana, `/v1/commitments/${commitmentId}/invite`, {
      userId: cat.userId,
      role: 'witness',
    });
    const key = `${notificationId(receipt.events[0]?.index as number, cat.userId, 'invitation')}:email`;
    const failed = await eventually(async () => {
      const [job] = await jobs('key = $1', [key]);
      return job && job.attempts >= 1 && job.last_error !== null && job;
    });
    expect(failed.task_identifier).toBe('deliver-email');
    expect(failed.last_error).toMatch(/ECONNREFUSED|connect/i);
    expect(mailsTo(cat)).toHaveLength(0);

    await inbox.start();
    await runNow('deliver-email');
    await eventually(async () => mailsTo(cat).length > 0);
    await eventually(async () => (await jobs('key = $1', [key])).length === 0);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(mailsTo(cat)).toHaveLength(1);
  });
});

describe('jobs', () => {
  const notificationTo = (who: Account) => ({
    id: notificationId(1_000_000, who.userId, 'reminder'),
    recipientId: who.userId,
    kind: 'reminder' as const,
    title: 'x',
    body: 'x',
    link: 'https://app.connect.test/x',
    commitmentId,
    ledgerIndex: 1_000_000,
    createdAt: new Date().toISOString(),
  });

  test('each notification is one job per channel that can reach its recipient, however often enqueued', async () => {
    const dan = await signUp(s.app, 'Dan');
    const eve = await signUp(s.app, 'Eve');
    const client = await s.database.pool.connect();
    try {
      await client.query('begin');
      // Ana: an account only. Ben: a confirmed phone. Dan: a browser subscribed to push. Eve: a phone
      // she has not confirmed.
      await client.query(
        `insert into push_subscriptions (id, user_id, endpoint, p256dh, auth)
         values (gen_random_uuid(), $1, 'https://push.example.test/dan', 'key', 'secret')`,
        [dan.userId],
      );
      await client.query(
        `insert into phone_numbers (user_id, phone) values ($1, convert_to(to_json($2::text)::text, 'UTF8'))`,
        [eve.userId, '+14155550123'],
      );
      const notifications = [ana, ben, dan, eve].map(notificationTo);
      await queue.hooks.enqueue(client, notifications);
      await queue.hooks.enqueue(client, notifications);
      const { rows } = await client.query<{ key: string }>(
        'select key from graphile_worker.jobs where key = any($1::text[])',
        [notifications.flatMap((n) => ['email', 'push', 'sms'].map((channel) => `${n.id}:${channel}`))],
      );
      const [forAna, forBen, forDan, forEve] = notifications.map((n) =>
        rows
          .filter((row) => row.key.startsWith(`${n.id}:`))
          .map((row) => row.key.slice(n.id.length + 1))
          .sort(),
      );
      expect(forAna).toEqual(['email']);
      expect(forBen).toEqual(['email', 'sms']);
      expect(forDan).toEqual(['email', 'push']);
      expect(forEve).toEqual(['email']);
    } finally {
      await client.query('rollback');
      client.release();
    }
  });
});

describe('dead letters', () => {
  test('a job that always fails is dead after its attempts, and admins see it', async () => {
    const { rows } = await s.database.pool.query<{ id: string }>(
      `select id from notifications where recipient_id = $1 and kind = 'invitation'`,
      [ben.userId],
    );
    const key = `${rows[0]?.id}:sms`;
    const dead = await eventually(async () => {
      await runNow('deliver-sms');
      const [job] = await jobs('key = $1', [key]);
      return job && job.attempts >= job.max_attempts && job;
    }, 30_000);
    expect(dead.attempts).toBe(MAX_ATTEMPTS);
    expect(smsTried.filter((id) => `${id}:sms` === key)).toHaveLength(MAX_ATTEMPTS);
    // Dead: never run again.
    await runNow('deliver-sms');
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect((await jobs('key = $1', [key]))[0]?.attempts).toBe(MAX_ATTEMPTS);

    expect(
      (await s.app.inject({ method: 'GET', url: '/v1/admin/notifications/dead-letters', headers: ben.auth }))
        .statusCode,
    ).toBe(403);
    const listed = await s.app.inject({
      method: 'GET',
      url: '/v1/admin/notifications/dead-letters',
      headers: admin,
    });
    expect(listed.statusCode, listed.body).toBe(200);
    const letter = (listed.json() as { deadLetters: Record<string, unknown>[] }).deadLetters.find(
      (d) => d.id === String(dead.id),
    );
    expect(letter).toMatchObject({
      task: 'deliver-sms',
      channel: 'sms',
      notificationId: key.slice(0, -':sms'.length),
      recipientId: ben.userId,
      attempts: MAX_ATTEMPTS,
      maxAttempts: MAX_ATTEMPTS,
      lastError: expect.stringContaining('Twilio is down'),
    });

    const retried = await s.app.inject({
      method: 'POST',
      url: `/v1/admin/notifications/dead-letters/${dead.id}/retry`,
      headers: admin,
    });
    expect(retried.statusCode, retried.body).toBe(202);
    await eventually(async () => smsTried.filter((id) => `${id}:sms` === key).length > MAX_ATTEMPTS);
    const missing = await s.app.inject({
      method: 'POST',
      url: '/v1/admin/notifications/dead-letters/999999/retry',
      headers: admin,
    });
    expect(missing.statusCode).toBe(404);
  }, 40_000);
});

describe('webhooks', () => {
  const byId = (received: Received[]) =>
    received.map((r) => ({
      id: r.headers['webhook-id'],
      body: JSON.parse(r.body) as Record<string, unknown>,
    }));

  test('event types are commitment.<event>', () => {
    expect(webhookEventType('CommitmentDrafted')).toBe('commitment.drafted');
    expect(webhookEventType('CommitmentActivated')).toBe('commitment.activated');
    expect(webhookEventType('PartyInvited')).toBe('commitment.party-invited');
  });

  test('a receiver gets each ledger event once, signed, with a stable id from its index', async () => {
    await eventually(async () => good.received.length >= 3);
    const verifier = new Webhook(goodSecret);
    for (const request of good.received) {
      expect(() => verifier.verify(request.body, request.headers as Record<string, string>)).not.toThrow();
    }
    const messages = byId(good.received).sort(
      (a, b) => (a.body.data as { index: number }).index - (b.body.data as { index: number }).index,
    );
    expect(messages.map((m) => m.body.type).slice(0, 3)).toEqual([
      'commitment.drafted',
      'commitment.party-invited',
      'commitment.party-invited',
    ]);
    const first = messages[0];
    const data = first?.body.data as { index: number } | undefined;
    expect(data).toMatchObject({ commitmentId, type: 'CommitmentDrafted', status: 'draft' });
    expect(first?.id).toBe(`evt_${data?.index}`);
    expect(new Set(messages.map((m) => m.id)).size).toBe(messages.length);
  });

  test('a receiver that fails once gets the message again, with the same id', async () => {
    await runNow('deliver-webhook');
    await eventually(async () => {
      await runNow('deliver-webhook');
      return flaky.received.length >= 2;
    });
    const [failed, retried] = byId(flaky.received);
    expect(failed?.id).toBe(retried?.id);
    expect(retried?.body.type).toBe('commitment.drafted');
    const delivered = await eventually(async () => {
      const { rows } = await s.database.pool.query(
        `select d.status, d.attempts from webhook_deliveries d join webhook_endpoints e on e.id = d.endpoint_id
         where e.url = $1`,
        [flaky.url],
      );
      return rows[0]?.status === 'delivered' && rows;
    });
    expect(delivered).toEqual([{ status: 'delivered', attempts: 2 }]);
    expect(flaky.received).toHaveLength(2);
  });
});

describe('restarts', () => {
  test('jobs added while no worker runs wait in the table and run when one starts', async () => {
    await queue.close();
    const dan = await signUp(s.app, 'Dan');
    const receipt = await command(ana, `/v1/commitments/${commitmentId}/invite`, {
      userId: dan.userId,
      role: 'participant',
    });
    const key = `${notificationId(receipt.events[0]?.index as number, dan.userId, 'invitation')}:email`;
    const [waiting] = await eventually(async () => {
      const found = await jobs('key = $1', [key]);
      return found.length > 0 && found;
    });
    expect(waiting?.attempts).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(mailsTo(dan)).toHaveLength(0);

    queue = await queueOf({ database: s.database, cipher: s.query.cipher });
    await queue.start();
    await eventually(async () => mailsTo(dan).length > 0);
    await eventually(async () => (await jobs('key = $1', [key])).length === 0);
    expect(mailsTo(dan)).toHaveLength(1);
    const ids = inbox.mails.map((mail) => mail.messageId);
    expect(new Set(ids).size).toBe(ids.length);
  }, 30_000);
});
