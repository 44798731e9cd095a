import type pg from 'pg';
import { afterAll, beforeAll, expect, test, vi } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.ts';
import { createPool, POOL_WAIT_MS } from '../src/index.ts';

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  await database.close();
});

test('a query waits for a busy pool at most POOL_WAIT_MS, then fails as a database that cannot be reached does', async () => {
  const pool = createPool(database.url, 1);
  let held: pg.PoolClient | undefined = await pool.connect();
  try {
    // Only the pool's timers run on the fake clock; the connection itself is real.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const waiting = pool.query('select 1');
    const outcome = waiting.then(
      () => 'answered',
      (error: Error) => error.message,
    );
    await vi.advanceTimersByTimeAsync(POOL_WAIT_MS - 100);
    expect(pool.waitingCount).toBe(1);
    await vi.advanceTimersByTimeAsync(200);
    // The words the HTTP layer answers 503 (with Retry-After) for.
    expect(await outcome).toBe('timeout exceeded when trying to connect');
    expect(pool.waitingCount).toBe(0);
    vi.useRealTimers();
    held.release();
    held = undefined;
    // The connection that was busy serves the next query as before.
    expect((await pool.query<{ one: number }>('select 1 as one')).rows).toEqual([{ one: 1 }]);
  } finally {
    vi.useRealTimers();
    held?.release();
    await pool.end();
  }
});
