import { randomBytes, randomUUID } from 'node:crypto';
import { parseVerifierKey, verifyReceipt } from '@connect/crypto';
import { sealPhone } from '@connect/db';
import { ERASED_USER_NAME, ERASURES_STREAM, profileStream, USER_ERASED } from '@connect/domain';
import { auditLedger, readStream, streamKeySubject } from '@connect/ledger';
import { ACCOUNT_MAIL_TASK, waitForSmtpTask } from '@connect/notifier';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type Stack, testStack } from '../../../test/support/stack.ts';
import { eraseUser } from '../src/auth/erase-user.ts';
import { type Account, signUp } from './support.ts';

let s: Stack;
let ana: Account;
let ben: Account;
let commitmentId: string;
let last = 0;
// Everything that would say who ben was: in his name, his email (made from the name), his new
// name and picture, his phone and his social identity.
const marker = `bq${randomBytes(5).toString('hex')}`;
const renamed = `Benjamin${randomBytes(5).toString('hex')}`;
const avatar = `https://images.example.com/${randomBytes(5).toString('hex')}.png`;
const phone = `+1555${String(Math.floor(Math.random() * 1e7)).padStart(7, '0')}`;
const oidcSubject = `sub-${randomBytes(5).toString('hex')}`;
const oidcEmail = `${randomBytes(5).toString('hex')}@social.example`;
const markers = () => [marker, renamed, avatar, phone, oidcSubject, oidcEmail, ben.email];

async function command(who: Account, url: string, payload: object = {}) {
  const response = await s.app.inject({ method: 'POST', url, payload, headers: who.auth });
  if (response.statusCode >= 300) throw new Error(`${url}: ${response.statusCode} ${response.body}`);
  const receipt = response.json() as { commitmentId: string; events: { index: number }[] };
  last = Math.max(last, receipt.events.at(-1)?.index ?? 0);
  return receipt;
}

const get = (who: Account, url: string) =>
  s.app.inject({ method: 'GET', url, headers: { ...who.auth, 'connect-min-index': String(last) } });

const erase = (who: Account, payload?: object) =>
  s.app.inject({ method: 'DELETE', url: '/v1/me', headers: who.auth, ...(payload ? { payload } : {}) });

/** What ana's notifications say (their text is sealed at rest: read through the API). */
async function anasNotifications(): Promise<string> {
  const response = await get(ana, '/v1/notifications?limit=100');
  expect(response.statusCode, response.body).toBe(200);
  return (response.json().items as { title: string; body: string }[])
    .map((n) => `${n.title}\n${n.body}`)
    .join('\n');
}

const passwordLogin = (email: string) =>
  s.app.inject({
    method: 'POST',
    url: '/v1/auth/token',
    payload: { grant_type: 'password', email, password: 'correct horse battery' },
  });

/** Every table of the public schema, as text. */
async function dump(): Promise<Map<string, string>> {
  const { rows } = await s.database.pool.query<{ tablename: string }>(
    `select tablename from pg_tables where schemaname = 'public'`,
  );
  const tables = new Map<string, string>();
  for (const { tablename } of rows) {
    const text = await s.database.pool.query<{ text: string | null }>(
      `select string_agg(t::text, '') as text from "${tablename}" t`,
    );
    tables.set(tablename, text.rows[0]?.text ?? '');
  }
  return tables;
}

