// Skips asked for in the same turn of the event loop go out as one statement on one connection.
import { DEFAULT_TYPES } from '@connect/domain';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { TestDatabase } from '../../../test/support/database.ts';
import type { Projection } from '../src/projection.ts';
import { PROJECTIONS } from '../src/projections/index.ts';
import { skipsTogether } from '../src/skips-together.ts';
import { projectorLedger } from './support.ts';

const named = (name: string) => PROJECTIONS.find((projection) => projection.name === name) as Projection;

let database: TestDatabase;
let ledger: Awaited<ReturnType<typeof projectorLedger>>['ledger'];

beforeAll(async () => {
  ({ database, ledger } = await projectorLedger());
  await ledger.drain();
});
afterAll(async () => {
  await ledger.drain();
  await database.close();
});

it('takes the skips asked for together in one statement, and each projection gets its own result', async () => {
  const pool = database.pool;
  const connect = pool.connect.bind(pool);
  let connections = 0;
  pool.connect = (() => {
    connections++;
    return connect();
  }) as typeof pool.connect;
  try {
    const skip = skipsTogether(pool, 100);
    const types = DEFAULT_TYPES.length;
    // The ledger holds the types' entries only: profiles moves over them, commitment_types applies them.
    const together = await Promise.all([skip(named('profiles')), skip(named('commitment_types'))]);
    expect(connections).toBe(1);
    expect(together).toEqual([
      { count: types, lastIndex: types - 1, applied: 0, quarantined: [] },
      undefined,
    ]);
    // Asked for one after the other, each goes out on its own.
    expect(await skip(named('commitment_types'))).toBeUndefined();
    expect(await skip(named('profiles'))).toEqual({
      count: 0,
      lastIndex: types - 1,
      applied: 0,
      quarantined: [],
    });
    expect(connections).toBe(3);
  } finally {
    pool.connect = connect as typeof pool.connect;
  }
});

it('rejects every skip of a statement that failed', async () => {
  const skip = skipsTogether(database.pool, 100);
  const missing: Projection = { ...named('profiles'), name: 'no_such_projection' };
  const results = await Promise.allSettled([skip(missing), skip(named('profiles'))]);
  expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
  expect(String((results[0] as PromiseRejectedResult).reason)).toMatch(
    /no checkpoint row for projection no_such_projection/,
  );
});
