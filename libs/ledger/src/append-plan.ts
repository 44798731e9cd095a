// What a batch of appends does to the ledger, decided without I/O: given the tree it goes onto
// and what is known of the streams, idempotency keys and event ids, the planner gives each
// append its outcome, and the appended ones their entries (indexes, versions, dataHash, leaf
// hash), the subtree hashes they complete, and the new tree and checkpoint. Time and salts come
// in as arguments, so a plan is reproducible.
import {
  appendLeaf,
  type Checkpoint,
  dataHash,
  type EntryHeader,
  entryLeafHash,
  type HashedNode,
  jcsObjectWriter,
  jcsText,
  rootFromPeaks,
  SALT_SIZE,
  sha256,
  toBase64,
  utf8,
} from '@connect/crypto';
import type { AppendRequest, AppendResult, Entry, ExpectedVersion, NewEvent } from './types.ts';

/** A tree by its size, root and peaks: all an append needs of it. */
export interface TreeTip {
  treeSize: number;
  rootHash: Uint8Array;
  peaks: HashedNode[];
}

/** An append as queued: its event ids fixed (so a retry can tell whether it committed). */
export interface QueuedAppend {
  request: Omit<AppendRequest, 'events'> & { events: (NewEvent & { id: string })[] };
  /** What a retry must match to be the same append (see fingerprintOf). */
  fingerprint: Uint8Array;
  /** Its events' data and meta in JCS, made once for the fingerprint, dataHash and leaf hash. */
  canonical: CanonicalEvent[];
}

export interface CanonicalEvent {
  data: string;
  meta: string;
}

export function canonicalEvents(request: AppendRequest): CanonicalEvent[] {
  return request.events.map((e) => ({ data: jcsText(e.data), meta: jcsText(e.meta ?? {}) }));
}

export interface IdempotencyRecord {
  firstIndex: number;
  count: number;
  fingerprint: Uint8Array;
}

/** What the batch is decided against, besides the tree. */
export interface LedgerState {
  /** Current versions of the batch's streams (a stream absent here has none). */
  versions: ReadonlyMap<string, number>;
  /** Recorded idempotency keys among the batch's. */
  keys: ReadonlyMap<string, IdempotencyRecord>;
  /** Event ids among the batch's that are in the ledger already. */
  existingIds: ReadonlySet<string>;
}

/** An outcome the plan cannot give alone: it needs entries committed before the batch. */
export type StoredOutcome =
  /** A retry of an idempotent append committed earlier: replays its entries. */
  | { outcome: 'replay_stored'; firstIndex: number; count: number }
  /** Every event id is in the ledger: an earlier attempt of this very append, if they are its entries. */
  | { outcome: 'committed_before'; stream: string; ids: string[] };

export type PlannedOutcome = AppendResult | StoredOutcome;

export interface IdempotencyRow extends IdempotencyRecord {
  key: string;
  stream: string;
}

export interface AppendPlan {
  /** One per append, in batch order. */
  outcomes: PlannedOutcome[];
  /** The new entries, in index order from the base tree's size. */
  entries: Entry[];
  /** The subtree hashes (level ≥ 1) the new entries complete; level 0 is each entry's leaf hash. */
  treeRows: HashedNode[];
  idempotencyRows: IdempotencyRow[];
  /** The tree with the new entries. */
  tree: TreeTip;
  /** What to sign for the new tree. */
  checkpoint: Checkpoint;
  /** Stream versions after the batch: the state's, with the appended streams moved on. */
  versions: Map<string, number>;
}

const json = JSON.stringify;
const eventJcs = jcsObjectWriter(['type', 'schema', 'data', 'meta']);
const appendJcs = jcsObjectWriter(['stream', 'expectedVersion', 'actor', 'events']);

/**
 * What a retry must match to be the same append: everything but generated ids. It is the SHA-256
 * of the JCS of {stream, expectedVersion, actor, events: [{type, schema, data, meta}]}, put
 * together from the events' JCS (a test holds it to the library).
 */
