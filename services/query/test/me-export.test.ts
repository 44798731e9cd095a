import { createHash } from 'node:crypto';
import { parseVerifierKey, verifyReceipt } from '@connect/crypto';
import { sealPhone } from '@connect/db';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Stack, testStack } from '../../../test/support/stack.ts';
import { type Account, signUp } from '../../command/test/support.ts';

const PASSWORD = 'correct horse battery';
const ANA_MARKER = 'ana-export-marker-7f3c';
const EVE_MARKER = 'eve-private-marker-91d2';
/** Commitments of Ana beyond the shared one: more than one page of the export. */
const MORE_COMMITMENTS = 104;
const UPDATES = 120;

let s: Stack;
let ana: Account;
let ben: Account;
let eve: Account;
let anaAgain: { token: string; refreshToken: string; auth: { authorization: string } };
let shared: string;
let calendarToken: string;
let lastIndex = 0;

async function command(who: { auth: { authorization: string } }, url: string, payload: unknown = {}) {
  const response = await s.app.inject({ method: 'POST', url, payload: payload as object, headers: who.auth });
  if (response.statusCode >= 300) throw new Error(`${url}: ${response.statusCode} ${response.body}`);
  const receipt = response.json() as { commitmentId: string; events: { index: number }[] };
  lastIndex = Math.max(lastIndex, ...receipt.events.map((e) => e.index));
  return receipt;
}

async function upload(who: Account, id: string, name: string, text: string) {
  const boundary = '----connectexport';
  const response = await s.app.inject({
    method: 'POST',
    url: `/v1/commitments/${id}/documents`,
    headers: { ...who.auth, 'content-type': `multipart/form-data; boundary=${boundary}` },
    payload: Buffer.from(
      `--${boundary}\r\ncontent-disposition: form-data; name="name"\r\n\r\n${name}\r\n` +
        `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="${name}"\r\ncontent-type: text/plain\r\n\r\n${text}\r\n--${boundary}--\r\n`,
    ),
  });
  if (response.statusCode >= 300) throw new Error(`upload: ${response.statusCode} ${response.body}`);
  for (const e of response.json().events as { index: number }[]) lastIndex = Math.max(lastIndex, e.index);
}

async function exportOf(who: { auth: { authorization: string } }) {
  return s.app.inject({
    method: 'GET',
    url: '/v1/me/export',
    headers: { ...who.auth, 'connect-min-index': String(lastIndex) },
  });
}

