import { inspect } from 'node:util';
import { type Notification, notificationId, smsChannel, twilioSender } from '@connect/notifier';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { codeIn, type FakeTwilio, fakeTwilio, TEST_AUTH_TOKEN } from '../../notifier/test/sms-support.ts';
import { type Account, signUp, type TestApp, testApp } from './support.ts';

let twilio: FakeTwilio;
let t: TestApp;
beforeAll(async () => {
  twilio = await fakeTwilio();
  t = await testApp({ sms: twilioSender(twilio.config) });
});
afterAll(async () => {
  await t?.close();
  await twilio?.close();
});

const URL = '/v1/me/phone';

const put = (account: Account, payload: unknown) =>
  t.app.inject({ method: 'PUT', url: URL, headers: account.auth, payload: payload as object });
const confirm = (account: Account, payload: unknown) =>
  t.app.inject({ method: 'POST', url: `${URL}/confirm`, headers: account.auth, payload: payload as object });
const get = (account: Account) => t.app.inject({ method: 'GET', url: URL, headers: account.auth });

const reminder = (recipientId: string): Notification => ({
  id: notificationId(7, recipientId, 'reminder'),
  recipientId,
  kind: 'reminder',
  title: 'Paint the fence is due in 1 hour',
  body: 'Due 1 June 2031, 12:00',
  link: 'http://localhost:5173/commitments/0b6f8a52-3c1e-4d7a-9f43-2f5d8c9e7a10',
  commitmentId: '0b6f8a52-3c1e-4d7a-9f43-2f5d8c9e7a10',
  ledgerIndex: 7,
  createdAt: '2031-06-01T11:00:00.000Z',
});

test('add a number, get the code by SMS, confirm it: then reminders go by SMS when wanted', async () => {
  const ana = await signUp(t.app, 'Phone');
  const channel = smsChannel({
    db: t.deps.db,
    cipher: t.deps.ledger.cipher.fields,
    sender: twilioSender(twilio.config),
  });
  expect((await get(ana)).statusCode).toBe(404);

  const added = await put(ana, { phone: '+1 (415) 555-2671' });
  expect(added.statusCode).toBe(200);
  expect(added.json()).toEqual({
    phone: '+14155552671',
    confirmed: false,
    codeExpiresAt: expect.any(String),
  });
  const expiresIn = Date.parse(added.json().codeExpiresAt) - Date.now();
  expect(expiresIn).toBeGreaterThan(9 * 60_000);
  expect(expiresIn).toBeLessThanOrEqual(10 * 60_000);
  const sms = await twilio.nextMessageTo('+14155552671');
  expect(sms.from).toBe(twilio.config.from);
  expect(twilio.problems).toEqual([]);

  // Opted in but not confirmed: nothing goes.
  await t.app.inject({
    method: 'PUT',
    url: '/v1/me/notification-preferences',
    headers: ana.auth,
    payload: { sms: { reminder: true } },
  });
  const before = twilio.messages.length;
  expect(await channel.deliver(reminder(ana.userId))).toBe('unconfirmed');
  expect(twilio.messages).toHaveLength(before);

  const confirmed = await confirm(ana, { code: codeIn(sms) });
  expect(confirmed.statusCode).toBe(204);
  expect((await get(ana)).json()).toEqual({ phone: '+14155552671', confirmed: true, codeExpiresAt: null });

  expect(await channel.deliver(reminder(ana.userId))).toBe('sent');
  expect(twilio.messages.at(-1)).toEqual({
    to: '+14155552671',
    from: twilio.config.from,
    body: 'Paint the fence is due in 1 hour\nhttp://localhost:5173/commitments/0b6f8a52-3c1e-4d7a-9f43-2f5d8c9e7a10',
  });

  // Not wanted any more: nothing goes.
  await t.app.inject({
    method: 'PUT',
    url: '/v1/me/notification-preferences',
    headers: ana.auth,
    payload: { sms: { reminder: false } },
  });
  expect(await channel.deliver(reminder(ana.userId))).toBe('not-wanted');

  // Putting the same number again keeps it confirmed and sends nothing.
  const count = twilio.messages.length;
  expect((await put(ana, { phone: '+14155552671' })).json()).toMatchObject({ confirmed: true });
  expect(twilio.messages).toHaveLength(count);

  // A new number must be confirmed again.
  expect((await put(ana, { phone: '+44 7911 123456' })).json()).toMatchObject({
    phone: '+447911123456',
    confirmed: false,
  });
  await t.app.inject({
    method: 'PUT',
    url: '/v1/me/notification-preferences',
    headers: ana.auth,
    payload: { sms: { reminder: true } },
  });
  expect(await channel.deliver(reminder(ana.userId))).toBe('unconfirmed');

  const removed = await t.app.inject({ method: 'DELETE', url: URL, headers: ana.auth });
  expect(removed.statusCode).toBe(204);
  expect((await get(ana)).statusCode).toBe(404);
  expect(await channel.deliver(reminder(ana.userId))).toBe('no-phone');
});

