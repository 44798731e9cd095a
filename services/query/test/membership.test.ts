// Row-level security by party_ids (migration 024): a commitment is hidden from everyone who is not
// one of its parties, through every way the query service reads it (REST, GraphQL queries and
// subscriptions, ledger entries and receipts); a party removed loses it at once and one invited
// gains it; admins and auditors still read everything.
import { profileStream } from '@connect/domain';
import { type Client, createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { type Stack, testStack } from '../../../test/support/stack.ts';
import { grantRole } from '../../command/src/auth/roles.ts';
import { type Account, signUp } from '../../command/test/support.ts';

let s: Stack;
let wsUrl: string;
let ana: Account;
let ben: Account;
let cat: Account;
let ida: Account;
let aud: Account;
let id: string;
/** Ledger indexes of the commitment's entries. */
const entries: number[] = [];
let anaProfileIndex: number;
let last = 0;
const clients: Client[] = [];

async function command(who: Account, url: string, payload: unknown = {}) {
  const response = await s.app.inject({ method: 'POST', url, payload: payload as object, headers: who.auth });
  if (response.statusCode >= 300) throw new Error(`${url}: ${response.statusCode} ${response.body}`);
  const receipt = response.json() as { commitmentId: string; events: { index: number }[] };
  last = Math.max(last, ...receipt.events.map((e) => e.index));
  return receipt;
}

const get = (who: Account, url: string) =>
  s.app.inject({ method: 'GET', url, headers: { ...who.auth, 'connect-min-index': String(last) } });

async function graphql(who: Account, query: string, variables: Record<string, unknown> = {}) {
  const response = await s.app.inject({
    method: 'POST',
    url: '/graphql',
    headers: { ...who.auth, 'connect-min-index': String(last) },
    payload: { query, variables },
  });
  expect(response.statusCode).toBe(200);
  return response.json() as { data: Record<string, unknown>; errors?: unknown[] };
}

async function relogin(who: Account): Promise<Account> {
  const response = await s.app.inject({
    method: 'POST',
    url: '/v1/auth/token',
    payload: { grant_type: 'password', email: who.email, password: 'correct horse battery' },
  });
  const token = response.json().access_token as string;
  return { ...who, token, auth: { authorization: `Bearer ${token}` } };
}

/** What the caller sees of the commitment through each read. */
async function sight(who: Account) {
  const list = await get(who, '/v1/commitments?limit=100');
  const gqlList = await graphql(who, '{ commitments(first: 50) { edges { node { id } } } }');
  const gqlOne = await graphql(who, 'query($id: ID!) { commitment(id: $id) { id } }', { id });
  const ledger = await Promise.all(
    entries.map(async (index) => (await get(who, `/v1/ledger/entries/${index}`)).statusCode),
  );
  return {
    get: (await get(who, `/v1/commitments/${id}`)).statusCode,
    history: (await get(who, `/v1/commitments/${id}/history`)).statusCode,
    receipt: (await get(who, `/v1/commitments/${id}/receipt`)).statusCode,
    listed: (list.json().items as { id: string }[]).some((item) => item.id === id),
    gqlListed: (gqlList.data.commitments as { edges: { node: { id: string } }[] }).edges.some(
      (edge) => edge.node.id === id,
    ),
    gqlOne: gqlOne.data.commitment === null ? null : 'seen',
    ledger: [...new Set(ledger)],
  };
}

const SEEN = {
  get: 200,
  history: 200,
  receipt: 200,
  listed: true,
  gqlListed: true,
  gqlOne: 'seen',
  ledger: [200],
};
const HIDDEN = {
  get: 404,
  history: 404,
  receipt: 404,
  listed: false,
  gqlListed: false,
  gqlOne: null,
  ledger: [404],
};

/** A graphql-ws subscription as `who`: what it delivers and its errors. */
function subscribe(who: Account, query: string, variables: Record<string, unknown> = {}) {
  const c = createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${who.token}` },
    retryAttempts: 0,
    lazy: false,
  });
  clients.push(c);
  const received: Record<string, { id: string; description: string } | null>[] = [];
  const errors: unknown[] = [];
  c.subscribe(
    { query, variables },
    {
      next: (message) => {
        if (message.errors) errors.push(message.errors);
        if (message.data) received.push(message.data as never);
      },
      error: (error) => errors.push(error),
      complete: () => undefined,
    },
  );
  return { received, errors };
}

async function until(check: () => boolean, ms = 15_000) {
  await vi.waitFor(() => expect(check()).toBe(true), { timeout: ms, interval: 20 });
}

/** party_ids of every read-model row of the commitment, as the owner sees them. */
async function partyIdsByTable(): Promise<Record<string, string[][]>> {
  const out: Record<string, string[][]> = {};
  for (const [table, column] of [
    ['commitments', 'id'],
    ['commitment_parties', 'commitment_id'],
    ['commitment_documents', 'commitment_id'],
    ['commitment_history', 'commitment_id'],
  ] as const) {
    const { rows } = await s.database.pool.query<{ party_ids: string[] }>(
      `select distinct party_ids from ${table} where ${column} = $1`,
      [id],
    );
    out[table] = rows.map((row) => row.party_ids);
  }
  return out;
}

beforeAll(async () => {
  s = await testStack();
  wsUrl = `${(await s.app.listen({ port: 0, host: '127.0.0.1' })).replace('http', 'ws')}/graphql`;
  ana = await signUp(s.app, 'Ana');
  ben = await signUp(s.app, 'Ben');
  cat = await signUp(s.app, 'Cat');
  ida = await signUp(s.app, 'Ida');
  aud = await signUp(s.app, 'Aud');
  const { rows } = await s.database.pool.query<{ index: string }>(
    'select index from ledger_entries where stream = $1 order by index limit 1',
    [profileStream(ana.userId)],
  );
  anaProfileIndex = Number(rows[0]?.index);
  const created = await command(ana, '/v1/commitments', { type: 'personal', title: 'Share the allotment' });
  id = created.commitmentId;
  entries.push(...created.events.map((e) => e.index));
  const invited = await command(ana, `/v1/commitments/${id}/invite`, {
    userId: ben.userId,
    role: 'participant',
  });
  entries.push(...invited.events.map((e) => e.index));
  const boundary = '----connectmembership';
  const upload = await s.app.inject({
    method: 'POST',
    url: `/v1/commitments/${id}/documents`,
    headers: { ...ana.auth, 'content-type': `multipart/form-data; boundary=${boundary}` },
    payload: Buffer.from(
      `--${boundary}\r\ncontent-disposition: form-data; name="name"\r\n\r\nplan.txt\r\n` +
        `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="plan.txt"\r\ncontent-type: text/plain\r\n\r\nbeds one to four\r\n--${boundary}--\r\n`,
    ),
  });
  expect(upload.statusCode).toBeLessThan(300);
  for (const e of upload.json().events as { index: number }[]) {
    entries.push(e.index);
    last = Math.max(last, e.index);
  }
  await grantRole(s.command, { userId: ida.userId, role: 'admin', by: null });
  await grantRole(s.command, { userId: aud.userId, role: 'auditor', by: null });
  ida = await relogin(ida);
  aud = await relogin(aud);
});
afterAll(async () => {
  for (const c of clients) await c.dispose();
  await s.close();
});

describe('row-level security by party_ids', () => {
  it('every read-model row of the commitment carries its parties', async () => {
    await get(ana, `/v1/commitments/${id}`);
    const both = [ana.userId, ben.userId].sort();
    expect(await partyIdsByTable()).toEqual({
      commitments: [both],
      commitment_parties: [both],
      commitment_documents: [both],
      commitment_history: [both],
    });
  });

  it('hides the commitment from a non-party through REST, GraphQL and the ledger; its parties see it', async () => {
    expect(await sight(cat)).toEqual(HIDDEN);
    expect(await sight(ben)).toEqual(SEEN);
    expect(await sight(ana)).toEqual(SEEN);
    // A profile's entries: the user, and whoever shares a commitment with them.
    expect((await get(ben, `/v1/ledger/entries/${anaProfileIndex}`)).statusCode).toBe(200);
    expect((await get(cat, `/v1/ledger/entries/${anaProfileIndex}`)).statusCode).toBe(404);
  });

  it('admins and auditors still read every commitment', async () => {
    for (const reader of [ida, aud]) {
      expect((await get(reader, `/v1/commitments/${id}`)).statusCode).toBe(200);
      expect((await get(reader, `/v1/commitments/${id}/history`)).statusCode).toBe(200);
      const one = await graphql(reader, 'query($id: ID!) { commitment(id: $id) { id } }', { id });
      expect(one.data.commitment).toEqual({ id });
    }
  });

  it('a party invited gains the commitment everywhere, and loses it when removed (PartyRemoved)', async () => {
    const before = subscribe(cat, 'subscription($id: ID!) { commitmentChanged(id: $id) { id } }', { id });
    await until(() => before.errors.length > 0);
    expect(JSON.stringify(before.errors)).toMatch(/not a party/);

    const invited = await command(ana, `/v1/commitments/${id}/invite`, {
      userId: cat.userId,
      role: 'witness',
    });
    entries.push(...invited.events.map((e) => e.index));
    expect(await sight(cat)).toEqual(SEEN);
    expect((await get(cat, `/v1/ledger/entries/${anaProfileIndex}`)).statusCode).toBe(200);
    expect((await partyIdsByTable()).commitment_history).toEqual([
      [ana.userId, ben.userId, cat.userId].sort(),
    ]);

    // Subscribed while a party: changes arrive.
    const catMine = subscribe(cat, 'subscription { myCommitments { id description } }');
    const catOne = subscribe(
      cat,
      'subscription($id: ID!) { commitmentChanged(id: $id) { id description } }',
      {
        id,
      },
    );
    const benMine = subscribe(ben, 'subscription { myCommitments { id description } }');
    for (let n = 0; !catMine.received.length || !catOne.received.length || !benMine.received.length; n++) {
      await command(ana, `/v1/commitments/${id}/update`, { description: `while a party ${n}` });
      await new Promise((resolve) => setTimeout(resolve, 100));
    }

    const removed = await command(ana, `/v1/commitments/${id}/remove-party`, { userId: cat.userId });
    entries.push(...removed.events.map((e) => e.index));
    expect(await sight(cat)).toEqual(HIDDEN);
    expect((await get(cat, `/v1/ledger/entries/${anaProfileIndex}`)).statusCode).toBe(404);
    expect(await sight(ben)).toEqual(SEEN);
    const both = [ana.userId, ben.userId].sort();
    expect(await partyIdsByTable()).toEqual({
      commitments: [both],
      commitment_parties: [both],
      commitment_documents: [both],
      commitment_history: [both],
    });

    // After the removal: the parties are told of changes, the one removed is told nothing.
    const catSeen = catMine.received.length + catOne.received.length;
    await command(ana, `/v1/commitments/${id}/update`, { description: 'after the removal' });
    await until(() => benMine.received.some((m) => m.myCommitments?.description === 'after the removal'));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const told = [...catMine.received, ...catOne.received].map((m) => Object.values(m)[0]?.description);
    expect(told).not.toContain('after the removal');
    expect(catMine.received.length + catOne.received.length).toBe(catSeen);
    const again = subscribe(cat, 'subscription($id: ID!) { commitmentChanged(id: $id) { id } }', { id });
    await until(() => again.errors.length > 0);
    expect(JSON.stringify(again.errors)).toMatch(/not a party/);
  });
});