beforeAll(async () => {
  s = await testStack();
  ana = await signUp(s.app, 'Ana');
  ben = await signUp(s.app, `Ben${marker}`);
  commitmentId = (await command(ana, '/v1/commitments', { type: 'personal', title: 'Lend the ladder' }))
    .commitmentId;
  await command(ana, `/v1/commitments/${commitmentId}/invite`, { userId: ben.userId, role: 'participant' });
  await command(ana, `/v1/commitments/${commitmentId}/propose`);
  await command(ben, `/v1/commitments/${commitmentId}/accept`);
  const patched = await s.app.inject({
    method: 'PATCH',
    url: '/v1/me',
    headers: ben.auth,
    payload: { displayName: renamed, avatarUrl: avatar },
  });
  expect(patched.statusCode).toBe(200);
  await s.database.pool.query(
    `insert into phone_numbers (user_id, phone, confirmed_at) values ($1, $2, now())`,
    [ben.userId, await sealPhone(s.command.ledger.cipher.fields, ben.userId, phone)],
  );
  await s.database.pool.query(
    `insert into oidc_identities (user_id, provider, subject, email, email_verified) values ($1, 'google', $2, $3, true)`,
    [ben.userId, oidcSubject, oidcEmail],
  );
  // Their mail waits for SMTP, as a worker without it leaves it: out of the queue. Ben's recovery
  // names his account by the blind index of his address only.
  const recover = await s.app.inject({
    method: 'POST',
    url: '/v1/auth/recover',
    payload: { email: ben.email },
  });
  expect(recover.statusCode).toBe(202);
  const { rows: jobs } = await s.database.pool.query<{ id: string; payload: unknown }>(
    `select job.id, job.payload from graphile_worker._private_jobs as job
       join graphile_worker._private_tasks as task on task.id = job.task_id where task.identifier = $1`,
    [ACCOUNT_MAIL_TASK],
  );
  expect(jobs).toHaveLength(3);
  const waitForSmtp = waitForSmtpTask(s.database.db);
  type Helpers = Parameters<typeof waitForSmtp>[1];
  for (const job of jobs) await waitForSmtp(job.payload, { job } as unknown as Helpers);
  last = (await readStream(s.database.db, s.command.ledger, profileStream(ben.userId))).at(-1)?.index ?? last;
  // The read models and the notifications (ana's name ben) are there before he goes.
  await vi.waitFor(
    async () => {
      const parties = (await get(ana, `/v1/commitments/${commitmentId}`)).json().parties;
      expect(parties).toContainEqual(expect.objectContaining({ userId: ben.userId, displayName: renamed }));
      const { rows } = await s.database.pool.query(
        `select last_index from projection_checkpoints where projection = 'notifications'`,
      );
      expect(Number(rows[0]?.last_index)).toBeGreaterThanOrEqual(last);
    },
    { timeout: 10_000, interval: 100 },
  );
}, 60_000);
afterAll(() => s.close());

describe('DELETE /v1/me', () => {
  it('refuses a wrong or missing password, naming the field, and changes nothing', async () => {
    const before = await dump();
    // What the erasure is to remove is there: the notifications ana got name him.
    // (by the name he had when the notifier got to them: the first, or the new one)
    expect(await anasNotifications()).toMatch(new RegExp(`Ben${marker}|${renamed}`));
    expect(before.get('users')).toContain(renamed);
    expect((await get(ben, '/v1/me/phone')).json()).toMatchObject({ phone }); // sealed at rest
    expect(before.get('oidc_identities')).toContain(oidcSubject);
    for (const payload of [{ password: 'not the password' }, undefined]) {
      const refused = await erase(ben, payload);
      expect(refused.statusCode).toBe(403);
      expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(refused.json().errors).toEqual([expect.objectContaining({ path: 'body.password' })]);
    }
    const me = await s.app.inject({ method: 'GET', url: '/v1/auth/me', headers: ben.auth });
    expect(me.json()).toMatchObject({ displayName: renamed, email: ben.email });
    const after = await dump();
    for (const table of ['users', 'sessions', 'data_keys', 'phone_numbers', 'oidc_identities', 'profiles'])
      expect(after.get(table), table).toBe(before.get(table));
  });

  it('erases the user with the right password: 204', async () => {
    const erased = await erase(ben, { password: 'correct horse battery' });
    expect(erased.statusCode).toBe(204);
    const [event] = await readStream(s.database.db, s.command.ledger, ERASURES_STREAM);
    if (!event) throw new Error('no UserErased event');
    last = event.index;
  });
});

