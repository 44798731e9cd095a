// Email addresses at rest (migration 029): no row and no queued job holds an address in the
// clear; accounts are still found by their address (sign-in, recovery, invitations) through its
// blind index; rows from before the migration are sealed by the start-up backfill.
import { createHash, randomUUID } from 'node:crypto';
import { sealExistingEmails } from '@connect/db';
import type { DeliveryQueue } from '@connect/notifier';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { hashPassword } from '../src/auth/passwords.ts';
import { type Inbox, mailWorker, smtpInbox } from './mail-support.ts';
import { type Account, signUp, type TestApp, testApp } from './support.ts';

let t: TestApp;
let inbox: Inbox;
let queue: DeliveryQueue;
let ana: Account;

beforeAll(async () => {
  t = await testApp();
  inbox = await smtpInbox();
  queue = await mailWorker(t, inbox.url);
  ana = await signUp(t.app, 'Ana');
});
afterAll(async () => {
  await queue.close();
  await inbox.close();
  await t.close();
});

const post = (url: string, payload: object, headers: Record<string, string> = {}) =>
  t.app.inject({ method: 'POST', url, payload, headers });
const login = (email: string, password = 'correct horse battery') =>
  post('/v1/auth/token', { grant_type: 'password', email, password });

/** Every row of the tables that held addresses, and every queued job, as text (bytea as hex). */
async function dump(): Promise<string> {
  const parts: string[] = [];
  for (const table of ['users', 'account_tokens', 'oidc_identities', 'pending_invitations', 'rate_limits']) {
    const { rows } = await t.database.pool.query<{ text: string | null }>(
      `select string_agg(t::text, '') as text from ${table} t`,
    );
    parts.push(rows[0]?.text ?? '');
  }
  const jobs = await t.database.pool.query<{ text: string | null }>(
    "select string_agg(payload::text, '') as text from graphile_worker._private_jobs",
  );
  parts.push(jobs.rows[0]?.text ?? '');
  return parts.join('\n').toLowerCase();
}

/** The marker in every form a column could hold it: as text, and as the hex of its bytes. */
const forms = (marker: string) => [marker.toLowerCase(), Buffer.from(marker.toLowerCase()).toString('hex')];

describe('a new account', () => {
  test('holds its address only sealed and indexed; signs in by it in any case; a second sign-up is a conflict', async () => {
    const marker = `zq${randomUUID().slice(0, 8)}`;
    const email = `Mixed.${marker}@Example.Test`;
    const signup = await post('/v1/auth/signup', {
      email,
      password: 'correct horse battery',
      displayName: 'Mia',
    });
    expect(signup.statusCode).toBe(201);
    expect(signup.json().user.email).toBe(email.toLowerCase());
    // The verification mail went out: its token row exists too, and the job ran.
    await inbox.next(email.toLowerCase());
    const { rows } = await t.database.pool.query(
      'select email, email_index, email_sealed from users where id = $1',
      [signup.json().user.id],
    );
    expect(rows[0]).toMatchObject({
      email: null,
      email_index: expect.any(Buffer),
      email_sealed: expect.any(Buffer),
    });
    const tokens = await t.database.pool.query('select email from account_tokens where user_id = $1', [
      signup.json().user.id,
    ]);
    expect(tokens.rows).toEqual([{ email: null }]);

    for (const form of forms(marker)) expect(await dump()).not.toContain(form);

    expect((await login(email.toUpperCase())).statusCode).toBe(200);
    expect((await login(email.toLowerCase())).json().user).toMatchObject({ email: email.toLowerCase() });
    const me = await t.app.inject({
      method: 'GET',
      url: '/v1/auth/me',
      headers: { authorization: `Bearer ${(await login(email)).json().access_token}` },
    });
    expect(me.json().email).toBe(email.toLowerCase());
    const again = await post('/v1/auth/signup', {
      email: email.toLowerCase(),
      password: 'correct horse battery',
      displayName: 'Mia again',
    });
    expect(again.statusCode).toBe(409);
  });

  test('a recovery finds the account by its address, and its job names it by index only', async () => {
    const marker = `zr${randomUUID().slice(0, 8)}`;
    const email = `${marker}@example.test`;
    await post('/v1/auth/signup', { email, password: 'correct horse battery', displayName: 'Rui' });
    await inbox.next(email);
    expect((await post('/v1/auth/recover', { email: email.toUpperCase() })).statusCode).toBe(202);
    const mail = await inbox.next(email);
    expect(mail.subject).toMatch(/reset/i);
    for (const form of forms(marker)) expect(await dump()).not.toContain(form);
  });
});

describe('an invitation by email to an address without an account', () => {
  test('is mailed to the address, listed for its creator, and held only sealed', async () => {
    const marker = `zi${randomUUID().slice(0, 8)}`;
    const email = `${marker}@example.test`;
    const created = await post('/v1/commitments', { type: 'personal', title: 'Paint the fence' }, ana.auth);
    const id = created.json().commitmentId as string;
    const invited = await post(`/v1/commitments/${id}/invite`, { email, role: 'participant' }, ana.auth);
    expect(invited.statusCode).toBe(202);
    const mail = await inbox.next(email);
    expect(mail.text).toContain(encodeURIComponent(email));
    const listed = await t.app.inject({
      method: 'GET',
      url: `/v1/commitments/${id}/invitations`,
      headers: ana.auth,
    });
    expect(listed.json().invitations).toEqual([expect.objectContaining({ email, role: 'participant' })]);
    for (const form of forms(marker)) expect(await dump()).not.toContain(form);
  });
});

