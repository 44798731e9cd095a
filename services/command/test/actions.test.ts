// Every lifecycle action through HTTP at least once, each answered with a receipt whose events
// are the ones the domain decides.

import { readStream } from '@connect/ledger';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { type Account, signUp, type TestApp, testApp } from './support.ts';

let t: TestApp;
let ana: Account;
let ben: Account;
let cy: Account;

beforeAll(async () => {
  t = await testApp();
  [ana, ben, cy] = (await Promise.all(['Ana', 'Ben', 'Cy'].map((name) => signUp(t.app, name)))) as [
    Account,
    Account,
    Account,
  ];
});
afterAll(() => t.close());

type Step = [who: () => Account, action: string, body?: Record<string, unknown>];

async function run(steps: Step[]): Promise<{ id: string; last: string[] }> {
  const created = await t.app.inject({
    method: 'POST',
    url: '/v1/commitments',
    payload: { type: 'personal', title: 'Walk the dog daily' },
    headers: ana.auth,
  });
  expect(created.statusCode).toBe(201);
  const id = created.json().commitmentId as string;
  let last: string[] = [];
  for (const [who, action, body] of steps) {
    const response = await t.app.inject({
      method: 'POST',
      url: `/v1/commitments/${id}/${action}`,
      payload: body ?? {},
      headers: who().auth,
    });
    if (response.statusCode !== 200) throw new Error(`${action}: ${response.statusCode} ${response.body}`);
    last = response.json().events.map((e: { type: string }) => e.type);
  }
  return { id, last };
}

const active = (): Step[] => [
  [() => ana, 'invite', { userId: ben.userId, role: 'participant' }],
  [() => ana, 'propose'],
  [() => ben, 'accept'],
];

test('remove-party', async () => {
  const { last } = await run([
    [() => ana, 'invite', { userId: ben.userId, role: 'participant' }],
    [() => ana, 'remove-party', { userId: ben.userId }],
  ]);
  expect(last).toEqual(['PartyRemoved']);
});

test('withdraw, then decline', async () => {
  const withdrawn = await run([
    [() => ana, 'invite', { userId: ben.userId, role: 'participant' }],
    [() => ana, 'propose'],
    [() => ana, 'withdraw'],
  ]);
  expect(withdrawn.last).toEqual(['ProposalWithdrawn']);
  const declined = await run([
    [() => ana, 'invite', { userId: ben.userId, role: 'participant' }],
    [() => ana, 'propose'],
    [() => ben, 'decline', { reason: 'not this month' }],
  ]);
  expect(declined.last).toEqual(['InvitationDeclined']);
});

test('cancel', async () => {
  expect((await run([[() => ana, 'cancel', { reason: 'no longer needed' }]])).last).toEqual([
    'CommitmentCancelled',
  ]);
});

test('dispute, then resolve by a witness', async () => {
  const { last } = await run([
    [() => ana, 'invite', { userId: ben.userId, role: 'participant' }],
    [() => ana, 'invite', { userId: cy.userId, role: 'witness' }],
    [() => ana, 'propose'],
    [() => ben, 'accept'],
    [() => cy, 'accept'],
    [() => ana, 'dispute', { reason: 'the dog was not walked' }],
    [() => cy, 'resolve', { outcome: 'breached' }],
  ]);
  expect(last).toEqual(['DisputeResolved']);
});

test('report-breach, then resolve by agreement', async () => {
  const { last } = await run([
    ...active(),
    [() => ana, 'report-breach', { reason: 'missed three days' }],
    [() => ana, 'resolve', { outcome: 'fulfilled' }],
    [() => ben, 'resolve', { outcome: 'fulfilled' }],
  ]);
  expect(last).toEqual(['ResolutionVoted', 'DisputeResolved']);
});

test('request-cancellation by every principal party', async () => {
  const { last } = await run([
    ...active(),
    [() => ben, 'request-cancellation'],
    [() => ana, 'request-cancellation'],
  ]);
  expect(last).toEqual(['CancellationRequested', 'CommitmentCancelled']);
});

test('propose-amendment, accept-amendment and decline-amendment', async () => {
  const { id } = await run([
    ...active(),
    [() => ana, 'propose-amendment', { changes: { terms: 'Twice a day' } }],
  ]);
  const history = await bodiesOf<{ amendmentId: string }>(id, 'AmendmentProposed');
  const amendmentId = history.rows[0]?.data.amendmentId;
  const accepted = await t.app.inject({
    method: 'POST',
    url: `/v1/commitments/${id}/accept-amendment`,
    payload: { amendmentId },
    headers: ben.auth,
  });
  expect(accepted.json().events.map((e: { type: string }) => e.type)).toEqual([
    'AmendmentAccepted',
    'AmendmentApplied',
  ]);

  const proposed = await t.app.inject({
    method: 'POST',
    url: `/v1/commitments/${id}/propose-amendment`,
    payload: { changes: { title: 'Walk the dog' } },
    headers: ben.auth,
  });
  const second = { rows: (await bodiesOf<{ amendmentId: string }>(id, 'AmendmentProposed')).rows.slice(-1) };
  expect(proposed.statusCode).toBe(200);
  const declined = await t.app.inject({
    method: 'POST',
    url: `/v1/commitments/${id}/decline-amendment`,
    payload: { amendmentId: second.rows[0]?.data.amendmentId },
    headers: ana.auth,
  });
  expect(declined.json().events.map((e: { type: string }) => e.type)).toEqual(['AmendmentDeclined']);
});

