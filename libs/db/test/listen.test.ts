import type pg from 'pg';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { countingPool } from '../../../test/support/counting-pool.ts';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.ts';
import { createPool, listen } from '../src/index.ts';

let database: TestDatabase;
let pool: pg.Pool;

beforeAll(async () => {
  database = await createTestDatabase();
  pool = createPool(database.url, 3);
});
afterAll(async () => {
  await pool.end();
  await database.close();
});

const notify = (channel: string, payload: string) =>
  database.pool.query('select pg_notify($1, $2)', [channel, payload]);

const killListeners = async () =>
  (
    await database.pool.query(
      `select pg_terminate_backend(pid) from pg_stat_activity
       where datname = current_database() and query ilike 'listen%' and pid <> pg_backend_pid()`,
    )
  ).rows.length;

test('a LISTEN that fails gives its connection back, however often it is retried', async () => {
  const failures: unknown[] = [];
  // A zero-length channel name is a syntax error: PostgreSQL refuses this LISTEN every time.
  const listener = listen(pool, [''], () => undefined, {
    retryMs: 5,
    maxRetryMs: 20,
    onDown: (error) => failures.push(error),
  });
  await expect.poll(() => failures.length).toBeGreaterThanOrEqual(5);
  expect(String(failures[0])).toMatch(/zero-length/);
  expect(listener.isListening()).toBe(false);
  await listener.close();
  // Nothing is checked out: at most a connection the last attempt got after close, back idle.
  expect(pool.totalCount - pool.idleCount).toBe(0);
  expect(pool.totalCount).toBeLessThanOrEqual(1);
  // More failed attempts than the pool has connections, and it still serves.
  expect((await pool.query<{ one: number }>('select 1 as one')).rows).toEqual([{ one: 1 }]);
});

test('notifications arrive, and after the connection is killed it listens again', async () => {
  const payloads: string[] = [];
  let listenings = 0;
  let downs = 0;
  const listener = listen(
    pool,
    ['test_a', 'test_b'],
    (message) => payloads.push(`${message.channel}:${message.payload}`),
    {
      retryMs: 10,
      onListening: () => listenings++,
      onDown: () => downs++,
    },
  );
  try {
    await listener.ready;
    expect(listener.isListening()).toBe(true);
    await notify('test_a', '1');
    await notify('test_b', '2');
    await expect.poll(() => payloads).toEqual(['test_a:1', 'test_b:2']);

    expect(await killListeners()).toBe(1);
    await expect.poll(() => downs).toBe(1);
    await expect.poll(() => listenings).toBe(2);
    expect(listener.isListening()).toBe(true);
    await notify('test_a', '3');
    await expect.poll(() => payloads.at(-1)).toBe('test_a:3');
    // The dead connection was dropped, not kept: only the new one is checked out.
    expect(pool.totalCount - pool.idleCount).toBe(1);
  } finally {
    await listener.close();
  }
  expect(pool.totalCount - pool.idleCount).toBe(0);
  await notify('test_a', '4');
  expect(await killListeners()).toBe(0); // UNLISTEN ran: nothing listens any more
});

test('closing while the first LISTEN is under way leaves no connection checked out', async () => {
  const listener = listen(pool, ['test_c'], () => undefined);
  await listener.close();
  expect(listener.isListening()).toBe(false);
  expect(pool.totalCount - pool.idleCount).toBe(0);
});

test('the listeners of a pool share one connection, each told only of its own channels', async () => {
  const heard: string[] = [];
  const events: string[] = [];
  const record = (who: string) => (message: pg.Notification) =>
    heard.push(`${who} ${message.channel}:${message.payload}`);
  const first = listen(pool, ['shared_a'], record('first'), {
    retryMs: 10,
    onListening: () => events.push('first listening'),
    onDown: () => events.push('first down'),
  });
  await first.ready;
  const second = listen(pool, ['shared_b', 'shared_a'], record('second'), {
    retryMs: 10,
    onListening: () => events.push('second listening'),
    onDown: () => events.push('second down'),
  });
  // PostgreSQL refuses this one's LISTEN; the others listen on regardless.
  const refused = listen(pool, [''], record('refused'), { retryMs: 10 });
  try {
    await second.ready;
    await refused.ready;
    expect([first.isListening(), second.isListening(), refused.isListening()]).toEqual([true, true, false]);
    expect(pool.totalCount - pool.idleCount).toBe(1);

    await notify('shared_a', '1');
    await notify('shared_b', '2');
    await expect
      .poll(() => [...heard].sort())
      .toEqual(['first shared_a:1', 'second shared_a:1', 'second shared_b:2']);

    // One connection to kill, and every listener on it is told, then listens again.
    expect(await killListeners()).toBe(1);
    await expect
      .poll(() => [...events].sort())
      .toEqual([
        'first down',
        'first listening',
        'first listening',
        'second down',
        'second listening',
        'second listening',
      ]);
    expect([first.isListening(), second.isListening()]).toEqual([true, true]);

    // Closed, the second hears nothing more; the first still does, on the same connection.
    await second.close();
    heard.length = 0;
    await notify('shared_b', '3');
    await notify('shared_a', '4');
    await expect.poll(() => heard).toEqual(['first shared_a:4']);
    expect(pool.totalCount - pool.idleCount).toBe(1);
  } finally {
    await refused.close();
    await second.close();
    await first.close();
  }
  expect(pool.totalCount - pool.idleCount).toBe(0);
  expect(await killListeners()).toBe(0);
});

test('statements on the shared connection go one at a time, as listeners come, go and listen again', async () => {
  const { pool: own, counter } = countingPool(database.url, 2);
  const listened = new Map<string, number>();
  const listeners = ['one_a', 'one_b', 'one_c'].map((channel) =>
    listen(own, [channel], () => undefined, {
      retryMs: 10,
      onListening: () => listened.set(channel, (listened.get(channel) ?? 0) + 1),
    }),
  );
  try {
    await Promise.all(listeners.map((listener) => listener.ready));
    expect(listeners.map((listener) => listener.isListening())).toEqual([true, true, true]);
    // The connection lost: all three LISTEN again, at once, on the next one.
    expect(await killListeners()).toBe(1);
    await expect.poll(() => [...listened.values()]).toEqual([2, 2, 2]);
    const late = listen(own, ['one_d'], () => undefined);
    await listeners[0]?.close();
    await late.ready;
    expect(late.isListening()).toBe(true);
    await late.close();
  } finally {
    for (const listener of listeners) await listener.close();
    await own.end();
  }
  expect(counter.mostAtOnce).toBe(1);
});
