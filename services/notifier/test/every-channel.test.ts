// Every channel at once, end to end: the whole service (commands, reads, the projector with the
// notifier, the delivery worker with reminders) configured with SMTP, Web Push, Twilio and webhooks,
// each pointed at a real receiver on 127.0.0.1. A person who chose email, push and SMS hears of what
// concerns her on each (never of what she did herself), is reminded on each before her deadline, and
// sees it in her calendar feed; an integrator's endpoint gets every event, signed.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadTokenIssuer } from '@connect/auth';
import { commandRoutes } from '@connect/command';
import { signingKeyFromSeed } from '@connect/crypto';
import { keyRing, localMasterKeys, type TwilioConfig } from '@connect/db';
import { createServer } from '@connect/http';
import { bodyCipher, openLedger } from '@connect/ledger';
import { attachProjector, PROJECTIONS } from '@connect/projector';
import { createReaderDb, queryRoutes } from '@connect/query';
import type { FastifyInstance } from 'fastify';
import ICAL from 'ical.js';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestDatabase } from '../../../test/support/database.ts';
import { grantAdmin } from '../../command/src/auth/roles.ts';
import { ensureDefaultTypes, typeRegistry } from '../../command/src/commitments/load.ts';
import { type Account, signUp } from '../../command/test/support.ts';
import { messageIdOf } from '../src/email/mailer.ts';
import { openNotifier } from '../src/projection.ts';
import { webhookEventType } from '../src/queue/enqueue.ts';
import { openDeliveryQueue } from '../src/queue/setup.ts';
import { twilioSender } from '../src/sms/twilio.ts';
import { pushService, smtpInbox } from './channels-support.ts';
import { codeIn, fakeTwilio, type Sms } from './sms-support.ts';
import { receiver } from './webhooks-support.ts';

const APP_URL = 'https://app.connect.test';
const MAIL_DOMAIN = 'connect.test';
/** The one reminder offset: short, so the reminder comes due while the test runs. */
const REMIND_BEFORE_SECONDS = 10;
/** The due date, from when the commitment is made: the steps before the reminder take far less. */
const DUE_IN_MS = 16_000;
const KINDS = ['invitation', 'lifecycle', 'amendment', 'reminder'] as const;

interface Notification {
  id: string;
  kind: string;
  title: string;
  body: string;
  link: string;
  commitmentId: string;
  ledgerIndex: number;
  createdAt: string;
}

interface Receipt {
  commitmentId: string;
  events: { index: number; type: string }[];
}

/**
 * The service as `connect start` composes it, on a fresh database, with every channel configured:
 * SMTP, Twilio and webhooks (private addresses allowed, for the receivers on 127.0.0.1), Web Push
 * (keys made in the data dir), and reminders REMIND_BEFORE_SECONDS before a due date.
 */
