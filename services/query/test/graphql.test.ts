import { once } from 'node:events';
import { type Client, createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { type Stack, testStack } from '../../../test/support/stack.ts';
import { type Account, signUp } from '../../command/test/support.ts';

let s: Stack;
let url: string;
let ana: Account;
let ben: Account;
let cat: Account;
let statements: string[] = [];
let shared: string;
let last = 0;

async function command(who: Account, path: string, payload: unknown = {}) {
  const response = await s.app.inject({
    method: 'POST',
    url: path,
    payload: payload as object,
    headers: who.auth,
  });
  if (response.statusCode >= 300) throw new Error(`${path}: ${response.statusCode} ${response.body}`);
  const receipt = response.json() as { commitmentId: string; events: { index: number }[] };
  last = Math.max(last, receipt.events.at(-1)?.index ?? 0);
  return receipt;
}

async function graphql(who: Account | null, query: string, variables: Record<string, unknown> = {}) {
  const response = await s.app.inject({
    method: 'POST',
    url: '/graphql',
    headers: { ...(who?.auth ?? {}), 'connect-min-index': String(last) },
    payload: { query, variables },
  });
  return { status: response.statusCode, body: response.json() };
}

beforeAll(async () => {
  s = await testStack({ onQuerySql: (sql) => statements.push(sql) });
  url = await s.app.listen({ port: 0, host: '127.0.0.1' });
  ana = await signUp(s.app, 'Ana');
  ben = await signUp(s.app, 'Ben');
  cat = await signUp(s.app, 'Cat');
  shared = (await command(ana, '/v1/commitments', { type: 'personal', title: 'Shared' })).commitmentId;
  await command(ana, `/v1/commitments/${shared}/invite`, { userId: ben.userId, role: 'participant' });
  for (let i = 0; i < 6; i++) await command(ana, '/v1/commitments', { type: 'personal', title: `Ana ${i}` });
  await command(cat, '/v1/commitments', { type: 'personal', title: 'Cat alone' });
});
afterAll(() => s.close());

const LIST = `query List($first: Int, $after: String) {
  commitments(first: $first, after: $after) {
    edges { cursor node { id title status parties { userId displayName role } documents { name } history { index type summary actor { displayName } } } }
    pageInfo { hasNextPage endCursor }
  }
}`;

describe('GraphQL queries', () => {
  it('serves the caller’s commitments as a Relay connection with nested data', async () => {
    const { status, body } = await graphql(ben, LIST, { first: 10 });
    expect(status).toBe(200);
    expect(body.errors).toBeUndefined();
    const edges = body.data.commitments.edges;
    expect(edges.map((e: { node: { title: string } }) => e.node.title)).toEqual(['Shared']);
    expect(edges[0].node.parties.map((p: { displayName: string }) => p.displayName)).toEqual(['Ana', 'Ben']);
    expect(edges[0].node.history.map((h: { summary: string }) => h.summary)).toEqual([
      'Ana drafted "Shared" (personal)',
      'Ana invited Ben as participant',
    ]);
    expect(body.data.commitments.pageInfo).toEqual({ hasNextPage: false, endCursor: edges[0].cursor });
    const response = await s.app.inject({
      method: 'POST',
      url: '/graphql',
      headers: { ...ben.auth, 'connect-min-index': String(last) },
      payload: { query: '{ me { id } }' },
    });
    expect(Number(response.headers['connect-index'])).toBeGreaterThanOrEqual(last);
  });

  it('pages with first/after', async () => {
    const titles: string[] = [];
    let after: string | null = null;
    do {
      const { body } = await graphql(ana, LIST, { first: 3, after });
      titles.push(...body.data.commitments.edges.map((e: { node: { title: string } }) => e.node.title));
      after = body.data.commitments.pageInfo.hasNextPage ? body.data.commitments.pageInfo.endCursor : null;
    } while (after);
    expect(titles).toEqual(['Ana 5', 'Ana 4', 'Ana 3', 'Ana 2', 'Ana 1', 'Ana 0', 'Shared']);
  });

  it('runs the same number of SQL statements for 1 commitment as for 7 (no N+1)', async () => {
    statements = [];
    await graphql(ana, LIST, { first: 1 });
    const forOne = statements;
    statements = [];
    const { body } = await graphql(ana, LIST, { first: 7 });
    expect(body.data.commitments.edges).toHaveLength(7);
    expect(statements.length).toBe(forOne.length);
    // The same texts too (one name Ana's, then Ana's and Ben's): each connection plans each once.
    expect(statements).toEqual(forOne);
    expect(statements.filter((sql) => /commitment_history/.test(sql))).toHaveLength(1);
  });

  it('answers me, commitment and commitmentTypes; a commitment not yours is null', async () => {
    const { body } = await graphql(
      cat,
      `query($id: ID!) { me { id displayName } commitment(id: $id) { id } commitmentTypes { key } }`,
      { id: shared },
    );
    expect(body.data).toEqual({
      me: { id: cat.userId, displayName: 'Cat' },
      commitment: null,
      commitmentTypes: [{ key: 'business' }, { key: 'financial' }, { key: 'personal' }],
    });
  });

  it('needs a token: 401 problem before any GraphQL runs', async () => {
    const { status, body } = await graphql(null, '{ me { id } }');
    expect(status).toBe(401);
    expect(body.status).toBe(401);
  });

  it('gives every error a code', async () => {
    const bad = await graphql(ana, '{ commitment(id: "nope") { id } }');
    expect(bad.body.errors[0].extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'id' });
    const invalid = await graphql(ana, '{ commitments { nothing } }');
    expect(invalid.body.errors[0].extensions.code).toBe('GRAPHQL_VALIDATION_FAILED');
    const page = await graphql(ana, '{ commitments(first: 1000) { edges { cursor } } }');
    expect(page.body.errors[0].extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'first' });
  });

  it('refuses text PostgreSQL cannot store, in a variable or a literal, naming where', async () => {
    const FILTERED = 'query($f: CommitmentFilter) { commitments(filter: $f) { edges { cursor } } }';
    const cases = [
      [FILTERED, { f: { type: 'a\u0000' } }, '$f.type'],
      [FILTERED, { f: { type: '\ud800' } }, '$f.type'],
      ['{ commitments(filter: { type: "a\\u0000" }) { edges { cursor } } }', {}, 'filter.type'],
      [
        'query($f: CommitmentFilter = { type: "\\u0000" }) { commitments(filter: $f) { edges { cursor } } }',
        {},
        '$f.type',
      ],
    ] as const;
    for (const [query, variables, field] of cases) {
      const { status, body } = await graphql(ana, query, variables);
      expect(status, query).toBe(200);
      expect(body.data ?? null, query).toBeNull();
      expect(body.errors[0].extensions, query).toMatchObject({ code: 'BAD_USER_INPUT', field });
      expect(body.errors[0].message, query).toMatch(/NUL|surrogate/);
    }
  });

  it('refuses queries too deep or too costly', async () => {
    const deep = await graphql(
      ana,
      '{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } }',
    );
    expect(JSON.stringify(deep.body.errors)).toMatch(/depth/i);
    const fields =
      'edges { node { id title parties { userId } documents { name } history { index summary } } }';
    const costly = await graphql(
      ana,
      `{ ${'abcdefghij'
        .split('')
        .map((alias) => `${alias}: commitments(first: 100) { ${fields} }`)
        .join(' ')} }`,
    );
    expect(costly.body.errors[0].extensions.code).toBe('QUERY_TOO_COSTLY');
    expect(costly.body.data ?? null).toBeNull();
  });

  it('serves GraphiQL', async () => {
    const page = await s.app.inject({ method: 'GET', url: '/graphiql' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/text\/html/);
  });
});

