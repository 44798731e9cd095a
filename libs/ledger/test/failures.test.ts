import { createPool } from '@connect/db';
import { afterAll, beforeAll, expect, test, vi } from 'vitest';
import type { TestDatabase } from '../../../test/support/database.ts';
import { auditLedger, clearBodies, type Ledger, openLedger, readHead, readStream } from '../src/index.ts';
import { event, KEY, ledgerOn, ORIGIN, testLedger } from './support.ts';

let database: TestDatabase;
let ledger: Ledger;

beforeAll(async () => {
  ({ database, ledger } = await testLedger());
  // Stand-ins for failures the database can throw at an append halfway through its transaction.
  await database.pool.query(`alter table ledger_entries add constraint no_poison check (type <> 'Poison')`);
  await database.pool.query(`
    create function drop_connection() returns trigger language plpgsql as $$
    begin
      if new.type = 'DropConnection' then perform pg_terminate_backend(pg_backend_pid()); end if;
      return new;
    end $$;
    create trigger drop_connection before insert on ledger_entries for each row execute function drop_connection();`);
});
afterAll(() => database.close());

async function entryCount(): Promise<number> {
  const { rows } = await database.pool.query<{ n: number }>('select count(*)::int as n from ledger_entries');
  return rows[0]?.n ?? -1;
}

test.each(['Poison', 'DropConnection'])(
  'an append whose transaction fails (%s) fails alone: its batch-mates commit, nothing partial stays',
  async (culprit) => {
    const before = await entryCount();
    const appends = Array.from({ length: 10 }, (_, i) =>
      ledger.append({
        stream: `batch-${culprit}-${i}`,
        expectedVersion: 'no_stream',
        actor: null,
        events: i === 4 ? [event('Fine'), event(culprit)] : [event('Fine', { i })],
      }),
    );
    const settled = await Promise.allSettled(appends);
    const failed = settled.flatMap((s, i) => (s.status === 'rejected' ? [i] : []));
    expect(failed).toEqual([4]);
    for (const s of settled) if (s.status === 'fulfilled') expect(s.value.outcome).toBe('appended');
    expect(
      await readStream(database.db, { origin: ORIGIN, cipher: clearBodies }, `batch-${culprit}-4`),
    ).toEqual([]);
    expect(await entryCount()).toBe(before + 9);
    const head = await readHead(database.db);
    expect(head?.treeSize).toBe(before + 9);

    const next = await ledger.append({
      stream: `after-${culprit}`,
      expectedVersion: 'any',
      actor: null,
      events: [event('Fine')],
    });
    expect(next.outcome === 'appended' && next.entries[0]?.index).toBe(before + 9);
    expect(await auditLedger(database.db, KEY)).toMatchObject({ ok: true, treeSize: before + 10 });
  },
);

test("appends that get no connection fail together with the pool's error, none retried alone; the next one appends", async () => {
  const pool = createPool(database.url, 1, { connectionTimeoutMillis: 200 });
  try {
    const starved = await openLedger({ pool, db: database.db, origin: ORIGIN, key: KEY });
    const before = await entryCount();
    const connects = vi.spyOn(pool, 'connect');
    const held = await pool.connect();
    const settled = await Promise.allSettled(
      Array.from({ length: 5 }, (_, i) =>
        starved.append({
          stream: `starved-${i}`,
          expectedVersion: 'no_stream',
          actor: null,
          events: [event('Fine')],
        }),
      ),
    );
    held.release();
    expect(settled.map((s) => s.status === 'rejected' && (s.reason as Error).message)).toEqual(
      Array(5).fill('timeout exceeded when trying to connect'),
    );
    // The one held, then one wait per batch (the first append alone, the other four together),
    // where retrying each alone would have waited five more times.
    expect(connects.mock.calls.length).toBeLessThanOrEqual(3);
    expect(await entryCount()).toBe(before);
    const next = await starved.append({
      stream: 'starved-after',
      expectedVersion: 'no_stream',
      actor: null,
      events: [event('Fine')],
    });
    expect(next.outcome === 'appended' && next.entries[0]?.index).toBe(before);
    await starved.drain();
  } finally {
    await pool.end();
  }
});

test('a batch with one version conflict fails only that command', async () => {
  await ledger.append({
    stream: 'shared',
    expectedVersion: 'no_stream',
    actor: null,
    events: [event('Opened')],
  });
  const results = await Promise.all([
    ledger.append({ stream: 'shared', expectedVersion: 1, actor: null, events: [event('First')] }),
    ledger.append({ stream: 'shared', expectedVersion: 1, actor: null, events: [event('Second')] }),
    ledger.append({ stream: 'other', expectedVersion: 'no_stream', actor: null, events: [event('Fine')] }),
  ]);
  expect(results.map((r) => r.outcome)).toEqual(['appended', 'version_conflict', 'appended']);
  expect(
    (await readStream(database.db, { origin: ORIGIN, cipher: clearBodies }, 'shared')).map((e) => e.type),
  ).toEqual(['Opened', 'First']);
});

test('"no_stream" on a stream this process has not seen is checked by the database, not assumed', async () => {
  const other = await ledgerOn(database);
  await other.append({
    stream: 'made-elsewhere',
    expectedVersion: 'no_stream',
    actor: null,
    events: [event('Made')],
  });
  await ledger.append({
    stream: 'warm-up',
    expectedVersion: 'no_stream',
    actor: null,
    events: [event('Fine')],
  });
  const [dup, fresh] = await Promise.all([
    ledger.append({
      stream: 'made-elsewhere',
      expectedVersion: 'no_stream',
      actor: null,
      events: [event('Again')],
    }),
    ledger.append({
      stream: 'brand-new',
      expectedVersion: 'no_stream',
      actor: null,
      events: [event('Fine')],
    }),
  ]);
  expect(dup).toEqual({ outcome: 'version_conflict', expectedVersion: 'no_stream', actualVersion: 1 });
  expect(fresh.outcome).toBe('appended');
  expect(
    (await readStream(database.db, { origin: ORIGIN, cipher: clearBodies }, 'made-elsewhere')).map(
      (e) => e.type,
    ),
  ).toEqual(['Made']);
  expect(await auditLedger(database.db, KEY)).toMatchObject({ ok: true });
});
