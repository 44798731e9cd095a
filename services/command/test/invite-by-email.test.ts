// Inviting by email: the same answer whether or not an account has the address; an address
// without one is mailed (through a real SMTP server, by the notifier's worker) and its account
// becomes the invited party once it verifies the address.

import { readStream } from '@connect/ledger';
import type { DeliveryQueue } from '@connect/notifier';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadCommitment } from '../src/commitments/load.ts';
import { APP_URL, type Inbox, mailWorker, smtpInbox, tokenIn } from './mail-support.ts';
import { type Account, signUp, type TestApp, testApp } from './support.ts';

let t: TestApp;
let inbox: Inbox;
let queue: DeliveryQueue;
let ana: Account;
let ben: Account;

beforeAll(async () => {
  t = await testApp();
  inbox = await smtpInbox();
  queue = await mailWorker(t, inbox.url);
  ana = await signUp(t.app, 'Ana');
  ben = await signUp(t.app, 'Ben');
  // Ben proved his address; an account that has not is invited as a newcomer is (see below).
  await t.database.pool.query('update users set email_verified_at = now() where id = $1', [ben.userId]);
});
afterAll(async () => {
  await queue.close();
  await inbox.close();
  await t.close();
});

let addresses = 0;
const newAddress = (name: string) => `${name}-${++addresses}-${Date.now()}@example.test`;

const post = (url: string, payload: object, headers: Record<string, string> = {}) =>
  t.app.inject({ method: 'POST', url, payload, headers });

async function draft(title: string): Promise<string> {
  const created = await post('/v1/commitments', { type: 'personal', title }, ana.auth);
  expect(created.statusCode).toBe(201);
  return created.json().commitmentId;
}

const invite = (id: string, payload: object, who: Account = ana) =>
  post(`/v1/commitments/${id}/invite`, payload, who.auth);

async function signUpWith(email: string, displayName: string) {
  const response = await post('/v1/auth/signup', { email, password: 'correct horse battery', displayName });
  expect(response.statusCode).toBe(201);
  const body = response.json();
  return { userId: body.user.id as string, auth: { authorization: `Bearer ${body.access_token}` } };
}

const pendingRows = async (commitmentId: string) =>
  (
    await t.database.pool.query(
      'select role, accepted_at, accepted_by, voided_at from pending_invitations where commitment_id = $1',
      [commitmentId],
    )
  ).rows;

const invitedEntries = async (commitmentId: string) =>
  (await readStream(t.database.db, t.deps.ledger, `commitment-${commitmentId}`)).filter(
    (entry) => entry.type === 'PartyInvited',
  );

