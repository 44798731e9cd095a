import { createPool } from '@connect/db';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { countingPool } from '../../../test/support/counting-pool.ts';
import type { TestDatabase } from '../../../test/support/database.ts';
import { plansOfPrepared } from '../../../test/support/prepared-plans.ts';
import {
  AppendValidationError,
  auditLedger,
  clearBodies,
  type Ledger,
  openLedger,
  readStream,
  streamRowsAfter,
  streamRowsBefore,
  streamRowsWithErasures,
} from '../src/index.ts';
import { event, KEY, ORIGIN, testLedger } from './support.ts';

let database: TestDatabase;
let ledger: Ledger;

beforeAll(async () => {
  ({ database, ledger } = await testLedger());
});
afterAll(() => database.close());

test('a stream is read by a statement prepared once per connection, which PostgreSQL then runs on a generic plan', async () => {
  const plans = await plansOfPrepared(database.url, 'read-stream', 8, (db) =>
    readStream(db, { origin: ORIGIN, cipher: clearBodies }, 'order-9'),
  );
  // PostgreSQL plans the first five executions for their values, then settles on the generic plan.
  expect(plans && plans.generic + plans.custom).toBe(8);
  expect(plans?.generic).toBeGreaterThan(0);
});

describe('appending to a stream', () => {
  test('commits entries with dense indexes, stream versions and leaf hashes', async () => {
    const result = await ledger.append({
      stream: 'order-1',
      expectedVersion: 'no_stream',
      actor: 'user-1',
      events: [event('OrderPlaced', { total: 10 }), event('OrderPaid')],
    });
    expect(result.outcome).toBe('appended');
    if (result.outcome !== 'appended') return;
    expect(result.entries.map((e) => [e.version, e.type])).toEqual([
      [1, 'OrderPlaced'],
      [2, 'OrderPaid'],
    ]);
    expect(result.entries[1]?.index).toBe((result.entries[0]?.index ?? -1) + 1);
    expect(result.streamVersion).toBe(2);
    const stored = await readStream(database.db, { origin: ORIGIN, cipher: clearBodies }, 'order-1');
    expect(stored.map((e) => e.leafHash)).toEqual(result.entries.map((e) => e.leafHash));
    expect(stored[0]?.data).toEqual({ total: 10 });
    expect(stored[0]?.ledger).toBe(ORIGIN);
  });

  test('an expected version that is not the stream version is a conflict, and appends nothing', async () => {
    const result = await ledger.append({
      stream: 'order-1',
      expectedVersion: 1,
      actor: null,
      events: [event('X')],
    });
    expect(result).toEqual({ outcome: 'version_conflict', expectedVersion: 1, actualVersion: 2 });
    const noStream = await ledger.append({
      stream: 'order-1',
      expectedVersion: 'no_stream',
      actor: null,
      events: [event('X')],
    });
    expect(noStream.outcome).toBe('version_conflict');
    expect(await readStream(database.db, { origin: ORIGIN, cipher: clearBodies }, 'order-1')).toHaveLength(2);
  });

  test('"any" appends whatever the version', async () => {
    const result = await ledger.append({
      stream: 'order-1',
      expectedVersion: 'any',
      actor: null,
      events: [event('X')],
    });
    expect(result.outcome === 'appended' && result.streamVersion).toBe(3);
  });

  test('a retry with the same idempotency key replays the first append and appends nothing', async () => {
    const request = {
      stream: 'order-2',
      expectedVersion: 'no_stream' as const,
      actor: 'user-1',
      idempotencyKey: 'key-1',
      events: [event('OrderPlaced', { total: 5 })],
    };
    const first = await ledger.append(request);
    const again = await ledger.append(request);
    expect(first.outcome).toBe('appended');
    expect(again.outcome).toBe('replayed');
    if (first.outcome !== 'appended' || again.outcome !== 'replayed') return;
    expect(again.entries).toEqual(first.entries);
    expect(await readStream(database.db, { origin: ORIGIN, cipher: clearBodies }, 'order-2')).toHaveLength(1);
  });

  test('the same idempotency key with another append is refused', async () => {
    const result = await ledger.append({
      stream: 'order-2',
      expectedVersion: 'any',
      actor: 'user-1',
      idempotencyKey: 'key-1',
      events: [event('OrderPlaced', { total: 6 })],
    });
    expect(result).toEqual({ outcome: 'idempotency_key_reused', idempotencyKey: 'key-1' });
  });

  test('a retry racing its first attempt in one batch is a replay too', async () => {
    const request = {
      stream: 'order-3',
      expectedVersion: 'any' as const,
      actor: null,
      idempotencyKey: 'key-race',
      events: [event('OrderPlaced')],
    };
    const [a, b] = await Promise.all([ledger.append(request), ledger.append(request)]);
    expect([a.outcome, b.outcome].sort()).toEqual(['appended', 'replayed']);
    expect(await readStream(database.db, { origin: ORIGIN, cipher: clearBodies }, 'order-3')).toHaveLength(1);
  });

  test('event ids are unique across the ledger', async () => {
    const id = '0192f3a0-0000-7000-8000-00000000abcd';
    const first = await ledger.append({
      stream: 's-a',
      expectedVersion: 'any',
      actor: null,
      events: [{ ...event('A'), id }],
    });
    expect(first.outcome).toBe('appended');
    const other = await ledger.append({
      stream: 's-b',
      expectedVersion: 'any',
      actor: null,
      events: [event('B'), { ...event('A'), id }],
    });
    expect(other).toEqual({ outcome: 'duplicate_event_id', eventId: id });
    expect(await readStream(database.db, { origin: ORIGIN, cipher: clearBodies }, 's-b')).toHaveLength(0);
  });

  test.each([
    [{ stream: '' }, 'stream'],
    [{ expectedVersion: -1 }, 'expectedVersion'],
    [{ events: [] }, 'events'],
    [{ events: [{ type: 'lower', data: {} }] }, 'events[0].type'],
    [{ events: [{ type: 'A', data: { n: 1.5 } }] }, 'events[0].data.n'],
    [{ events: [{ type: 'A', data: { s: 'a\u0000b' } }] }, 'events[0].data.s'],
    [{ events: [{ type: 'A', data: [] }] }, 'events[0].data'],
    [{ events: [{ type: 'A', data: {}, id: 'not-a-uuid' }] }, 'events[0].id'],
    [{ events: [{ type: 'A', data: {}, id: '0F8E7D6C-5B4A-4321-8FED-CBA987654321' }] }, 'events[0].id'],
    [{ idempotencyKey: '' }, 'idempotencyKey'],
  ])('bad input %o is refused naming %s', async (override, field) => {
    const request = {
      stream: 'valid',
      expectedVersion: 'any' as const,
      actor: null,
      events: [event('A')],
      ...override,
    };
    const error = await ledger.append(request as never).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AppendValidationError);
    expect((error as AppendValidationError).field).toBe(field);
    expect(await readStream(database.db, { origin: ORIGIN, cipher: clearBodies }, 'valid')).toHaveLength(0);
  });
});

