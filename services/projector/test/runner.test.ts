import type { FastifyBaseLogger } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestDatabase } from '../../../test/support/database.ts';
import { buildApp } from '../src/app.ts';
import type { Projection } from '../src/projection.ts';
import { commitmentsProjection } from '../src/projections/commitments.ts';
import { PROJECTIONS } from '../src/projections/index.ts';
import { profilesProjection } from '../src/projections/profiles.ts';
import { startProjector } from '../src/runner.ts';
import { activeCommitment, ORIGIN, projectedStates, projectorLedger, registerProfile } from './support.ts';

const quiet = { info() {}, warn() {}, error() {} } as unknown as FastifyBaseLogger;

async function until(check: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  await expect.poll(check, { timeout: ms, interval: 25 }).toBe(true);
}

async function checkpoints(database: TestDatabase): Promise<Record<string, number>> {
  const rows = await database.db.selectFrom('projection_checkpoints').selectAll().execute();
  return Object.fromEntries(rows.map((row) => [row.projection, row.last_index]));
}

async function headIndex(database: TestDatabase): Promise<number> {
  const head = await database.db.selectFrom('ledger_head').select('tree_size').executeTakeFirstOrThrow();
  return head.tree_size - 1;
}

const atHead = (database: TestDatabase) => async () => {
  const head = await headIndex(database);
  return Object.values(await checkpoints(database)).every((index) => index === head);
};

