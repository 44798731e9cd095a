import { parseVerifierKey } from '@connect/crypto';
import { PROFILE_UPDATED, profileStream } from '@connect/domain';
import { auditLedger, readStream, redactEntries } from '@connect/ledger';
import { displayNames } from '@connect/notifier';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { type Stack, testStack } from '../../../test/support/stack.ts';
import { profileNames } from '../../query/src/receipt-state.ts';
import { type Account, signUp } from './support.ts';

let s: Stack;
let ana: Account;
let ben: Account;
let commitmentId: string;

beforeAll(async () => {
  s = await testStack();
  ana = await signUp(s.app, 'Ana');
  ben = await signUp(s.app, 'Ben');
  const created = await s.app.inject({
    method: 'POST',
    url: '/v1/commitments',
    headers: ana.auth,
    payload: { type: 'personal', title: 'Lend the ladder' },
  });
  commitmentId = created.json().commitmentId;
  const invited = await s.app.inject({
    method: 'POST',
    url: `/v1/commitments/${commitmentId}/invite`,
    headers: ana.auth,
    payload: { userId: ben.userId, role: 'participant' },
  });
  expect(invited.statusCode).toBe(200);
});
afterAll(() => s.close());

const patchMe = (who: Account | null, payload: unknown) =>
  s.app.inject({
    method: 'PATCH',
    url: '/v1/me',
    headers: who?.auth ?? {},
    payload: payload as object,
  });

const profileEntries = (who: Account) =>
  readStream(s.database.db, s.command.ledger, profileStream(who.userId));

const read = (who: Account, url: string, minIndex: number) =>
  s.app.inject({ method: 'GET', url, headers: { ...who.auth, 'connect-min-index': String(minIndex) } });

const me = async (who: Account, minIndex: number) =>
  (
    await s.app.inject({
      method: 'POST',
      url: '/graphql',
      headers: { ...who.auth, 'connect-min-index': String(minIndex) },
      payload: { query: '{ me { id displayName avatarUrl } }' },
    })
  ).json().data.me;

test('PATCH /v1/me changes the name and picture: a ProfileUpdated event, the account, the read models', async () => {
  const avatar = 'https://images.example.com/ana.png';
  const response = await patchMe(ana, { displayName: '  Ana María ', avatarUrl: avatar });
  expect(response.statusCode).toBe(200);
  expect(response.json()).toMatchObject({
    id: ana.userId,
    email: ana.email,
    displayName: 'Ana María',
    avatarUrl: avatar,
  });
  const account = await s.app.inject({ method: 'GET', url: '/v1/auth/me', headers: ana.auth });
  expect(account.json()).toMatchObject({ displayName: 'Ana María', avatarUrl: avatar });

  const entries = await profileEntries(ana);
  expect(entries.map((entry) => [entry.type, entry.version])).toEqual([
    ['ProfileRegistered', 1],
    [PROFILE_UPDATED, 2],
  ]);
  const updated = entries[1];
  expect(updated?.data).toEqual({ userId: ana.userId, displayName: 'Ana María', avatarUrl: avatar });
  const index = Number(updated?.index);

  // The query service: party names (REST), the caller's profile (GraphQL).
  const commitment = (await read(ben, `/v1/commitments/${commitmentId}`, index)).json();
  expect(commitment.parties).toContainEqual(
    expect.objectContaining({ userId: ana.userId, displayName: 'Ana María', role: 'creator' }),
  );
  expect(await me(ana, index)).toEqual({ id: ana.userId, displayName: 'Ana María', avatarUrl: avatar });

  // Only the picture: the name stays; null removes the picture.
  const removed = await patchMe(ana, { avatarUrl: null });
  expect(removed.statusCode).toBe(200);
  expect(removed.json()).toMatchObject({ displayName: 'Ana María', avatarUrl: null });
  const after = await profileEntries(ana);
  expect(after.at(-1)?.data).toEqual({ userId: ana.userId, displayName: 'Ana María', avatarUrl: null });
  expect(await me(ana, Number(after.at(-1)?.index))).toMatchObject({
    displayName: 'Ana María',
    avatarUrl: null,
  });

  // Nothing changed: nothing appended.
  expect((await patchMe(ana, { displayName: 'Ana María' })).statusCode).toBe(200);
  expect(await profileEntries(ana)).toHaveLength(after.length);

  // The notifier names people by the latest name, and so does a receipt.
  const client = await s.database.pool.connect();
  try {
    expect(
      (await displayNames(client, s.command.ledger.cipher, [ana.userId, ben.userId])).get(ana.userId),
    ).toBe('Ana María');
  } finally {
    client.release();
  }
  const receipt = (await read(ben, `/v1/commitments/${commitmentId}/receipt`, index)).json();
  expect(profileNames(receipt.profiles).get(ana.userId)).toBe('Ana María');

  const audit = await auditLedger(s.database.db, parseVerifierKey(s.command.ledger.verifierKey), {
    cipher: s.command.ledger.cipher,
  });
  expect(audit.ok).toBe(true);
});

