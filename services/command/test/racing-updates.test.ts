import { readStream } from '@connect/ledger';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { buildApp } from '../src/app.ts';
import { type Account, signUp, type TestApp, testApp } from './support.ts';

let t: TestApp;
let ana: Account;

beforeAll(async () => {
  t = await testApp();
  ana = await signUp(t.app, 'Ana');
});
afterAll(() => t.close());

test('30 concurrent updates of one commitment without If-Match all land, with dense versions', async () => {
  const created = await t.app.inject({
    method: 'POST',
    url: '/v1/commitments',
    payload: { type: 'personal', title: 'Paint the fence' },
    headers: ana.auth,
  });
  const id = created.json().commitmentId as string;
  const responses = await Promise.all(
    Array.from({ length: 30 }, (_, i) =>
      t.app.inject({
        method: 'POST',
        url: `/v1/commitments/${id}/update`,
        payload: { terms: `draft ${i}` },
        headers: ana.auth,
      }),
    ),
  );
  expect(responses.map((r) => r.statusCode)).toEqual(Array(30).fill(200));
  const versions = responses.map((r) => r.json().version as number).sort((a, b) => a - b);
  expect(versions).toEqual(Array.from({ length: 30 }, (_, i) => i + 2));
  const stream = await readStream(t.database.db, t.deps.ledger, `commitment-${id}`);
  expect(stream.map((e) => e.version)).toEqual(Array.from({ length: 31 }, (_, i) => i + 1));
});

test('a command refused on the state this process cached is decided again on the stored stream (another process moved it on)', async () => {
  const ben = await signUp(t.app, 'Ben');
  // A second command service on the same database: its own cache of the states it wrote.
  const other = buildApp(t.deps, { logLevel: 'silent' });
  await other.ready();
  try {
    const created = await t.app.inject({
      method: 'POST',
      url: '/v1/commitments',
      payload: { type: 'personal', title: 'Water the plants' },
      headers: ana.auth,
    });
    const id = created.json().commitmentId as string;
    const invited = await other.inject({
      method: 'POST',
      url: `/v1/commitments/${id}/invite`,
      payload: { userId: ben.userId, role: 'participant' },
      headers: ana.auth,
    });
    expect(invited.statusCode).toBe(200);
    // The first process still holds the state without the invitation, on which propose is refused.
    const proposed = await t.app.inject({
      method: 'POST',
      url: `/v1/commitments/${id}/propose`,
      payload: {},
      headers: ana.auth,
    });
    expect(proposed.statusCode).toBe(200);
    expect(proposed.json().version).toBe(3);
    // And the invitee, unknown to the first process's cached state, can act there.
    const accepted = await t.app.inject({
      method: 'POST',
      url: `/v1/commitments/${id}/accept`,
      payload: {},
      headers: ben.auth,
    });
    expect(accepted.statusCode).toBe(200);
  } finally {
    await other.close();
  }
});
