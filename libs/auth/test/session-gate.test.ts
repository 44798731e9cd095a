import { randomUUID } from 'node:crypto';
import { type Database, namedStatementsPool } from '@connect/db';
import { Kysely, PostgresDialect } from 'kysely';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.ts';
import { announceSessionEnded, REMEMBER_MS, type SessionGate, sessionGate } from '../src/index.ts';

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  await database?.close();
});

const start = new Date('2031-06-01T12:00:00.000Z');

/** A user with an open session that lapses in a day, unless told otherwise. */
async function openSession(lapsesAt = new Date(start.getTime() + 86_400_000)): Promise<{
  userId: string;
  sessionId: string;
}> {
  const userId = randomUUID();
  const sessionId = randomUUID();
  await database.db
    .insertInto('users')
    .values({ id: userId, email: `gate-${userId}@example.test`, password_hash: 'x', display_name: 'Ana' })
    .execute();
  await database.db
    .insertInto('sessions')
    .values({
      id: sessionId,
      user_id: userId,
      revoked_at: null,
      created_at: start,
      last_active_at: start,
      expires_at: lapsesAt,
      active_until: lapsesAt,
    })
    .execute();
  return { userId, sessionId };
}

/** Ends the session in the database without telling anyone: only a new lookup can see it ended. */
async function revokeQuietly(sessionId: string, revoked: Date | null = start): Promise<void> {
  await database.db
    .updateTable('sessions')
    .set({ revoked_at: revoked })
    .where('id', '=', sessionId)
    .execute();
}

/** A gate that listens for revocations (nothing is remembered before). */
async function listeningGate(clock: { now: Date }, random: () => number): Promise<SessionGate> {
  const gate = sessionGate({ db: database.db, pool: database.pool, now: () => clock.now, random });
  const probe = await openSession();
  for (let waited = 0; waited < 5000; waited += 20) {
    await gate.check(probe.sessionId);
    await revokeQuietly(probe.sessionId);
    if (await gate.isActive(probe.sessionId)) return gate;
    await revokeQuietly(probe.sessionId, null);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await gate.close();
  throw new Error('the gate never started listening');
}

test('a session is remembered for a random time between the least and the most, then looked up again', async () => {
  const clock = { now: start };
  let draw = 0.5;
  const gate = await listeningGate(clock, () => draw);
  try {
    const soon = await openSession();
    const late = await openSession();
    draw = 0;
    expect(await gate.check(soon.sessionId)).toEqual({ userId: soon.userId, roles: [] });
    draw = 0.999;
    expect(await gate.check(late.sessionId)).toEqual({ userId: late.userId, roles: [] });
    await revokeQuietly(soon.sessionId);
    await revokeQuietly(late.sessionId);

    clock.now = new Date(start.getTime() + REMEMBER_MS.least - 1);
    expect(await gate.isActive(soon.sessionId)).toBe(true);
    expect(await gate.isActive(late.sessionId)).toBe(true);

    clock.now = new Date(start.getTime() + REMEMBER_MS.least);
    expect(await gate.isActive(soon.sessionId)).toBe(false);
    expect(await gate.isActive(late.sessionId)).toBe(true);

    clock.now = new Date(start.getTime() + REMEMBER_MS.most);
    expect(await gate.isActive(late.sessionId)).toBe(false);
  } finally {
    await gate.close();
  }
});

test('never past the moment the session lapses, whatever the draw', async () => {
  const clock = { now: start };
  const gate = await listeningGate(clock, () => 0.999);
  try {
    const lapsing = await openSession(new Date(start.getTime() + 10_000));
    expect(await gate.isActive(lapsing.sessionId)).toBe(true);
    clock.now = new Date(start.getTime() + 9_999);
    expect(await gate.isActive(lapsing.sessionId)).toBe(true);
    clock.now = new Date(start.getTime() + 10_000);
    expect(await gate.isActive(lapsing.sessionId)).toBe(false);
  } finally {
    await gate.close();
  }
});

test('sessions looked up at the same time are read in one statement, each answered as its own', async () => {
  const open = await Promise.all([openSession(), openSession(), openSession()]);
  const revoked = await openSession();
  await revokeQuietly(revoked.sessionId);
  let statements = 0;
  // The test database's pool as the services use it, with every statement counted (not
  // destroyed: the pool is shared).
  const db = new Kysely<Database>({
    dialect: new PostgresDialect({ pool: namedStatementsPool(database.pool) }),
    log: (event) => {
      if (event.level === 'query') statements++;
    },
  });
  const gate = sessionGate({ db, pool: database.pool, now: () => start });
  try {
    const answers = await Promise.all([
      ...open.map((session) => gate.check(session.sessionId)),
      gate.check(open[0]?.sessionId.toUpperCase() ?? ''),
      gate.check(revoked.sessionId),
      gate.check(randomUUID()),
      gate.check('not a session id'),
    ]);
    expect(answers).toEqual([
      ...open.map((session) => ({ userId: session.userId, roles: [] })),
      { userId: open[0]?.userId, roles: [] },
      undefined,
      undefined,
      undefined,
    ]);
    expect(statements).toBe(1);
  } finally {
    await gate.close();
  }
});

test('a session given in capitals is forgotten when its end is announced', async () => {
  const gate = await listeningGate({ now: start }, () => 0.5);
  try {
    const session = await openSession();
    const inCapitals = session.sessionId.toUpperCase();
    expect(await gate.isActive(inCapitals)).toBe(true);
    await revokeQuietly(session.sessionId);
    expect(await gate.isActive(inCapitals)).toBe(true); // remembered, until told
    await announceSessionEnded(database.db, session.sessionId);
    for (let waited = 0; waited < 5000 && (await gate.isActive(inCapitals)); waited += 20) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(await gate.isActive(inCapitals)).toBe(false);
  } finally {
    await gate.close();
  }
});