describe('after the erasure', () => {
  it('ben cannot sign in: password, refresh token, old access token', async () => {
    const login = await passwordLogin(ben.email);
    expect(login.statusCode).toBe(400);
    expect(login.json().type).toBe('/problems/invalid-grant');
    const refresh = await s.app.inject({
      method: 'POST',
      url: '/v1/auth/token',
      payload: { grant_type: 'refresh_token', refresh_token: ben.refreshToken },
    });
    expect(refresh.statusCode).toBe(400);
    expect((await s.app.inject({ method: 'GET', url: '/v1/auth/me', headers: ben.auth })).statusCode).toBe(
      401,
    );
    await vi.waitFor(async () => expect((await get(ben, '/v1/commitments')).statusCode).toBe(401));
  });

  it('ana still reads the commitment, ben shown as "(erased user)", and her receipt verifies', async () => {
    const commitment = await get(ana, `/v1/commitments/${commitmentId}`);
    expect(commitment.statusCode).toBe(200);
    expect(commitment.json()).toMatchObject({ status: 'active' });
    expect(commitment.json().parties).toContainEqual(
      expect.objectContaining({ userId: ben.userId, displayName: ERASED_USER_NAME, role: 'participant' }),
    );
    const receipt = (await get(ana, `/v1/commitments/${commitmentId}/receipt`)).json();
    expect(verifyReceipt(receipt, parseVerifierKey(s.query.verifierKey)).valid).toBe(true);
    expect(receipt.state).toMatchObject({ id: commitmentId, status: 'active' });
  });

  it('the audit passes; ben’s profile stream reads as redacted; his data keys are erased', async () => {
    const audit = await auditLedger(s.database.db, s.query.key, { cipher: s.query.cipher });
    expect(audit.ok).toBe(true);
    const profile = await readStream(s.database.db, s.command.ledger, profileStream(ben.userId));
    expect(profile.length).toBe(2);
    for (const entry of profile) expect(entry).toMatchObject({ data: null, salt: null, redacted: true });
    const { rows } = await s.database.pool.query(
      'select subject, wrapped_key, master_key_id, erased_at from data_keys where subject = any($1) order by subject',
      [[streamKeySubject(profileStream(ben.userId)), `user:${ben.userId}`]],
    );
    expect(rows).toHaveLength(2);
    for (const row of rows)
      expect(row).toMatchObject({ wrapped_key: null, master_key_id: null, erased_at: expect.any(Date) });
    await expect(
      s.command.ledger.append({
        stream: profileStream(ben.userId),
        expectedVersion: 'any',
        actor: ben.userId,
        events: [
          { type: 'ProfileUpdated', data: { userId: ben.userId, displayName: 'Ben', avatarUrl: null } },
        ],
      }),
    ).rejects.toThrow();
  });

  it('no table holds anything of who ben was', async () => {
    for (const [table, text] of await dump())
      for (const found of markers()) expect(text.includes(found), `${table} holds ${found}`).toBe(false);
    const told = await anasNotifications();
    expect(told).toContain(ERASED_USER_NAME);
    for (const found of markers()) expect(told).not.toContain(found);
    const jobs = await s.database.pool.query<{ text: string | null }>(
      `select string_agg(payload::text, '') as text from graphile_worker._private_jobs`,
    );
    for (const found of markers()) expect(jobs.rows[0]?.text ?? '').not.toContain(found);
    const waiting = await s.database.pool.query<{ userId: string }>(
      `select payload->>'userId' as "userId" from account_mail_waiting`,
    );
    expect(waiting.rows).toEqual([{ userId: ana.userId }]);
    const { rows } = await s.database.pool.query(
      `select email, email_index, email_sealed, password_hash, display_name, avatar_url, erased_at
         from users where id = $1`,
      [ben.userId],
    );
    expect(rows[0]).toMatchObject({
      email: null,
      email_index: null,
      email_sealed: null,
      password_hash: null,
      display_name: ERASED_USER_NAME,
      avatar_url: null,
      erased_at: expect.any(Date),
    });
  });

  it('a recovery asked for by his old email finds no account (after the dump: the request names it)', async () => {
    const recover = await s.app.inject({
      method: 'POST',
      url: '/v1/auth/recover',
      payload: { email: ben.email },
    });
    expect(recover.statusCode).toBeLessThan(300);
    const { rows } = await s.database.pool.query(
      `select count(*)::int as n from account_tokens where user_id = $1`,
      [ben.userId],
    );
    expect(rows[0].n).toBe(0);
  });

  it('his address can sign up again, as a new account', async () => {
    const signup = await s.app.inject({
      method: 'POST',
      url: '/v1/auth/signup',
      payload: { email: ben.email, password: 'another horse battery', displayName: 'New Ben' },
    });
    expect(signup.statusCode).toBe(201);
    expect(signup.json().user).toMatchObject({ email: ben.email, displayName: 'New Ben' });
    expect(signup.json().user.id).not.toBe(ben.userId);
    const login = await s.app.inject({
      method: 'POST',
      url: '/v1/auth/token',
      payload: { grant_type: 'password', email: ben.email, password: 'another horse battery' },
    });
    expect(login.json().user.id).toBe(signup.json().user.id);
  });

  it('records a UserErased event naming only the id; erasing again appends nothing', async () => {
    const erasures = await readStream(s.database.db, s.command.ledger, ERASURES_STREAM);
    expect(erasures).toHaveLength(1);
    expect(erasures[0]).toMatchObject({ type: USER_ERASED, actor: ben.userId, data: { userId: ben.userId } });
    expect(Object.keys(erasures[0]?.data ?? {})).toEqual(['userId']);

    const again = await eraseUser(s.command, ben.userId, { actor: null });
    expect(again).toMatchObject({ outcome: 'erased', event: { index: erasures[0]?.index } });
    expect(await readStream(s.database.db, s.command.ledger, ERASURES_STREAM)).toHaveLength(1);
    expect(await eraseUser(s.command, randomUUID(), { actor: null })).toEqual({ outcome: 'no-user' });
  });
});