async function serviceWithEveryChannel(receivers: { smtpUrl: string; twilio: TwilioConfig }) {
  const database = await createTestDatabase({ poolSize: 20 });
  const { pool, db } = database;
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'connect-every-channel-'));
  const key = signingKeyFromSeed('test.connect.local/ledger', new Uint8Array(32).fill(17));
  const keys = keyRing(pool, await localMasterKeys({ dataDir }), { listen: false });
  const ledger = await openLedger({
    pool,
    db,
    origin: key.name,
    key,
    cipher: bodyCipher(keys, { sealNew: true }),
  });
  await ensureDefaultTypes(ledger);
  const tokens = await loadTokenIssuer(dataDir);
  const reader = createReaderDb(database.url);
  const reminderOffsets = [REMIND_BEFORE_SECONDS];
  const queue = await openDeliveryQueue({
    pool,
    db,
    cipher: ledger.cipher,
    config: {
      smtpUrl: receivers.smtpUrl,
      mailFrom: `Connect <no-reply@${MAIL_DOMAIN}>`,
      dataDir,
      publicApiUrl: 'https://api.connect.test',
      twilio: receivers.twilio,
      webhooksAllowPrivate: true,
      deliveryMaxAttempts: 3,
      deliveryConcurrency: 4,
      reminderOffsets,
      appUrl: APP_URL,
    },
    pollInterval: 100,
  });
  const notifier = await openNotifier(pool, { appUrl: APP_URL, ...queue.hooks });
  const app = createServer({ logLevel: 'silent', checkReady: async () => undefined });
  attachProjector(app, {
    pool,
    origin: key.name,
    cipher: ledger.cipher,
    options: { pollMs: 100, projections: [...PROJECTIONS, notifier] },
  });
  app.register(commandRoutes, {
    pool,
    db,
    ledger,
    tokens,
    types: typeRegistry(db, ledger),
    dataDir,
    keys,
    authAttemptsPerMinute: 10_000,
    webhooksAllowPrivate: true,
    sms: twilioSender(receivers.twilio),
  });
  app.register(queryRoutes, {
    pool,
    db,
    databaseUrl: database.url,
    reader: reader.db,
    origin: key.name,
    cipher: ledger.cipher,
    verifierKey: ledger.verifierKey,
    key,
    tokens,
    minIndexWaitMs: 10_000,
    appUrl: APP_URL,
    reminderOffsets,
  });
  await app.ready();
  await queue.start();
  return {
    app,
    database,
    ledger,
    keys,
    origin: key.name,
    close: async () => {
      await queue.close();
      await app.close();
      await reader.close();
      await ledger.drain();
      await keys.close();
      await database.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Polls `check` until it answers something truthy, failing after 20 s with `what`. */
async function until<T>(
  what: string | (() => string),
  check: () => Promise<T | undefined | false> | T | undefined | false,
) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

let service: Awaited<ReturnType<typeof serviceWithEveryChannel>>;
let app: FastifyInstance;
let inbox: Awaited<ReturnType<typeof smtpInbox>>;
let push: Awaited<ReturnType<typeof pushService>>;
let twilio: Awaited<ReturnType<typeof fakeTwilio>>;
let hook: Awaited<ReturnType<typeof receiver>>;
let lastWrite = -1;

beforeAll(async () => {
  [inbox, push, twilio, hook] = await Promise.all([
    smtpInbox(),
    pushService(),
    fakeTwilio(),
    receiver(() => ({ status: 204 })),
  ]);
  service = await serviceWithEveryChannel({ smtpUrl: inbox.url, twilio: twilio.config });
  app = service.app;
}, 60_000);
afterAll(async () => {
  await service?.close();
  await Promise.all([inbox?.close(), push?.close(), twilio?.close(), hook?.close()]);
});

/** A request as `auth` (none: anonymous) that reads every write so far; fails unless 2xx. */
async function call(
  auth: { authorization: string } | undefined,
  method: 'GET' | 'POST' | 'PUT',
  url: string,
  payload?: object,
) {
  const response = await app.inject({
    method,
    url,
    headers: { ...auth, 'connect-min-index': String(lastWrite) },
    ...(payload ? { payload } : {}),
  });
  if (response.statusCode >= 300)
    throw new Error(`${method} ${url}: ${response.statusCode} ${response.body}`);
  return response;
}

async function command(who: Account, url: string, payload: object = {}): Promise<Receipt> {
  const receipt = (await call(who.auth, 'POST', url, payload)).json() as Receipt;
  lastWrite = Math.max(lastWrite, ...receipt.events.map((event) => event.index));
  return receipt;
}

const notificationsOf = async (who: Account) =>
  ((await call(who.auth, 'GET', '/v1/notifications?limit=100')).json() as { items: Notification[] }).items;

test('a person invited by email, subscribed to push, with a confirmed phone on file and a calendar feed, learns of every change that concerns them through each channel they chose, and of every deadline before it passes; integrators receive verified webhooks', async () => {
  const ana = await signUp(app, 'Ana');
  const bea = await signUp(app, 'Bea');
  const ivy = await signUp(app, 'Ivy');

  // Ivy, an admin, registers an integration's endpoint for every event.
  await grantAdmin({ db: service.database.db, ledger: service.ledger, keys: service.keys }, ivy.email);
  const login = await call(undefined, 'POST', '/v1/auth/token', {
    grant_type: 'password',
    email: ivy.email,
    password: 'correct horse battery',
  });
  const admin = { authorization: `Bearer ${login.json().access_token}` };
  const { secret } = (await call(admin, 'POST', '/v1/admin/webhooks', { url: hook.url })).json() as {
    secret: string;
  };

  // Bea chooses email, push and SMS, subscribes a browser, confirms her phone, takes her feed.
  const chosen = Object.fromEntries(KINDS.map((kind) => [kind, true]));
  const preferences = await call(bea.auth, 'PUT', '/v1/me/notification-preferences', {
    email: chosen,
    push: chosen,
    sms: { reminder: true },
  });
  expect(preferences.json()).toMatchObject({ email: chosen, push: chosen, sms: { reminder: true } });
  const browser = push.browser();
  await call(bea.auth, 'POST', '/v1/push-subscriptions', browser.subscription);
  const phone = '+14155552671';
  await call(bea.auth, 'PUT', '/v1/me/phone', { phone });
  const code = codeIn(await twilio.nextMessageTo(phone));
  await call(bea.auth, 'POST', '/v1/me/phone/confirm', { code });
  let texted: { sms: Sms; at: number } | undefined;
  void twilio.nextMessageTo(phone).then((sms) => {
    texted = { sms, at: Date.now() };
  });
  const feed = new URL((await call(bea.auth, 'GET', '/v1/me/calendar')).json().url as string);

  // Ana makes a commitment due soon, invites Bea and proposes it; Bea accepts (which
  // activates it); Ana then proposes a change.
  const dueAt = new Date(Math.ceil((Date.now() + DUE_IN_MS) / 1000) * 1000).toISOString();
  const receipts: Receipt[] = [];
  const drafted = await command(ana, '/v1/commitments', {
    type: 'personal',
    title: 'Return the ladder',
    dueAt,
  });
  const id = drafted.commitmentId;
  receipts.push(
    drafted,
    await command(ana, `/v1/commitments/${id}/invite`, { userId: bea.userId, role: 'participant' }),
    await command(ana, `/v1/commitments/${id}/propose`),
  );
  const accepted = await command(bea, `/v1/commitments/${id}/accept`);
  receipts.push(
    accepted,
    await command(ana, `/v1/commitments/${id}/propose-amendment`, { changes: { terms: 'Clean it first' } }),
  );
  expect(accepted.events.map((event) => event.type)).toEqual(['InvitationAccepted', 'CommitmentActivated']);

  // In the app: the invitation, the proposal, the change and, before the due date, the reminder.
  const reminded = await until('Bea’s reminder', async () => {
    const items = await notificationsOf(bea);
    return items.some((n) => n.kind === 'reminder') && items;
  });
  expect(reminded.map((n) => `${n.kind}: ${n.title}`).sort()).toEqual([
    'amendment: Ana proposed a change to “Return the ladder”',
    'invitation: Ana invited you to “Return the ladder”',
    'lifecycle: Ana proposed “Return the ladder”',
    `reminder: Reminder: “Return the ladder” is due in ${REMIND_BEFORE_SECONDS} seconds`,
  ]);
  const reminder = reminded.find((n) => n.kind === 'reminder') as Notification;
  expect(Date.parse(reminder.createdAt)).toBeLessThan(Date.parse(dueAt));
  // Bea's acceptance and the activation it caused are hers: Ana hears of them, Bea does not.
  const hers = accepted.events.map((event) => event.index);
  // (A reminder names the entry that set the due date, here the activation: it is not news of it.)
  expect(reminded.filter((n) => n.kind !== 'reminder' && hers.includes(n.ledgerIndex))).toEqual([]);
  expect((await notificationsOf(ana)).filter((n) => hers.includes(n.ledgerIndex)).map((n) => n.kind)).toEqual(
    expect.arrayContaining(['response', 'lifecycle']),
  );

  // By email: one per notification, identified by it, to Bea's address.
  const mailsToBea = () => inbox.mails.filter((mail) => mail.to.includes(bea.email));
  const mailsAbout = (n: Notification) =>
    mailsToBea().filter((mail) => mail.parsed.messageId === messageIdOf(n, MAIL_DOMAIN));
  await until(
    () => `an email per notification (so far: ${mailsToBea().map((mail) => mail.parsed.messageId)})`,
    () => reminded.every((n) => mailsAbout(n).length > 0),
  );
  for (const n of reminded) {
    const mails = mailsAbout(n);
    expect(
      mails.map((mail) => mail.parsed.subject),
      n.id,
    ).toEqual([n.title]);
    expect(mails[0]?.parsed.text).toContain(n.link);
    if (n.kind === 'reminder') expect(mails[0]?.at).toBeLessThan(Date.parse(dueAt));
  }

  // By push: one per notification, VAPID-signed with the service's key, decrypted by the browser.
  const pushesAbout = (n: Notification) =>
    browser.messages().filter((p) => (p.payload as { id: string }).id === n.id);
  await until('a push per notification', () => reminded.every((n) => pushesAbout(n).length > 0));
  const { publicKey } = (await call(bea.auth, 'GET', '/v1/push/vapid-key')).json() as { publicKey: string };
  for (const n of reminded) {
    const received = pushesAbout(n);
    expect(
      received.map((p) => p.payload),
      n.id,
    ).toEqual([{ id: n.id, kind: n.kind, title: n.title, body: n.body, link: n.link }]);
    expect(received[0]?.headers.authorization).toMatch(new RegExp(`^vapid t=[^,]+, k=${publicKey}$`));
    if (n.kind === 'reminder') expect(received[0]?.at).toBeLessThan(Date.parse(dueAt));
  }

  // By SMS: the reminder (SMS carries reminders only), before the due date.
  const { sms, at } = await until('the reminder by SMS', () => texted);
  expect(sms).toEqual({ to: phone, from: twilio.config.from, body: `${reminder.title}\n${reminder.link}` });
  expect(at).toBeLessThan(Date.parse(dueAt));
  expect(twilio.messages.filter((message) => message.to === phone)).toHaveLength(2); // the code, the reminder
  expect(twilio.problems).toEqual([]);

  // In her calendar: the commitment at its due date, with an alarm at each reminder offset.
  const calendar = new ICAL.Component(ICAL.parse((await call(bea.auth, 'GET', feed.pathname)).body));
  const event = calendar
    .getAllSubcomponents('vevent')
    .find((vevent) => vevent.getFirstPropertyValue('uid') === `${id}@${service.origin}`);
  if (!event) throw new Error('the feed has no event for the commitment');
  expect(event.getFirstPropertyValue('summary')).toBe('Return the ladder');
  expect(event.getFirstPropertyValue('status')).toBe('CONFIRMED');
  expect((event.getFirstPropertyValue('dtstart') as ICAL.Time).toJSDate().toISOString()).toBe(dueAt);
  const alarms = event.getAllSubcomponents('valarm');
  expect(
    alarms.map((alarm) => (alarm.getFirstPropertyValue('trigger') as ICAL.Duration).toSeconds()),
  ).toEqual([-REMIND_BEFORE_SECONDS]);

  // The integration: every event of the commitment once, signed so the standardwebhooks package
  // verifies it with the endpoint's secret.
  const events = receipts.flatMap((receipt) => receipt.events);
  const verifier = new Webhook(secret);
  const verified = () =>
    hook.received.map((request) => ({
      id: request.headers['webhook-id'],
      ...(verifier.verify(request.body, request.headers as Record<string, string>) as {
        type: string;
        data: { commitmentId: string; index: number };
      }),
    }));
  await until('a webhook per event', () =>
    events.every((e) => hook.received.some((r) => r.headers['webhook-id'] === `evt_${e.index}`)),
  );
  for (const e of events) {
    expect(
      verified()
        .filter((message) => message.id === `evt_${e.index}`)
        .map((message) => [message.type, message.data.commitmentId, message.data.index]),
    ).toEqual([[webhookEventType(e.type), id, e.index]]);
  }
  const tampered = hook.received[0];
  expect(() =>
    verifier.verify(`${tampered?.body} `, (tampered?.headers ?? {}) as Record<string, string>),
  ).toThrow();
}, 60_000);
