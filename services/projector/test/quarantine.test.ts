// An entry a projection cannot apply sets its stream aside; everything else keeps flowing, /readyz
// stays green and names it, /metrics counts it, and a replay after a fix brings it back.
import { randomUUID } from 'node:crypto';
import { commitmentStream } from '@connect/domain';
import type { Ledger } from '@connect/ledger';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestDatabase } from '../../../test/support/database.ts';
import { buildApp } from '../src/app.ts';
import type { Projection } from '../src/projection.ts';
import { commitmentsProjection } from '../src/projections/commitments.ts';
import { PROJECTIONS } from '../src/projections/index.ts';
import { replayProjection } from '../src/replay.ts';
import { activeCommitment, ORIGIN, projectorLedger, registerProfile } from './support.ts';

async function until(check: () => Promise<boolean> | boolean, ms = 15_000): Promise<void> {
  await expect.poll(check, { timeout: ms, interval: 25 }).toBe(true);
}

async function atHead(database: TestDatabase): Promise<boolean> {
  const { rows } = await database.pool.query<{ behind: number }>(
    `select count(*)::int as behind from projection_checkpoints
      where last_index < (select tree_size - 1 from ledger_head)`,
  );
  return rows[0]?.behind === 0;
}

async function draftWithDueDate(
  ledger: Ledger,
  creator: string,
  dueAt: string,
): Promise<{ id: string; index: number }> {
  const id = randomUUID();
  const result = await ledger.append({
    stream: commitmentStream(id),
    expectedVersion: 'no_stream',
    actor: creator,
    events: [
      {
        type: 'CommitmentDrafted',
        schema: 2,
        data: {
          type: 'personal',
          creatorId: creator,
          title: 'Poison',
          description: '',
          terms: '',
          amount: null,
          dueAt,
        },
      },
    ],
  });
  if (result.outcome !== 'appended') throw new Error(result.outcome);
  return { id, index: result.entries[0]?.index as number };
}

const titles = async (database: TestDatabase) =>
  (await database.db.selectFrom('commitments').select(['id']).execute()).map((r) => r.id);

describe('a poison entry', () => {
  let database: TestDatabase;
  let ledger: Ledger;

  beforeAll(async () => {
    ({ database, ledger } = await projectorLedger());
  });
  afterAll(async () => {
    await ledger.drain();
    await database.close();
  });

  it('(a year-0000 due date) sets its commitment aside while the rest flows, across a restart', async () => {
    const alice = await registerProfile(ledger, 'Alice');
    const bob = await registerProfile(ledger, 'Bob');
    const before = await activeCommitment(ledger, alice, bob, 'Before');
    const poison = await draftWithDueDate(ledger, alice, '0000-01-01T00:00:00Z');
    const after = await activeCommitment(ledger, bob, alice, 'After');
    await ledger.append({
      stream: commitmentStream(poison.id),
      expectedVersion: 1,
      actor: alice,
      events: [{ type: 'PartyInvited', data: { userId: bob, role: 'participant' } }],
    });

    const app = buildApp(
      { pool: database.pool, origin: ORIGIN, cipher: ledger.cipher, options: { pollMs: 100 } },
      { logLevel: 'silent' },
    );
    await app.ready();
    await until(() => atHead(database));
    expect(await titles(database)).toEqual(expect.arrayContaining([before, after]));
    expect(await titles(database)).not.toContain(poison.id);

    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json().quarantined).toEqual([
      expect.objectContaining({
        projection: 'commitments',
        stream: commitmentStream(poison.id),
        index: poison.index,
        error: expect.stringMatching(/dueAt/),
      }),
    ]);
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toContain(
      `connect_projection_quarantined{projection="commitments",stream="${commitmentStream(poison.id)}",index="${poison.index}"} 1`,
    );
    await app.close();

    // After a restart the commitment stays aside, and new entries of other commitments still flow.
    const later = await activeCommitment(ledger, alice, bob, 'Later');
    const restarted = buildApp(
      { pool: database.pool, origin: ORIGIN, cipher: ledger.cipher, options: { pollMs: 100 } },
      { logLevel: 'silent' },
    );
    await restarted.ready();
    await until(() => atHead(database));
    expect(await titles(database)).toContain(later);
    const again = await restarted.inject({ method: 'GET', url: '/readyz' });
    expect(again.statusCode).toBe(200);
    expect(again.json().quarantined).toHaveLength(1);
    await restarted.close();
  });
});

describe('a projection fed an entry it cannot apply', () => {
  let database: TestDatabase;
  let ledger: Ledger;

  beforeAll(async () => {
    ({ database, ledger } = await projectorLedger());
  });
  afterAll(async () => {
    await ledger.drain();
    await database.close();
  });

  it('keeps going, and a replay after the fix brings the commitment back', async () => {
    const alice = await registerProfile(ledger, 'Alice');
    const bob = await registerProfile(ledger, 'Bob');
    const victim = await activeCommitment(ledger, alice, bob, 'Victim');
    const others = [
      await activeCommitment(ledger, bob, alice, 'One'),
      await activeCommitment(ledger, alice, bob, 'Two'),
    ];

    // A projection with a bug: storing the victim's rows fails in PostgreSQL (a data exception).
    let broken = true;
    const flaky: Projection = {
      ...commitmentsProjection,
      async apply(client, entries, tables, cipher) {
        if (broken && entries.some((e) => e.stream === commitmentStream(victim))) {
          await client.query("select 'not a number'::int");
        }
        return commitmentsProjection.apply(client, entries, tables, cipher);
      },
    };
    const projections = PROJECTIONS.map((p) => (p.name === flaky.name ? flaky : p));
    const app = buildApp(
      { pool: database.pool, origin: ORIGIN, cipher: ledger.cipher, options: { pollMs: 100, projections } },
      { logLevel: 'silent' },
    );
    await app.ready();
    await until(() => atHead(database));
    expect(await titles(database)).toEqual(expect.arrayContaining(others));
    expect(await titles(database)).not.toContain(victim);
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json().quarantined.map((q: { stream: string }) => q.stream)).toEqual([
      commitmentStream(victim),
    ]);
    expect(ready.json().quarantined[0].error).toMatch(/invalid input syntax for type integer/);

    broken = false;
    const replayed = await replayProjection(
      { pool: database.pool, origin: ORIGIN, cipher: ledger.cipher },
      flaky,
    );
    expect(replayed.quarantined).toEqual([]);
    expect(await titles(database)).toEqual(expect.arrayContaining([victim, ...others]));
    expect((await app.inject({ method: 'GET', url: '/readyz' })).json().quarantined).toEqual([]);
    await app.close();
  });
});