describe('rows from before migration 029', () => {
  test('are sealed and indexed by the backfill; the account signs in by its address afterwards', async () => {
    const marker = `zb${randomUUID().slice(0, 8)}`;
    const email = `${marker}@example.test`;
    const invitedEmail = `invited-${marker}@example.test`;
    const userId = randomUUID();
    const erasedId = randomUUID();
    const pool = t.database.pool;
    await pool.query(
      'insert into users (id, email, password_hash, display_name, email_verified_at) values ($1, $2, $3, $4, now())',
      [userId, email, await hashPassword('an old password'), 'Olga'],
    );
    await pool.query(
      `insert into users (id, email, password_hash, display_name, erased_at)
       values ($1, $2, null, '(erased user)', now())`,
      [erasedId, `erased+${erasedId}@invalid`],
    );
    await pool.query(
      `insert into account_tokens (token_hash, user_id, purpose, email, expires_at)
       values ($1, $2, 'recover', $3, now() + interval '1 hour')`,
      [createHash('sha256').update(randomUUID()).digest(), userId, email],
    );
    await pool.query(
      `insert into oidc_identities (user_id, provider, subject, email, email_verified)
       values ($1, 'google', $2, $3, true)`,
      [userId, randomUUID(), email],
    );
    const created = await post('/v1/commitments', { type: 'personal', title: 'Share the car' }, ana.auth);
    const commitmentId = created.json().commitmentId as string;
    await pool.query(
      `insert into pending_invitations (id, commitment_id, email, email_hash, role, invited_by, expires_at)
       values ($1, $2, $3, sha256(convert_to($3, 'UTF8')), 'witness', $4, now() + interval '30 days')`,
      [randomUUID(), commitmentId, invitedEmail, ana.userId],
    );
    expect(await dump()).toContain(marker);

    const sealed = await sealExistingEmails(pool, t.deps.keys, t.deps.ledger.cipher.fields);
    expect(sealed).toBeGreaterThanOrEqual(5);
    expect(await sealExistingEmails(pool, t.deps.keys, t.deps.ledger.cipher.fields)).toBe(0);
    for (const form of forms(marker)) expect(await dump()).not.toContain(form);

    const erased = await pool.query('select email, email_index, email_sealed from users where id = $1', [
      erasedId,
    ]);
    expect(erased.rows[0]).toEqual({ email: null, email_index: null, email_sealed: null });
    const signedIn = await login(email, 'an old password');
    expect(signedIn.statusCode).toBe(200);
    expect(signedIn.json().user).toMatchObject({ id: userId, email, emailVerified: true });
    const identities = await t.app.inject({
      method: 'GET',
      url: '/v1/me/identities',
      headers: { authorization: `Bearer ${signedIn.json().access_token}` },
    });
    expect(identities.json()).toEqual([expect.objectContaining({ provider: 'google', email })]);

    // The invitation is found by its new index: listed with its address, and renewed, not doubled.
    const listed = async () =>
      (
        await t.app.inject({
          method: 'GET',
          url: `/v1/commitments/${commitmentId}/invitations`,
          headers: ana.auth,
        })
      ).json().invitations;
    expect(await listed()).toEqual([expect.objectContaining({ email: invitedEmail, role: 'witness' })]);
    const again = await post(
      `/v1/commitments/${commitmentId}/invite`,
      { email: invitedEmail, role: 'participant' },
      ana.auth,
    );
    expect(again.statusCode).toBe(202);
    expect(await listed()).toEqual([expect.objectContaining({ email: invitedEmail, role: 'participant' })]);
  });
  test('two accounts whose addresses differ only in spaces: the start-up goes on, the second keeps its address sealed, unindexed', async () => {
    const email = `zd${randomUUID().slice(0, 8)}@example.test`;
    const [first, second] = [randomUUID(), randomUUID()];
    const pool = t.database.pool;
    for (const [id, address] of [
      [first, email],
      [second, ` ${email} `],
    ] as const)
      await pool.query(
        `insert into users (id, email, password_hash, display_name, created_at)
         values ($1, $2, $3, 'Twin', now() - interval '1 day' + $4 * interval '1 second')`,
        [id, address, await hashPassword('an old password'), id === first ? 0 : 1],
      );
    await sealExistingEmails(pool, t.deps.keys, t.deps.ledger.cipher.fields);
    const { rows } = await pool.query<{
      id: string;
      indexed: boolean;
      sealed: boolean;
      email: string | null;
    }>(
      `select id, email_index is not null as indexed, email_sealed is not null as sealed, email
         from users where id = any($1::uuid[])`,
      [[first, second]],
    );
    expect(rows.every((row) => row.email === null && row.sealed)).toBe(true);
    expect(rows.filter((row) => row.indexed)).toHaveLength(1);
    const signedIn = await login(email, 'an old password');
    expect(signedIn.statusCode).toBe(200);
    expect(signedIn.json().user.id).toBe(rows.find((row) => row.indexed)?.id);
  });
});