describe('the answer', () => {
  test('is the same for an address with an account and one without; only the address differs', async () => {
    const id = await draft('Paint the fence');
    const unknown = newAddress('cleo');
    const registered = await invite(id, { email: ben.email, role: 'participant' });
    const invited = await invite(id, { email: unknown, role: 'participant' });

    for (const [response, email] of [
      [registered, ben.email],
      [invited, unknown],
    ] as const) {
      expect(response.statusCode).toBe(202);
      expect(response.json()).toEqual({
        commitmentId: id,
        invitation: { email, role: 'participant', status: 'sent' },
      });
      expect(response.headers.etag).toBeUndefined();
    }
    const headerNames = (r: typeof registered) => Object.keys(r.headers).sort();
    expect(headerNames(registered)).toEqual(headerNames(invited));

    // Ben is a party now; the unknown address waits, and only it is mailed an invitation.
    const state = await loadCommitment(t.database.db, t.deps.ledger, id);
    expect(state.parties.map((p) => [p.userId, p.role])).toContainEqual([ben.userId, 'participant']);
    expect(await pendingRows(id)).toEqual([
      { role: 'participant', accepted_at: null, accepted_by: null, voided_at: null },
    ]);
    const mail = await inbox.next(unknown);
    expect(mail.subject).toBe('Ana invited you to “Paint the fence” on Connect');
    expect(mail.text).toContain(`${APP_URL}/signup?email=${encodeURIComponent(unknown)}`);
    expect(mail.html).toContain(`${APP_URL}/signup?email=${encodeURIComponent(unknown)}`);
    expect(inbox.mails.some((m) => m.to === ben.email && m.subject.includes('invited you'))).toBe(false);

    // The creator sees the pending invitation; nobody else does.
    const listed = await t.app.inject({
      method: 'GET',
      url: `/v1/commitments/${id}/invitations`,
      headers: ana.auth,
    });
    expect(listed.statusCode).toBe(200);
    expect(listed.json()).toEqual({
      invitations: [
        { email: unknown, role: 'participant', createdAt: expect.any(String), expiresAt: expect.any(String) },
      ],
    });
    const byBen = await t.app.inject({
      method: 'GET',
      url: `/v1/commitments/${id}/invitations`,
      headers: ben.auth,
    });
    expect(byBen.statusCode).toBe(403);
  });

  test('refusals that do not depend on the address are answered as before, for any address', async () => {
    const id = await draft('Mow the lawn');
    const unknown = newAddress('dora');
    for (const email of [unknown, ana.email]) {
      const notCreator = await invite(id, { email, role: 'witness' }, ben);
      expect(notCreator.statusCode).toBe(404);
    }
    await invite(id, { userId: ben.userId, role: 'participant' });
    for (const email of [unknown, ana.email]) {
      const notCreator = await invite(id, { email, role: 'witness' }, ben);
      expect(notCreator.statusCode).toBe(403);
      expect(notCreator.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(notCreator.json().detail).toMatch(/only the creator/);
    }
    expect((await post(`/v1/commitments/${id}/propose`, {}, ana.auth)).statusCode).toBe(200);
    const answers = await Promise.all(
      [unknown, newAddress('eve'), ben.email].map((email) => invite(id, { email, role: 'witness' })),
    );
    for (const answer of answers) {
      expect(answer.statusCode).toBe(409);
      expect(answer.json().detail).toBe(answers[0]?.json().detail);
    }
    expect(await pendingRows(id)).toEqual([]);
  });

  test('bad input is a 400 naming the field', async () => {
    const id = await draft('Fix the gate');
    for (const [payload, path] of [
      [{ email: 'not-an-address', role: 'participant' }, 'body.email'],
      [{ email: newAddress('fay'), role: 'creator' }, 'body.role'],
      [{ email: newAddress('fay'), userId: ben.userId, role: 'witness' }, 'body.userId'],
      [{ email: newAddress('fay') }, 'body.role'],
    ] as const) {
      const response = await invite(id, payload);
      expect(response.statusCode, response.body).toBe(400);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(response.json().errors.map((e: { path: string }) => e.path)).toContain(path);
    }
    expect(await pendingRows(id)).toEqual([]);
  });
});

describe('signing up with the invited address', () => {
  test('makes the account the invited party once the address is verified, not before', async () => {
    const id = await draft('Walk the dog');
    const email = newAddress('gus');
    expect((await invite(id, { email, role: 'witness' })).statusCode).toBe(202);
    expect((await inbox.next(email)).subject).toContain('invited you');

    const gus = await signUpWith(email, 'Gus');
    // Unverified: nothing is claimed yet, and inviting the address again does not reach the
    // account (whoever signed up with it has not shown it is theirs).
    expect((await invite(id, { email, role: 'witness' })).statusCode).toBe(202);
    expect(await invitedEntries(id)).toEqual([]);
    expect(await pendingRows(id)).toEqual([
      { role: 'witness', accepted_at: null, accepted_by: null, voided_at: null },
    ]);

    // The verification mail and the second invitation, in whichever order they were sent.
    const mails = [await inbox.next(email), await inbox.next(email)];
    const isInvitation = (mail: (typeof mails)[number]) => mail.subject.includes('invited you');
    expect(mails.filter(isInvitation)).toHaveLength(1);
    const token = tokenIn(
      mails.find((mail) => !isInvitation(mail)) as (typeof mails)[number],
      'verify-email',
    );
    const verified = await post('/v1/auth/verify', { token });
    expect(verified.statusCode).toBe(200);

    const entries = await invitedEntries(id);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({
      actor: ana.userId,
      data: { userId: gus.userId, role: 'witness' },
      meta: { invitation: 'email', command: 'invite' },
    });
    expect(await pendingRows(id)).toEqual([
      { role: 'witness', accepted_at: expect.any(Date), accepted_by: gus.userId, voided_at: null },
    ]);
    const state = await loadCommitment(t.database.db, t.deps.ledger, id);
    expect(state.parties).toContainEqual(
      expect.objectContaining({ userId: gus.userId, role: 'witness', response: 'invited' }),
    );

    // As a party, Gus takes part: once the commitment is proposed, he can accept it.
    expect((await invite(id, { userId: ben.userId, role: 'participant' })).statusCode).toBe(200);
    expect((await post(`/v1/commitments/${id}/propose`, {}, ana.auth)).statusCode).toBe(200);
    const accepted = await post(`/v1/commitments/${id}/accept`, {}, gus.auth);
    expect(accepted.statusCode, accepted.body).toBe(200);
    // The claimed invitation is no longer pending.
    const listed = await t.app.inject({
      method: 'GET',
      url: `/v1/commitments/${id}/invitations`,
      headers: ana.auth,
    });
    expect(listed.json()).toEqual({ invitations: [] });
  });

  test('an expired invitation is not claimed; one the commitment no longer takes is void', async () => {
    const expiredId = await draft('Water the plants');
    const cancelledId = await draft('Feed the cat');
    const email = newAddress('hal');
    expect((await invite(expiredId, { email, role: 'participant' })).statusCode).toBe(202);
    expect((await invite(cancelledId, { email, role: 'participant' })).statusCode).toBe(202);
    for (let i = 0; i < 2; i++) expect((await inbox.next(email)).subject).toContain('invited you');
    await t.database.pool.query(
      "update pending_invitations set expires_at = now() - interval '1 minute' where commitment_id = $1",
      [expiredId],
    );
    expect((await post(`/v1/commitments/${cancelledId}/cancel`, {}, ana.auth)).statusCode).toBe(200);

    await signUpWith(email, 'Hal');
    const verified = await post('/v1/auth/verify', {
      token: tokenIn(await inbox.next(email), 'verify-email'),
    });
    expect(verified.statusCode).toBe(200);

    expect(await invitedEntries(expiredId)).toEqual([]);
    expect(await pendingRows(expiredId)).toEqual([
      { role: 'participant', accepted_at: null, accepted_by: null, voided_at: null },
    ]);
    expect(await invitedEntries(cancelledId)).toEqual([]);
    expect(await pendingRows(cancelledId)).toEqual([
      { role: 'participant', accepted_at: null, accepted_by: null, voided_at: expect.any(Date) },
    ]);
  });
});
