// Input that once reached the database and came back as a 500 (or as a poison entry): each is a
// 400 naming the field, and the ledger is left as it was.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type Account, signUp, type TestApp, testApp } from './support.ts';

let t: TestApp;
let ana: Account;
let commitmentId: string;

beforeAll(async () => {
  t = await testApp();
  ana = await signUp(t.app, 'Ana');
  const created = await post('/v1/commitments', { type: 'personal', title: 'Water the plants' });
  commitmentId = created.json().commitmentId;
});
afterAll(() => t.close());

const post = (url: string, payload: unknown, headers: Record<string, string> = ana.auth) =>
  t.app.inject({ method: 'POST', url, payload: payload as object, headers });

const treeSize = async () =>
  (await t.database.db.selectFrom('ledger_head').select('tree_size').executeTakeFirstOrThrow()).tree_size;

async function refused(url: string, payload: unknown, path: string, headers?: Record<string, string>) {
  const before = await treeSize();
  const response = await post(url, payload, headers);
  expect(response.statusCode, response.body).toBe(400);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(response.json().errors.map((e: { path: string }) => e.path)).toContain(path);
  expect(await treeSize()).toBe(before);
}

const NUL = 'a\u0000b';
const LONE = 'a\uD800b';

test('a due date in year 0000, which PostgreSQL cannot store, is refused at the edge', async () => {
  await refused(
    '/v1/commitments',
    { type: 'personal', title: 'x', dueAt: '0000-01-01T00:00:00Z' },
    'body.dueAt',
  );
  await refused(
    `/v1/commitments/${commitmentId}/update`,
    { dueAt: '0000-12-31T00:00:00.000Z' },
    'body.dueAt',
  );
  const fine = await post(`/v1/commitments/${commitmentId}/update`, { dueAt: '0001-01-01T00:00:00Z' });
  expect(fine.statusCode).toBe(200);
});

describe('NUL characters and unpaired surrogates are refused in every text field', () => {
  for (const [label, bad] of [
    ['NUL', NUL],
    ['a lone surrogate', LONE],
  ] as const) {
    test(`${label}`, async () => {
      await refused('/v1/commitments', { type: 'personal', title: bad }, 'body.title');
      await refused(
        '/v1/commitments',
        { type: 'personal', title: 'x', description: bad },
        'body.description',
      );
      await refused('/v1/commitments', { type: 'personal', title: 'x', terms: bad }, 'body.terms');
      await refused(`/v1/commitments/${commitmentId}/cancel`, { reason: bad }, 'body.reason');
      await refused(`/v1/commitments/${commitmentId}/dispute`, { reason: bad }, 'body.reason');
      await refused(
        `/v1/commitments/${commitmentId}/propose-amendment`,
        { changes: { terms: bad } },
        'body.changes.terms',
      );
      await refused(
        '/v1/auth/signup',
        { email: `n${Date.now()}@example.test`, password: 'correct horse battery', displayName: bad },
        'body.displayName',
        {},
      );
      await refused('/v1/commitments', { type: 'personal', title: 'x', [bad]: 1 }, `body.${bad}`);
    });
  }

  test('in a document name and a file name', async () => {
    for (const [name, filename, path] of [
      [NUL, 'ok.txt', 'body.name'],
      [undefined, 'a\u0000.txt', 'body.name'],
    ] as const) {
      const boundary = 'x-boundary';
      const parts = [
        ...(name === undefined
          ? []
          : [`--${boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\n${name}\r\n`]),
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\nContent-Type: text/plain\r\n\r\nhello\r\n`,
        `--${boundary}--\r\n`,
      ];
      const before = await treeSize();
      const response = await t.app.inject({
        method: 'POST',
        url: `/v1/commitments/${commitmentId}/documents`,
        payload: parts.join(''),
        headers: { ...ana.auth, 'content-type': `multipart/form-data; boundary=${boundary}` },
      });
      expect(response.statusCode, response.body).toBe(400);
      expect(response.json().errors.map((e: { path: string }) => e.path)).toContain(path);
      expect(await treeSize()).toBe(before);
    }
  });
});

test('an invite or a party removal with a user id that is not a UUID is a 400', async () => {
  await refused(
    `/v1/commitments/${commitmentId}/invite`,
    { userId: 'not-a-uuid', role: 'witness' },
    'body.userId',
  );
  await refused(`/v1/commitments/${commitmentId}/remove-party`, { userId: "x' or 1=1" }, 'body.userId');
});

test('an invitation of a user id nobody has is a 400 naming body.userId, and appends nothing', async () => {
  await refused(
    `/v1/commitments/${commitmentId}/invite`,
    { userId: '00000000-0000-4000-8000-000000000000', role: 'participant' },
    'body.userId',
  );
});

test('a password with an unpaired surrogate is refused rather than collapsed into U+FFFD', async () => {
  const email = `surrogate-${Date.now()}@example.test`;
  await refused(
    '/v1/auth/signup',
    { email, password: 'correct horse \uD800', displayName: 'S' },
    'body.password',
    {},
  );
  const signedUp = await post(
    '/v1/auth/signup',
    { email, password: 'correct horse \uFFFD', displayName: 'S' },
    {},
  );
  expect(signedUp.statusCode).toBe(201);
  const login = await post(
    '/v1/auth/token',
    { grant_type: 'password', email, password: 'correct horse \uDC00' },
    {},
  );
  expect(login.statusCode).toBe(400);
  expect(login.json().errors[0].path).toBe('body.password');
});