test('remove-document', async () => {
  const created = await t.app.inject({
    method: 'POST',
    url: '/v1/commitments',
    payload: { type: 'personal', title: 'Docs' },
    headers: ana.auth,
  });
  const id = created.json().commitmentId;
  const boundary = '----connectdoc';
  const payload = Buffer.from(
    `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="a.txt"\r\ncontent-type: text/plain\r\n\r\nhello\r\n--${boundary}--\r\n`,
  );
  const uploaded = await t.app.inject({
    method: 'POST',
    url: `/v1/commitments/${id}/documents`,
    payload,
    headers: { ...ana.auth, 'content-type': `multipart/form-data; boundary=${boundary}` },
  });
  expect(uploaded.statusCode).toBe(201);
  const { rows } = await bodiesOf<{ documentId: string }>(id, 'DocumentAttached');
  const removed = await t.app.inject({
    method: 'POST',
    url: `/v1/commitments/${id}/remove-document`,
    payload: { documentId: rows[0]?.data.documentId },
    headers: ana.auth,
  });
  expect(removed.json().events.map((e: { type: string }) => e.type)).toEqual(['DocumentRemoved']);
});

/** Uploads a small text file as `name`; the response as it is. */
function upload(who: Account, id: string, name: string, content = 'paid 200 EUR') {
  const boundary = '----connectevidence';
  const payload = Buffer.from(
    `--${boundary}\r\ncontent-disposition: form-data; name="name"\r\n\r\n${name}\r\n` +
      `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="${name}"\r\ncontent-type: text/plain\r\n\r\n${content}\r\n--${boundary}--\r\n`,
  );
  return t.app.inject({
    method: 'POST',
    url: `/v1/commitments/${id}/documents`,
    payload,
    headers: { ...who.auth, 'content-type': `multipart/form-data; boundary=${boundary}` },
  });
}

test('evidence: a party uploads proof of payment to a dispute, and only there', async () => {
  const { id } = await run([...active(), [() => ben, 'dispute', { reason: 'I paid' }]]);
  const uploaded = await upload(ben, id, 'transfer.txt');
  expect(uploaded.statusCode).toBe(201);
  expect(uploaded.json().events.map((e: { type: string }) => e.type)).toEqual(['EvidenceAttached']);
  const { rows } = await bodiesOf<{ documentId: string; userId: string }>(id, 'EvidenceAttached');
  expect(rows[0]?.data.userId).toBe(ben.userId);
  const content = await t.app.inject({
    method: 'GET',
    url: `/v1/commitments/${id}/documents/${rows[0]?.data.documentId}/content`,
    headers: ana.auth,
  });
  expect(content.body).toBe('paid 200 EUR');
  // Ana's file of the same name is hers, not a new version of Ben's.
  const hers = await upload(ana, id, 'transfer.txt', 'not received');
  expect(hers.statusCode).toBe(201);
  const { rows: all } = await bodiesOf<{ documentId: string; version: number }>(id, 'EvidenceAttached');
  expect(all.map((r) => r.data.version)).toEqual([1, 1]);
  expect(new Set(all.map((r) => r.data.documentId)).size).toBe(2);

  const stranger = await upload(cy, id, 'transfer.txt');
  expect(stranger.statusCode).toBe(404);
  const { id: proposed } = await run([
    [() => ana, 'invite', { userId: ben.userId, role: 'participant' }],
    [() => ana, 'propose'],
  ]);
  const tooEarly = await upload(ben, proposed, 'transfer.txt');
  expect(tooEarly.statusCode).toBe(409);
  expect(tooEarly.json()).toMatchObject({
    type: '/problems/state-conflict',
    detail: expect.stringMatching(/the commitment is proposed/),
  });
});

test('a refused command is answered by the problem its kind means', async () => {
  const { id } = await run([[() => ana, 'invite', { userId: ben.userId, role: 'participant' }]]);
  const post = (who: Account, path: string, payload: object = {}, headers: object = {}) =>
    t.app.inject({ method: 'POST', url: path, payload, headers: { ...who.auth, ...headers } });
  const forbidden = await post(ben, `/v1/commitments/${id}/update`, { title: 'Mine now' });
  expect(forbidden.json()).toMatchObject({
    status: 403,
    type: '/problems/forbidden',
    detail: 'only the creator can change the terms',
  });
  const unknownType = await post(ana, '/v1/commitments', { type: 'no-such-type', title: 'x' });
  expect(unknownType.json()).toMatchObject({
    status: 400,
    type: '/problems/invalid-input',
    errors: [{ path: 'body.type', message: 'unknown commitment type "no-such-type"' }],
  });
  const hidden = await post(cy, `/v1/commitments/${id}/propose`);
  expect(hidden.json()).toMatchObject({ status: 404, type: '/problems/not-found' });
  const stale = await post(ana, `/v1/commitments/${id}/propose`, {}, { 'if-match': '"1"' });
  expect(stale.json()).toMatchObject({ status: 412, type: '/problems/version-conflict' });
});

/** The bodies of a commitment's events of one type, in stream order, opened as the ledger serves them. */
async function bodiesOf<T>(id: string, type: string): Promise<{ rows: { data: T }[] }> {
  const entries = await readStream(t.database.db, t.deps.ledger, `commitment-${id}`);
  return { rows: entries.filter((entry) => entry.type === type).map((entry) => ({ data: entry.data as T })) };
}
