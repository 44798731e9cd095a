// Every log line of a request names it (request id) and its trace (W3C traceparent), a command's
// ledger entries keep the trace id as their correlation id, a webhook about them continues the
// trace, and no password or token is ever logged.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createEndpoint, enqueueWebhook } from '@connect/notifier';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { attemptDelivery } from '../../notifier/src/webhooks/store.ts';
import { type Account, signUp, type TestApp, testApp } from './support.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_SPAN = '00f067aa0ba902b7';
const TRACEPARENT = `00-${TRACE_ID}-${PARENT_SPAN}-01`;

let t: TestApp;
let ana: Account;
const lines: Record<string, unknown>[] = [];
let text = '';

beforeAll(async () => {
  t = await testApp(
    {},
    {
      logLevel: 'debug',
      logStream: {
        write(line: string) {
          text += line;
          lines.push(JSON.parse(line));
        },
      },
    },
  );
  ana = await signUp(t.app, 'Ana');
});
afterAll(() => t.close());

const linesOf = (requestId: string) => lines.filter((line) => line.requestId === requestId);

test('a command with traceparent and X-Request-Id: every log line carries both, the entry’s meta the trace id', async () => {
  const response = await t.app.inject({
    method: 'POST',
    url: '/v1/commitments',
    headers: { ...ana.auth, traceparent: TRACEPARENT, 'x-request-id': 'client-req-42' },
    payload: { type: 'personal', title: 'Traced' },
  });
  expect(response.statusCode).toBe(201);
  expect(response.headers['x-request-id']).toBe('client-req-42');
  const [, traceId, spanId] = String(response.headers.traceresponse).split('-');
  expect(traceId).toBe(TRACE_ID);
  expect(spanId).toMatch(/^[0-9a-f]{16}$/);
  expect(spanId).not.toBe(PARENT_SPAN);

  const mine = linesOf('client-req-42');
  expect(mine.map((line) => line.msg)).toEqual(
    expect.arrayContaining(['incoming request', 'request completed']),
  );
  for (const line of mine) {
    expect(line).toMatchObject({ correlationId: TRACE_ID, trace_id: TRACE_ID, span_id: spanId });
  }
  // No line of this request goes without its id.
  const unnamed = lines.filter(
    (line) => (line.req as { url?: string } | undefined)?.url === '/v1/commitments' && !line.requestId,
  );
  expect(unnamed).toEqual([]);

  const { index } = response.json().events[0] as { index: number };
  const { rows } = await t.database.pool.query<{ meta: Record<string, unknown> }>(
    'select meta from ledger_entries where index = $1',
    [index],
  );
  expect(rows[0]?.meta).toMatchObject({ correlationId: TRACE_ID, command: 'create' });
});

test('a malformed X-Request-Id or traceparent is replaced: a new request id, a new trace', async () => {
  const response = await t.app.inject({
    method: 'GET',
    url: '/healthz',
    headers: {
      'x-request-id': 'not well formed\u0001',
      traceparent: `00-${'0'.repeat(32)}-${PARENT_SPAN}-01`,
    },
  });
  const requestId = String(response.headers['x-request-id']);
  expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
  const [version, traceId] = String(response.headers.traceresponse).split('-');
  expect(version).toBe('00');
  expect(traceId).toMatch(/^[0-9a-f]{32}$/);
  expect(traceId).not.toBe('0'.repeat(32));
  for (const line of linesOf(requestId)) expect(line.trace_id).toBe(traceId);
  expect(linesOf(requestId).length).toBeGreaterThan(0);

  // Without any header, each request gets ids of its own.
  const plain = await t.app.inject({ method: 'GET', url: '/healthz' });
  expect(plain.headers['x-request-id']).not.toBe(requestId);
  expect(String(plain.headers.traceresponse)).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
});

test('a webhook about a traced command continues its trace with a new span', async () => {
  const received: http.IncomingHttpHeaders[] = [];
  const hook = http.createServer((request, response) => {
    received.push(request.headers);
    request.resume();
    request.on('end', () => response.writeHead(204).end());
  });
  await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
  try {
    const created = await t.app.inject({
      method: 'POST',
      url: '/v1/commitments',
      headers: { ...ana.auth, traceparent: TRACEPARENT },
      payload: { type: 'personal', title: 'Announced' },
    });
    const { index } = created.json().events[0] as { index: number };
    const cipher = t.deps.ledger.cipher.fields;
    await createEndpoint(t.database.db, cipher, {
      url: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`,
    });
    const [delivery] = await enqueueWebhook(t.database.db, cipher, {
      webhookId: `evt_${index}`,
      eventType: 'commitment.drafted',
      payload: { index },
    });
    const result = await attemptDelivery(t.database.db, delivery as string, { cipher, allowPrivate: true });
    expect(result.outcome?.ok).toBe(true);
    const [, traceId, spanId, flags] = String(received[0]?.traceparent).split('-');
    expect(traceId).toBe(TRACE_ID);
    expect(spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(spanId).not.toBe(PARENT_SPAN);
    expect(flags).toBe('01');
  } finally {
    hook.closeAllConnections();
    await new Promise((resolve) => hook.close(resolve));
  }
});

test('no password or token appears in the logs', async () => {
  const login = await t.app.inject({
    method: 'POST',
    url: '/v1/auth/token',
    payload: { grant_type: 'password', email: ana.email, password: 'correct horse battery' },
  });
  expect(login.statusCode).toBe(200);
  const { access_token: access, refresh_token: refresh } = login.json() as Record<string, string>;
  await t.app.inject({
    method: 'POST',
    url: '/v1/auth/token',
    payload: { grant_type: 'refresh_token', refresh_token: refresh },
  });
  await t.app.inject({ method: 'GET', url: '/v1/auth/me', headers: { authorization: `Bearer ${access}` } });
  await t.app.inject({ method: 'GET', url: '/v1/unsubscribe?token=a-secret-unsubscribe-token&x=1' });
  await t.app.inject({ method: 'GET', url: '/v1/auth/oidc/any/callback?code=a-secret-code&state=s3cr3t' });
  expect(text.length).toBeGreaterThan(0);
  for (const secret of [
    'correct horse battery',
    access,
    refresh,
    ana.token,
    ana.refreshToken,
    'a-secret-unsubscribe-token',
    'a-secret-code',
    's3cr3t',
  ]) {
    expect(text).not.toContain(secret);
  }
  expect(text).toContain('/v1/unsubscribe?token=[redacted]&x=1');
});
