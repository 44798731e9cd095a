import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { grantAdmin } from '../src/auth/roles.ts';
import { type Account, signUp, type TestApp, testApp } from './support.ts';

let t: TestApp;
let strict: TestApp;
let admin: { authorization: string };
let ben: Account;
const received: { headers: http.IncomingHttpHeaders; body: string }[] = [];
let answer = 200;
let hook: http.Server;
let hookUrl: string;

async function adminOf(app: TestApp): Promise<{ authorization: string }> {
  const ana = await signUp(app.app, 'Ana');
  await grantAdmin(app.deps, ana.email);
  const login = await app.app.inject({
    method: 'POST',
    url: '/v1/auth/token',
    payload: { grant_type: 'password', email: ana.email, password: 'correct horse battery' },
  });
  return { authorization: `Bearer ${login.json().access_token}` };
}

beforeAll(async () => {
  t = await testApp({ webhooksAllowPrivate: true });
  strict = await testApp();
  admin = await adminOf(t);
  ben = await signUp(t.app, 'Ben');
  hook = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      received.push({ headers: request.headers, body: Buffer.concat(chunks).toString('utf8') });
      response.writeHead(answer).end();
    });
  });
  await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
  hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`;
});
afterAll(async () => {
  hook.closeAllConnections();
  await new Promise((resolve) => hook.close(resolve));
  await t.close();
  await strict.close();
});

test('only admins manage webhooks', async () => {
  for (const [method, url] of [
    ['POST', '/v1/admin/webhooks'],
    ['GET', '/v1/admin/webhooks'],
    ['DELETE', '/v1/admin/webhooks/4a7c1e9b-2d3f-4b6a-8c5e-9f0a1b2c3d4e'],
    ['GET', '/v1/admin/webhooks/4a7c1e9b-2d3f-4b6a-8c5e-9f0a1b2c3d4e/deliveries'],
    ['POST', '/v1/admin/webhooks/4a7c1e9b-2d3f-4b6a-8c5e-9f0a1b2c3d4e/test'],
  ] as const) {
    const response = await t.app.inject({ method, url, headers: ben.auth, payload: { url: hookUrl } });
    expect(response.statusCode, `${method} ${url}`).toBe(403);
    expect(response.json().type).toBe('/problems/forbidden');
    expect((await t.app.inject({ method, url })).statusCode).toBe(401);
  }
});

test('a bad or private webhook URL is a 400 naming body.url', async () => {
  for (const url of ['not a url', 'ftp://hooks.example.com/x', 'https://user:pw@hooks.example.com/', 42]) {
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/admin/webhooks',
      headers: admin,
      payload: { url },
    });
    expect(response.statusCode, String(url)).toBe(400);
    expect(response.json().errors.map((e: { path: string }) => e.path)).toEqual(['body.url']);
  }
  const strictAdmin = await adminOf(strict);
  for (const url of [
    hookUrl,
    'http://10.0.0.8/',
    'http://169.254.169.254/',
    'http://[::1]/',
    'http://[fd00::1]/',
    'http://localhost/',
  ]) {
    const response = await strict.app.inject({
      method: 'POST',
      url: '/v1/admin/webhooks',
      headers: strictAdmin,
      payload: { url },
    });
    expect(response.statusCode, url).toBe(400);
    expect(response.json()).toMatchObject({
      type: '/problems/invalid-input',
      errors: [{ path: 'body.url', message: expect.stringMatching(/refused/) }],
    });
  }
  const badEvents = await t.app.inject({
    method: 'POST',
    url: '/v1/admin/webhooks',
    headers: admin,
    payload: { url: hookUrl, events: ['not an event'] },
  });
  expect(badEvents.json().errors.map((e: { path: string }) => e.path)).toEqual(['body.events.0']);
});

test('an admin registers an endpoint, sees its secret once, tests it, lists deliveries and deletes it', async () => {
  const created = await t.app.inject({
    method: 'POST',
    url: '/v1/admin/webhooks',
    headers: admin,
    payload: { url: hookUrl, events: ['commitment.activated'] },
  });
  expect(created.statusCode).toBe(201);
  const endpoint = created.json();
  expect(endpoint).toMatchObject({ url: hookUrl, events: ['commitment.activated'], status: 'enabled' });
  expect(endpoint.secret).toMatch(/^whsec_/);

  const listed = await t.app.inject({ method: 'GET', url: '/v1/admin/webhooks', headers: admin });
  expect(listed.json().endpoints).toEqual([expect.objectContaining({ id: endpoint.id, url: hookUrl })]);
  expect(listed.body).not.toContain(endpoint.secret);
  expect(listed.body).not.toContain('whsec_');

  const tested = await t.app.inject({
    method: 'POST',
    url: `/v1/admin/webhooks/${endpoint.id}/test`,
    headers: admin,
  });
  expect(tested.statusCode).toBe(200);
  expect(tested.json()).toMatchObject({
    ok: true,
    delivery: {
      endpointId: endpoint.id,
      eventType: 'webhook.test',
      status: 'delivered',
      attempts: 1,
      lastStatusCode: 200,
    },
  });
  const [request] = received;
  const payload = new Webhook(endpoint.secret).verify(request?.body ?? '', {
    'webhook-id': String(request?.headers['webhook-id']),
    'webhook-timestamp': String(request?.headers['webhook-timestamp']),
    'webhook-signature': String(request?.headers['webhook-signature']),
  });
  expect(payload).toMatchObject({ type: 'webhook.test', data: { endpointId: endpoint.id } });
  expect(request?.headers['webhook-id']).toBe(tested.json().delivery.webhookId);

  answer = 500;
  const failing = await t.app.inject({
    method: 'POST',
    url: `/v1/admin/webhooks/${endpoint.id}/test`,
    headers: admin,
  });
  expect(failing.json()).toMatchObject({ ok: false, delivery: { status: 'failed', lastStatusCode: 500 } });
  expect(failing.json().delivery.nextAttemptAt).toEqual(expect.any(String));
  answer = 200;

  const deliveries = await t.app.inject({
    method: 'GET',
    url: `/v1/admin/webhooks/${endpoint.id}/deliveries`,
    headers: admin,
  });
  expect(deliveries.statusCode).toBe(200);
  expect(deliveries.json().deliveries.map((d: { status: string }) => d.status)).toEqual([
    'failed',
    'delivered',
  ]);
  expect(deliveries.body).not.toContain('whsec_');
  const listedAgain = await t.app.inject({ method: 'GET', url: '/v1/admin/webhooks', headers: admin });
  expect(listedAgain.json().endpoints[0]).toMatchObject({
    status: 'failing',
    failingSince: expect.any(String),
  });

  const deleted = await t.app.inject({
    method: 'DELETE',
    url: `/v1/admin/webhooks/${endpoint.id}`,
    headers: admin,
  });
  expect(deleted.statusCode).toBe(204);
  expect(
    (await t.app.inject({ method: 'DELETE', url: `/v1/admin/webhooks/${endpoint.id}`, headers: admin }))
      .statusCode,
  ).toBe(404);
  expect(
    (
      await t.app.inject({
        method: 'GET',
        url: `/v1/admin/webhooks/${endpoint.id}/deliveries`,
        headers: admin,
      })
    ).statusCode,
  ).toBe(404);
  expect(
    (await t.app.inject({ method: 'GET', url: '/v1/admin/webhooks', headers: admin })).json().endpoints,
  ).toEqual([]);
  expect(
    (await t.app.inject({ method: 'POST', url: '/v1/admin/webhooks/not-an-id/test', headers: admin })).json()
      .errors,
  ).toEqual([{ path: 'path.id', message: expect.any(String) }]);
});