describe('an account without a password', () => {
  it('is erased only from a session opened in the last 5 minutes', async () => {
    const cleo = await signUp(s.app, 'Cleo');
    await s.database.pool.query('update users set password_hash = null where id = $1', [cleo.userId]);
    // The session started over 5 minutes before the request.
    await s.database.pool.query(
      `update sessions set created_at = now() - interval '6 minutes' where user_id = $1`,
      [cleo.userId],
    );
    const stale = await erase(cleo, {});
    expect(stale.statusCode).toBe(403);
    expect(stale.json().detail).toMatch(/sign in again/i);
    await s.database.pool.query(`update sessions set created_at = now() where user_id = $1`, [cleo.userId]);
    expect((await erase(cleo)).statusCode).toBe(204);
    const { rows } = await s.database.pool.query('select erased_at from users where id = $1', [cleo.userId]);
    expect(rows[0].erased_at).toBeInstanceOf(Date);
  });
});

describe('an erasure that lands while a request is in flight', () => {
  it('refuses a create by the erased user (403) and appends nothing', async () => {
    const dora = await signUp(s.app, 'Dora');
    // Erased after her request was authenticated: her session is still in hand.
    await s.database.pool.query('update users set erased_at = now() where id = $1', [dora.userId]);
    const size = async () =>
      (await s.database.pool.query('select tree_size from ledger_head')).rows[0].tree_size;
    const before = await size();
    const response = await s.app.inject({
      method: 'POST',
      url: '/v1/commitments',
      payload: { type: 'personal', title: 'Made by nobody' },
      headers: dora.auth,
    });
    expect(response.statusCode, response.body).toBe(403);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(await size()).toBe(before);
  });
});
