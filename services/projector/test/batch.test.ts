import { PROJECTED_CHANNEL } from '@connect/db';
import { DEFAULT_TYPES } from '@connect/domain';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestDatabase } from '../../../test/support/database.ts';
import { skipBatch } from '../src/batch.ts';
import type { Projection } from '../src/projection.ts';
import { PROJECTIONS } from '../src/projections/index.ts';
import { activeCommitment, projectorLedger, registerProfile } from './support.ts';

const profiles = PROJECTIONS.find((projection) => projection.name === 'profiles') as Projection;

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
    ({ database, ledger } = await projectorLedger());
    const alice = await registerProfile(ledger, 'Alice');
    const bob = await registerProfile(ledger, 'Bob');
    await activeCommitment(ledger, alice, bob);
    await ledger.drain();
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
  });
});
