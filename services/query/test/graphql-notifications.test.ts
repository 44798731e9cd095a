// In-app notifications over GraphQL: the same list and unread count as REST's /v1/notifications,
// marking them read, and `notificationAdded` pushed to its recipient only.
import { parse } from 'graphql';
import { type Client, createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { type Stack, testStack } from '../../../test/support/stack.ts';
import { type Account, signUp } from '../../command/test/support.ts';
import { CLOSE_FORBIDDEN } from '../src/graphql/connections.ts';
import { documentCost } from '../src/graphql/cost.ts';

let s: Stack;
let wsUrl: string;
let ana: Account;
let ben: Account;
let cat: Account;
let dan: Account;
let commitmentId: string;
let last = 0;
const clients: Client[] = [];

interface Notification {
  id: string;
  kind: string;
  title: string;
  body: string;
  link: string;
  commitmentId: string;
  ledgerIndex: number;
  createdAt: string;
  readAt: string | null;
}

const FIELDS = 'id kind title body link commitmentId ledgerIndex createdAt readAt';

async function command(who: Account, path: string, payload: object = {}) {
  const response = await s.app.inject({ method: 'POST', url: path, payload, headers: who.auth });
  if (response.statusCode >= 300) throw new Error(`${path}: ${response.statusCode} ${response.body}`);
  const receipt = response.json() as { commitmentId: string; events: { index: number }[] };
  last = Math.max(last, receipt.events.at(-1)?.index ?? 0);
  return receipt;
}

async function graphql(who: Account, query: string, variables: Record<string, unknown> = {}) {
  const response = await s.app.inject({
    method: 'POST',
    url: '/graphql',
    headers: { ...who.auth, 'connect-min-index': String(last) },
    payload: { query, variables },
  });
  // biome-ignore lint/suspicious/noExplicitAny: a GraphQL response, checked by the tests
  return { status: response.statusCode, body: response.json() as { data?: any; errors?: any[] } };
}

/** Every notification of `who` through REST, page by page, and the unread count. */
async function restNotifications(who: Account, unread = false) {
  const items: Notification[] = [];
  let cursor: string | null = null;
  let unreadCount = -1;
  do {
    const query = new URLSearchParams({ limit: '2', ...(unread ? { unread: 'true' } : {}) });
    if (cursor) query.set('cursor', cursor);
    const response = await s.app.inject({
      method: 'GET',
      url: `/v1/notifications?${query}`,
      headers: { ...who.auth, 'connect-min-index': String(last) },
    });
    expect(response.statusCode, response.body).toBe(200);
    const page = response.json() as { items: Notification[]; nextCursor: string | null; unreadCount: number };
    items.push(...page.items);
    cursor = page.nextCursor;
    unreadCount = page.unreadCount;
  } while (cursor);
  return { items, unreadCount };
}

const LIST = `query List($first: Int, $after: String, $unread: Boolean) {
  notifications(first: $first, after: $after, unread: $unread) {
    edges { cursor node { ${FIELDS} } }
    pageInfo { hasNextPage endCursor }
  }
  unreadNotificationCount
}`;

/** Every notification of `who` through GraphQL, page by page, and the unread count. */
async function graphqlNotifications(who: Account, unread?: boolean) {
  const items: Notification[] = [];
  let after: string | null = null;
  let unreadCount = -1;
  for (;;) {
    const { status, body } = await graphql(who, LIST, { first: 2, after, unread });
    expect(status, JSON.stringify(body)).toBe(200);
    expect(body.errors).toBeUndefined();
    const connection = body.data.notifications;
    items.push(...connection.edges.map((edge: { node: Notification }) => edge.node));
    unreadCount = body.data.unreadNotificationCount;
    if (!connection.pageInfo.hasNextPage) break;
    after = connection.pageInfo.endCursor;
  }
  return { items, unreadCount };
}

async function until(check: () => boolean, ms = 20_000) {
  await vi.waitFor(() => expect(check()).toBe(true), { timeout: ms, interval: 20 });
}

function subscribe(who: Account) {
  const client = createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${who.token}` },
    retryAttempts: 0,
  });
  clients.push(client);
  const received: Notification[] = [];
  const errors: unknown[] = [];
  client.subscribe(
    { query: `subscription { notificationAdded { ${FIELDS} } }` },
    {
      next: (message) => {
        if (message.errors) errors.push(message.errors);
        if (message.data)
          received.push((message.data as { notificationAdded: Notification }).notificationAdded);
      },
      error: (error) => errors.push(error),
      complete: () => undefined,
    },
  );
  return { received, errors };
}

beforeAll(async () => {
  s = await testStack({ minIndexWaitMs: 10_000 });
  wsUrl = `${(await s.app.listen({ port: 0, host: '127.0.0.1' })).replace('http', 'ws')}/graphql`;
  ana = await signUp(s.app, 'Ana');
  ben = await signUp(s.app, 'Ben');
  cat = await signUp(s.app, 'Cat');
  dan = await signUp(s.app, 'Dan');
  commitmentId = (await command(ana, '/v1/commitments', { type: 'personal', title: 'Paint the fence' }))
    .commitmentId;
  await command(ana, `/v1/commitments/${commitmentId}/invite`, { userId: ben.userId, role: 'participant' });
  await command(ana, `/v1/commitments/${commitmentId}/invite`, { userId: cat.userId, role: 'witness' });
  await command(ana, `/v1/commitments/${commitmentId}/propose`);
  await command(cat, `/v1/commitments/${commitmentId}/accept`);
  await command(ben, `/v1/commitments/${commitmentId}/accept`);
});
afterAll(async () => {
  for (const client of clients) await client.dispose();
  await s.close();
});

describe('notifications and unreadNotificationCount', () => {
  it('match REST for each person, page by page, all and unread only', async () => {
    for (const who of [ana, ben, cat]) {
      const rest = await restNotifications(who);
      expect(rest.items.length).toBeGreaterThan(1);
      expect(await graphqlNotifications(who)).toEqual(rest);
      expect(await graphqlNotifications(who, true)).toEqual(await restNotifications(who, true));
      for (const item of rest.items) expect(item.id).toContain(`:${who.userId}:`);
    }
    const bens = await graphqlNotifications(ben);
    expect(bens.items.map((n) => n.kind)).toContain('invitation');
    expect(bens.unreadCount).toBe(bens.items.length);
  });

  it('show someone else nothing', async () => {
    expect(await graphqlNotifications(dan)).toEqual({ items: [], unreadCount: 0 });
    const bens = await graphqlNotifications(ben);
    const cats = await graphqlNotifications(cat);
    const ids = new Set(cats.items.map((n) => n.id));
    expect(bens.items.filter((n) => ids.has(n.id))).toEqual([]);
  });

  it('refuse a page size out of range and a cursor the API did not give out', async () => {
    const tooMany = await graphql(ben, LIST, { first: 101 });
    expect(tooMany.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'first' });
    const badCursor = await graphql(ben, LIST, { first: 2, after: 'nope' });
    expect(badCursor.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'after' });
  });

  // Each decodes to the cursor's shape, with what PostgreSQL would refuse in it.
  it.each([
    ['a NUL in the id', ['2024-01-01T00:00:00.000Z', 1, '1:\u0000:invitation']],
    ['a time at an offset', ['2024-01-01T00:00:00+20:00', 1, '1:x:invitation']],
    ['a time without milliseconds', ['2024-01-01T00:00:00Z', 1, '1:x:invitation']],
  ])('refuse a cursor with %s', async (_case, key) => {
    const after = Buffer.from(JSON.stringify(key)).toString('base64url');
    const { body } = await graphql(ben, LIST, { first: 2, after });
    expect(body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'after' });
  });

  it('page from a cursor in year 0000 (1 BC to PostgreSQL): nothing is older', async () => {
    const after = Buffer.from(JSON.stringify(['0000-01-01T00:00:00.000Z', 1, '1:x:invitation'])).toString(
      'base64url',
    );
    const { body } = await graphql(ben, LIST, { first: 2, after });
    expect(body.errors).toBeUndefined();
    expect(body.data.notifications.edges).toEqual([]);
  });

  it('cost like commitments: the page size multiplies what is below', () => {
    const cost = (field: string) => documentCost(parse(`{ ${field}(first: 50) { edges { node { id } } } }`));
    expect(cost('notifications')).toBe(cost('commitments'));
    expect(cost('notifications')).toBe(1 + 50 * 3);
  });
});

describe('Connect-Min-Index', () => {
  it('holds a document that reads notifications until the notifier is there, and one of commitments only until the read models are', async () => {
    // The notifier's table held against writes: its next batch waits to insert, while reads of it and
    // the other projections go on (its checkpoint row is left alone: the projections that only move
    // their checkpoints lock every such row together, the notifier's among them).
    const holder = await s.database.pool.connect();
    let released = 0;
    try {
      await holder.query('begin');
      await holder.query('lock table notifications in exclusive mode');
      const held = await command(ana, '/v1/commitments', { type: 'personal', title: 'Held back' });
      await command(ana, `/v1/commitments/${held.commitmentId}/invite`, {
        userId: dan.userId,
        role: 'participant',
      });
      const notificationsRead = graphql(dan, '{ unreadNotificationCount }').then((answer) => ({
        ...answer,
        at: Date.now(),
      }));
      const commitmentRead = await graphql(dan, `{ commitment(id: "${held.commitmentId}") { title } }`);
      expect(commitmentRead.body).toEqual({ data: { commitment: { title: 'Held back' } } });
      await new Promise((resolve) => setTimeout(resolve, 300));
      released = Date.now();
      await holder.query('commit');
      const notifications = await notificationsRead;
      expect(notifications.at).toBeGreaterThanOrEqual(released);
      expect(notifications.body.data?.unreadNotificationCount).toBeGreaterThanOrEqual(1);
    } finally {
      if (!released) await holder.query('rollback').catch(() => undefined);
      holder.release();
    }
  });
});

describe('markNotificationsRead', () => {
  const MARK = 'mutation Mark($ids: [ID!], $all: Boolean) { markNotificationsRead(ids: $ids, all: $all) }';

  it('marks the caller’s own, by id or all, and no one else’s', async () => {
    const before = await restNotifications(cat);
    const [first] = before.items;
    if (!first) throw new Error('Cat has notifications');

    // Someone else's id matches nothing.
    const other = await graphql(ben, MARK, { ids: [first.id] });
    expect(other.body).toEqual({ data: { markNotificationsRead: 0 } });
    expect((await restNotifications(cat)).unreadCount).toBe(before.unreadCount);

    const one = await graphql(cat, MARK, { ids: [first.id] });
    expect(one.body).toEqual({ data: { markNotificationsRead: 1 } });
    const after = await graphqlNotifications(cat);
    expect(after.unreadCount).toBe(before.unreadCount - 1);
    expect(after.items.find((n) => n.id === first.id)?.readAt).not.toBeNull();
    expect(after).toEqual(await restNotifications(cat));

    const all = await graphql(cat, MARK, { all: true });
    expect(all.body).toEqual({ data: { markNotificationsRead: before.unreadCount - 1 } });
    expect((await graphqlNotifications(cat)).unreadCount).toBe(0);
  });

  it('needs either ids or all: true', async () => {
    for (const variables of [
      {},
      { ids: ['1:x:invitation'], all: true },
      { ids: ['not an id'] },
      { ids: ['1:\u0000:invitation'] },
      { ids: [] },
    ]) {
      const { body } = await graphql(ben, MARK, variables);
      expect(body.errors?.[0]?.extensions, JSON.stringify(variables)).toMatchObject({
        code: 'BAD_USER_INPUT',
      });
    }
  });
});

describe('notificationAdded', () => {
  it('pushes a notification to its recipient, and nothing to a bystander', async () => {
    const bens = subscribe(ben);
    const dans = subscribe(dan);
    // Live once a notification gets through to each (an invitation of their own).
    const probe = async (who: Account, into: { received: Notification[] }) => {
      while (into.received.length === 0) {
        const { commitmentId: id } = await command(ana, '/v1/commitments', {
          type: 'personal',
          title: 'Probe',
        });
        await command(ana, `/v1/commitments/${id}/invite`, { userId: who.userId, role: 'participant' });
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
    };
    await probe(ben, bens);
    await probe(dan, dans);
    await until(() => bens.received.length > 0 && dans.received.length > 0);
    const bensBefore = bens.received.length;

    // Ben is invited: he hears of it, once; Dan, no party to it, hears nothing.
    const { commitmentId: garden } = await command(ana, '/v1/commitments', {
      type: 'personal',
      title: 'Weed the garden',
    });
    await command(ana, `/v1/commitments/${garden}/invite`, { userId: ben.userId, role: 'participant' });
    await until(() => bens.received.some((n) => n.commitmentId === garden));

    // Then Dan is told of something later in the ledger: by then anything about the garden would have reached him.
    const { commitmentId: later } = await command(ana, '/v1/commitments', {
      type: 'personal',
      title: 'Later',
    });
    await command(ana, `/v1/commitments/${later}/invite`, { userId: dan.userId, role: 'witness' });
    await until(() => dans.received.some((n) => n.commitmentId === later));
    expect(dans.received.filter((n) => n.commitmentId === garden)).toEqual([]);
    expect(dans.received.every((n) => n.id.includes(`:${dan.userId}:`))).toBe(true);

    // What Ben was sent is what REST lists for him, each once.
    const gardenNotes = (await restNotifications(ben)).items.filter((n) => n.commitmentId === garden);
    expect(gardenNotes.map((n) => n.kind)).toEqual(['invitation']);
    expect(bens.received.filter((n) => n.commitmentId === garden)).toEqual(gardenNotes);
    const sentIds = bens.received.map((n) => n.id);
    expect(new Set(sentIds).size).toBe(sentIds.length);
    expect(bens.received.length).toBeGreaterThan(bensBefore);
    expect(bens.errors).toEqual([]);
    expect(dans.errors).toEqual([]);
  });

  it('ends with its session: logging out closes the socket with 4403', async () => {
    const eve = await signUp(s.app, 'Eve');
    const eves = subscribe(eve);
    while (eves.received.length === 0) {
      const { commitmentId: id } = await command(ana, '/v1/commitments', { type: 'personal', title: 'Eve' });
      await command(ana, `/v1/commitments/${id}/invite`, { userId: eve.userId, role: 'participant' });
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    const logout = await s.app.inject({ method: 'POST', url: '/v1/auth/logout', headers: eve.auth });
    expect(logout.statusCode).toBe(204);
    await until(() => eves.errors.length > 0, 10_000);
    expect(eves.errors[0]).toMatchObject({ code: CLOSE_FORBIDDEN });
  });
});