test('an append by the process that wrote the head last is one round trip', async () => {
  const { pool, counter } = countingPool(database.url, 2);
  try {
    const counted = await openLedger({ pool, db: database.db, origin: ORIGIN, key: KEY });
    // The first append reads the head under its lock; after it, this process knows the tip.
    await counted.append({
      stream: 'one-trip',
      expectedVersion: 'no_stream',
      actor: null,
      events: [event('A')],
    });
    counter.statements = 0;
    const next = await counted.append({
      stream: 'one-trip',
      expectedVersion: 1,
      actor: null,
      events: [event('B')],
    });
    expect(next.outcome).toBe('appended');
    expect(counter.statements).toBe(1);
    const fresh = await counted.append({
      stream: 'one-trip-new',
      expectedVersion: 'no_stream',
      actor: null,
      events: [event('C')],
    });
    expect(fresh.outcome).toBe('appended');
    expect(counter.statements).toBe(2);
  } finally {
    await pool.end();
  }
});

test('the rows of some streams before an index (or after a version of each) come in index order, and only theirs', async () => {
  const append = (stream: string, type: string) =>
    ledger.append({ stream, expectedVersion: 'any', actor: null, events: [event(type)] });
  for (const [stream, type] of [
    ['rows-a', 'A1'],
    ['rows-b', 'B1'],
    ['rows-c', 'C1'],
    ['rows-a', 'A2'],
    ['rows-b', 'B2'],
    ['rows-a', 'A3'],
  ] as const)
    await append(stream, type);
  const all = await streamRowsBefore(database.pool, ['rows-a', 'rows-b'], Number.MAX_SAFE_INTEGER);
  expect(all.map((row) => row.type)).toEqual(['A1', 'B1', 'A2', 'B2', 'A3']);
  const before = await streamRowsBefore(database.pool, ['rows-a', 'rows-b'], Number(all[3]?.index));
  expect(before.map((row) => row.type)).toEqual(['A1', 'B1', 'A2']);

  // After each stream's own version: A after its first, B whole (-1), C not asked for.
  const after = await streamRowsAfter(
    database.pool,
    [
      { stream: 'rows-a', version: 1 },
      { stream: 'rows-b', version: -1 },
    ],
    Number.MAX_SAFE_INTEGER,
  );
  expect(after.map((row) => row.type)).toEqual(['B1', 'A2', 'B2', 'A3']);
  const afterBefore = await streamRowsAfter(
    database.pool,
    [
      { stream: 'rows-a', version: 1 },
      { stream: 'rows-b', version: 1 },
    ],
    Number(all[4]?.index),
  );
  expect(afterBefore.map((row) => row.type)).toEqual(['A2', 'B2']);
});

