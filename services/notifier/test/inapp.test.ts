// The in-app channel end to end: commands append to the ledger, the notifier projection turns the
// entries into notifications, and each person reads only their own through the query service.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { STACK_APP_URL, type Stack, testStack } from '../../../test/support/stack.ts';
import { type Account, signUp } from '../../command/test/support.ts';
import { readAs } from '../../query/src/reader.ts';

let s: Stack;
let ana: Account;
let ben: Account;
let cat: Account;
let commitmentId: string;
let lastWrite: number;

interface Page {
  items: {
    id: string;
    kind: string;
    title: string;
    body: string;
    link: string;
    commitmentId: string;
    ledgerIndex: number;
    createdAt: string;
    readAt: string | null;
  }[];
  nextCursor: string | null;
  unreadCount: number;
}

async function command(who: Account, url: string, payload: unknown = {}) {
  const response = await s.app.inject({ method: 'POST', url, payload: payload as object, headers: who.auth });
  if (response.statusCode >= 300) throw new Error(`${url}: ${response.statusCode} ${response.body}`);
  const receipt = response.json() as { commitmentId: string; events: { index: number }[] };
  lastWrite = Math.max(lastWrite, receipt.events.at(-1)?.index ?? -1);
  return receipt;
}

async function notifications(who: Account, query = ''): Promise<Page> {
  const response = await s.app.inject({
    method: 'GET',
    url: `/v1/notifications${query}`,
    headers: { ...who.auth, 'connect-min-index': String(lastWrite) },
  });
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as Page;
}

const markRead = (who: Account | undefined, payload: unknown) =>
  s.app.inject({
    method: 'POST',
    url: '/v1/notifications/read',
    payload: payload as object,
    headers: who?.auth ?? {},
  });

const titles = (page: Page) => page.items.map((n) => `${n.kind}: ${n.title}`);

beforeAll(async () => {
  s = await testStack({ minIndexWaitMs: 10_000 });
  lastWrite = -1;
  ana = await signUp(s.app, 'Ana');
  ben = await signUp(s.app, 'Ben');
  cat = await signUp(s.app, 'Cat');
  commitmentId = (await command(ana, '/v1/commitments', { type: 'personal', title: 'Paint the fence' }))
    .commitmentId;
  await command(ana, `/v1/commitments/${commitmentId}/invite`, { userId: ben.userId, role: 'participant' });
  await command(ana, `/v1/commitments/${commitmentId}/invite`, { userId: cat.userId, role: 'witness' });
  await command(ana, `/v1/commitments/${commitmentId}/propose`);
  await command(cat, `/v1/commitments/${commitmentId}/accept`);
  await command(ben, `/v1/commitments/${commitmentId}/accept`);
});
afterAll(() => s.close());

describe('each person gets the notifications that concern them, newest first', () => {
  test('the creator hears of the responses and the activation, and of nothing they did', async () => {
    const page = await notifications(ana);
    expect(titles(page)).toEqual([
      'lifecycle: “Paint the fence” is active',
      'response: Ben accepted “Paint the fence”',
      'response: Cat accepted “Paint the fence”',
    ]);
    expect(page.unreadCount).toBe(3);
    expect(page.nextCursor).toBeNull();
    expect(page.items[1]?.body).toBe('Every party has accepted: “Paint the fence” is now active.');
  });

  test('the participant was invited, then told of the proposal and the activation', async () => {
    const page = await notifications(ben);
    expect(titles(page)).toEqual([
      'lifecycle: Ana proposed “Paint the fence”',
      'invitation: Ana invited you to “Paint the fence”',
    ]);
    const [latest] = page.items;
    expect(latest).toMatchObject({
      commitmentId,
      link: `${STACK_APP_URL}/commitments/${commitmentId}`,
      readAt: null,
    });
    expect(latest?.id).toBe(`${latest?.ledgerIndex}:${ben.userId}:lifecycle`);
  });

  test('the witness is told of the activation their acceptance did not cause', async () => {
    expect(titles(await notifications(cat))).toEqual([
      'lifecycle: “Paint the fence” is active',
      'lifecycle: Ana proposed “Paint the fence”',
      'invitation: Ana invited you to “Paint the fence”',
    ]);
  });

  test('a page at a time, by cursor', async () => {
    const first = await notifications(cat, '?limit=2');
    expect(first.items).toHaveLength(2);
    expect(first.nextCursor).toEqual(expect.any(String));
    const second = await notifications(cat, `?limit=2&cursor=${first.nextCursor}`);
    expect(titles(second)).toEqual(['invitation: Ana invited you to “Paint the fence”']);
    expect(second.nextCursor).toBeNull();
    // The unread count is of all the caller's notifications, whichever page is read.
    expect([first.unreadCount, second.unreadCount]).toEqual([3, 3]);
  });
});