describe('projector', () => {
  let database: TestDatabase;
  let ledger: Awaited<ReturnType<typeof projectorLedger>>['ledger'];

  beforeAll(async () => {
    ({ database, ledger } = await projectorLedger());
  });
  afterAll(async () => {
    await ledger.drain();
    await database.close();
  });

  it('builds every read model from the ledger and resumes exactly where it stopped', async () => {
    const alice = await registerProfile(ledger, 'Alice');
    const bob = await registerProfile(ledger, 'Bob');
    const first = await activeCommitment(ledger, alice, bob);
    const projector = startProjector(
      { pool: database.pool, origin: ORIGIN, cipher: ledger.cipher, log: quiet },
      { batchSize: 3 },
    );
    await until(atHead(database));
    await projector.close();

    const second = await activeCommitment(ledger, bob, alice, 'Walk the dog');
    const restarted = startProjector({
      pool: database.pool,
      origin: ORIGIN,
      cipher: ledger.cipher,
      log: quiet,
    });
    await until(atHead(database));
    await restarted.close();

    const commitments = await database.db
      .selectFrom('commitments')
      .selectAll()
      .orderBy('created_at')
      .execute();
    const titles = (await projectedStates(database, ledger)).map((state) => state.title);
    expect(commitments.map((c, i) => [c.id, c.status, c.version, titles[i]])).toEqual([
      [first, 'active', 5, 'Lend a bike'],
      [second, 'active', 5, 'Walk the dog'],
    ]);
    const parties = await database.db
      .selectFrom('commitment_parties')
      .select(['user_id', 'role', 'response', 'status'])
      .where('commitment_id', '=', first)
      .orderBy('role')
      .execute();
    expect(parties).toEqual([
      { user_id: alice, role: 'creator', response: 'accepted', status: 'active' },
      { user_id: bob, role: 'participant', response: 'accepted', status: 'active' },
    ]);
    const history = await database.db.selectFrom('commitment_history').selectAll().orderBy('index').execute();
    expect(history).toHaveLength(10); // each event once, across the restart
    expect(history.map((h) => h.version)).toEqual([1, 2, 3, 4, 5, 1, 2, 3, 4, 5]);
    const entries = await database.db.selectFrom('ledger_entries').select(['index', 'leaf_hash']).execute();
    const leaf = new Map(entries.map((e) => [e.index, Buffer.from(e.leaf_hash).toString('hex')]));
    for (const row of history) expect(Buffer.from(row.leaf_hash).toString('hex')).toBe(leaf.get(row.index));
    const profiles = await database.db.selectFrom('profiles').select(['user_id', 'display_name']).execute();
    expect(new Map(profiles.map((p) => [p.user_id, p.display_name]))).toEqual(
      new Map([
        [alice, 'Alice'],
        [bob, 'Bob'],
      ]),
    );
    const types = await database.db.selectFrom('commitment_types').select('key').orderBy('key').execute();
    expect(types.map((t) => t.key)).toEqual(['business', 'financial', 'personal']);
  });

  it('keeps one active runner per projection; a standby takes over within seconds', async () => {
    const log = quiet;
    const one = startProjector(
      { pool: database.pool, origin: ORIGIN, cipher: ledger.cipher, log },
      { standbyMs: 200 },
    );
    await until(async () => (await one.status()).every((s) => s.state === 'active'));
    const two = startProjector(
      { pool: database.pool, origin: ORIGIN, cipher: ledger.cipher, log },
      { standbyMs: 200 },
    );
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect((await two.status()).map((s) => s.state)).toEqual(['standby', 'standby', 'standby']);

    await one.close(); // the active process goes away, releasing its locks
    const closedAt = Date.now();
    await until(async () => (await two.status()).every((s) => s.state === 'active'), 20_000);
    // Within seconds (standbyMs is 200): the bound is generous, for a loaded machine.
    expect(Date.now() - closedAt).toBeLessThan(15_000);
    const alice = await registerProfile(ledger, 'Carol');
    await until(async () => {
      const row = await database.db
        .selectFrom('profiles')
        .select('display_name')
        .where('user_id', '=', alice)
        .executeTakeFirst();
      return row?.display_name === 'Carol';
    });
    await two.close();
  });

  it.each([
    ['the projector', 'option'],
    ['the projection itself', 'projection'],
  ] as const)(
    'spaces its batches under a stream of appends as %s asks, and projects an append after a quiet spell at once',
    async (_, setBy) => {
      const spacingMs = 1500;
      const batchesAt: number[] = [];
      const counted: Projection = {
        ...profilesProjection,
        // Set by the projection, its spacing overrides the projector's (10 ms here).
        ...(setBy === 'projection' && { batchSpacingMs: spacingMs }),
        apply(...args) {
          batchesAt.push(Date.now());
          return profilesProjection.apply(...args);
        },
      };
      const projector = startProjector(
        { pool: database.pool, origin: ORIGIN, cipher: ledger.cipher, log: quiet },
        { projections: [counted], batchSpacingMs: setBy === 'option' ? spacingMs : 10 },
      );
      const projected = (userId: string) => async () =>
        (await database.db
          .selectFrom('profiles')
          .select('user_id')
          .where('user_id', '=', userId)
          .executeTakeFirst()) !== undefined;
      let streamMs = 0;
      try {
        await until(async () => (await checkpoints(database)).profiles === (await headIndex(database)));
        await new Promise((resolve) => setTimeout(resolve, spacingMs + 100));

        const appendedAt = Date.now();
        const quietOne = await registerProfile(ledger, 'After a quiet spell');
        await until(projected(quietOne));
        expect(Date.now() - appendedAt).toBeLessThan(spacingMs / 2);

        batchesAt.length = 0;
        const streamStart = Date.now();
        let last = '';
        for (let i = 0; i < 10; i++) {
          last = await registerProfile(ledger, `Streamed ${i}`);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        streamMs = Date.now() - streamStart;
        await until(projected(last));
      } finally {
        await projector.close();
      }
      // Ten appends, not ten batches: one a spacing at most (a batch's start is taken before it
      // connects, its apply later, so gaps between applies may fall a little short of the spacing).
      expect(batchesAt.length).toBeLessThanOrEqual(Math.ceil(streamMs / spacingMs) + 1);
      expect(batchesAt.length).toBeLessThan(10);
      for (let i = 1; i < batchesAt.length; i++) {
        expect((batchesAt[i] as number) - (batchesAt[i - 1] as number)).toBeGreaterThanOrEqual(
          spacingMs * 0.75,
        );
      }
    },
  );

  it('stops a projection on a fault of the system (not of an entry), names it, and keeps the others going', async () => {
    const alice = await registerProfile(ledger, 'Dana');
    const bob = await registerProfile(ledger, 'Eve');
    await activeCommitment(ledger, alice, bob);
    const later = await registerProfile(ledger, 'Frank');
    // A table the projection needs is missing: no entry is to blame, so nothing is set aside.
    const missingTable: Projection = {
      ...commitmentsProjection,
      async apply(client) {
        await client.query('select * from no_such_read_model');
      },
    };
    const projections = PROJECTIONS.map((p) => (p.name === missingTable.name ? missingTable : p));
    const app = buildApp(
      { pool: database.pool, origin: ORIGIN, cipher: ledger.cipher, options: { projections } },
      { logLevel: 'silent' },
    );
    await until(async () => (await app.inject({ url: '/readyz' })).statusCode === 503);
    const readyz = await app.inject({ url: '/readyz' });
    expect(readyz.json().detail).toContain('projection commitments stopped');
    expect(readyz.json().detail).toContain('no_such_read_model');
    const { projections: statuses, quarantined } = (await app.inject({ url: '/v1/projections' })).json();
    expect(statuses.find((p: { projection: string }) => p.projection === 'commitments')).toMatchObject({
      state: 'failed',
    });
    expect(quarantined).toEqual([]);
    await until(async () => {
      const profile = await database.db
        .selectFrom('profiles')
        .select('user_id')
        .where('user_id', '=', later)
        .executeTakeFirst();
      return profile !== undefined;
    });
    await app.close();
  });
});
