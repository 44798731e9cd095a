import { createECDH, randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { loadVapidKeys, VAPID_KEY_FILE } from '@connect/notifier';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { signUp, type TestApp, testApp } from './support.ts';

let t: TestApp;
beforeAll(async () => {
  t = await testApp({ webhooksAllowPrivate: true });
});
afterAll(() => t.close());

function browserSubscription(endpoint = `http://127.0.0.1:9/push/${randomBytes(8).toString('hex')}`) {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  return {
    endpoint,
    expirationTime: null,
    keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth: randomBytes(16).toString('base64url') },
  };
}

test('the VAPID public key is served to anyone, made once into the data directory', async () => {
  const response = await t.app.inject({ method: 'GET', url: '/v1/push/vapid-key' });
  expect(response.statusCode).toBe(200);
  const { publicKey } = response.json() as { publicKey: string };
  const bytes = Buffer.from(publicKey, 'base64url');
  expect(bytes).toHaveLength(65);
  expect(bytes[0]).toBe(0x04);
  const file = await stat(path.join(t.deps.dataDir, VAPID_KEY_FILE));
  expect(file.mode & 0o777).toBe(0o600);
  expect((await loadVapidKeys({ dataDir: t.deps.dataDir })).publicKey).toBe(publicKey);
  // Keys in the environment win over the file.
  const given = await loadVapidKeys({
    dataDir: t.deps.dataDir,
    vapidPublicKey: 'B'.repeat(87),
    vapidPrivateKey: 'A'.repeat(43),
    vapidSubject: 'mailto:ops@example.com',
  });
  expect(given).toEqual({
    publicKey: 'B'.repeat(87),
    privateKey: 'A'.repeat(43),
    subject: 'mailto:ops@example.com',
  });
});

test('a browser subscribes, subscribes again (same row), and unsubscribes by endpoint or id', async () => {
  const ana = await signUp(t.app, 'Pusher');
  const subscription = browserSubscription();
  const post = (payload: object, headers = ana.auth) =>
    t.app.inject({ method: 'POST', url: '/v1/push-subscriptions', headers, payload });
  const created = await post(subscription);
  expect(created.statusCode).toBe(201);
  const { id } = created.json() as { id: string };
  expect(id).toMatch(/^[0-9a-f-]{36}$/);
  const again = await post({ ...subscription, keys: browserSubscription().keys });
  expect(again.json()).toEqual({ id });
  const rows = await t.database.db
    .selectFrom('push_subscriptions')
    .selectAll()
    .where('user_id', '=', ana.userId)
    .execute();
  expect(rows).toHaveLength(1);
  expect((await post(subscription, {} as typeof ana.auth)).statusCode).toBe(401);

  // Only the owner removes it.
  const ben = await signUp(t.app, 'Other');
  const byId = (who: typeof ana, which: string) =>
    t.app.inject({ method: 'DELETE', url: `/v1/push-subscriptions/${which}`, headers: who.auth });
  expect((await byId(ben, id)).statusCode).toBe(404);
  expect((await byId(ana, 'nope')).statusCode).toBe(400);
  expect((await byId(ana, id)).statusCode).toBe(204);
  expect((await byId(ana, id)).statusCode).toBe(404);

  const second = browserSubscription();
  expect((await post(second)).statusCode).toBe(201);
  const byEndpoint = (who: typeof ana) =>
    t.app.inject({
      method: 'DELETE',
      url: '/v1/push-subscriptions',
      headers: who.auth,
      payload: { endpoint: second.endpoint },
    });
  expect((await byEndpoint(ben)).statusCode).toBe(404);
  expect((await byEndpoint(ana)).statusCode).toBe(204);
  expect((await byEndpoint(ana)).statusCode).toBe(404);
});

test('bad subscriptions get 400 naming the field', async () => {
  const ana = await signUp(t.app, 'Bad');
  const paths = async (payload: unknown) => {
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/push-subscriptions',
      headers: ana.auth,
      payload: payload as object,
    });
    expect(response.statusCode).toBe(400);
    expect(response.json()).toMatchObject({ type: '/problems/invalid-input', status: 400 });
    return (response.json().errors as { path: string }[]).map((error) => error.path).sort();
  };
  const good = browserSubscription();
  expect(await paths({ ...good, endpoint: 'not a url' })).toEqual(['body.endpoint']);
  expect(await paths({ ...good, endpoint: 'ftp://push.example.com/x' })).toEqual(['body.endpoint']);
  expect(await paths({ keys: good.keys })).toEqual(['body.endpoint']);
  expect(await paths({ ...good, keys: { ...good.keys, p256dh: 'short' } })).toEqual(['body.keys.p256dh']);
  // 65 bytes, but not an uncompressed point.
  const compressed = Buffer.alloc(65, 2).toString('base64url');
  expect(await paths({ ...good, keys: { ...good.keys, p256dh: compressed } })).toEqual(['body.keys.p256dh']);
  expect(
    await paths({ ...good, keys: { ...good.keys, auth: randomBytes(12).toString('base64url') } }),
  ).toEqual(['body.keys.auth']);
  expect(await paths({ ...good, keys: { p256dh: good.keys.p256dh, auth: 'a+b/' } })).toEqual([
    'body.keys.auth',
  ]);
  expect(await paths({ endpoint: good.endpoint })).toEqual(['body.keys']);
  const count = await t.database.db
    .selectFrom('push_subscriptions')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('user_id', '=', ana.userId)
    .executeTakeFirstOrThrow();
  expect(Number(count.n)).toBe(0);
});

test('without CONNECT_WEBHOOKS_ALLOW_PRIVATE, an endpoint must be https and not on a private address', async () => {
  const strict = await testApp();
  try {
    const ana = await signUp(strict.app, 'Strict');
    for (const endpoint of ['http://push.example.com/x', 'https://127.0.0.1/push', 'https://10.1.2.3/push']) {
      const response = await strict.app.inject({
        method: 'POST',
        url: '/v1/push-subscriptions',
        headers: ana.auth,
        payload: browserSubscription(endpoint),
      });
      expect(response.statusCode).toBe(400);
      expect(response.json().errors.map((error: { path: string }) => error.path)).toEqual(['body.endpoint']);
    }
  } finally {
    await strict.close();
  }
});