async function until(check: () => Promise<boolean>, what: string) {
  const deadline = Date.now() + 30_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

beforeAll(async () => {
  s = await testStack({ minIndexWaitMs: 30_000 });
  ana = await signUp(s.app, 'Ana');
  ben = await signUp(s.app, 'Ben');
  eve = await signUp(s.app, 'Eve');

  // A second session, from another client.
  const login = await s.app.inject({
    method: 'POST',
    url: '/v1/auth/token',
    headers: { 'user-agent': 'ExportTest/2.0 (second device)' },
    payload: { grant_type: 'password', email: ana.email, password: PASSWORD },
  });
  expect(login.statusCode).toBe(200);
  const tokens = login.json() as { access_token: string; refresh_token: string };
  anaAgain = {
    token: tokens.access_token,
    refreshToken: tokens.refresh_token,
    auth: { authorization: `Bearer ${tokens.access_token}` },
  };

  shared = (
    await command(ana, '/v1/commitments', {
      type: 'personal',
      title: `Paint the fence ${ANA_MARKER}`,
      terms: 'Two coats',
    })
  ).commitmentId;
  await command(ana, `/v1/commitments/${shared}/invite`, { userId: ben.userId, role: 'participant' });
  await upload(ana, shared, 'plan.txt', 'first draft of the plan');
  await upload(ana, shared, 'plan.txt', 'second draft of the plan');
  await command(ana, `/v1/commitments/${shared}/propose`);
  await command(ben, `/v1/commitments/${shared}/accept`);

  // A long history and more than one page of commitments.
  const busy = (await command(ana, '/v1/commitments', { type: 'personal', title: 'Keep a diary' }))
    .commitmentId;
  for (let i = 0; i < UPDATES; i++) {
    await command(ana, `/v1/commitments/${busy}/update`, { description: `day ${i}` });
  }
  for (let batch = 0; batch < MORE_COMMITMENTS - 1; batch += 17) {
    await Promise.all(
      Array.from({ length: Math.min(17, MORE_COMMITMENTS - 1 - batch) }, (_, i) =>
        command(ana, '/v1/commitments', { type: 'personal', title: `Errand ${batch + i}` }),
      ),
    );
  }

  // Someone else's commitment, with Ben but not Ana.
  const eves = (
    await command(eve, '/v1/commitments', {
      type: 'personal',
      title: `Secret ${EVE_MARKER}`,
      terms: EVE_MARKER,
    })
  ).commitmentId;
  await command(eve, `/v1/commitments/${eves}/invite`, { userId: ben.userId, role: 'participant' });

  // Account data kept outside the ledger.
  const preferences = await s.app.inject({
    method: 'PUT',
    url: '/v1/me/notification-preferences',
    headers: ana.auth,
    payload: { email: { lifecycle: true } },
  });
  expect(preferences.statusCode).toBe(200);
  const calendar = await s.app.inject({ method: 'GET', url: '/v1/me/calendar', headers: ana.auth });
  calendarToken = /\/v1\/calendar\/([^/]+)\.ics$/.exec(calendar.json().url)?.[1] as string;
  expect(calendarToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
  const db = s.database.db;
  await db
    .insertInto('phone_numbers')
    .values({
      user_id: ana.userId,
      phone: (await sealPhone(s.command.ledger.cipher.fields, ana.userId, '+31612345678')) as Buffer,
      confirmed_at: null,
      code_hash: createHash('sha256').update('code-123456').digest(),
      code_expires_at: new Date(Date.now() + 600_000),
    })
    .execute();
  await db
    .insertInto('oidc_identities')
    .values({
      user_id: ana.userId,
      provider: 'google',
      subject: 'google-sub-4242',
      email: 'ana.g@example.test',
    })
    .execute();
  await db
    .insertInto('push_subscriptions')
    .values({
      id: '00000000-0000-4000-8000-00000000e0e0',
      user_id: ana.userId,
      endpoint: 'https://push.example.test/send/endpoint-path-secret',
      p256dh: 'p256dh-key-marker',
      auth: 'auth-key-marker',
    })
    .execute();

  // Ana's notifications (Ben accepted; the commitment became active): one read, the rest not.
  await until(async () => {
    const list = await s.app.inject({ method: 'GET', url: '/v1/notifications', headers: ana.auth });
    return (list.json().items as unknown[]).length >= 1;
  }, 'Ana’s notifications');
  const list = await s.app.inject({ method: 'GET', url: '/v1/notifications', headers: ana.auth });
  const firstId = list.json().items[0].id as string;
  await s.app.inject({
    method: 'POST',
    url: '/v1/notifications/read',
    headers: ana.auth,
    payload: { ids: [firstId] },
  });
});
afterAll(() => s.close());

interface Exported {
  format: string;
  userId: string;
  account: Record<string, unknown>;
  identities: Record<string, unknown>[];
  phoneNumbers: Record<string, unknown>[];
  notificationPreferences: Record<string, unknown>[];
  pushSubscriptions: Record<string, unknown>[];
  calendarFeeds: Record<string, unknown>[];
  sessions: { id: string; userAgent: string | null; current: boolean; revokedAt: string | null }[];
  commitments: {
    commitment: { id: string; title: string; parties: { userId: string; displayName: string | null }[] };
    history: { index: number; type: string }[];
    documentVersions: {
      name: string;
      version: number;
      sha256: string;
      attachedBy: string;
      attachedByName: string;
    }[];
    receipt: { entries: unknown[]; state: { id: string; version: number } };
  }[];
  notifications: { readAt: string | null; commitmentId: string }[];
}

describe('GET /v1/me/export', () => {
  let raw: string;
  let exported: Exported;

  beforeAll(async () => {
    const response = await exportOf(ana);
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    const day = new Date().toISOString().slice(0, 10);
    expect(response.headers['content-disposition']).toBe(
      `attachment; filename="connect-export-${ana.userId}-${day}.json"`,
    );
    raw = response.body;
    exported = JSON.parse(raw) as Exported;
  });

  it('holds the account, its identities, phone, preferences, push subscriptions, calendar feed and sessions', () => {
    expect(exported).toMatchObject({ format: 'connect-export/1', userId: ana.userId });
    expect(exported.account).toMatchObject({
      id: ana.userId,
      email: ana.email,
      displayName: 'Ana',
      avatarUrl: null,
      emailVerified: false,
      roles: [],
    });
    expect(exported.identities).toEqual([
      expect.objectContaining({
        provider: 'google',
        subject: 'google-sub-4242',
        email: 'ana.g@example.test',
      }),
    ]);
    expect(exported.phoneNumbers).toEqual([
      expect.objectContaining({ phone: '+31612345678', confirmed: false }),
    ]);
    expect(exported.notificationPreferences).toEqual([
      expect.objectContaining({ channel: 'email', kind: 'lifecycle', enabled: true }),
    ]);
    expect(exported.pushSubscriptions).toEqual([
      expect.objectContaining({ endpointOrigin: 'https://push.example.test' }),
    ]);
    expect(exported.calendarFeeds).toHaveLength(1);
    expect(exported.sessions).toHaveLength(2);
    expect(exported.sessions.filter((session) => session.current)).toHaveLength(1);
    expect(exported.sessions.map((session) => session.userAgent)).toContain('ExportTest/2.0 (second device)');
  });

  it('holds every commitment with its history, document versions and a receipt that verifies offline', () => {
    expect(exported.commitments).toHaveLength(MORE_COMMITMENTS + 1);
    expect(new Set(exported.commitments.map((c) => c.commitment.id)).size).toBe(MORE_COMMITMENTS + 1);
    const events = exported.commitments.reduce((sum, c) => sum + c.history.length, 0);
    expect(events).toBeGreaterThan(UPDATES + MORE_COMMITMENTS);

    const fence = exported.commitments.find((c) => c.commitment.id === shared);
    expect(fence?.commitment.title).toContain(ANA_MARKER);
    expect(fence?.commitment.parties).toEqual(
      expect.arrayContaining([expect.objectContaining({ userId: ben.userId, displayName: 'Ben' })]),
    );
    expect(fence?.history.map((e) => e.type)).toEqual([
      'CommitmentDrafted',
      'PartyInvited',
      'DocumentAttached',
      'DocumentAttached',
      'CommitmentProposed',
      'InvitationAccepted',
      'CommitmentActivated',
    ]);
    expect(fence?.documentVersions.map((d) => [d.name, d.version])).toEqual([
      ['plan.txt', 1],
      ['plan.txt', 2],
    ]);
    expect(fence?.documentVersions[1]).toMatchObject({
      attachedBy: ana.userId,
      attachedByName: 'Ana',
      sha256: expect.any(String),
    });
    expect(raw).not.toContain('second draft of the plan');

    const key = parseVerifierKey(s.query.verifierKey);
    for (const { commitment, receipt, history } of exported.commitments) {
      const checked = verifyReceipt(receipt as never, key);
      expect(checked.valid, JSON.stringify(checked)).toBe(true);
      expect(receipt.state.id).toBe(commitment.id);
      expect(receipt.entries).toHaveLength(history.length);
    }
  });

  it('holds the notifications, read and unread', () => {
    expect(exported.notifications.length).toBeGreaterThanOrEqual(1);
    expect(exported.notifications.some((n) => n.readAt !== null)).toBe(true);
    expect(exported.notifications.every((n) => n.commitmentId === shared)).toBe(true);
  });

  it('holds no secret, no one else’s commitment and no one else’s email', async () => {
    for (const secret of [
      PASSWORD,
      ana.token,
      ana.refreshToken,
      anaAgain.token,
      anaAgain.refreshToken,
      calendarToken,
      'scrypt$',
      '$2a$',
      '$2b$',
      'p256dh-key-marker',
      'auth-key-marker',
      'endpoint-path-secret',
      EVE_MARKER,
      ben.email,
      eve.email,
    ]) {
      expect(raw, secret).not.toContain(secret);
    }
    const stored = await s.database.db
      .selectFrom('users')
      .select('password_hash')
      .where('id', '=', ana.userId)
      .executeTakeFirstOrThrow();
    expect(stored.password_hash).toBeTruthy();
    expect(raw).not.toContain(stored.password_hash as string);
    const hashes = await s.database.db
      .selectFrom('refresh_tokens')
      .innerJoin('sessions', 'sessions.id', 'refresh_tokens.session_id')
      .select('refresh_tokens.token_hash')
      .where('sessions.user_id', '=', ana.userId)
      .execute();
    expect(hashes.length).toBeGreaterThanOrEqual(2);
    for (const { token_hash } of hashes) {
      const bytes = Buffer.from(token_hash);
      for (const text of [bytes.toString('base64'), bytes.toString('base64url'), bytes.toString('hex')]) {
        expect(raw).not.toContain(text);
      }
    }
    const code = createHash('sha256').update('code-123456').digest();
    expect(raw).not.toContain(code.toString('hex'));
    expect(raw).not.toContain(code.toString('base64'));
  });

  it('gives another party only their own share', async () => {
    const response = await exportOf(ben);
    expect(response.statusCode).toBe(200);
    const theirs = response.json() as Exported;
    expect(theirs.commitments.map((c) => c.commitment.id)).toContain(shared);
    expect(theirs.commitments).toHaveLength(2);
    expect(theirs.sessions).toHaveLength(1);
    expect(response.body).not.toContain(ana.email);
    expect(response.body).not.toContain(eve.email);
    expect(response.body).not.toContain('+31612345678');
  });

  it('writes one export at a time per person: a second one meanwhile is 429, the next one goes through', async () => {
    const [one, two] = await Promise.all([exportOf(ana), exportOf(ana)]);
    const refused = [one, two].find((response) => response.statusCode === 429);
    expect([one.statusCode, two.statusCode].sort()).toEqual([200, 429]);
    expect(refused?.headers['content-type']).toContain('application/problem+json');
    expect(refused?.headers['retry-after']).toBe('5');
    expect(refused?.json()).toMatchObject({ type: '/problems/rate-limited' });
    expect((await exportOf(ana)).statusCode).toBe(200);
  });

  it('answers 401 problem+json without a token or with a bad one', async () => {
    for (const headers of [{}, { authorization: 'Bearer not-a-token' }]) {
      const response = await s.app.inject({ method: 'GET', url: '/v1/me/export', headers });
      expect(response.statusCode).toBe(401);
      expect(response.headers['content-type']).toContain('application/problem+json');
      expect(response.json()).toMatchObject({ status: 401, type: '/problems/unauthenticated' });
    }
  });
});
