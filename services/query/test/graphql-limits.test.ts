import { randomUUID } from 'node:crypto';
import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type Stack, testStack } from '../../../test/support/stack.ts';
import { type Account, signUp } from '../../command/test/support.ts';

let s: Stack;
let ana: Account;
let statements: string[] = [];
let last = 0;
const mine: string[] = [];

async function graphql(query: string, variables: Record<string, unknown> = {}) {
  const response = await s.app.inject({
    method: 'POST',
    url: '/graphql',
    headers: { ...ana.auth, 'connect-min-index': String(last) },
    payload: { query, variables },
  });
  return { status: response.statusCode, body: response.json() };
}

/** How long a request takes, from `since`. */
async function took<T>(since: number, request: Promise<T>): Promise<{ result: T; ms: number }> {
  const result = await request;
  return { result, ms: performance.now() - since };
}

/** Fragments F0…F{n-1} on a type, each spreading the next twice: 2^n fields once spread. */
function fragments(levels: number, on: string, leaf: string): string {
  return Array.from({ length: levels }, (_, i) =>
    i === levels - 1
      ? `fragment F${i} on ${on} { ${leaf} }`
      : `fragment F${i} on ${on} { ...F${i + 1} ...F${i + 1} }`,
  ).join(' ');
}
const fanOut = (levels: number) => `{ ...F0 } ${fragments(levels, 'Query', 'me { id }')}`;

beforeAll(async () => {
  s = await testStack({ onQuerySql: (sql) => statements.push(sql) });
  ana = await signUp(s.app, 'Ana');
  for (let i = 0; i < 3; i++) {
    const response = await s.app.inject({
      method: 'POST',
      url: '/v1/commitments',
      payload: { type: 'personal', title: `Ana ${i}` },
      headers: ana.auth,
    });
    const receipt = response.json() as { commitmentId: string; events: { index: number }[] };
    mine.push(receipt.commitmentId);
    last = Math.max(last, receipt.events.at(-1)?.index ?? 0);
  }
});
afterAll(() => s.close());

describe('GraphQL limits', () => {
  it('refuses 24 fragments that each spread the next twice at once, and /healthz stays fast', async () => {
    const query = fanOut(24);
    expect(query.length).toBeLessThan(1024);
    const since = performance.now();
    const [answer, health] = await Promise.all([
      took(since, graphql(query)),
      took(since, s.app.inject({ method: 'GET', url: '/healthz' })),
    ]);
    expect(answer.result.body.errors[0].extensions).toMatchObject({ code: 'QUERY_TOO_COSTLY' });
    expect(answer.result.body.data ?? null).toBeNull();
    expect(answer.ms).toBeLessThan(1000);
    expect(health.result.statusCode).toBe(200);
    expect(health.ms).toBeLessThan(1000);
  });

  it('still answers a fragment spread a few times over when it is cheap', async () => {
    const { body } = await graphql(fanOut(4));
    expect(body.errors).toBeUndefined();
    expect(body.data.me).toEqual({ id: ana.userId });
  });

  it('refuses fragments nested too deeply before validating them', async () => {
    const chain = Array.from({ length: 5000 }, (_, i) =>
      i === 4999 ? `fragment F${i} on Commitment { id }` : `fragment F${i} on Commitment { ...F${i + 1} }`,
    );
    const since = performance.now();
    const { body } = await graphql(`query($id: ID!) { commitment(id: $id) { ...F0 } } ${chain.join(' ')}`, {
      id: mine[0],
    });
    expect(body.errors[0].extensions).toMatchObject({ code: 'QUERY_TOO_DEEP' });
    expect(performance.now() - since).toBeLessThan(1000);
  });

  it('refuses a document of too many tokens before parsing it', async () => {
    const { body } = await graphql(`{ ${'me { id } '.repeat(20_000)} }`);
    expect(body.errors[0].extensions).toMatchObject({ code: 'QUERY_TOO_LARGE' });
  });

  it('fetches 4,900 commitment(id) aliases in one statement', async () => {
    const ids = Array.from({ length: 4900 }, (_, i) => mine[i] ?? randomUUID());
    const query = `{ ${ids.map((id, i) => `c${i}: commitment(id: "${id}") { id }`).join(' ')} }`;
    statements = [];
    const { body } = await graphql(query);
    expect(body.errors).toBeUndefined();
    expect(Object.keys(body.data)).toHaveLength(4900);
    expect([body.data.c0, body.data.c1, body.data.c2]).toEqual(mine.map((id) => ({ id })));
    expect(body.data.c3).toBeNull();
    expect(statements.filter((sql) => /"commitments"/.test(sql))).toHaveLength(1);
    expect(statements.length).toBeLessThanOrEqual(2);
  });

  it('refuses a malformed id among batched ones with a code, and answers the rest', async () => {
    const { body } = await graphql(
      `{ a: commitment(id: "${mine[0]}") { id } b: commitment(id: "nope") { id } }`,
    );
    expect(body.data).toEqual({ a: { id: mine[0] }, b: null });
    expect(body.errors).toHaveLength(1);
    expect(body.errors[0].extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'id' });
    expect(body.errors[0].path).toEqual(['b']);
  });

  it('refuses a subscription whose fragments fan out, with a code', async () => {
    const url = await s.app.listen({ port: 0, host: '127.0.0.1' });
    const client = createClient({
      url: `${url.replace('http', 'ws')}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${ana.token}` },
      retryAttempts: 0,
    });
    const query = `subscription { myCommitments { ...F0 } } ${fragments(24, 'Commitment', 'id')}`;
    const since = performance.now();
    const outcome = await new Promise<unknown>((resolve) => {
      client.subscribe({ query }, { next: resolve, error: resolve, complete: () => resolve('complete') });
    });
    await client.dispose();
    expect(JSON.stringify(outcome)).toMatch(/QUERY_TOO_COSTLY/);
    expect(performance.now() - since).toBeLessThan(1000);
  });
});