test('bad input is a 400 naming the field; an empty body too; no token is a 401', async () => {
  const cases: [unknown, string][] = [
    [{ displayName: '   ' }, 'body.displayName'],
    [{ displayName: 'x'.repeat(101) }, 'body.displayName'],
    [{ avatarUrl: 'http://images.example.com/ana.png' }, 'body.avatarUrl'],
    [{ avatarUrl: 'javascript:alert(1)' }, 'body.avatarUrl'],
    [{ avatarUrl: `https://images.example.com/${'a'.repeat(2048)}` }, 'body.avatarUrl'],
    [{ avatarUrl: 42 }, 'body.avatarUrl'],
    [{}, 'body'],
  ];
  for (const [payload, path] of cases) {
    const response = await patchMe(ben, payload);
    expect(response.statusCode, JSON.stringify(payload)).toBe(400);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.json().errors.map((error: { path: string }) => error.path)).toContain(path);
  }
  expect((await patchMe(ben, { displayName: 'Ben', nickname: 'B' })).statusCode).toBe(400);
  expect((await patchMe(null, { displayName: 'Nobody' })).statusCode).toBe(401);
  expect(await profileEntries(ben)).toHaveLength(1);
});

test('concurrent changes are all recorded in order, and the account ends with the last', async () => {
  const names = ['Ben A', 'Ben B', 'Ben C', 'Ben D'];
  const responses = await Promise.all(names.map((displayName) => patchMe(ben, { displayName })));
  expect(responses.map((response) => response.statusCode)).toEqual([200, 200, 200, 200]);
  const entries = await profileEntries(ben);
  expect(entries.map((entry) => entry.version)).toEqual([1, 2, 3, 4, 5]);
  const last = entries.at(-1)?.data as { displayName: string };
  const account = await s.app.inject({ method: 'GET', url: '/v1/auth/me', headers: ben.auth });
  expect(account.json().displayName).toBe(last.displayName);
});

test('redacting a profile erases the updated name too; the audit still passes', async () => {
  const redacted = await redactEntries(
    { db: s.database.db, ledger: s.command.ledger },
    { stream: profileStream(ana.userId) },
    { reason: 'asked to be forgotten', by: ben.userId },
  );
  expect(redacted.length).toBeGreaterThanOrEqual(3);
  const head = await s.database.db.selectFrom('ledger_head').select('tree_size').executeTakeFirstOrThrow();
  const commitment = (await read(ben, `/v1/commitments/${commitmentId}`, Number(head.tree_size) - 1)).json();
  const party = commitment.parties.find((p: { userId: string }) => p.userId === ana.userId);
  expect(party.displayName).not.toBe('Ana María');
  const profile = await s.database.db
    .selectFrom('profiles')
    .select(['display_name', 'avatar_url', 'redacted'])
    .where('user_id', '=', ana.userId)
    .executeTakeFirstOrThrow();
  expect(profile).toMatchObject({ redacted: true, avatar_url: null });
  const client = await s.database.pool.connect();
  try {
    expect((await displayNames(client, s.command.ledger.cipher, [ana.userId])).has(ana.userId)).toBe(false);
  } finally {
    client.release();
  }
  const audit = await auditLedger(s.database.db, parseVerifierKey(s.command.ledger.verifierKey), {
    cipher: s.command.ledger.cipher,
  });
  expect(audit.ok).toBe(true);
});
