import http from 'node:http';
import https from 'node:https';
import { Webhook } from 'standardwebhooks';
import { afterEach, expect, test, vi } from 'vitest';
import { refusedAddress } from '../src/webhooks/address.ts';
import { deliverWebhook, resolveWebhookUrl } from '../src/webhooks/deliver.ts';
import { nextAttempt, RETRY_DELAYS_MS } from '../src/webhooks/retry.ts';
import { generateSecret, signWebhook } from '../src/webhooks/sign.ts';
import { receiver } from './webhooks-support.ts';

afterEach(() => vi.restoreAllMocks());

const message = { webhookId: 'msg_1', eventType: 'commitment.activated', payload: { commitmentId: 'c1' } };

test('a delivery is signed as Standard Webhooks says: the standardwebhooks package verifies it on receipt', async () => {
  const secret = generateSecret();
  expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
  const verifier = new Webhook(secret);
  const verified: unknown[] = [];
  const hook = await receiver(({ headers, body }) => {
    verified.push(
      verifier.verify(body, {
        'webhook-id': String(headers['webhook-id']),
        'webhook-timestamp': String(headers['webhook-timestamp']),
        'webhook-signature': String(headers['webhook-signature']),
      }),
    );
    return { status: 204 };
  });
  try {
    const outcome = await deliverWebhook({ url: hook.url, secret }, message, { allowPrivate: true });
    expect(outcome).toEqual({ ok: true, status: 204, error: null });
    const [request] = hook.received;
    expect(request?.headers['content-type']).toBe('application/json');
    expect(request?.headers['webhook-id']).toBe('msg_1');
    expect(verified).toEqual([
      { type: 'commitment.activated', timestamp: expect.any(String), data: { commitmentId: 'c1' } },
    ]);
    // A body changed on the way, or another secret, does not verify.
    const headers = {
      'webhook-id': String(request?.headers['webhook-id']),
      'webhook-timestamp': String(request?.headers['webhook-timestamp']),
      'webhook-signature': String(request?.headers['webhook-signature']),
    };
    expect(() => verifier.verify(`${request?.body} `, headers)).toThrow();
    expect(() => new Webhook(generateSecret()).verify(request?.body ?? '', headers)).toThrow();
  } finally {
    await hook.close();
  }
});

test('the signature is the one the standardwebhooks package computes', () => {
  const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
  const at = new Date('2031-05-01T09:30:00Z');
  expect(
    signWebhook(secret, 'msg_p5jXN8AQM9LWM0D4loKWxJek', at.getTime() / 1000, '{"test": 2432232314}'),
  ).toBe(new Webhook(secret).sign('msg_p5jXN8AQM9LWM0D4loKWxJek', at, '{"test": 2432232314}'));
});

test('private, loopback, link-local, unique-local and mapped addresses are refused before connecting', async () => {
  const connect = [vi.spyOn(http, 'request'), vi.spyOn(https, 'request')];
  const secret = generateSecret();
  for (const url of [
    'http://127.0.0.1:9/hook',
    'http://10.1.2.3/hook',
    'http://169.254.169.254/latest/meta-data',
    'http://192.168.1.1/',
    'http://172.20.0.1/',
    'http://[::1]/hook',
    'http://[fd00::1]/hook',
    'http://[fe80::1]/hook',
    'http://[::ffff:127.0.0.1]/hook',
    'http://[::ffff:a9fe:a9fe]/hook',
    'http://0.0.0.0/',
    'http://[::]/',
    'http://224.0.0.1/',
    'http://localhost/hook',
  ]) {
    const outcome = await deliverWebhook({ url, secret }, message, { allowPrivate: false });
    expect(outcome.ok, url).toBe(false);
    expect(outcome.status).toBeNull();
    expect(outcome.error, url).toMatch(/refused/);
  }
  // A host name is refused when any of its addresses is private, whatever comes first.
  const mixed = await resolveWebhookUrl('https://hooks.example.com/x', {
    allowPrivate: false,
    resolve: async () => [
      { address: '93.184.216.34', family: 4 },
      { address: '10.0.0.7', family: 4 },
    ],
  });
  expect(mixed).toEqual({ ok: false, error: expect.stringContaining('10.0.0.7') });
  for (const spy of connect) expect(spy).not.toHaveBeenCalled();
});

