import { profileStream } from '@connect/domain';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Stack, testStack } from '../../../test/support/stack.ts';
import { grantAdmin } from '../../command/src/auth/roles.ts';
import { type Account, signUp } from '../../command/test/support.ts';

let s: Stack;
let ana: Account;
let ben: Account;
let eve: Account;
let admin: Account;
let last = 0;

async function command(who: Account, url: string, payload: object = {}) {
  const response = await s.app.inject({ method: 'POST', url, payload, headers: who.auth });
  if (response.statusCode >= 300) throw new Error(`${url}: ${response.statusCode} ${response.body}`);
  const receipt = response.json() as { commitmentId: string; events: { index: number }[] };
  last = Math.max(last, receipt.events.at(-1)?.index ?? 0);
  return receipt;
}

async function profileIndex(who: Account): Promise<number> {
  const row = await s.database.db
    .selectFrom('ledger_entries')
    .select('index')
    .where('stream', '=', profileStream(who.userId))
    .executeTakeFirstOrThrow();
  return row.index;
}

const entry = async (who: Account, owner: Account) =>
  (
    await s.app.inject({
      method: 'GET',
      url: `/v1/ledger/entries/${await profileIndex(owner)}`,
      headers: { ...who.auth, 'connect-min-index': String(last) },
    })
  ).statusCode;

beforeAll(async () => {
  s = await testStack();
  ana = await signUp(s.app, 'Ana');
  ben = await signUp(s.app, 'Ben');
  eve = await signUp(s.app, 'Eve');
  const boss = await signUp(s.app, 'Boss');
  await grantAdmin(s.command, boss.email);
  const login = await s.app.inject({
    method: 'POST',
    url: '/v1/auth/token',
    payload: { grant_type: 'password', email: boss.email, password: 'correct horse battery' },
  });
  admin = { ...boss, auth: { authorization: `Bearer ${login.json().access_token}` } };
  const { commitmentId } = await command(ana, '/v1/commitments', {
    type: 'personal',
    title: 'Lend the ladder',
  });
  await command(ana, `/v1/commitments/${commitmentId}/invite`, { userId: ben.userId, role: 'participant' });
});
afterAll(() => s.close());

it('shows a profile entry to the user, to whoever shares a commitment with them and to admins', async () => {
  expect(await entry(ana, ana)).toBe(200);
  expect(await entry(ben, ana)).toBe(200);
  expect(await entry(ana, ben)).toBe(200);
  expect(await entry(admin, ana)).toBe(200);
  expect(await entry(admin, eve)).toBe(200);
});

it('answers 404 to everyone else, as for an entry that does not exist', async () => {
  expect(await entry(eve, ana)).toBe(404);
  expect(await entry(eve, ben)).toBe(404);
  expect(await entry(ana, eve)).toBe(404);
  expect(await entry(ben, admin)).toBe(404);
});
