import { createPool } from '@connect/db';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { TestDatabase } from '../../../test/support/database.ts';
import {
  AppendValidationError,
  clearBodies,
  type Ledger,
  openLedger,
  readStream,
  streamRowsBefore,
} from '../src/index.ts';
import { event, KEY, ORIGIN, testLedger } from './support.ts';

let database: TestDatabase;
let ledger: Ledger;

beforeAll(async () => {
  ({ database, ledger } = await testLedger());
});
afterAll(() => database.close());

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
  let statements = 0;
  const pool = createPool(database.url, 2);
  pool.on('connect', (client) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    client.query = ((...args: unknown[]) => {
      statements++;
      return query(...args);
    }) as typeof client.query;
  });
  try {
    const counted = await openLedger({ pool, db: database.db, origin: ORIGIN, key: KEY });
    // The first append reads the head under its lock; after it, this process knows the tip.
    await counted.append({
      stream: 'one-trip',
      expectedVersion: 'no_stream',
      actor: null,
      events: [event('A')],
    });
    statements = 0;
    const next = await counted.append({
      stream: 'one-trip',
      expectedVersion: 1,
      actor: null,
      events: [event('B')],
    });
    expect(next.outcome).toBe('appended');
    expect(statements).toBe(1);
    const fresh = await counted.append({
      stream: 'one-trip-new',
      expectedVersion: 'no_stream',
      actor: null,
      events: [event('C')],
    });
    expect(fresh.outcome).toBe('appended');
    expect(statements).toBe(2);
  } finally {
    await pool.end();
  }
});

test('the rows of some streams before an index come in index order, and only theirs', async () => {
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
});