test('a public host is taken over https only, unless allowPrivate', async () => {
  const resolve = async () => [{ address: '93.184.216.34', family: 4 }];
  expect(await resolveWebhookUrl('http://hooks.example.com/x', { allowPrivate: false, resolve })).toEqual({
    ok: false,
    error: 'must be https on a public host',
  });
  expect(
    await resolveWebhookUrl('https://hooks.example.com/x', { allowPrivate: false, resolve }),
  ).toMatchObject({
    ok: true,
    address: '93.184.216.34',
  });
  expect(
    await resolveWebhookUrl('http://hooks.example.com/x', { allowPrivate: true, resolve }),
  ).toMatchObject({
    ok: true,
  });
});

test('a loopback receiver gets no connection without allowPrivate', async () => {
  const hook = await receiver(() => ({ status: 200 }));
  try {
    const outcome = await deliverWebhook({ url: hook.url, secret: generateSecret() }, message, {
      allowPrivate: false,
    });
    expect(outcome).toEqual({
      ok: false,
      status: null,
      error: expect.stringMatching(/loopback address .* refused/),
    });
    expect(hook.connections()).toBe(0);
  } finally {
    await hook.close();
  }
});

test('which addresses are refused', () => {
  for (const address of [
    '127.0.0.1',
    '10.0.0.1',
    '169.254.1.1',
    '::1',
    'fd00::',
    'fc00::1',
    '::ffff:127.0.0.1',
  ]) {
    expect(refusedAddress(address), address).toBeDefined();
  }
  for (const address of [
    '93.184.216.34',
    '8.8.8.8',
    '2606:4700:4700::1111',
    '::ffff:8.8.8.8',
    '172.32.0.1',
  ]) {
    expect(refusedAddress(address), address).toBeUndefined();
  }
});

test('a resolved host is connected to at the address that was checked', async () => {
  const connect = vi.spyOn(http, 'request');
  const hook = await receiver(() => ({ status: 200 }));
  try {
    const port = new URL(hook.url).port;
    const outcome = await deliverWebhook(
      { url: `http://hooks.connect.invalid:${port}/hook`, secret: generateSecret() },
      message,
      { allowPrivate: true, resolve: async () => [{ address: '127.0.0.1', family: 4 }] },
    );
    expect(outcome).toEqual({ ok: true, status: 200, error: null });
    expect(hook.received[0]?.headers.host).toBe(`hooks.connect.invalid:${port}`);
    expect(connect).toHaveBeenCalledOnce();
  } finally {
    await hook.close();
  }
});

test('redirects are not followed, errors and timeouts are failures', async () => {
  const hook = await receiver((_request, index) =>
    index === 0
      ? { status: 302, headers: { location: 'http://127.0.0.1:1/' } }
      : index === 1
        ? { status: 500 }
        : 'hang',
  );
  const target = { url: hook.url, secret: generateSecret() };
  try {
    expect(await deliverWebhook(target, message, { allowPrivate: true })).toEqual({
      ok: false,
      status: 302,
      error: expect.stringMatching(/not followed/),
    });
    expect(await deliverWebhook(target, message, { allowPrivate: true })).toEqual({
      ok: false,
      status: 500,
      error: 'answered 500',
    });
    expect(await deliverWebhook(target, message, { allowPrivate: true, timeoutMs: 200 })).toEqual({
      ok: false,
      status: null,
      error: 'no answer within 200 ms',
    });
    expect(hook.received).toHaveLength(3);
  } finally {
    await hook.close();
  }
});

test('retries follow the Standard Webhooks schedule for a day, then the delivery is dead', () => {
  const first = new Date('2031-05-01T00:00:00Z');
  let at = first;
  const times: number[] = [];
  for (let attempts = 1; ; attempts++) {
    const next = nextAttempt(attempts, first, at);
    if (next === 'dead') break;
    times.push(next.getTime() - at.getTime());
    at = next;
  }
  expect(times).toEqual(RETRY_DELAYS_MS);
  expect(at.getTime() - first.getTime()).toBeGreaterThanOrEqual(24 * 3600_000);
  expect(nextAttempt(1, first, new Date(first.getTime() + 24 * 3600_000))).toBe('dead');
});
