// Web Push end to end: a browser subscribes through the command API, and the channel sends to a
// local stand-in for a push service, which checks the VAPID signature and decrypts the payload
// with the browser's private key, as a browser would.
import { createECDH, type ECDH, randomBytes } from 'node:crypto';
import http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { importJWK, jwtVerify } from 'jose';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { type Account, signUp, type TestApp, testApp } from '../../command/test/support.ts';
import type { Notification } from '../src/notification.ts';
import { setPreferences } from '../src/preferences.ts';
import { type PushChannel, pushChannel } from '../src/push/deliver.ts';
import { loadVapidKeys, type VapidKeys } from '../src/push/keys.ts';

const ece = createRequire(import.meta.url)('http_ece') as {
  decrypt(body: Buffer, params: { version: string; privateKey: ECDH; authSecret: string }): Buffer;
};

interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

let t: TestApp;
let server: http.Server;
let base: string;
let vapid: VapidKeys;
let channel: PushChannel;
const received: Received[] = [];
/** What the push service answers, by path; 201 otherwise. */
const answers = new Map<string, number>();

beforeAll(async () => {
  t = await testApp({ webhooksAllowPrivate: true });
  server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      received.push({ path: request.url ?? '', headers: request.headers, body: Buffer.concat(chunks) });
      response.writeHead(answers.get(request.url ?? '') ?? 201).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  vapid = await loadVapidKeys({ dataDir: t.deps.dataDir, vapidSubject: 'mailto:ops@example.com' });
  channel = pushChannel({ db: t.database.db, vapid, allowPrivate: true });
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await t.close();
});

/** A browser: its key pair and auth secret, subscribed for `who` at a path of the push service. */
async function subscribe(who: Account, path = `/push/${randomBytes(6).toString('hex')}`) {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  const auth = randomBytes(16).toString('base64url');
  const response = await t.app.inject({
    method: 'POST',
    url: '/v1/push-subscriptions',
    headers: who.auth,
    payload: {
      endpoint: `${base}${path}`,
      keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth },
    },
  });
  expect(response.statusCode).toBe(201);
  return { ecdh, auth, path, id: (response.json() as { id: string }).id };
}

const notification = (recipientId: string, kind: Notification['kind'] = 'invitation'): Notification => ({
  id: `42:${recipientId}:${kind}`,
  recipientId,
  kind,
  title: 'Ana invited you to “Paint the fence”',
  body: 'Accept or decline in the app.',
  link: 'http://localhost:5173/commitments/0b6f8a52-3c1e-4d7a-9f43-2f5d8c9e7a10',
  commitmentId: '0b6f8a52-3c1e-4d7a-9f43-2f5d8c9e7a10',
  ledgerIndex: 42,
  createdAt: '2031-05-01T09:30:00.000Z',
});

const rowsOf = (userId: string) =>
  t.database.db.selectFrom('push_subscriptions').selectAll().where('user_id', '=', userId).execute();

test('each browser gets the notification, VAPID-signed and encrypted to its keys', async () => {
  const ben = await signUp(t.app, 'Ben');
  const phone = await subscribe(ben);
  const laptop = await subscribe(ben);
  const sent = notification(ben.userId);
  expect(await channel.deliver(sent)).toBe('sent');

  const publicKey = Buffer.from(vapid.publicKey, 'base64url');
  const key = await importJWK(
    {
      kty: 'EC',
      crv: 'P-256',
      x: publicKey.subarray(1, 33).toString('base64url'),
      y: publicKey.subarray(33, 65).toString('base64url'),
    },
    'ES256',
  );
  for (const browser of [phone, laptop]) {
    const request = received.find((r) => r.path === browser.path);
    if (!request) throw new Error(`nothing reached ${browser.path}`);
    expect(request.headers['content-encoding']).toBe('aes128gcm');
    expect(Number(request.headers.ttl)).toBe(24 * 3600);
    expect(request.headers.topic).toMatch(/^[A-Za-z0-9_-]{1,32}$/);
    const authorization = /^vapid t=([^,]+), k=([A-Za-z0-9_-]+)$/.exec(request.headers.authorization ?? '');
    expect(authorization?.[2]).toBe(vapid.publicKey);
    const { payload } = await jwtVerify(authorization?.[1] ?? '', key, { audience: base });
    expect(payload.sub).toBe('mailto:ops@example.com');
    expect((payload.exp ?? 0) * 1000).toBeLessThanOrEqual(Date.now() + 24 * 3600 * 1000);

    const plain = ece.decrypt(request.body, {
      version: 'aes128gcm',
      privateKey: browser.ecdh,
      authSecret: browser.auth,
    });
    expect(JSON.parse(plain.toString('utf8'))).toEqual({
      id: sent.id,
      kind: 'invitation',
      title: sent.title,
      body: sent.body,
      link: sent.link,
    });
  }
  const rows = await rowsOf(ben.userId);
  expect(rows.every((row) => row.last_success_at instanceof Date)).toBe(true);
});

test('a subscription the push service answers 404 or 410 for is removed', async () => {
  const cat = await signUp(t.app, 'Cat');
  const gone = await subscribe(cat);
  const missing = await subscribe(cat);
  const live = await subscribe(cat);
  answers.set(gone.path, 410);
  answers.set(missing.path, 404);
  expect(await channel.deliver(notification(cat.userId))).toBe('sent');
  expect((await rowsOf(cat.userId)).map((row) => row.id)).toEqual([live.id]);
  answers.set(live.path, 410);
  expect(await channel.deliver(notification(cat.userId))).toBe('gone');
  expect(await rowsOf(cat.userId)).toEqual([]);
});

test('other failures reject, so the job is retried; the subscription stays', async () => {
  const dan = await signUp(t.app, 'Dan');
  const flaky = await subscribe(dan);
  const fine = await subscribe(dan);
  answers.set(flaky.path, 503);
  await expect(channel.deliver(notification(dan.userId))).rejects.toThrow(/1 of 2 browsers failed.*503/);
  expect(received.filter((r) => r.path === fine.path)).toHaveLength(1);
  expect(await rowsOf(dan.userId)).toHaveLength(2);
  answers.delete(flaky.path);
  expect(await channel.deliver(notification(dan.userId))).toBe('sent');
});

test('nothing is sent without a subscription, or when the person turned push off for the kind', async () => {
  const eve = await signUp(t.app, 'Eve');
  expect(await channel.deliver(notification(eve.userId))).toBe('no-subscription');
  const browser = await subscribe(eve);
  await setPreferences(t.database.db, eve.userId, { push: { lifecycle: false } });
  expect(await channel.deliver(notification(eve.userId, 'lifecycle'))).toBe('not-wanted');
  expect(received.filter((r) => r.path === browser.path)).toHaveLength(0);
  expect(await channel.deliver(notification(eve.userId, 'reminder'))).toBe('sent');
  const request = received.find((r) => r.path === browser.path);
  expect(request?.headers.urgency).toBe('high');
});
