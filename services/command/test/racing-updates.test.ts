import { readStream } from '@connect/ledger';
import { afterAll, beforeAll, expect, test } from 'vitest';
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
