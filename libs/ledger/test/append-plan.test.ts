// The append planner, without a database: its hashes and roots against libs/crypto and the
// ledger's test vectors.
import {
  appendLeaf,
  dataHash,
  EMPTY_ROOT,
  entryLeafHash,
  fromBase64,
  type HashedNode,
  type JsonObject,
  jcs,
  jcsText,
  leafHash,
  nodeHash,
  rootFromLeaves,
  sha256,
  toBase64,
} from '@connect/crypto';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import entryVector from '../../crypto/test/fixtures/entry.json' with { type: 'json' };
import large from '../../crypto/test/fixtures/merkle-large.json' with { type: 'json' };
import {
  canonicalEvents,
  fingerprintOf,
  type LedgerState,
  planAppend,
  type QueuedAppend,
  type TreeTip,
} from '../src/append-plan.ts';
import type { AppendRequest } from '../src/types.ts';

const ORIGIN = 'test.connect.local/ledger';
const RECORDED_AT = '2026-01-02T03:04:05.678Z';
const largeLeaves = Array.from({ length: 1025 }, (_, i) => leafHash(new TextEncoder().encode(String(i))));

/** Bytes 0, 1, 2, … across calls: distinct salts, and every plan reproducible. */
function countingBytes(): (bytes: number) => Uint8Array {
  let next = 0;
  return (bytes) => Uint8Array.from({ length: bytes }, () => next++ % 251);
}

function treeOf(leaves: readonly Uint8Array[]): TreeTip {
  let peaks: HashedNode[] = [];
  leaves.forEach((leaf, index) => {
    peaks = appendLeaf(peaks, index, leaf).peaks;
  });
  return { treeSize: leaves.length, rootHash: rootFromLeaves(leaves), peaks };
}

let ids = 0;
const nextId = () => `00000000-0000-4000-8000-${String(++ids).padStart(12, '0')}`;

function queued(
  request: Partial<Omit<AppendRequest, 'events'>> & {
    events?: { type: string; data?: JsonObject; id?: string }[];
  },
): QueuedAppend {
  const full: AppendRequest = {
    stream: 'order-1',
    expectedVersion: 'any',
    actor: null,
    ...request,
    events: (request.events ?? [{ type: 'Happened' }]).map((e) => ({ ...e, data: e.data ?? {} })),
  };
  return {
    request: { ...full, events: full.events.map((e) => ({ ...e, id: e.id ?? nextId() })) },
    fingerprint: fingerprintOf(full),
    canonical: canonicalEvents(full),
  };
}

const noState: LedgerState = { versions: new Map(), keys: new Map(), existingIds: new Set() };

function plan(base: TreeTip, appends: QueuedAppend[], state: LedgerState = noState) {
  return planAppend({
    origin: ORIGIN,
    base,
    appends,
    state,
    recordedAt: RECORDED_AT,
    randomBytes: countingBytes(),
  });
}

describe('entries', () => {
  test('the entry vector: same dataHash and leaf hash, at index 0 of an empty tree', () => {
    const { entry } = entryVector;
    const result = planAppend({
      origin: entryVector.origin,
      base: { treeSize: 0, rootHash: EMPTY_ROOT, peaks: [] },
      appends: [
        {
          request: {
            stream: entry.stream,
            expectedVersion: 'no_stream',
            actor: entry.actor,
            events: [
              { id: entry.id, type: entry.type, schema: entry.schema, data: entry.data, meta: entry.meta },
            ],
          },
          fingerprint: new Uint8Array(32),
          canonical: [{ data: jcsText(entry.data), meta: jcsText(entry.meta) }],
        },
      ],
      state: noState,
      recordedAt: entry.recordedAt,
      randomBytes: () => fromBase64(entry.salt),
    });
    expect(result.entries).toEqual([
      { ...entry, ledger: entryVector.origin, redacted: false, leafHash: entryVector.leafHash },
    ]);
    expect(result.entries[0]?.dataHash).toBe(entryVector.dataHash);
    expect(toBase64(result.tree.rootHash)).toBe(entryVector.leafHash);
    expect(result.checkpoint).toEqual({
      origin: entryVector.origin,
      treeSize: 1,
      rootHash: result.tree.rootHash,
    });
  });

  test("indexes follow the tree, versions follow the stream, hashes are libs/crypto's", () => {
    const base = treeOf(largeLeaves.slice(0, 5));
    const state = { ...noState, versions: new Map([['order-1', 3]]) };
    const planned = plan(
      base,
      [
        queued({ events: [{ type: 'A', data: { n: 1 } }, { type: 'B' }] }),
        queued({ stream: 'order-2', expectedVersion: 'no_stream', actor: 'ana' }),
        queued({ expectedVersion: 5 }),
      ],
      state,
    );
    expect(planned.entries.map((e) => [e.index, e.stream, e.version])).toEqual([
      [5, 'order-1', 4],
      [6, 'order-1', 5],
      [7, 'order-2', 1],
      [8, 'order-1', 6],
    ]);
    for (const entry of planned.entries) {
      expect(entry.recordedAt).toBe(RECORDED_AT);
      expect(entry.dataHash).toBe(dataHash(fromBase64(entry.salt as string), entry.data as JsonObject));
      expect(entry.leafHash).toBe(toBase64(entryLeafHash(entry)));
    }
    expect(new Set(planned.entries.map((e) => e.salt)).size).toBe(4);
    expect(planned.versions).toEqual(
      new Map([
        ['order-1', 6],
        ['order-2', 1],
      ]),
    );
    expect(state.versions).toEqual(new Map([['order-1', 3]])); // the input is not changed
  });
});

