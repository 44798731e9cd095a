import { randomUUID } from 'node:crypto';
import { PipelinedQuery, PROJECTED_CHANNEL } from '@connect/db';
import { commitmentStream, DEFAULT_TYPES } from '@connect/domain';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestDatabase } from '../../../test/support/database.ts';
import { projectBatch, skipBatch, skipBatches } from '../src/batch.ts';
import type { Projection } from '../src/projection.ts';
import { liveTables } from '../src/projection.ts';
import { PROJECTIONS } from '../src/projections/index.ts';
import { activeCommitment, ORIGIN, projectorLedger, registerProfile } from './support.ts';

const profiles = PROJECTIONS.find((projection) => projection.name === 'profiles') as Projection;
const commitments = PROJECTIONS.find((projection) => projection.name === 'commitments') as Projection;
const commitmentTypes = PROJECTIONS.find(
  (projection) => projection.name === 'commitment_types',
) as Projection;

/** A ledger of the commitment types, then two profiles, then a commitment between them. */
async function typesProfilesAndCommitment() {
  const opened = await projectorLedger();
  const alice = await registerProfile(opened.ledger, 'Alice');
  const bob = await registerProfile(opened.ledger, 'Bob');
  await activeCommitment(opened.ledger, alice, bob);
  await opened.ledger.drain();
  return opened;
}

describe('skipBatch: a batch with none of the projection’s entries', () => {
  let database: TestDatabase;
  let ledger: Awaited<ReturnType<typeof projectorLedger>>['ledger'];
  let client: pg.PoolClient;
  const told: string[] = [];
  /** The commitment types take the first entries; the two profiles follow, then a commitment. */
  const types = DEFAULT_TYPES.length;

  const checkpoint = async () =>
    (
      await database.db
        .selectFrom('projection_checkpoints')
        .select('last_index')
        .where('projection', '=', 'profiles')
        .executeTakeFirstOrThrow()
    ).last_index;

  beforeAll(async () => {
    ({ database, ledger } = await typesProfilesAndCommitment());
    client = await database.pool.connect();
    client.on('notification', (message) => told.push(message.payload ?? ''));
    await client.query(`listen ${PROJECTED_CHANNEL}`);
  });
  afterAll(async () => {
    client.release();
    await ledger.drain();
    await database.close();
  });

  it('moves the checkpoint over entries of other streams and says so, in one statement', async () => {
    expect(await checkpoint()).toBe(-1);
    const result = await skipBatch(client, profiles, types);
    expect(result).toEqual({ count: types, lastIndex: types - 1, applied: 0, quarantined: [] });
    expect(await checkpoint()).toBe(types - 1);
    await expect.poll(() => told).toContain(`profiles:${types - 1}`);
  });

  it('leaves a batch holding entries of its streams to be applied, and moves nothing', async () => {
    expect(await skipBatch(client, profiles, 100)).toBeUndefined();
    expect(await checkpoint()).toBe(types - 1);
  });

  it('after them, moves to the head; at the head there is nothing to move', async () => {
    await database.pool.query(
      "update projection_checkpoints set last_index = $1 where projection = 'profiles'",
      [types + 1],
    );
    const head = types + 1 + 5;
    expect(await skipBatch(client, profiles, 100)).toEqual({
      count: 5,
      lastIndex: head,
      applied: 0,
      quarantined: [],
    });
    expect(await skipBatch(client, profiles, 100)).toEqual({
      count: 0,
      lastIndex: head,
      applied: 0,
      quarantined: [],
    });
    expect(await checkpoint()).toBe(head);
    // Its commit does not wait for the disk (as projectBatch's); the connection's own setting stays.
    expect((await client.query("select current_setting('synchronous_commit') as mode")).rows[0].mode).toBe(
      'on',
    );
  });
});

