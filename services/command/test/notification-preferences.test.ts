import { loadUnsubscribeTokens } from '@connect/notifier';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { signUp, type TestApp, testApp } from './support.ts';

let t: TestApp;
beforeAll(async () => {
  t = await testApp();
});
afterAll(() => t.close());

const URL = '/v1/me/notification-preferences';

test('preferences start at the defaults', async () => {
  const ana = await signUp(t.app, 'Defaults');
  const response = await t.app.inject({ method: 'GET', url: URL, headers: ana.auth });
  expect(response.statusCode).toBe(200);
  const all = { response: true, lifecycle: true, amendment: true, document: true };
  expect(response.json()).toEqual({
    inapp: { invitation: true, dispute: true, reminder: true, ...all },
    email: { invitation: true, dispute: true, reminder: true, ...mapAll(all, false) },
    push: { invitation: true, dispute: true, reminder: true, ...all },
    sms: { invitation: false, dispute: false, reminder: false, ...mapAll(all, false) },
  });
  expect((await t.app.inject({ method: 'GET', url: URL })).statusCode).toBe(401);
});

test('a PUT changes only what it names, and a later GET shows it', async () => {
  const ana = await signUp(t.app, 'Partial');
  const put = await t.app.inject({
    method: 'PUT',
    url: URL,
    headers: ana.auth,
    payload: {
      email: { lifecycle: true, reminder: false },
      sms: { reminder: true },
      inapp: { dispute: true },
    },
  });
  expect(put.statusCode).toBe(200);
  expect(put.json().email).toMatchObject({
    lifecycle: true,
    reminder: false,
    invitation: true,
    document: false,
  });
  expect(put.json().sms).toMatchObject({ reminder: true, invitation: false });
  const again = await t.app.inject({
    method: 'PUT',
    url: URL,
    headers: ana.auth,
    payload: { email: { reminder: true } },
  });
  expect(again.json().email).toMatchObject({ lifecycle: true, reminder: true });
  const get = await t.app.inject({ method: 'GET', url: URL, headers: ana.auth });
  expect(get.json()).toEqual(again.json());
  // Another person's preferences are untouched.
  const ben = await signUp(t.app, 'Other');
  expect((await t.app.inject({ method: 'GET', url: URL, headers: ben.auth })).json().email.lifecycle).toBe(
    false,
  );
});

test('bad preferences get 400 naming each field', async () => {
  const ana = await signUp(t.app, 'Bad');
  const put = (payload: object) => t.app.inject({ method: 'PUT', url: URL, headers: ana.auth, payload });
  const paths = async (payload: object) => {
    const response = await put(payload);
    expect(response.statusCode).toBe(400);
    expect(response.json()).toMatchObject({ type: '/problems/invalid-input', status: 400 });
    return (response.json().errors as { path: string }[]).map((error) => error.path).sort();
  };
  expect(await paths({ fax: { invitation: true } })).toEqual(['body.fax']);
  expect(await paths({ email: { gossip: true } })).toEqual(['body.email.gossip']);
  expect(await paths({ email: { reminder: 'yes' } })).toEqual(['body.email.reminder']);
  expect(await paths({ inapp: { dispute: false } })).toEqual(['body.inapp.dispute']);
  expect(await paths({ sms: { invitation: true }, push: [] })).toEqual(['body.push', 'body.sms.invitation']);
  expect(await paths([])).toEqual(['body']);
  // Nothing of a refused request was kept.
  const get = await t.app.inject({ method: 'GET', url: URL, headers: ana.auth });
  expect(get.json().email.reminder).toBe(true);
});

test('one-click unsubscribe turns off email of that kind; a forged token is refused', async () => {
  const ana = await signUp(t.app, 'Unsubscribe');
  const tokens = await loadUnsubscribeTokens(t.deps.dataDir);
  const token = tokens.sign({ userId: ana.userId, kind: 'reminder' });
  const oneClick = (query: string) =>
    t.app.inject({
      method: 'POST',
      url: `/v1/unsubscribe?${query}`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'List-Unsubscribe=One-Click',
    });

  const page = await t.app.inject({
    method: 'GET',
    url: `/v1/unsubscribe?token=${encodeURIComponent(token)}`,
  });
  expect(page.statusCode).toBe(200);
  expect(page.headers['content-type']).toMatch(/^text\/html/);
  expect(page.body).toContain('<form method="post">');
  expect(page.body).toContain('reminders');

  const unsubscribed = await oneClick(`token=${encodeURIComponent(token)}`);
  expect(unsubscribed.statusCode).toBe(200);
  expect(unsubscribed.json()).toEqual({ channel: 'email', kind: 'reminder', enabled: false });
  const get = await t.app.inject({ method: 'GET', url: URL, headers: ana.auth });
  expect(get.json().email).toMatchObject({ reminder: false, invitation: true, dispute: true });
  // Again is fine (a mail client may retry).
  expect((await oneClick(`token=${encodeURIComponent(token)}`)).statusCode).toBe(200);

  // Multipart, as RFC 8058 prefers, works too.
  const dispute = tokens.sign({ userId: ana.userId, kind: 'dispute' });
  const multipart = await t.app.inject({
    method: 'POST',
    url: `/v1/unsubscribe?token=${encodeURIComponent(dispute)}`,
    headers: { 'content-type': 'multipart/form-data; boundary=x' },
    payload: '--x\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--x--\r\n',
  });
  expect(multipart.statusCode).toBe(200);

  const forged = token.replace('.reminder.', '.invitation.');
  for (const query of [`token=${encodeURIComponent(forged)}`, 'token=nonsense', '']) {
    const refused = await oneClick(query);
    expect(refused.statusCode, query).toBe(400);
    expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(refused.json().errors).toEqual([{ path: 'query.token', message: expect.any(String) }]);
  }
  const after = await t.app.inject({ method: 'GET', url: URL, headers: ana.auth });
  expect(after.json().email).toMatchObject({ invitation: true, reminder: false, dispute: false });
});

test('an unsubscribe link of an account that no longer exists is 404', async () => {
  const tokens = await loadUnsubscribeTokens(t.deps.dataDir);
  const token = tokens.sign({ userId: '00000000-0000-4000-8000-000000000000', kind: 'reminder' });
  const response = await t.app.inject({
    method: 'POST',
    url: `/v1/unsubscribe?token=${encodeURIComponent(token)}`,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: 'List-Unsubscribe=One-Click',
  });
  expect(response.statusCode).toBe(404);
});

function mapAll<T extends Record<string, unknown>>(object: T, value: boolean): Record<keyof T, boolean> {
  return Object.fromEntries(Object.keys(object).map((key) => [key, value])) as Record<keyof T, boolean>;
}
