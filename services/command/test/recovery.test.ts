// Recovering an account by email, and changing the password, through mail a real SMTP server
// receives from the notifier's worker.
import type { DeliveryQueue } from '@connect/notifier';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type Inbox, mailWorker, smtpInbox, tokenIn } from './mail-support.ts';
import { type Account, signUp, type TestApp, testApp } from './support.ts';

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

const PASSWORD = 'correct horse battery';
const post = (url: string, payload: object, headers: Record<string, string> = {}) =>
  t.app.inject({ method: 'POST', url, payload, headers });
const login = (email: string, password: string) =>
  post('/v1/auth/token', { grant_type: 'password', email, password });
const refresh = (refreshToken: string) =>
  post('/v1/auth/token', { grant_type: 'refresh_token', refresh_token: refreshToken });
const paths = (response: { json(): { errors?: { path: string }[] } }) =>
  response.json().errors?.map((e) => e.path);

/** Another session of the account, by logging in. */
async function secondSession(who: Account) {
  const response = await login(who.email, PASSWORD);
  expect(response.statusCode).toBe(200);
  const body = response.json();
  return {
    refreshToken: body.refresh_token as string,
    auth: { authorization: `Bearer ${body.access_token}` },
  };
}

describe('recovery', () => {
  test('answers the same for a known and an unknown address; mails only the known one', async () => {
    const ana = await signUp(t.app, 'Ana');
    await inbox.next(ana.email);
    const unknown = `nobody-${Date.now()}@example.test`;
    const forUnknown = await post('/v1/auth/recover', { email: unknown });
    const forKnown = await post('/v1/auth/recover', { email: ana.email.toUpperCase() });
    expect(forUnknown.statusCode).toBe(202);
    expect(forKnown.statusCode).toBe(202);
    expect(forKnown.body).toBe(forUnknown.body);
    expect(forKnown.headers['content-type']).toBe(forUnknown.headers['content-type']);

    const mail = await inbox.next(ana.email);
    expect(mail.subject).toBe('Reset your Connect password');
    tokenIn(mail, 'reset-password');
    // Both jobs are done by now (one worker, in order): the unknown address got nothing.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(inbox.mails.filter((m) => m.to === unknown)).toEqual([]);
  });

  test('the mailed token resets the password once, verifies the email and ends every session', async () => {
    const ben = await signUp(t.app, 'Ben');
    await inbox.next(ben.email);
    const other = await secondSession(ben);
    expect((await post('/v1/auth/recover', { email: ben.email })).statusCode).toBe(202);
    const token = tokenIn(await inbox.next(ben.email), 'reset-password');

    const short = await post('/v1/auth/reset', { token, password: 'short' });
    expect(short.statusCode).toBe(400);
    expect(paths(short)).toEqual(['body.password']);

    const reset = await post('/v1/auth/reset', { token, password: 'a brand new password' });
    expect(reset.statusCode).toBe(204);
    const again = await post('/v1/auth/reset', { token, password: 'yet another password' });
    expect(again.statusCode).toBe(400);
    expect(paths(again)).toEqual(['body.token']);

    expect((await login(ben.email, PASSWORD)).statusCode).toBeGreaterThanOrEqual(400);
    const fresh = await login(ben.email, 'a brand new password');
    expect(fresh.statusCode).toBe(200);
    expect(fresh.json().user).toMatchObject({ emailVerified: true });
    for (const session of [ben, other]) {
      expect((await refresh(session.refreshToken)).statusCode).toBeGreaterThanOrEqual(400);
      expect(
        (await t.app.inject({ method: 'GET', url: '/v1/auth/me', headers: session.auth })).statusCode,
      ).toBe(401);
    }
  });

  test('a verification token does not reset, and bad input is 400 naming the field', async () => {
    const cat = await signUp(t.app, 'Cat');
    const verifyToken = tokenIn(await inbox.next(cat.email), 'verify-email');
    const wrongPurpose = await post('/v1/auth/reset', {
      token: verifyToken,
      password: 'a brand new password',
    });
    expect(paths(wrongPurpose)).toEqual(['body.token']);
    expect(paths(await post('/v1/auth/recover', { email: 'not an email' }))).toEqual(['body.email']);
    expect(paths(await post('/v1/auth/recover', {}))).toEqual(['body.email']);
    expect(paths(await post('/v1/auth/reset', { password: 'a brand new password' }))).toEqual(['body.token']);
  });
});

describe('changing the password', () => {
  test('needs the current one, and ends the other sessions only', async () => {
    const dan = await signUp(t.app, 'Dan');
    const other = await secondSession(dan);
    const wrong = await post(
      '/v1/auth/password',
      { currentPassword: 'not my password', newPassword: 'a brand new password' },
      dan.auth,
    );
    expect(wrong.statusCode).toBe(400);
    expect(paths(wrong)).toEqual(['body.currentPassword']);
    const weak = await post(
      '/v1/auth/password',
      { currentPassword: PASSWORD, newPassword: 'short' },
      dan.auth,
    );
    expect(paths(weak)).toEqual(['body.newPassword']);
    expect(
      (await post('/v1/auth/password', { currentPassword: PASSWORD, newPassword: 'a brand new password' }))
        .statusCode,
    ).toBe(401);

    const changed = await post(
      '/v1/auth/password',
      { currentPassword: PASSWORD, newPassword: 'a brand new password' },
      dan.auth,
    );
    expect(changed.statusCode).toBe(204);
    expect((await refresh(other.refreshToken)).statusCode).toBeGreaterThanOrEqual(400);
    expect((await t.app.inject({ method: 'GET', url: '/v1/auth/me', headers: other.auth })).statusCode).toBe(
      401,
    );
    expect((await t.app.inject({ method: 'GET', url: '/v1/auth/me', headers: dan.auth })).statusCode).toBe(
      200,
    );
    expect((await refresh(dan.refreshToken)).statusCode).toBe(200);
    expect((await login(dan.email, PASSWORD)).statusCode).toBeGreaterThanOrEqual(400);
    expect((await login(dan.email, 'a brand new password')).statusCode).toBe(200);
  });
});