describe('the tree', () => {
  test.each([
    [0, 1],
    [1, 3],
    [255, 2],
    [1000, 25],
    [1023, 2],
  ])('from size %i, %i entries: the root, the checkpoint and every completed subtree', (size, count) => {
    // The base tree is the merkle-large vector's (leaf i's data is the digits of i).
    const baseLeaves = largeLeaves.slice(0, size);
    const base = treeOf(baseLeaves);
    const vectorRoot = (large.roots as Record<string, string>)[String(size)];
    if (vectorRoot) expect(toBase64(base.rootHash)).toBe(vectorRoot);

    const result = plan(base, [
      queued({ events: Array.from({ length: count }, () => ({ type: 'Counted' })) }),
    ]);
    const leaves = [...baseLeaves, ...result.entries.map((e) => fromBase64(e.leafHash))];
    expect(result.tree.treeSize).toBe(size + count);
    expect(toBase64(result.tree.rootHash)).toBe(toBase64(rootFromLeaves(leaves)));
    expect(result.checkpoint).toEqual({
      origin: ORIGIN,
      treeSize: size + count,
      rootHash: result.tree.rootHash,
    });
    expect(result.tree.peaks).toEqual(treeOf(leaves).peaks);

    // Exactly the subtrees (level ≥ 1) whose last leaf is a new one, each with the hash of its leaves.
    const expected: string[] = [];
    for (let level = 1, width = 2; width <= size + count; level++, width *= 2)
      for (let index = 0; (index + 1) * width <= size + count; index++)
        if ((index + 1) * width > size) expected.push(`${level}/${index}`);
    expect(result.treeRows.map((n) => `${n.level}/${n.index}`).sort()).toEqual(expected.sort());
    for (const node of result.treeRows) {
      const width = 2 ** node.level;
      const subtree = rootFromLeaves(leaves.slice(node.index * width, (node.index + 1) * width));
      expect(toBase64(node.hash)).toBe(toBase64(subtree));
    }
  });

  test("a node hash the planner completes is RFC 9162's", () => {
    const result = plan(treeOf([]), [queued({ events: [{ type: 'A' }, { type: 'B' }] })]);
    const [a, b] = result.entries.map((e) => fromBase64(e.leafHash)) as [Uint8Array, Uint8Array];
    expect(result.treeRows.map((n) => [n.level, n.index, toBase64(n.hash)])).toEqual([
      [1, 0, toBase64(nodeHash(a, b))],
    ]);
  });

  test('a batch that appends nothing leaves the tree as it was', () => {
    const base = treeOf(largeLeaves.slice(0, 3));
    const result = plan(base, [queued({ expectedVersion: 2 })]);
    expect(result.entries).toEqual([]);
    expect(result.treeRows).toEqual([]);
    expect(result.tree).toEqual(base);
  });
});