describe('marking read', () => {
  test('the ones named, then all; unread=true lists what is left', async () => {
    const before = await notifications(cat);
    const oldest = before.items.at(-1)?.id as string;
    expect((await markRead(cat, { ids: [oldest] })).statusCode).toBe(204);
    const after = await notifications(cat);
    expect(after.unreadCount).toBe(2);
    expect(after.items.find((n) => n.id === oldest)?.readAt).toEqual(expect.any(String));
    expect((await notifications(cat, '?unread=true')).items.map((n) => n.id)).not.toContain(oldest);
    // An empty page (the oldest, past the newest two, is read) still counts the unread ones.
    const newest = await notifications(cat, '?limit=2');
    const rest = await notifications(cat, `?unread=true&cursor=${newest.nextCursor}`);
    expect(rest).toEqual({ items: [], nextCursor: null, unreadCount: 2 });

    expect((await markRead(cat, { all: true })).statusCode).toBe(204);
    const none = await notifications(cat, '?unread=true');
    expect(none).toEqual({ items: [], nextCursor: null, unreadCount: 0 });
  });

  test('Connect-Min-Index: all read waits for the notifications up to that index, and marks them too', async () => {
    await command(ben, `/v1/commitments/${commitmentId}/claim-fulfilment`, { note: 'done' });
    const marked = await s.app.inject({
      method: 'POST',
      url: '/v1/notifications/read',
      payload: { all: true },
      headers: { ...ana.auth, 'connect-min-index': String(lastWrite) },
    });
    expect(marked.statusCode, marked.body).toBe(204);
    expect(Number(marked.headers['connect-index'])).toBeGreaterThanOrEqual(lastWrite);
    const page = await notifications(ana);
    expect(page.items.some((n) => n.ledgerIndex === lastWrite)).toBe(true);
    expect(page.unreadCount).toBe(0);

    const bad = await s.app.inject({
      method: 'POST',
      url: '/v1/notifications/read',
      payload: { all: true },
      headers: { ...ana.auth, 'connect-min-index': 'soon' },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().errors[0].path).toBe('header.connect-min-index');
  });

  test('naming another person’s notification marks nothing', async () => {
    const bens = (await notifications(ben)).items.map((n) => n.id);
    expect((await markRead(cat, { ids: bens })).statusCode).toBe(204);
    expect((await notifications(ben)).unreadCount).toBe(bens.length);
  });

  test('a body that is not ids or all is refused, naming the field', async () => {
    const neither = await markRead(ben, {});
    expect(neither.statusCode).toBe(400);
    expect(neither.json().errors).toEqual([{ path: 'body.ids', message: 'give either ids or all: true' }]);
    const bad = await markRead(ben, { ids: ['nope'] });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().errors).toEqual([{ path: 'body.ids.0', message: 'must be a notification id' }]);
    const cursor = await s.app.inject({
      method: 'GET',
      url: '/v1/notifications?cursor=bogus',
      headers: ben.auth,
    });
    expect(cursor.statusCode).toBe(400);
    expect(cursor.json().errors[0].path).toBe('query.cursor');
  });

  test('both need a signed-in caller', async () => {
    expect((await markRead(undefined, { all: true })).statusCode).toBe(401);
    expect((await s.app.inject({ method: 'GET', url: '/v1/notifications' })).statusCode).toBe(401);
  });
});

test('row-level security: a reader sees only their own notifications, even naming another user', async () => {
  const reader = s.query.reader;
  if (!reader) throw new Error('the stack reads through its own reader');
  const rows = await readAs(reader, { userId: ana.userId, isAdmin: true }, (db) =>
    db.selectFrom('notifications').select(['recipient_id']).execute(),
  );
  expect(rows.length).toBeGreaterThan(0);
  expect(new Set(rows.map((r) => r.recipient_id))).toEqual(new Set([ana.userId]));
  const bens = await readAs(reader, { userId: ana.userId, isAdmin: false }, (db) =>
    db.selectFrom('notifications').select('id').where('recipient_id', '=', ben.userId).execute(),
  );
  expect(bens).toEqual([]);
});