test('the number is sealed at rest; read back as set; moved to another person it does not open', async () => {
  const [gil, hal] = [await signUp(t.app, 'Sealed'), await signUp(t.app, 'Mover')];
  expect((await put(gil, { phone: '+1 415 555 0142' })).statusCode).toBe(200);
  expect((await confirm(gil, { code: codeIn(await twilio.nextMessageTo('+14155550142')) })).statusCode).toBe(
    204,
  );
  const { rows } = await t.database.pool.query<{ row: string }>(
    'select t::text as row from phone_numbers t where user_id = $1',
    [gil.userId],
  );
  for (const text of ['+14155550142', '4155550142'])
    for (const form of [text, Buffer.from(text).toString('hex')]) expect(rows[0]?.row).not.toContain(form);
  expect((await get(gil)).json()).toEqual({ phone: '+14155550142', confirmed: true, codeExpiresAt: null });

  await t.database.pool.query(
    `insert into phone_numbers (user_id, phone, confirmed_at)
     select $2, phone, confirmed_at from phone_numbers where user_id = $1`,
    [gil.userId, hal.userId],
  );
  const moved = await get(hal);
  expect(moved.statusCode).toBe(500);
  expect(moved.body).not.toContain('4155550142');
});

test('bad numbers get 400 naming body.phone, and no SMS', async () => {
  const ben = await signUp(t.app, 'BadPhone');
  const count = twilio.messages.length;
  for (const payload of [
    { phone: '415 555 2671' },
    { phone: '+1415555267' },
    { phone: '+999123456789' },
    { phone: 'call me' },
    { phone: '+44 20 7183 8750' },
    { phone: 14155552671 },
    {},
  ]) {
    const response = await put(ben, payload);
    expect(response.statusCode, JSON.stringify(payload)).toBe(400);
    expect(response.json()).toMatchObject({ type: '/problems/invalid-input', status: 400 });
    expect(response.json().errors.map((error: { path: string }) => error.path)).toEqual(['body.phone']);
  }
  expect(twilio.messages).toHaveLength(count);
  expect((await get(ben)).statusCode).toBe(404);
  // A number Twilio refuses (here: answered with 21211) is a 400 too.
  twilio.answerNext({
    status: 400,
    json: { code: 21211, message: "The 'To' number is not valid.", status: 400 },
  });
  const refused = await put(ben, { phone: '+14155552671' });
  expect(refused.statusCode).toBe(400);
  expect(refused.json().errors).toEqual([{ path: 'body.phone', message: 'cannot receive SMS from us' }]);
  expect((await get(ben)).statusCode).toBe(404);
});