describe('outcomes', () => {
  const base = treeOf(largeLeaves.slice(0, 10));

  test('expected versions: a number, "no_stream" and "any", against the state and the batch', () => {
    const state = { ...noState, versions: new Map([['s', 2]]) };
    const result = plan(
      base,
      [
        queued({ stream: 's', expectedVersion: 2 }),
        queued({ stream: 's', expectedVersion: 2 }),
        queued({ stream: 's', expectedVersion: 'no_stream' }),
        queued({ stream: 't', expectedVersion: 'no_stream' }),
        queued({ stream: 't', expectedVersion: 'any' }),
      ],
      state,
    );
    expect(result.outcomes.map((o) => (o.outcome === 'appended' ? o.streamVersion : o))).toEqual([
      3,
      { outcome: 'version_conflict', expectedVersion: 2, actualVersion: 3 },
      { outcome: 'version_conflict', expectedVersion: 'no_stream', actualVersion: 3 },
      1,
      2,
    ]);
  });

  test('idempotency keys: a retry in the batch replays, another body is refused, an older key is read back', () => {
    const first = queued({ idempotencyKey: 'k1' });
    const retry = {
      ...first,
      request: { ...first.request, events: first.request.events.map((e) => ({ ...e, id: nextId() })) },
    };
    const other = queued({ idempotencyKey: 'k1', events: [{ type: 'Other' }] });
    const older = queued({ idempotencyKey: 'k0' });
    const state = {
      ...noState,
      keys: new Map([['k0', { firstIndex: 4, count: 2, fingerprint: older.fingerprint }]]),
    };
    const result = plan(base, [first, retry, other, older], state);
    const appended = result.outcomes[0];
    expect(appended?.outcome).toBe('appended');
    expect(result.outcomes.slice(1)).toEqual([
      {
        outcome: 'replayed',
        entries: appended?.outcome === 'appended' ? appended.entries : [],
        streamVersion: 1,
      },
      { outcome: 'idempotency_key_reused', idempotencyKey: 'k1' },
      { outcome: 'replay_stored', firstIndex: 4, count: 2 },
    ]);
    expect(result.idempotencyRows).toEqual([
      { key: 'k1', stream: 'order-1', firstIndex: 10, count: 1, fingerprint: first.fingerprint },
    ]);
  });

  test('event ids: all in the ledger is an earlier attempt to read back, some of them a duplicate', () => {
    const committed = queued({ events: [{ type: 'A' }, { type: 'B' }] });
    const [a, b] = committed.request.events.map((e) => e.id) as [string, string];
    const partly = queued({ events: [{ type: 'C' }, { type: 'D', id: b }] });
    const again = queued({ stream: 'other', events: [{ type: 'E' }] });
    const repeated = { ...again, request: { ...again.request, stream: 'another' } };
    const state = { ...noState, existingIds: new Set([a, b]) };
    const result = plan(base, [committed, partly, again, repeated], state);
    expect(result.outcomes).toEqual([
      { outcome: 'committed_before', stream: 'order-1', ids: [a, b] },
      { outcome: 'duplicate_event_id', eventId: b },
      expect.objectContaining({ outcome: 'appended' }),
      // Ids this batch appends count as in the ledger: reading them back shows whose they are.
      { outcome: 'committed_before', stream: 'another', ids: [again.request.events[0]?.id] },
    ]);
    expect(result.entries).toHaveLength(1);
  });
});

describe('the fingerprint', () => {
  test('is the SHA-256 of the JCS of the append without its ids, as the library writes it', () => {
    const text = fc.string({ unit: 'binary' });
    const object = fc.dictionary(text, fc.jsonValue()) as fc.Arbitrary<JsonObject>;
    const request: fc.Arbitrary<AppendRequest> = fc.record({
      stream: text,
      expectedVersion: fc.oneof(fc.constantFrom('any' as const, 'no_stream' as const), fc.nat()),
      actor: fc.option(text),
      events: fc.array(
        fc.record({
          type: text,
          schema: fc.option(fc.nat(), { nil: undefined }),
          data: object,
          meta: fc.option(object, { nil: undefined }),
        }),
        { minLength: 1, maxLength: 4 },
      ),
    });
    fc.assert(
      fc.property(request, (r) => {
        const whole = {
          stream: r.stream,
          expectedVersion: r.expectedVersion,
          actor: r.actor,
          events: r.events.map((e) => ({
            type: e.type,
            schema: e.schema ?? 1,
            data: e.data,
            meta: e.meta ?? {},
          })),
        };
        expect(fingerprintOf(r)).toEqual(sha256(jcs(whole as JsonObject)));
      }),
    );
  });
});