describe('skipBatches: several projections in one statement', () => {
  let database: TestDatabase;
  let ledger: Awaited<ReturnType<typeof projectorLedger>>['ledger'];
  const types = DEFAULT_TYPES.length;

  beforeAll(async () => {
    ({ database, ledger } = await typesProfilesAndCommitment());
  });
  afterAll(async () => {
    await ledger.drain();
    await database.close();
  });

  it('moves each checkpoint on its own, leaving a projection whose entries come next to apply them', async () => {
    const client = await database.pool.connect();
    const told: string[] = [];
    client.on('notification', (message) => told.push(message.payload ?? ''));
    await client.query(`listen ${PROJECTED_CHANNEL}`);
    try {
      // The types come first: the profiles' checkpoint moves over them, the types' does not move.
      const first = await skipBatches(client, [profiles, commitmentTypes], types);
      expect(first).toEqual([{ count: types, lastIndex: types - 1, applied: 0, quarantined: [] }, undefined]);
      // Past the types, to the head (two profiles, then a commitment's entries): the types'
      // checkpoint moves over all of it, the profiles' stays before their own two entries.
      await database.pool.query(
        "update projection_checkpoints set last_index = $1 where projection = 'commitment_types'",
        [types - 1],
      );
      const { rows } = await client.query<{ head: number }>('select tree_size - 1 as head from ledger_head');
      const head = Number(rows[0]?.head);
      const second = await skipBatches(client, [commitmentTypes, profiles], 100);
      expect(second).toEqual([
        { count: head - types + 1, lastIndex: head, applied: 0, quarantined: [] },
        undefined,
      ]);
      const { rows: checkpoints } = await client.query<{ projection: string; last_index: number }>(
        "select projection, last_index from projection_checkpoints where projection in ('profiles', 'commitment_types') order by projection",
      );
      expect(checkpoints).toEqual([
        { projection: 'commitment_types', last_index: head },
        { projection: 'profiles', last_index: types - 1 },
      ]);
      await expect.poll(() => told).toEqual([`profiles:${types - 1}`, `commitment_types:${head}`]);
    } finally {
      client.release();
    }
  });
});

describe('skipBatch on a long ledger', () => {
  let database: TestDatabase;
  let ledger: Awaited<ReturnType<typeof projectorLedger>>['ledger'];
  /** Entries after the first profile: commitments' (10 a stream), none of them the profiles'. */
  const commitmentEntries = 3000;

  beforeAll(async () => {
    ({ database, ledger } = await projectorLedger());
    // No statistics until the test gathers them: without them the old statement scanned every entry.
    await database.pool.query('alter table ledger_entries set (autovacuum_enabled = false)');
    const alice = await registerProfile(ledger, 'Alice');
    await Promise.all(
      Array.from({ length: commitmentEntries / 10 }, () =>
        ledger.append({
          stream: commitmentStream(randomUUID()),
          expectedVersion: 'no_stream',
          actor: alice,
          events: Array.from({ length: 10 }, (_, i) => ({ type: 'BenchNoted', data: { i } })),
        }),
      ),
    );
    await ledger.drain();
  });
  afterAll(async () => {
    await ledger.drain();
    await database.close();
  });

  /** Entries of the ledger read by a skip of 20 from 50 before the head, and what it returned. */
  async function skipNearHead() {
    const client = await database.pool.connect();
    try {
      const { rows } = await client.query<{ head: number }>('select tree_size - 1 as head from ledger_head');
      const head = Number(rows[0]?.head);
      await client.query("update projection_checkpoints set last_index = $1 where projection = 'profiles'", [
        head - 50,
      ]);
      // What this connection has read so far, table by table, including its transactions not yet
      // reported: the difference across the skip, inside one transaction, is the skip's own.
      const tuplesRead = async () => {
        const { rows: read } = await client.query<{ tuples: string }>(
          `select seq_tup_read + coalesce(idx_tup_fetch, 0) as tuples
             from pg_stat_xact_user_tables where relname = 'ledger_entries'`,
        );
        return Number(read[0]?.tuples);
      };
      await client.query('begin');
      try {
        const before = await tuplesRead();
        const result = await skipBatch(client, profiles, 20);
        const read = (await tuplesRead()) - before;
        await client.query('commit');
        return { head, result, read };
      } catch (error) {
        await client.query('rollback');
        throw error;
      }
    } finally {
      client.release();
    }
  }

  it.each([
    ['before the ledger has statistics', false],
    ['once it has them', true],
  ])('reads the next entries by index, not every entry of the ledger, %s', async (_, analyzed) => {
    if (analyzed) await database.pool.query('analyze ledger_entries');
    const { head, result, read } = await skipNearHead();
    expect(result).toEqual({ count: 20, lastIndex: head - 30, applied: 0, quarantined: [] });
    expect(read).toBeGreaterThanOrEqual(20);
    expect(read).toBeLessThan(100);
  });
});

