// Notification text at rest (migration 028): sealed under the recipient's key and bound to its row,
// read back whole through REST, GraphQL and the export; a value moved to another row fails to open
// rather than showing another notification's words; an erased recipient gets no new rows.
import { randomBytes } from 'node:crypto';
import { SealBroken } from '@connect/crypto/envelope';
import { openNotificationTexts } from '@connect/db';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type Stack, testStack } from '../../../test/support/stack.ts';
import { type Account, signUp } from '../../command/test/support.ts';

let s: Stack;
let ana: Account;
let ben: Account;
let cat: Account;
let commitmentId: string;
let last = 0;
const marker = `mk${randomBytes(6).toString('hex')}`;
const title = `Lend the ${marker} ladder`;

interface Row {
  id: string;
  recipient_id: string;
  sealed: Buffer;
}

async function command(who: Account, url: string, payload: object = {}) {
  const response = await s.app.inject({ method: 'POST', url, payload, headers: who.auth });
  if (response.statusCode >= 300) throw new Error(`${url}: ${response.statusCode} ${response.body}`);
  const receipt = response.json() as { commitmentId: string; events: { index: number }[] };
  last = Math.max(last, receipt.events.at(-1)?.index ?? 0);
  return receipt;
}

const listed = (who: Account) =>
  s.app.inject({
    method: 'GET',
    url: '/v1/notifications?limit=100',
    headers: { ...who.auth, 'connect-min-index': String(last) },
  });

async function titles(who: Account): Promise<string[]> {
  const response = await listed(who);
  expect(response.statusCode, response.body).toBe(200);
  return (response.json().items as { title: string }[]).map((n) => n.title);
}

const rowsOf = async (who: Account) =>
  (
    await s.database.pool.query<Row>(
      'select id, recipient_id, sealed from notifications where recipient_id = $1 order by id',
      [who.userId],
    )
  ).rows;

beforeAll(async () => {
  s = await testStack();
  ana = await signUp(s.app, 'Ana');
  ben = await signUp(s.app, 'Ben');
  cat = await signUp(s.app, 'Cat');
  commitmentId = (await command(ana, '/v1/commitments', { type: 'personal', title })).commitmentId;
  await command(ana, `/v1/commitments/${commitmentId}/invite`, { userId: ben.userId, role: 'participant' });
  await command(ana, `/v1/commitments/${commitmentId}/invite`, { userId: cat.userId, role: 'participant' });
  await command(ana, `/v1/commitments/${commitmentId}/propose`);
}, 60_000);
afterAll(() => s.close());

describe('a notification at rest', () => {
  it('holds its title and body sealed: the row’s bytes do not contain them', async () => {
    expect(await titles(ben)).toContain(`Ana invited you to “${title}”`);
    const rows = await rowsOf(ben);
    expect(rows.length).toBeGreaterThanOrEqual(2);
    for (const row of rows) {
      expect(row.sealed[0], 'a sealed value, not clear JSON').toBe(1);
      expect(row.sealed.includes(marker)).toBe(false);
      expect(row.sealed.includes('invited you')).toBe(false);
    }
    const { rows: text } = await s.database.pool.query<{ text: string }>(
      `select string_agg(t::text, '') as text from notifications t`,
    );
    expect(text[0]?.text).not.toContain(marker);
    // Each under its recipient's key: it opens for its row.
    const opened = await openNotificationTexts(
      s.query.cipher.fields,
      rows.map((row) => ({ ...row, recipientId: row.recipient_id })),
    );
    expect(opened.map((t) => t?.title)).toContain(`Ana invited you to “${title}”`);
  });

  it('is read whole through REST, GraphQL and the export', async () => {
    const rest = (await listed(ben)).json().items as { title: string; body: string }[];
    expect(rest.map((n) => n.title)).toEqual(
      expect.arrayContaining([`Ana invited you to “${title}”`, `Ana proposed “${title}”`]),
    );
    expect(rest.every((n) => n.body.length > 0)).toBe(true);

    const graphql = await s.app.inject({
      method: 'POST',
      url: '/graphql',
      headers: { ...ben.auth, 'connect-min-index': String(last) },
      payload: { query: '{ notifications(first: 50) { edges { node { id title body } } } }' },
    });
    expect(graphql.statusCode, graphql.body).toBe(200);
    const nodes = (
      graphql.json().data.notifications.edges as { node: { title: string; body: string } }[]
    ).map((edge) => edge.node);
    expect(nodes).toEqual(rest.map(({ title, body }) => expect.objectContaining({ title, body })));

    const exported = await s.app.inject({
      method: 'GET',
      url: '/v1/me/export',
      headers: { ...ben.auth, 'connect-min-index': String(last) },
    });
    expect(exported.statusCode, exported.body).toBe(200);
    const notifications = exported.json().notifications as { title: string; body: string }[];
    expect(notifications.map(({ title, body }) => ({ title, body }))).toEqual(
      rest.map(({ title, body }) => ({ title, body })),
    );
  });
});

describe('a sealed value moved to another row', () => {
  it('fails to open, on the same recipient’s row or on another’s, and never reads as that row', async () => {
    const [first, second] = await rowsOf(ben);
    const [cats] = await rowsOf(cat);
    if (!first || !second || !cats) throw new Error('ben has two notifications, cat one');
    const put = (row: Row, sealed: Buffer) =>
      s.database.pool.query('update notifications set sealed = $2 where id = $1', [row.id, sealed]);
    try {
      await put(second, first.sealed);
      await expect(
        openNotificationTexts(s.query.cipher.fields, [
          { id: second.id, recipientId: second.recipient_id, sealed: first.sealed },
        ]),
      ).rejects.toThrow(SealBroken);
      const response = await listed(ben);
      expect(response.statusCode).toBe(500);
      expect(response.body).not.toContain(marker);
    } finally {
      await put(second, second.sealed);
    }
    try {
      await put(cats, first.sealed);
      await expect(
        openNotificationTexts(s.query.cipher.fields, [
          { id: cats.id, recipientId: cats.recipient_id, sealed: first.sealed },
        ]),
      ).rejects.toThrow(SealBroken);
      expect((await listed(cat)).statusCode).toBe(500);
    } finally {
      await put(cats, cats.sealed);
    }
    expect((await listed(ben)).statusCode).toBe(200);
    expect((await listed(cat)).statusCode).toBe(200);
  });
});

describe('an erased recipient', () => {
  it('gets no new notification', async () => {
    const erased = await s.app.inject({
      method: 'DELETE',
      url: '/v1/me',
      headers: cat.auth,
      payload: { password: 'correct horse battery' },
    });
    expect(erased.statusCode, erased.body).toBe(204);
    expect(await rowsOf(cat)).toEqual([]);
    await command(ana, `/v1/commitments/${commitmentId}/withdraw`);
    await vi.waitFor(async () => expect(await titles(ben)).toContain(`Ana withdrew “${title}”`), {
      timeout: 10_000,
      interval: 100,
    });
    expect(await rowsOf(cat)).toEqual([]);
  });
});