export function fingerprintOf(
  request: AppendRequest,
  canonical: readonly CanonicalEvent[] = canonicalEvents(request),
): Uint8Array {
  const events = request.events.map((e, i) => {
    const { data, meta } = canonical[i] as CanonicalEvent;
    return eventJcs({ data, meta, schema: json(e.schema ?? 1), type: json(e.type) });
  });
  return sha256(
    utf8(
      appendJcs({
        actor: json(request.actor),
        events: `[${events.join(',')}]`,
        expectedVersion: json(request.expectedVersion),
        stream: json(request.stream),
      }),
    ),
  );
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

function versionMatches(expected: ExpectedVersion, actual: number): boolean {
  if (expected === 'any') return true;
  if (expected === 'no_stream') return actual === 0;
  return expected === actual;
}

export function planAppend(input: {
  origin: string;
  base: TreeTip;
  appends: readonly QueuedAppend[];
  state: LedgerState;
  /** The batch's commit time, as recordedAt. */
  recordedAt: string;
  /** `bytes` random bytes, for salts. */
  randomBytes(bytes: number): Uint8Array;
}): AppendPlan {
  const { origin, base, recordedAt } = input;
  // Appends later in the batch see the earlier ones' streams, keys and ids.
  const versions = new Map(input.state.versions);
  const keys = new Map(input.state.keys);
  const existingIds = new Set(input.state.existingIds);
  let peaks = base.peaks;
  let nextIndex = base.treeSize;
  const outcomes: PlannedOutcome[] = [];
  const entries: Entry[] = [];
  const treeRows: HashedNode[] = [];
  const idempotencyRows: IdempotencyRow[] = [];

  for (const { request, fingerprint, canonical } of input.appends) {
    const { stream, idempotencyKey } = request;
    const ids = request.events.map((e) => e.id);
    const known = idempotencyKey ? keys.get(idempotencyKey) : undefined;
    if (idempotencyKey && known) {
      if (!sameBytes(known.fingerprint, fingerprint)) {
        outcomes.push({ outcome: 'idempotency_key_reused', idempotencyKey });
      } else if (known.firstIndex >= base.treeSize) {
        const replayed = entries.filter(
          (e) => e.index >= known.firstIndex && e.index < known.firstIndex + known.count,
        );
        outcomes.push({
          outcome: 'replayed',
          entries: replayed,
          streamVersion: replayed.at(-1)?.version ?? 0,
        });
      } else {
        outcomes.push({ outcome: 'replay_stored', firstIndex: known.firstIndex, count: known.count });
      }
      continue;
    }
    const alreadyCommitted = ids.filter((id) => existingIds.has(id));
    if (alreadyCommitted.length === ids.length) {
      outcomes.push({ outcome: 'committed_before', stream, ids });
      continue;
    }
    if (alreadyCommitted.length > 0) {
      outcomes.push({ outcome: 'duplicate_event_id', eventId: alreadyCommitted[0] as string });
      continue;
    }
    const actual = versions.get(stream) ?? 0;
    if (!versionMatches(request.expectedVersion, actual)) {
      outcomes.push({
        outcome: 'version_conflict',
        expectedVersion: request.expectedVersion,
        actualVersion: actual,
      });
      continue;
    }

    const salts = input.randomBytes(SALT_SIZE * request.events.length);
    const appended: Entry[] = request.events.map((event, i) => {
      const salt = salts.subarray(i * SALT_SIZE, (i + 1) * SALT_SIZE);
      const header: EntryHeader = {
        ledger: origin,
        index: nextIndex + i,
        id: event.id,
        stream,
        version: actual + 1 + i,
        type: event.type,
        schema: event.schema ?? 1,
        recordedAt,
        actor: request.actor,
        meta: event.meta ?? {},
        dataHash: dataHash(salt, event.data, canonical[i]?.data),
      };
      const leaf = entryLeafHash(header, canonical[i]?.meta);
      const grown = appendLeaf(peaks, header.index, leaf);
      peaks = grown.peaks;
      for (const node of grown.completed) if (node.level > 0) treeRows.push(node);
      // Field by field: in this V8, spreading an object into a literal that adds keys costs
      // microseconds (8 µs for an entry), more than the rest of planning it.
      return {
        ledger: header.ledger,
        index: header.index,
        id: header.id,
        stream: header.stream,
        version: header.version,
        type: header.type,
        schema: header.schema,
        recordedAt: header.recordedAt,
        actor: header.actor,
        meta: header.meta,
        dataHash: header.dataHash,
        data: event.data,
        salt: toBase64(salt),
        redacted: false,
        leafHash: toBase64(leaf),
      };
    });
    if (idempotencyKey) {
      const record = { firstIndex: nextIndex, count: appended.length, fingerprint };
      keys.set(idempotencyKey, record);
      idempotencyRows.push({ key: idempotencyKey, stream, ...record });
    }
    for (const id of ids) existingIds.add(id);
    nextIndex += appended.length;
    versions.set(stream, actual + appended.length);
    entries.push(...appended);
    outcomes.push({ outcome: 'appended', entries: appended, streamVersion: actual + appended.length });
  }

  const rootHash = entries.length === 0 ? base.rootHash : rootFromPeaks(peaks);
  return {
    outcomes,
    entries,
    treeRows,
    idempotencyRows,
    tree: { treeSize: nextIndex, rootHash, peaks },
    checkpoint: { origin, treeSize: nextIndex, rootHash },
    versions,
  };
}