describe('projectBatch', () => {
  let database: TestDatabase;
  let ledger: Awaited<ReturnType<typeof projectorLedger>>['ledger'];
  let client: pg.PoolClient;
  let alice: string;
  let bob: string;
  /** What the client was asked to run, in order (the text of each statement). */
  let statements: string[] = [];
  /** How many times the client went to the server (statements sent together count once). */
  let roundTrips = 0;

  const project = () =>
    projectBatch(client, commitments, liveTables(commitments), {
      origin: ORIGIN,
      cipher: ledger.cipher,
      limit: 1000,
    });
  const projectedIds = async () =>
    (await database.db.selectFrom('commitments').select('id').execute()).map((row) => row.id);
  const savepoints = () => statements.filter((text) => /savepoint/i.test(text));

  beforeAll(async () => {
    ({ database, ledger } = await projectorLedger());
    alice = await registerProfile(ledger, 'Alice');
    bob = await registerProfile(ledger, 'Bob');
    client = await database.pool.connect();
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      const [config] = args;
      roundTrips++;
      if (typeof config === 'string') statements.push(config);
      else if (config instanceof PipelinedQuery)
        statements.push(...[...config.before, config, ...config.after].map((part) => part.text));
      else statements.push((config as { text: string }).text);
      return query(...args);
    };
  });
  afterAll(async () => {
    client.release();
    await ledger.drain();
    await database.close();
  });

  it('applies a batch in one transaction without a savepoint', async () => {
    const first = await activeCommitment(ledger, alice, bob, 'First');
    await ledger.drain();
    statements = [];
    roundTrips = 0;
    const result = await project();
    expect(result.quarantined).toEqual([]);
    expect(await projectedIds()).toEqual([first]);
    expect(savepoints()).toEqual([]);
    expect(statements[0]).toMatch(/^begin\b/);
    expect(statements.at(-1)).toBe('commit');
    // Begun with the claim and committed with the checkpoint's move; the commitments' states
    // read and their rows written in between.
    expect(roundTrips).toBe(4);
  });

  it('does not wait for its commit to reach the disk, and leaves the connection as it was', async () => {
    await activeCommitment(ledger, alice, bob, 'Unhurried');
    await ledger.drain();
    let commitMode: string | undefined;
    const probed: Projection = {
      ...commitments,
      async apply(c, entries, tables, cipher) {
        commitMode = (await c.query("select current_setting('synchronous_commit') as mode")).rows[0].mode;
        return commitments.apply(c, entries, tables, cipher);
      },
    };
    await projectBatch(client, probed, liveTables(probed), {
      origin: ORIGIN,
      cipher: ledger.cipher,
      limit: 1000,
    });
    expect(commitMode).toBe('off');
    expect((await client.query("select current_setting('synchronous_commit') as mode")).rows[0].mode).toBe(
      'on',
    );
  });

  it('applies it again entry by entry when one entry cannot be applied, setting aside only its stream', async () => {
    const before = await activeCommitment(ledger, alice, bob, 'Before');
    const poison = randomUUID();
    await ledger.append({
      stream: commitmentStream(poison),
      expectedVersion: 'no_stream',
      actor: alice,
      events: [
        {
          type: 'CommitmentDrafted',
          schema: 2,
          data: {
            type: 'personal',
            creatorId: alice,
            title: 'Poison',
            description: '',
            terms: '',
            amount: null,
            dueAt: '0000-01-01T00:00:00Z',
          },
        },
      ],
    });
    const after = await activeCommitment(ledger, bob, alice, 'After');
    await ledger.drain();
    statements = [];
    const result = await project();
    expect(result.quarantined).toEqual([
      expect.objectContaining({ stream: commitmentStream(poison), error: expect.stringMatching(/dueAt/) }),
    ]);
    expect(await projectedIds()).toEqual(expect.arrayContaining([before, after]));
    expect(await projectedIds()).not.toContain(poison);
    expect(statements.filter((text) => text === 'rollback')).toHaveLength(1);
    expect(savepoints().length).toBeGreaterThan(0);
    expect(statements.at(-1)).toBe('commit');
  });

  it('goes on claiming batches on its connection after a migration adds a column to the ledger', async () => {
    await activeCommitment(ledger, alice, bob, 'Before the column');
    await ledger.drain();
    await project();
    await database.pool.query('alter table ledger_entries add column noted_later text');
    const later = await activeCommitment(ledger, alice, bob, 'After the column');
    await ledger.drain();
    // The claim prepared on this connection before the change runs again after it.
    const result = await project();
    expect(result.applied).toBeGreaterThan(0);
    expect(await projectedIds()).toContain(later);
  });
});
