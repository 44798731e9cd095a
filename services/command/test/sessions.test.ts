import { randomUUID } from 'node:crypto';
import { sessionAccess } from '@connect/auth';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { plansOfPrepared } from '../../../test/support/prepared-plans.ts';
import { type Account, signUp, type TestApp, testApp } from './support.ts';

const HOUR = 3600;
let t: TestApp;
let at = Date.now();
const advance = (seconds: number) => {
  at += seconds * 1000;
};

beforeAll(async () => {
  t = await testApp({
    now: () => new Date(at),
    sessionLifetimes: { idleSeconds: HOUR, maxSeconds: 4 * HOUR },
  });
});
afterAll(() => t.close());

const refresh = (token: string) =>
  t.app.inject({
    method: 'POST',
    url: '/v1/auth/token',
    payload: { grant_type: 'refresh_token', refresh_token: token },
  });
const me = (accessToken: string) =>
  t.app.inject({ method: 'GET', url: '/v1/auth/me', headers: { authorization: `Bearer ${accessToken}` } });

async function refreshed(token: string): Promise<{ access_token: string; refresh_token: string }> {
  const response = await refresh(token);
  expect(response.statusCode).toBe(200);
  return response.json();
}

function expectExpired(response: Awaited<ReturnType<typeof refresh>>) {
  expect(response.statusCode).toBe(400);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(response.json()).toMatchObject({
    type: '/problems/session-expired',
    status: 400,
    error: 'invalid_grant',
  });
}

describe('session lifetimes', () => {
  test('a session idle for longer than the idle timeout ends: refresh and access tokens fail', async () => {
    const ana: Account = await signUp(t.app, 'Idle');
    advance(HOUR - 60);
    expect((await me(ana.token)).statusCode).toBe(200);
    advance(120);
    expect((await me(ana.token)).statusCode).toBe(401);
    expectExpired(await refresh(ana.refreshToken));
  });

  test('each refresh moves the idle deadline', async () => {
    const ana = await signUp(t.app, 'Active');
    advance(HOUR - 60);
    const next = await refreshed(ana.refreshToken);
    advance(HOUR - 60);
    expect((await me(next.access_token)).statusCode).toBe(200);
    expect((await refresh(next.refresh_token)).statusCode).toBe(200);
  });

  test('the absolute lifetime ends a session however active it is', async () => {
    const ana = await signUp(t.app, 'Busy');
    let tokens = { access_token: ana.token, refresh_token: ana.refreshToken };
    for (let elapsed = 0; elapsed < 4 * HOUR - 45 * 60; elapsed += 45 * 60) {
      advance(45 * 60);
      tokens = await refreshed(tokens.refresh_token);
    }
    expect((await me(tokens.access_token)).statusCode).toBe(200);
    advance(45 * 60); // 4 h 30 min after login, 45 min after the last refresh
    expect((await me(tokens.access_token)).statusCode).toBe(401);
    expectExpired(await refresh(tokens.refresh_token));
  });
});

describe('refresh token reuse', () => {
  test('within the grace window, a reused token gets the same successor, not a second chain', async () => {
    const ana = await signUp(t.app, 'Twice');
    const first = await refreshed(ana.refreshToken);
    advance(5);
    const second = await refreshed(ana.refreshToken);
    expect(second.refresh_token).toBe(first.refresh_token);
    expect(first.refresh_token).not.toBe(ana.refreshToken);
    const { rows } = await t.database.pool.query(
      `select count(*)::int as n from refresh_tokens r join sessions s on s.id = r.session_id
       where s.user_id = $1`,
      [ana.userId],
    );
    expect(rows[0].n).toBe(2);
    // The one successor goes on rotating as usual.
    const third = await refreshed(second.refresh_token);
    expect(third.refresh_token).not.toBe(second.refresh_token);
  });

  test('two tabs refreshing together get the same successor', async () => {
    const ana = await signUp(t.app, 'Tabs');
    const [a, b] = await Promise.all([refresh(ana.refreshToken), refresh(ana.refreshToken)]);
    expect([a.statusCode, b.statusCode]).toEqual([200, 200]);
    expect(a.json().refresh_token).toBe(b.json().refresh_token);
  });

  test('after the grace window, reuse revokes the session', async () => {
    const ana = await signUp(t.app, 'Late');
    const rotated = await refreshed(ana.refreshToken);
    advance(11);
    const reuse = await refresh(ana.refreshToken);
    expect(reuse.statusCode).toBe(400);
    expect(reuse.json().detail).toMatch(/session is ended/);
    expect((await refresh(rotated.refresh_token)).statusCode).toBe(400);
    expect((await me(rotated.access_token)).statusCode).toBe(401);
  });
});

test('a session is looked up by a statement prepared once per connection, which PostgreSQL then runs on a generic plan', async () => {
  const plans = await plansOfPrepared(t.database.url, 'session-access', 8, async (db) =>
    expect(await sessionAccess(db, randomUUID())).toBeUndefined(),
  );
  // PostgreSQL plans the first five executions for their values, then settles on the generic plan.
  expect(plans && plans.generic + plans.custom).toBe(8);
  expect(plans?.generic).toBeGreaterThan(0);
});
