// The projected index follows projection_checkpoints (NOTIFY and a poll). The notifier's checkpoint
// holds back only the reads that include notifications: a commitment read or push does not wait
// for it.
import { PROJECTED_CHANNEL } from '@connect/db';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.ts';
import { type ProjectedIndex, watchProjectedIndex } from '../src/projected-index.ts';

let database: TestDatabase;
let index: ProjectedIndex;

async function checkpoint(projection: string, lastIndex: number): Promise<void> {
  await database.pool.query(
    `insert into projection_checkpoints (projection, last_index) values ($1, $2)
      on conflict (projection) do update set last_index = excluded.last_index`,
    [projection, lastIndex],
  );
  await database.pool.query('select pg_notify($1, $2)', [PROJECTED_CHANNEL, `${projection}:${lastIndex}`]);
}

async function readModelsAt(lastIndex: number): Promise<void> {
  for (const projection of ['profiles', 'commitment_types', 'commitments']) {
    await checkpoint(projection, lastIndex);
  }
}

beforeAll(async () => {
  database = await createTestDatabase({ poolSize: 4 });
  await readModelsAt(10);
  await checkpoint('notifications', 4);
  index = await watchProjectedIndex(database.pool, { pollMs: 60_000 });
});
afterAll(async () => {
  await index.close();
  await database.close();
});

describe('the projected index', () => {
  it('reports the read models without the notifier, and with it for reads that include notifications', () => {
    expect(index.current()).toBe(10);
    expect(index.current('read-models')).toBe(10);
    expect(index.current('with-notifications')).toBe(4);
    expect(index.positionOf('notifications')).toBe(4);
  });

  it('tells subscribers of commitment changes when the read models move on, whatever the notifier does', async () => {
    const advances: [number, number][] = [];
    const stop = index.onAdvance((from, to) => advances.push([from, to]));
    try {
      const reached = index.waitFor(12, 5000);
      await readModelsAt(12);
      expect(await reached).toBe(true);
      expect(advances).toEqual([[10, 12]]);
      await checkpoint('notifications', 12);
      expect(await index.waitFor(12, 5000, 'with-notifications')).toBe(true);
      expect(advances).toEqual([[10, 12]]);
    } finally {
      stop();
    }
  });

  it('makes a read that includes notifications wait for the notifier, and only that read', async () => {
    await readModelsAt(20);
    expect(await index.waitFor(20, 5000)).toBe(true);
    expect(await index.waitFor(20, 150, 'with-notifications')).toBe(false);
    const notified = index.waitFor(20, 5000, 'with-notifications');
    await checkpoint('notifications', 20);
    expect(await notified).toBe(true);
    expect(index.current('with-notifications')).toBe(20);
  });

  it('holds every read back while one of the projector’s read models is behind', async () => {
    await checkpoint('commitments', 25);
    await checkpoint('notifications', 25);
    expect(await index.waitFor(25, 150)).toBe(false);
    expect(await index.waitFor(25, 150, 'with-notifications')).toBe(false);
    expect(index.current('with-notifications')).toBe(20);
  });
});
