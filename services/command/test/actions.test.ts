// Every lifecycle action through HTTP at least once, each answered with a receipt whose events
// are the ones the domain decides.
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
  const history = await t.database.pool.query<{ data: { amendmentId: string } }>(
    `select data from ledger_entries where stream = $1 and type = 'AmendmentProposed'`,
    [`commitment-${id}`],
  );
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
  const second = await t.database.pool.query<{ data: { amendmentId: string } }>(
    `select data from ledger_entries where stream = $1 and type = 'AmendmentProposed' order by version desc limit 1`,
    [`commitment-${id}`],
  );
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
  const { rows } = await t.database.pool.query<{ data: { documentId: string } }>(
    `select data from ledger_entries where stream = $1 and type = 'DocumentAttached'`,
    [`commitment-${id}`],
  );
  const removed = await t.app.inject({
    method: 'POST',
    url: `/v1/commitments/${id}/remove-document`,
    payload: { documentId: rows[0]?.data.documentId },
    headers: ana.auth,
  });
  expect(removed.json().events.map((e: { type: string }) => e.type)).toEqual(['DocumentRemoved']);
});