test('the named read of stream rows goes on, on the connection that prepared it, after a migration adds a column', async () => {
  const own = await testLedger();
  // One connection: the read after the change runs where it was prepared before it.
  const pool = createPool(own.database.url, 1);
  const append = (type: string) =>
    own.ledger.append({ stream: 'widened', expectedVersion: 'any', actor: null, events: [event(type)] });
  const types = async () =>
    (
      await streamRowsWithErasures(pool, [{ stream: 'widened', version: -1 }], Number.MAX_SAFE_INTEGER)
    ).rows.map((row) => row.type);
  try {
    await append('Before');
    expect(await types()).toEqual(['Before']);
    await own.database.pool.query('alter table ledger_entries add column noted_later text');
    await append('After');
    expect(await types()).toEqual(['Before', 'After']);
  } finally {
    await pool.end();
    await own.database.close();
  }
});

describe('pipelined batches', () => {
  /** A ledger whose pool counts the statements it runs, with batches of at most `maxBatchEvents`. */
  async function countedLedger(maxBatchEvents: number) {
    const { pool, counter } = countingPool(database.url, 2);
    const counted = await openLedger({ pool, db: database.db, origin: ORIGIN, key: KEY, maxBatchEvents });
    // The first append reads the head under its lock; after it, this process knows the tip.
    await counted.append({
      stream: `warm-${maxBatchEvents}`,
      expectedVersion: 'any',
      actor: null,
      events: [event('W')],
    });
    counter.statements = 0;
    return { counted, counter, pool };
  }

  test('idempotent appends of new streams are one statement a batch, written one behind the other', async () => {
    const { counted, counter, pool } = await countedLedger(5);
    const keyed = (i: number) =>
      counted.append({
        stream: `pipelined-${i}`,
        expectedVersion: 'no_stream',
        actor: null,
        idempotencyKey: `pipelined-key-${i}`,
        events: [event('A', { i })],
      });
    let batches = 0;
    counted.observe({ appended: () => undefined, committed: () => void batches++ });
    try {
      const results = await Promise.all(Array.from({ length: 40 }, (_, i) => keyed(i)));
      expect(results.every((r) => r.outcome === 'appended')).toBe(true);
      // 40 appends, at most 5 a batch (the first goes alone, as nothing is queued behind it yet)
      expect(batches).toBeLessThanOrEqual(9);
      expect(counter.statements).toBe(batches);
      const indexes = results.flatMap((r) => (r.outcome === 'appended' ? r.entries.map((e) => e.index) : []));
      expect(new Set(indexes).size).toBe(40);
      expect(Math.max(...indexes) - Math.min(...indexes)).toBe(39);
      // A retry of a recorded key finds it under the lock, and replays what it wrote.
      const again = await keyed(3);
      expect(again.outcome).toBe('replayed');
      expect(again.outcome === 'replayed' && again.entries[0]?.index).toBe(
        results[3]?.outcome === 'appended' && results[3].entries[0]?.index,
      );
      // Retries of recorded keys, sent together: each replays what its key wrote. They go through
      // the lock, at least two of them in one batch, whose replays are read on its one connection.
      const retries = await Promise.all([5, 6, 7].map(keyed));
      expect(retries.map((r) => r.outcome === 'replayed' && r.entries[0]?.index)).toEqual(
        [5, 6, 7].map((i) => results[i]?.outcome === 'appended' && results[i].entries[0]?.index),
      );
      expect(counter.mostAtOnce).toBe(1);
      expect(
        await readStream(database.db, { origin: ORIGIN, cipher: clearBodies }, 'pipelined-3'),
      ).toHaveLength(1);
      expect((await auditLedger(database.db, KEY)).ok).toBe(true);
    } finally {
      await pool.end();
    }
  });

  test('a batch that fails takes the batch queued behind it to the lock; only the culprit fails', async () => {
    await ledger.append({ stream: 'taken', expectedVersion: 'no_stream', actor: null, events: [event('T')] });
    const { counted, counter, pool } = await countedLedger(3);
    try {
      // 'taken' exists, but this process has not seen it: its batch is written as if new, fails on
      // (stream, version), and is retried append by append; the batches behind it were planned on
      // the tree it would have made, so they apply only after going through the lock.
      const results = await Promise.all(
        ['a', 'b', 'taken', 'c', 'd', 'e', 'f', 'g'].map((name) =>
          counted.append({
            stream: name === 'taken' ? 'taken' : `behind-${name}`,
            expectedVersion: 'no_stream',
            actor: null,
            events: [event('B')],
          }),
        ),
      );
      expect(results.map((r) => r.outcome)).toEqual([
        'appended',
        'appended',
        'version_conflict',
        'appended',
        'appended',
        'appended',
        'appended',
        'appended',
      ]);
      expect(await readStream(database.db, { origin: ORIGIN, cipher: clearBodies }, 'taken')).toHaveLength(1);
      expect((await auditLedger(database.db, KEY)).ok).toBe(true);
      expect(counter.mostAtOnce).toBe(1);
    } finally {
      await pool.end();
    }
  });
});