describe('GraphQL subscriptions over graphql-ws', () => {
  const wsUrl = () => `${url.replace('http', 'ws')}/graphql`;
  const clients: Client[] = [];
  const client = (who: Account | null) => {
    const c = createClient({
      url: wsUrl(),
      webSocketImpl: WebSocket,
      connectionParams: who ? { authorization: `Bearer ${who.token}` } : {},
      retryAttempts: 0,
      lazy: false,
    });
    clients.push(c);
    return c;
  };
  afterAll(async () => {
    for (const c of clients) await c.dispose();
  });

  /** Collects what a subscription delivers. */
  function collect(c: Client, query: string, variables: Record<string, unknown> = {}) {
    const received: Record<string, { id: string; status: string; version: number }>[] = [];
    const errors: unknown[] = [];
    const stop = c.subscribe(
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
    return { received, errors, stop };
  }

  async function until(check: () => boolean, ms = 10_000) {
    await vi.waitFor(() => expect(check()).toBe(true), { timeout: ms, interval: 20 });
  }

  it('pushes changes of a commitment to its parties only', async () => {
    const created = await command(ana, '/v1/commitments', { type: 'personal', title: 'Live' });
    const id = created.commitmentId;
    await command(ana, `/v1/commitments/${id}/invite`, { userId: ben.userId, role: 'participant' });
    // Subscribing checks the read models, which must have the commitment by then (Connect-Min-Index).
    expect((await graphql(ana, '{ me { id } }')).status).toBe(200);
    const anaSub = collect(
      client(ana),
      'subscription($id: ID!) { commitmentChanged(id: $id) { id status version } }',
      {
        id,
      },
    );
    const benMine = collect(client(ben), 'subscription { myCommitments { id status version } }');
    const catMine = collect(client(cat), 'subscription { myCommitments { id status version } }');
    const catPeek = collect(client(cat), 'subscription($id: ID!) { commitmentChanged(id: $id) { id } }', {
      id,
    });
    await until(() => catPeek.errors.length > 0);
    expect(JSON.stringify(catPeek.errors)).toMatch(/not a party/);
    // Change it until both parties' subscriptions are live, then go through the lifecycle.
    let version = 2;
    while (!anaSub.received.length || !benMine.received.length) {
      version =
        (await command(ana, `/v1/commitments/${id}/update`, { description: `v${version + 1}` })).events
          .length + version;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await command(ana, `/v1/commitments/${id}/propose`);
    await command(ben, `/v1/commitments/${id}/accept`);
    await until(() => anaSub.received.some((m) => m.commitmentChanged?.status === 'active'));
    await until(() => benMine.received.some((m) => m.myCommitments?.status === 'active'));
    expect(anaSub.received.every((m) => m.commitmentChanged?.id === id)).toBe(true);
    expect(anaSub.errors).toEqual([]);
    expect(catMine.received).toEqual([]);
    expect(catPeek.received).toEqual([]);
  });

  it('refuses a connection without a valid token in connection_init', async () => {
    const anonymous = collect(client(null), 'subscription { myCommitments { id } }');
    await until(() => anonymous.errors.length > 0, 5000);
    expect(anonymous.received).toEqual([]);
  });

  it('a subscriber that stops reading does not delay the others', async () => {
    // A raw graphql-ws client that subscribes, then never reads its socket again.
    const stuck = new WebSocket(wsUrl(), 'graphql-transport-ws');
    await once(stuck, 'open');
    stuck.send(
      JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${ana.token}` } }),
    );
    await once(stuck, 'message');
    stuck.send(
      JSON.stringify({
        id: '1',
        type: 'subscribe',
        payload: {
          query: 'subscription { myCommitments { id title description terms parties { userId } } }',
        },
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    (stuck as unknown as { _socket: { pause(): void } })._socket.pause();

    const healthy = collect(client(ana), 'subscription { myCommitments { id version } }');
    const id = (
      await command(ana, '/v1/commitments', { type: 'personal', title: 'Busy', terms: 'x'.repeat(50_000) })
    ).commitmentId;
    let version = 1;
    while (!healthy.received.length) {
      version =
        (await command(ana, `/v1/commitments/${id}/update`, { description: 'warm-up' })).events.length +
        version;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const started = Date.now();
    for (let i = 0; i < 40; i++)
      await command(ana, `/v1/commitments/${id}/update`, { description: `round ${i}` });
    await until(() => healthy.received.some((m) => m.myCommitments?.version === version + 40));
    expect(Date.now() - started).toBeLessThan(10_000);
    stuck.terminate();
  });
});
