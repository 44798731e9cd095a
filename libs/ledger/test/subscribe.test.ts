import { afterAll, beforeAll, expect, test } from 'vitest';
import type { TestDatabase } from '../../../test/support/database.ts';
import { type Entry, type Ledger, subscribeEntries } from '../src/index.ts';
import { event, ORIGIN, testLedger } from './support.ts';

let database: TestDatabase;
let ledger: Ledger;

beforeAll(async () => {
  ({ database, ledger } = await testLedger());
});
afterAll(() => database.close());

test('a subscriber gets every entry from its start index, in order, promptly after commit', async () => {
  await ledger.append({ stream: 'a', expectedVersion: 'any', actor: null, events: [event('Before')] });
  const seen: Entry[] = [];
  const subscription = subscribeEntries(
    { pool: database.pool, db: database.db, origin: ORIGIN, cipher: ledger.cipher },
    { from: 0, pollMs: 60_000, onEntries: (entries) => void seen.push(...entries) },
  );
  try {
    await expect.poll(() => seen.length).toBe(1);
    const started = Date.now();
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        ledger.append({
          stream: `s${i % 4}`,
          expectedVersion: 'any',
          actor: null,
          events: [event('After', { i })],
        }),
      ),
    );
    // The poll interval is a minute: only a notification delivers well within it (the bound is
    // generous, for a loaded machine).
    await expect.poll(() => seen.length, { timeout: 30_000 }).toBe(21);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(seen.map((e) => e.index)).toEqual(seen.map((_, i) => i));
  } finally {
    await subscription.close();
  }
});

test('a subscriber whose listening connection drops still catches up, by polling and by listening again', async () => {
  const seen: Entry[] = [];
  const { rows } = await database.pool.query<{ n: number }>('select count(*)::int as n from ledger_entries');
  const subscription = subscribeEntries(
    { pool: database.pool, db: database.db, origin: ORIGIN, cipher: ledger.cipher },
    { from: rows[0]?.n ?? 0, pollMs: 200, onEntries: (entries) => void seen.push(...entries) },
  );
  const killListeners = async () =>
    (
      await database.pool.query<{ killed: boolean }>(
        `select pg_terminate_backend(pid) as killed from pg_stat_activity
         where datname = current_database() and query ilike 'listen%' and pid <> pg_backend_pid()`,
      )
    ).rows.length;
  try {
    await expect.poll(killListeners).toBeGreaterThan(0);
    await ledger.append({ stream: 'late', expectedVersion: 'any', actor: null, events: [event('Late')] });
    await expect.poll(() => seen.map((e) => e.type)).toEqual(['Late']);
    await expect.poll(killListeners, { timeout: 5000 }).toBeGreaterThan(0); // it listens again
  } finally {
    await subscription.close();
  }
});
