// A person's sessions: listed with the client that opened each, ended one by one or by logout
// scope; an ended session's refresh token fails and its live subscriptions close.
import { type Client, createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import WebSocket from 'ws';
import { type Stack, testStack } from '../../../test/support/stack.ts';
import { CLOSE_FORBIDDEN } from '../../query/src/graphql/connections.ts';
import { type Account, signUp, type TestApp, testApp } from './support.ts';

let t: TestApp;
beforeAll(async () => {
  t = await testApp();
});
afterAll(() => t.close());

const PASSWORD = 'correct horse battery';
const BROWSER = 'Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0';

interface Session {
  refreshToken: string;
  auth: { authorization: string };
}

async function login(who: Account, userAgent = BROWSER): Promise<Session> {
  const response = await t.app.inject({
    method: 'POST',
    url: '/v1/auth/token',
    payload: { grant_type: 'password', email: who.email, password: PASSWORD },
    headers: { 'user-agent': userAgent },
  });
  expect(response.statusCode).toBe(200);
  const body = response.json();
  return { refreshToken: body.refresh_token, auth: { authorization: `Bearer ${body.access_token}` } };
}

const list = async (session: Session) => {
  const response = await t.app.inject({ method: 'GET', url: '/v1/auth/sessions', headers: session.auth });
  expect(response.statusCode).toBe(200);
  return response.json().items as {
    id: string;
    createdAt: string;
    lastActiveAt: string;
    userAgent: string | null;
    address: string | null;
    current: boolean;
  }[];
};
const refreshes = async (session: Session) =>
  (
    await t.app.inject({
      method: 'POST',
      url: '/v1/auth/token',
      payload: { grant_type: 'refresh_token', refresh_token: session.refreshToken },
    })
  ).statusCode === 200;
const works = async (session: Session) =>
  (await t.app.inject({ method: 'GET', url: '/v1/auth/me', headers: session.auth })).statusCode === 200;
const logout = (session: Session, query = '', payload?: object) =>
  t.app.inject({
    method: 'POST',
    url: `/v1/auth/logout${query}`,
    headers: session.auth,
    ...(payload ? { payload } : {}),
  });

describe('listing and ending sessions', () => {
  test('lists the live sessions with their client; the caller’s is current', async () => {
    const ana = await signUp(t.app, 'Ana');
    const phone = await login(ana, 'ConnectApp/2.1 (iPhone)');
    const laptop = await login(ana, `${BROWSER} ${'x'.repeat(600)}`);
    const items = await list(laptop);
    expect(items).toHaveLength(3);
    expect(items.filter((item) => item.current)).toHaveLength(1);
    const current = items.find((item) => item.current);
    expect(current?.userAgent).toHaveLength(512);
    expect(current?.userAgent?.startsWith(BROWSER)).toBe(true);
    expect(items.map((item) => item.userAgent)).toContain('ConnectApp/2.1 (iPhone)');
    for (const item of items) {
      expect(item.address).toBe('127.0.0.1');
      expect(Date.parse(item.createdAt)).not.toBeNaN();
      expect(Date.parse(item.lastActiveAt)).not.toBeNaN();
    }
    expect((await list(phone)).find((item) => item.current)?.userAgent).toBe('ConnectApp/2.1 (iPhone)');
    expect((await t.app.inject({ method: 'GET', url: '/v1/auth/sessions' })).statusCode).toBe(401);
  });

  test('DELETE ends one of one’s own sessions; another person’s is 404', async () => {
    const ben = await signUp(t.app, 'Ben');
    const cat = await signUp(t.app, 'Cat');
    const phone = await login(ben);
    const laptop = await login(ben);
    const phoneId = (await list(phone)).find((item) => item.current)?.id;
    const catsId = (await list(cat)).find((item) => item.current)?.id;

    const foreign = await t.app.inject({
      method: 'DELETE',
      url: `/v1/auth/sessions/${catsId}`,
      headers: laptop.auth,
    });
    expect(foreign.statusCode).toBe(404);
    expect(foreign.headers['content-type']).toContain('application/problem+json');
    expect(await works(cat)).toBe(true);
    const bad = await t.app.inject({
      method: 'DELETE',
      url: '/v1/auth/sessions/not-an-id',
      headers: laptop.auth,
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().errors.map((e: { path: string }) => e.path)).toEqual(['path.id']);

    const ended = await t.app.inject({
      method: 'DELETE',
      url: `/v1/auth/sessions/${phoneId}`,
      headers: laptop.auth,
    });
    expect(ended.statusCode).toBe(204);
    expect(await works(phone)).toBe(false);
    expect(await refreshes(phone)).toBe(false);
    expect((await list(laptop)).map((item) => item.id)).not.toContain(phoneId);
    expect(await works(laptop)).toBe(true);
    const twice = await t.app.inject({
      method: 'DELETE',
      url: `/v1/auth/sessions/${phoneId}`,
      headers: laptop.auth,
    });
    expect(twice.statusCode).toBe(404);
  });

  test('logout scopes: local (default), others (query), global (body)', async () => {
    const dan = await signUp(t.app, 'Dan');
    const [a, b, c] = [await login(dan), await login(dan), await login(dan)];

    expect((await logout(a)).statusCode).toBe(204);
    expect([await works(a), await works(b), await works(c), await works(dan)]).toEqual([
      false,
      true,
      true,
      true,
    ]);

    expect((await logout(b, '?scope=others')).statusCode).toBe(204);
    expect([await works(b), await works(c), await works(dan)]).toEqual([true, false, false]);
    expect(await refreshes(c)).toBe(false);
    expect((await list(b)).map((item) => item.current)).toEqual([true]);

    const d = await login(dan);
    expect((await logout(b, '', { scope: 'global' })).statusCode).toBe(204);
    expect([await works(b), await works(d)]).toEqual([false, false]);
    expect(await refreshes(b)).toBe(false);
    expect(await refreshes(d)).toBe(false);
  });

  test('an unknown scope is 400 naming it', async () => {
    const eve = await signUp(t.app, 'Eve');
    const inQuery = await logout(eve, '?scope=everything');
    expect(inQuery.statusCode).toBe(400);
    expect(inQuery.json().errors.map((e: { path: string }) => e.path)).toEqual(['query.scope']);
    const inBody = await logout(eve, '', { scope: 'all' });
    expect(inBody.json().errors.map((e: { path: string }) => e.path)).toEqual(['body.scope']);
    expect(await works(eve)).toBe(true);
  });
});

describe('a live subscription', () => {
  let s: Stack;
  let wsUrl: string;
  const clients: Client[] = [];
  beforeAll(async () => {
    s = await testStack({ subscriptions: { sessionCheckMs: 100 } });
    wsUrl = `${(await s.app.listen({ port: 0, host: '127.0.0.1' })).replace('http', 'ws')}/graphql`;
  });
  afterAll(async () => {
    for (const client of clients) await client.dispose();
    await s.close();
  });

  test('closes with 4403 when its session is ended from another session (DELETE)', async () => {
    const fay = await signUp(s.app, 'Fay');
    const other = await s.app.inject({
      method: 'POST',
      url: '/v1/auth/token',
      payload: { grant_type: 'password', email: fay.email, password: PASSWORD },
    });
    const otherAuth = { authorization: `Bearer ${other.json().access_token}` };
    const client = createClient({
      url: wsUrl,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${fay.token}` },
      retryAttempts: 0,
    });
    clients.push(client);
    const received: unknown[] = [];
    const ended: { error?: unknown } = {};
    client.subscribe(
      { query: 'subscription { myCommitments { id } }' },
      {
        next: (message) => void received.push(message),
        error: (error) => {
          ended.error = error;
        },
        complete: () => {},
      },
    );
    // Live once a change gets through.
    while (received.length === 0) {
      await s.app.inject({
        method: 'POST',
        url: '/v1/commitments',
        payload: { type: 'personal', title: 'Fay' },
        headers: fay.auth,
      });
      await new Promise((resolve) => setTimeout(resolve, 200));
    }

    const sessions = await s.app.inject({ method: 'GET', url: '/v1/auth/sessions', headers: otherAuth });
    const first = (sessions.json().items as { id: string; current: boolean }[]).find((item) => !item.current);
    const deleted = await s.app.inject({
      method: 'DELETE',
      url: `/v1/auth/sessions/${first?.id}`,
      headers: otherAuth,
    });
    expect(deleted.statusCode).toBe(204);
    await vi.waitFor(() => expect(ended.error).toMatchObject({ code: CLOSE_FORBIDDEN }), {
      timeout: 10_000,
      interval: 20,
    });
  });
});
