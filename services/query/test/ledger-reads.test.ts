import { parseVerifierKey, verifyReceipt } from '@connect/crypto';
import { auditLedger, readStream, redactEntries } from '@connect/ledger';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Stack, testStack } from '../../../test/support/stack.ts';
import { grantAdmin } from '../../command/src/auth/roles.ts';
import { type Account, signUp } from '../../command/test/support.ts';

let s: Stack;
let ana: Account;
let ben: Account;
let eve: Account;
let id: string;
let last = 0;
let termsIndex = 0;

async function command(who: Account, url: string, payload: unknown = {}) {
  const response = await s.app.inject({ method: 'POST', url, payload: payload as object, headers: who.auth });
  if (response.statusCode >= 300) throw new Error(`${url}: ${response.statusCode} ${response.body}`);
  const receipt = response.json() as { commitmentId: string; events: { index: number; type: string }[] };
  last = Math.max(last, receipt.events.at(-1)?.index ?? 0);
  return receipt;
}

const get = (who: Account, url: string) =>
  s.app.inject({ method: 'GET', url, headers: { ...who.auth, 'connect-min-index': String(last) } });

async function relogin(who: Account): Promise<Account> {
  const response = await s.app.inject({
    method: 'POST',
    url: '/v1/auth/token',
    payload: { grant_type: 'password', email: who.email, password: 'correct horse battery' },
  });
  const token = response.json().access_token as string;
  return { ...who, token, auth: { authorization: `Bearer ${token}` } };
}

beforeAll(async () => {
  s = await testStack();
  ana = await signUp(s.app, 'Ana');
  ben = await signUp(s.app, 'Ben');
  eve = await signUp(s.app, 'Eve');
  id = (await command(ana, '/v1/commitments', { type: 'personal', title: 'Lend the ladder' })).commitmentId;
  termsIndex = (
    await command(ana, `/v1/commitments/${id}/update`, { terms: 'Return it with the bolts: 0612 345 678' })
  ).events[0]?.index as number;
  await command(ana, `/v1/commitments/${id}/invite`, { userId: ben.userId, role: 'participant' });
  await command(ana, `/v1/commitments/${id}/propose`);
  await command(ben, `/v1/commitments/${id}/accept`);
});
afterAll(() => s.close());

describe('GET /v1/ledger/entries/:index', () => {
  it('gives a party the entry with its body and leaf hash; others get 404', async () => {
    const response = await get(ben, `/v1/ledger/entries/${termsIndex}`);
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({
      index: termsIndex,
      stream: `commitment-${id}`,
      type: 'CommitmentUpdated',
      data: { changes: { terms: 'Return it with the bolts: 0612 345 678' } },
      redacted: false,
    });
    expect(response.json().salt).toMatch(/^[A-Za-z0-9+/]{22}==$/);
    expect((await get(eve, `/v1/ledger/entries/${termsIndex}`)).statusCode).toBe(404);
    expect((await get(ben, '/v1/ledger/entries/99999999')).statusCode).toBe(404);
    const bad = await get(ben, '/v1/ledger/entries/-1');
    expect(bad.statusCode).toBe(400);
    expect(bad.json().errors[0].path).toBe('path.index');
  });
});

describe('GET /v1/commitments/:id/receipt', () => {
  it('gives a party a bundle that verifies offline and replays to the state; a stranger gets 404', async () => {
    const response = await get(ben, `/v1/commitments/${id}/receipt`);
    expect(response.statusCode).toBe(200);
    const bundle = response.json();
    expect(verifyReceipt(bundle, parseVerifierKey(s.query.verifierKey)).valid).toBe(true);
    expect(bundle.state).toMatchObject({ id, status: 'active', version: 6 });
    expect((await get(eve, `/v1/commitments/${id}/receipt`)).statusCode).toBe(404);
  });
});

describe('the admin audit', () => {
  it('runs for admins only', async () => {
    expect(
      (await s.app.inject({ method: 'POST', url: '/v1/admin/ledger/audit', headers: eve.auth })).statusCode,
    ).toBe(403);
    await grantAdmin(s.command, ana.email);
    ana = await relogin(ana);
    const response = await s.app.inject({ method: 'POST', url: '/v1/admin/ledger/audit', headers: ana.auth });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ ok: true });
    expect(response.json().treeSize).toBeGreaterThan(last);
  });
});

describe('redaction', () => {
  it('erases a body, records who and why, and every proof, receipt and audit still holds', async () => {
    const before = (await get(ben, `/v1/commitments/${id}/receipt`)).json();
    const redacted = await redactEntries(
      { db: s.database.db, ledger: s.command.ledger },
      { index: termsIndex },
      { reason: 'a phone number, on request', by: ana.userId },
    );
    expect(redacted).toEqual([{ index: termsIndex, stream: `commitment-${id}`, erased: true }]);
    const [record] = await readStream(s.database.db, s.command.ledger, 'redactions');
    if (!record) throw new Error('the redaction is not recorded');
    expect(record).toMatchObject({
      actor: ana.userId,
      data: { index: termsIndex, reason: 'a phone number, on request' },
    });
    last = record.index;

    const entry = (await get(ben, `/v1/ledger/entries/${termsIndex}`)).json();
    expect(entry).toMatchObject({
      data: null,
      salt: null,
      redacted: true,
      leafHash: before.entries[1].leafHash,
    });
    const receipt = (await get(ben, `/v1/commitments/${id}/receipt`)).json();
    const checked = verifyReceipt(receipt, parseVerifierKey(s.query.verifierKey));
    expect(checked.valid).toBe(true);
    expect(receipt.state.terms).toBe('');
    const audit = await auditLedger(s.database.db, parseVerifierKey(s.query.verifierKey), {
      cipher: s.query.cipher,
    });
    expect(audit.ok).toBe(true);

    const history = (await get(ben, `/v1/commitments/${id}/history`)).json().events;
    const row = history.find((e: { index: number }) => e.index === termsIndex);
    expect(row).toMatchObject({ redacted: true, changes: null, summary: expect.stringMatching(/redacted/) });
    const commitment = (await get(ben, `/v1/commitments/${id}`)).json();
    expect(commitment.terms).toBe('');
    expect(commitment.status).toBe('active');
    // Redacting again changes nothing and records nothing new.
    expect(
      await redactEntries(
        { db: s.database.db, ledger: s.command.ledger },
        { index: termsIndex },
        { reason: 'again', by: ana.userId },
      ),
    ).toEqual([{ index: termsIndex, stream: `commitment-${id}`, erased: false }]);
  });

  it('erases every entry of a user’s profile; names show as redacted', async () => {
    const redacted = await redactEntries(
      { db: s.database.db, ledger: s.command.ledger },
      { stream: `profile-${eve.userId}` },
      { reason: 'erasure request', by: ana.userId },
    );
    expect(redacted).toHaveLength(1);
    const records = await s.database.db
      .selectFrom('ledger_entries')
      .select('index')
      .where('stream', '=', 'redactions')
      .orderBy('index', 'desc')
      .executeTakeFirstOrThrow();
    last = records.index;
    const me = await s.app.inject({
      method: 'POST',
      url: '/graphql',
      headers: { ...eve.auth, 'connect-min-index': String(last) },
      payload: { query: '{ me { displayName } }' },
    });
    expect(me.json().data.me.displayName).toBe('(redacted)');
  });
});
