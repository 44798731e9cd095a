// Roles come from the database with each request's session check: a grant or a revocation applies
// to tokens already issued, in the command and the query service alike, and is on the ledger.

import { rolesStream } from '@connect/domain';
import { auditLedger, readStream } from '@connect/ledger';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Stack, testStack } from '../../../test/support/stack.ts';
import { grantAdmin } from '../src/auth/roles.ts';
import { type Account, signUp } from './support.ts';

let s: Stack;
let ana: Account;
let eve: Account;
let ben: Account;
let commitmentId: string;
let last = 0;

const call = (who: Account, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) =>
  s.app.inject({
    method,
    url,
    headers: { ...who.auth, 'connect-min-index': String(last) },
    ...(payload ? { payload } : {}),
  });

/** The other process learns of a change through NOTIFY: allow it the moment that takes. */
async function eventually(check: () => Promise<number>, status: number): Promise<void> {
  const deadline = Date.now() + 3000;
  for (;;) {
    const got = await check();
    if (got === status || Date.now() > deadline) return void expect(got).toBe(status);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const audit = async (who: Account) => (await call(who, 'POST', '/v1/admin/ledger/audit')).statusCode;
const webhooks = async (who: Account) => (await call(who, 'GET', '/v1/admin/webhooks')).statusCode;

beforeAll(async () => {
  s = await testStack();
  ana = await signUp(s.app, 'Ana');
  eve = await signUp(s.app, 'Eve');
  ben = await signUp(s.app, 'Ben');
  expect(await grantAdmin(s.command, ana.email)).toBe(true);
  const created = await call(ana, 'POST', '/v1/commitments', { type: 'personal', title: 'Water the plants' });
  expect(created.statusCode).toBe(201);
  commitmentId = created.json().commitmentId;
  last = created.json().events[0].index;
});
afterAll(async () => {
  await s?.close();
});

describe('granting and revoking', () => {
  it('applies to the user’s existing session at once, in both services, and is on the ledger', async () => {
    // Ana's token predates her grant (grantAdmin ran after signup): it is an admin's all the same.
    expect(await audit(ana)).toBe(200);
    expect(await audit(eve)).toBe(403);
    expect(await webhooks(eve)).toBe(403);

    const granted = await call(ana, 'POST', `/v1/admin/users/${eve.userId}/roles/admin`);
    expect(granted.statusCode).toBe(201);
    expect(granted.json()).toMatchObject({ userId: eve.userId, role: 'admin', granted: true });
    expect(granted.json().event.type).toBe('RoleGranted');
    await eventually(() => audit(eve), 200); // the query service
    expect(await webhooks(eve)).toBe(200); // the command service
    expect((await call(eve, 'GET', '/v1/auth/me')).json()).toMatchObject({ isAdmin: true, roles: ['admin'] });

    const again = await call(ana, 'POST', `/v1/admin/users/${eve.userId}/roles/admin`);
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ granted: false });

    expect((await call(ana, 'DELETE', `/v1/admin/users/${eve.userId}/roles/admin`)).statusCode).toBe(204);
    await eventually(() => audit(eve), 403);
    expect(await webhooks(eve)).toBe(403);
    expect((await call(eve, 'GET', '/v1/auth/me')).json()).toMatchObject({ isAdmin: false, roles: [] });
    expect((await call(ana, 'DELETE', `/v1/admin/users/${eve.userId}/roles/admin`)).statusCode).toBe(404);

    const entries = await readStream(s.database.db, s.command.ledger, rolesStream(eve.userId));
    expect(entries.map((e) => [e.type, e.actor, e.data])).toEqual([
      ['RoleGranted', ana.userId, { userId: eve.userId, role: 'admin' }],
      ['RoleRevoked', ana.userId, { userId: eve.userId, role: 'admin' }],
    ]);
    // grantAdmin (the CLI's path) records the system as the actor.
    const anas = await readStream(s.database.db, s.command.ledger, rolesStream(ana.userId));
    expect(anas.map((e) => [e.type, e.actor])).toEqual([['RoleGranted', null]]);
    expect((await auditLedger(s.database.db, s.query.key, { cipher: s.query.cipher })).ok).toBe(true);
    const run = await call(ana, 'POST', '/v1/admin/ledger/audit');
    expect(run.json()).toMatchObject({ ok: true });
  });

  it('is for admins only, names a bad id or role, and keeps the last admin', async () => {
    expect((await call(eve, 'POST', `/v1/admin/users/${ben.userId}/roles/admin`)).statusCode).toBe(403);
    const badId = await call(ana, 'POST', '/v1/admin/users/nobody/roles/admin');
    expect(badId.statusCode).toBe(400);
    expect(badId.json().errors.map((e: { path: string }) => e.path)).toEqual(['path.id']);
    const badRole = await call(ana, 'POST', `/v1/admin/users/${ben.userId}/roles/owner`);
    expect(badRole.statusCode).toBe(400);
    expect(badRole.json().errors.map((e: { path: string }) => e.path)).toEqual(['path.role']);
    const unknown = await call(
      ana,
      'POST',
      '/v1/admin/users/00000000-0000-4000-8000-000000000000/roles/admin',
    );
    expect(unknown.statusCode).toBe(404);

    const lastAdmin = await call(ana, 'DELETE', `/v1/admin/users/${ana.userId}/roles/admin`);
    expect(lastAdmin.statusCode).toBe(409);
    expect(lastAdmin.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(await audit(ana)).toBe(200);
  });
});

describe('an auditor', () => {
  it('reads every entry and receipt and runs the audit, but acts on no commitment', async () => {
    expect((await call(ben, 'GET', `/v1/ledger/entries/${last}`)).statusCode).toBe(404);
    expect((await call(ana, 'POST', `/v1/admin/users/${ben.userId}/roles/auditor`)).statusCode).toBe(201);

    await eventually(async () => (await call(ben, 'GET', `/v1/ledger/entries/${last}`)).statusCode, 200);
    expect((await call(ben, 'GET', `/v1/commitments/${commitmentId}`)).statusCode).toBe(200);
    expect((await call(ben, 'GET', `/v1/commitments/${commitmentId}/receipt`)).statusCode).toBe(200);
    expect(await audit(ben)).toBe(200);

    const create = await call(ben, 'POST', '/v1/commitments', { type: 'personal', title: 'Mine' });
    expect(create.statusCode).toBe(403);
    expect(create.json().rule).toBe('role: auditor');
    const act = await call(ben, 'POST', `/v1/commitments/${commitmentId}/cancel`, {});
    expect(act.statusCode).toBe(403);
    // Not an admin: no webhooks, types or roles.
    expect(await webhooks(ben)).toBe(403);
    const type = { key: 'audit-type', name: 'Audit' };
    expect((await call(ben, 'POST', '/v1/commitment-types', type)).statusCode).toBe(403);
    expect((await call(ben, 'POST', `/v1/admin/users/${eve.userId}/roles/auditor`)).statusCode).toBe(403);

    expect((await call(ana, 'DELETE', `/v1/admin/users/${ben.userId}/roles/auditor`)).statusCode).toBe(204);
    await eventually(async () => (await call(ben, 'GET', `/v1/ledger/entries/${last}`)).statusCode, 404);
    expect(await audit(ben)).toBe(403);
  });
});