test('a wrong code is 400 naming body.code; an expired one too; five wrong tries end the code', async () => {
  const cy = await signUp(t.app, 'Codes');
  expect((await confirm(cy, { code: '123456' })).statusCode).toBe(409); // no number yet
  expect((await put(cy, { phone: '+33 6 12 34 56 78' })).statusCode).toBe(200);
  const code = codeIn(await twilio.nextMessageTo('+33612345678'));
  const wrong = code === '000000' ? '000001' : '000000';

  for (const payload of [{ code: '12345' }, { code: 'abcdef' }, {}]) {
    const response = await confirm(cy, payload);
    expect(response.statusCode).toBe(400);
    expect(response.json().errors.map((error: { path: string }) => error.path)).toEqual(['body.code']);
  }
  const mistaken = await confirm(cy, { code: wrong });
  expect(mistaken.statusCode).toBe(400);
  expect(mistaken.json().errors).toEqual([{ path: 'body.code', message: 'is not the code we sent' }]);

  // Ten minutes later the code no longer works.
  await t.deps.db
    .updateTable('phone_numbers')
    .set({ code_expires_at: new Date(Date.now() - 1000) })
    .where('user_id', '=', cy.userId)
    .execute();
  const expired = await confirm(cy, { code });
  expect(expired.statusCode).toBe(400);
  expect(expired.json().errors).toEqual([
    { path: 'body.code', message: 'has expired; PUT /v1/me/phone sends a new one' },
  ]);
  expect((await get(cy)).json().confirmed).toBe(false);

  // A new code; five wrong tries and even the right one is refused.
  await put(cy, { phone: '+33612345678' });
  const fresh = codeIn(await twilio.nextMessageTo('+33612345678'));
  const miss = fresh === '000000' ? '000001' : '000000';
  for (let i = 0; i < 5; i++) expect((await confirm(cy, { code: miss })).statusCode).toBe(400);
  const blocked = await confirm(cy, { code: fresh });
  expect(blocked.statusCode).toBe(429);
  expect(blocked.json()).toMatchObject({ type: '/problems/rate-limited' });
  expect((await get(cy)).json().confirmed).toBe(false);
});

test('codes are sent three times an hour at most', async () => {
  const dee = await signUp(t.app, 'Limit');
  for (let i = 0; i < 3; i++) expect((await put(dee, { phone: '+14155550123' })).statusCode).toBe(200);
  const count = twilio.messages.length;
  const limited = await put(dee, { phone: '+14155550123' });
  expect(limited.statusCode).toBe(429);
  expect(limited.json()).toMatchObject({ type: '/problems/rate-limited' });
  expect(Number(limited.headers['retry-after'])).toBeGreaterThan(3500);
  expect(twilio.messages).toHaveLength(count);
  // Removing the number does not reset the limit.
  await t.app.inject({ method: 'DELETE', url: URL, headers: dee.auth });
  expect((await put(dee, { phone: '+14155550123' })).statusCode).toBe(429);
});

test('Twilio failing is a 503 to try again; the auth token appears in no answer', async () => {
  const eve = await signUp(t.app, 'Outage');
  twilio.answerNext({ status: 500, json: { code: 20500, message: 'Internal Server Error', status: 500 } });
  const failed = await put(eve, { phone: '+14155552671' });
  expect(failed.statusCode).toBe(503);
  expect(failed.headers['retry-after']).toBe('60');
  expect(failed.body).not.toContain(TEST_AUTH_TOKEN);
  expect((await get(eve)).statusCode).toBe(404);
  const channel = smsChannel({
    db: t.deps.db,
    cipher: t.deps.ledger.cipher.fields,
    sender: twilioSender(twilio.config),
  });
  expect(inspect(channel, { depth: 10, showHidden: true })).not.toContain(TEST_AUTH_TOKEN);
  const document = await t.app.inject({ method: 'GET', url: '/openapi.json' });
  expect(document.body).not.toContain(TEST_AUTH_TOKEN);
  expect(Object.keys(document.json().paths['/v1/me/phone'])).toEqual(['get', 'put', 'delete']);
});

test('without Twilio configured, SMS is off: no number can be added', async () => {
  const off = await testApp();
  try {
    const fay = await signUp(off.app, 'NoSms');
    const response = await off.app.inject({
      method: 'PUT',
      url: URL,
      headers: fay.auth,
      payload: { phone: '+14155552671' },
    });
    expect(response.statusCode).toBe(409);
    expect(response.json().detail).toMatch(/SMS is off/);
    // A bad number is still named first.
    const bad = await off.app.inject({ method: 'PUT', url: URL, headers: fay.auth, payload: { phone: 'x' } });
    expect(bad.statusCode).toBe(400);
    expect((await off.app.inject({ method: 'GET', url: URL })).statusCode).toBe(401);
  } finally {
    await off.close();
  }
});
