import { afterAll, afterEach, beforeAll, expect, test, vi } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.ts';
import { createPool, POOL_IDLE_MS } from '../src/index.ts';

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  await database.close();
});
afterEach(() => {
  vi.useRealTimers();
});

/** Backends connected to the test database, other than the one asking. */
const backends = async () =>
  Number(
    (
      await database.pool.query<{ n: string }>(
        `select count(*) as n from pg_stat_activity
          where datname = current_database() and backend_type = 'client backend' and pid <> pg_backend_pid()`,
      )
    ).rows[0]?.n,
  );

test('a pool keeps its idle connections between bursts, and closes them after a minute of quiet', async () => {
  const pool = createPool(database.url, 4);
  try {
    const before = await backends();
    // Only the pool's idle timers run on the fake clock; the connections themselves are real.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    // A burst that needs three connections at once.
    await Promise.all([1, 2, 3].map(() => pool.query('select pg_sleep(0.05)')));
    expect(pool.totalCount).toBe(3);
    // pg's own default closed idle connections after 10 s, to be opened again at the next burst.
    await vi.advanceTimersByTimeAsync(30_000);
    expect(pool.totalCount).toBe(3);
    expect(pool.idleCount).toBe(3);
    await vi.advanceTimersByTimeAsync(POOL_IDLE_MS);
    vi.useRealTimers();
    expect(pool.totalCount).toBe(0);
    for (let waited = 0; (await backends()) > before && waited < 2000; waited += 50)
      await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await backends()).toBe(before);
  } finally {
    vi.useRealTimers();
    await pool.end();
  }
});
