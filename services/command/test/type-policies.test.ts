// Commitment type policies: who may create one (createdBy) and whether witnesses need a verified
// email (witnessesMustBeVerified); refusals are 403 problems naming the rule.
import { afterAll, beforeAll, expect, test } from 'vitest';
import { grantAdmin } from '../src/auth/roles.ts';
import { type Account, signUp, type TestApp, testApp } from './support.ts';

let t: TestApp;
let admin: Account;
let ana: Account; // verified
let ben: Account; // not verified

const post = (who: Account, url: string, payload: object) =>
  t.app.inject({ method: 'POST', url, headers: who.auth, payload });

async function verify(who: Account) {
  await t.database.pool.query('update users set email_verified_at = now() where id = $1', [who.userId]);
}

beforeAll(async () => {
  t = await testApp();
  admin = await signUp(t.app, 'Admin');
  ana = await signUp(t.app, 'Ana');
  ben = await signUp(t.app, 'Ben');
  await verify(ana);
  expect(await grantAdmin(t.deps, admin.email)).toBe(true);
  for (const type of [
    { key: 'loan', name: 'Loan', createdBy: 'verified' },
    { key: 'decree', name: 'Decree', createdBy: 'admin' },
    { key: 'notarised', name: 'Notarised', witnessesMustBeVerified: true },
  ]) {
    expect((await post(admin, '/v1/commitment-types', type)).statusCode).toBe(201);
  }
});
afterAll(async () => {
  await t?.close();
});

test('a verified-only type: an unverified user is refused naming the rule, a verified one creates it', async () => {
  const refused = await post(ben, '/v1/commitments', { type: 'loan', title: 'Lend me a fiver' });
  expect(refused.statusCode).toBe(403);
  expect(refused.headers['content-type']).toMatch(/application\/problem\+json/);
  expect(refused.json()).toMatchObject({
    status: 403,
    rule: 'createdBy: verified',
    detail:
      "Only users with a verified email may create 'loan' commitments (type policy createdBy: verified).",
  });
  expect((await post(ana, '/v1/commitments', { type: 'loan', title: 'Lend me a fiver' })).statusCode).toBe(
    201,
  );
});

test('an admin-only type', async () => {
  const refused = await post(ana, '/v1/commitments', { type: 'decree', title: 'Henceforth' });
  expect(refused.statusCode).toBe(403);
  expect(refused.json().rule).toBe('createdBy: admin');
  expect((await post(admin, '/v1/commitments', { type: 'decree', title: 'Henceforth' })).statusCode).toBe(
    201,
  );
});

test('witnesses must be verified: an unverified witness is refused, a verified one invited', async () => {
  const created = await post(admin, '/v1/commitments', { type: 'notarised', title: 'Sign the lease' });
  expect(created.statusCode).toBe(201);
  const id = created.json().commitmentId as string;
  const refused = await post(admin, `/v1/commitments/${id}/invite`, { userId: ben.userId, role: 'witness' });
  expect(refused.statusCode).toBe(403);
  expect(refused.json().rule).toBe('witnessesMustBeVerified');
  // As a participant, Ben is fine; Ana, verified, may witness.
  expect(
    (await post(admin, `/v1/commitments/${id}/invite`, { userId: ben.userId, role: 'participant' }))
      .statusCode,
  ).toBe(200);
  expect(
    (await post(admin, `/v1/commitments/${id}/invite`, { userId: ana.userId, role: 'witness' })).statusCode,
  ).toBe(200);
});

test('existing types default to anyone and no verified witnesses', async () => {
  const created = await post(ben, '/v1/commitments', { type: 'personal', title: 'Call mum' });
  expect(created.statusCode).toBe(201);
  const id = created.json().commitmentId as string;
  expect(
    (await post(ben, `/v1/commitments/${id}/invite`, { userId: ana.userId, role: 'witness' })).statusCode,
  ).toBe(200);
  const bad = await post(admin, '/v1/commitment-types', { key: 'odd', name: 'Odd', createdBy: 'auditor' });
  expect(bad.statusCode).toBe(400);
  expect(bad.json().errors[0].path).toBe('body.createdBy');
});

test('admins defining types at once: one key is defined once, the others are refused; other keys all land', async () => {
  const definitions = async () =>
    (
      await t.database.pool.query<{ n: number }>(
        `select count(*)::int as n from ledger_entries where stream = 'commitment-types'`,
      )
    ).rows[0]?.n;
  const before = await definitions();
  const same = await Promise.all(
    Array.from({ length: 6 }, () => post(admin, '/v1/commitment-types', { key: 'bond', name: 'Bond' })),
  );
  expect(same.map((r) => r.statusCode).sort()).toEqual([201, 409, 409, 409, 409, 409]);
  for (const refused of same.filter((r) => r.statusCode === 409)) {
    expect(refused.json().type).toMatch(/already-exists$/);
  }
  const distinct = await Promise.all(
    ['lease', 'pledge', 'wager', 'vow'].map((key) => post(admin, '/v1/commitment-types', { key, name: key })),
  );
  expect(distinct.map((r) => r.statusCode)).toEqual([201, 201, 201, 201]);
  expect(await definitions()).toBe((before ?? 0) + 5);
});
