import { afterAll, beforeAll, expect, test } from 'vitest';
import { type Account, signUp, type TestApp, testApp } from './support.ts';

let t: TestApp;
let ana: Account;
let ben: Account;
let commitmentId: string;

beforeAll(async () => {
  t = await testApp({ invitesPerMinute: 2 });
  ana = await signUp(t.app, 'Ana');
  ben = await signUp(t.app, 'Ben');
  const created = await t.app.inject({
    method: 'POST',
    url: '/v1/commitments',
    headers: ana.auth,
    payload: { type: 'personal', title: 'Lend the ladder' },
  });
  commitmentId = created.json().commitmentId;
});
afterAll(() => t.close());

const invite = (who: Account, payload: object) =>
  t.app.inject({
    method: 'POST',
    url: `/v1/commitments/${commitmentId}/invite`,
    headers: who.auth,
    payload,
  });

test('invitations by email are rate limited per caller; by user id they are not', async () => {
  const byEmail = (n: number) => invite(ana, { email: `nobody-${n}@example.test`, role: 'witness' });
  expect((await byEmail(1)).statusCode).toBe(202);
  expect((await byEmail(2)).statusCode).toBe(202);
  const limited = await byEmail(3);
  expect(limited.statusCode).toBe(429);
  expect(limited.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
  expect(limited.json()).toMatchObject({ status: 429, type: '/problems/rate-limited' });

  // Invitations by id do not count, and another caller has a limit of their own.
  expect((await invite(ana, { userId: ben.userId, role: 'participant' })).statusCode).toBe(200);
  expect((await invite(ben, { email: 'nobody-4@example.test', role: 'witness' })).statusCode).not.toBe(429);
});
