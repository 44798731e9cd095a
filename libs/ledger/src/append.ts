// Group commit: appends queue up while one transaction holds the ledger head; the next
// transaction takes everything queued. Indexes are assigned under the head's row lock, so they
// are dense and commit in order, and each batch signs one checkpoint for its new head.
import { randomBytes, randomUUID } from 'node:crypto';
import {
  appendLeaf,
  dataHash,
  type EntryHeader,
  entryLeafHash,
  formatRecordedAt,
  type HashedNode,
  jcs,
  rootFromPeaks,
  SALT_SIZE,
  type SigningKey,
  sha256,
  signCheckpoint,
  toBase64,
} from '@connect/crypto';
import type { Database } from '@connect/db';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import { ENTRY_ROWS_SQL, entryFromRow, entryRowValues } from './rows.ts';
import { loadPeaks } from './tree-store.ts';
import type { AppendRequest, AppendResult, Entry, ExpectedVersion, NewEvent } from './types.ts';
import { validateAppend } from './validate.ts';

export const LEDGER_CHANNEL = 'connect_ledger';
const MAX_BATCHES_IN_FLIGHT = 1;

export interface AppenderDeps {
  pool: pg.Pool;
  db: Kysely<Database>;
  origin: string;
  key: SigningKey;
  /** Most events one transaction takes (a single larger append still goes alone). */
  maxBatchEvents?: number;
}

export interface Appender {
  append(request: AppendRequest): Promise<AppendResult>;
  /** Waits for queued appends to finish. */
  drain(): Promise<void>;
}

interface Pending {
  request: Omit<AppendRequest, 'events'> & { events: (NewEvent & { id: string })[] };
  fingerprint: Uint8Array;
  /** Whether to look for its event ids in the ledger: ids a caller chose, or a retry's. */
  checkIds: boolean;
  resolve(result: AppendResult): void;
  reject(error: unknown): void;
}

interface BatchState {
  versions: Map<string, number>;
  keys: Map<string, { firstIndex: number; count: number; fingerprint: Uint8Array }>;
  existingIds: Set<string>;
}

/** What a retry must match to be the same append: everything but generated ids. */
function fingerprintOf(request: AppendRequest): Uint8Array {
  return sha256(
    jcs({
      stream: request.stream,
      expectedVersion: request.expectedVersion,
      actor: request.actor,
      events: request.events.map((e) => ({
        type: e.type,
        schema: e.schema ?? 1,
        data: e.data,
        meta: e.meta ?? {},
      })),
    }),
  );
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

function versionMatches(expected: ExpectedVersion, actual: number): boolean {
  if (expected === 'any') return true;
  if (expected === 'no_stream') return actual === 0;
  return expected === actual;
}

export function createAppender(deps: AppenderDeps): Appender {
  const { pool, origin, key } = deps;
  const maxBatchEvents = deps.maxBatchEvents ?? 2000;
  const queue: Pending[] = [];
  let inFlight = 0;
  const idleWaiters: (() => void)[] = [];
  // The tree as this process last wrote it. It is used only when the locked head shows the same
  // size and root (then it is the same tree); after another process appends, peaks are re-read.
  let tip: { treeSize: number; rootHash: Uint8Array; peaks: HashedNode[] } | undefined;
  // Stream versions as of `tip`: exact while the head is still that tip, cleared otherwise.
  const knownVersions = new Map<string, number>();
  let lastRecordedAt = 0;

  function append(request: AppendRequest): Promise<AppendResult> {
    try {
      validateAppend(request);
    } catch (error) {
      return Promise.reject(error);
    }
    // Ids are fixed before the first attempt, so a retry can tell whether that attempt committed.
    const events = request.events.map((event) => ({ ...event, id: event.id ?? randomUUID() }));
    return new Promise((resolve, reject) => {
      const checkIds = request.events.some((event) => event.id !== undefined);
      queue.push({
        request: { ...request, events },
        fingerprint: fingerprintOf(request),
        checkIds,
        resolve,
        reject,
      });
      pump();
    });
  }

  // Two batches in flight: while one commits, the next already waits on the head's row lock,
  // so the ledger head is never idle waiting for this process to send the next batch.
  function pump(): void {
    while (inFlight < MAX_BATCHES_IN_FLIGHT && queue.length > 0) {
      const batch: Pending[] = [];
      let events = 0;
      while (queue.length > 0) {
        const next = queue[0] as Pending;
        if (batch.length > 0 && events + next.request.events.length > maxBatchEvents) break;
        batch.push(next);
        events += next.request.events.length;
        queue.shift();
      }
      inFlight++;
      void commitBatch(batch).finally(() => {
        inFlight--;
        pump();
        if (inFlight === 0 && queue.length === 0) for (const resolve of idleWaiters.splice(0)) resolve();
      });
    }
  }

  async function commitBatch(batch: Pending[]): Promise<void> {
    let failure: unknown;
    const client = await pool.connect().catch((error: unknown) => {
      failure = error;
      return undefined;
    });
    if (client) {
      // A checked-out client whose connection dies emits 'error' besides failing its query.
      const ignore = () => undefined;
      client.on('error', ignore);
      try {
        const results = await writeBatch(client, batch);
        client.off('error', ignore);
        client.release();
        batch.forEach((pending, i) => {
          pending.resolve(results[i] as AppendResult);
        });
        return;
      } catch (error) {
        failure = error;
        await client.query('rollback').catch(() => undefined);
        client.off('error', ignore);
        client.release(true); // a connection that failed mid-transaction is not reused
      }
    }
    if (batch.length === 1 && (batch[0] as Pending).checkIds) {
      (batch[0] as Pending).reject(failure);
      return;
    }
    // Something in the batch failed it as a whole: retry each alone, so only the culprit fails.
    for (const pending of batch) await commitBatch([{ ...pending, checkIds: true }]);
  }

  /** The known versions of the batch's streams only (the whole map can be large). */
  function knownVersionsOf(batch: Pending[]): Map<string, number> {
    const versions = new Map<string, number>();
    for (const { request } of batch) {
      const version = knownVersions.get(request.stream);
      if (version !== undefined) versions.set(request.stream, version);
    }
    return versions;
  }

  async function readBatchState(client: pg.PoolClient, batch: Pending[]): Promise<BatchState> {
    const streams = [...new Set(batch.map((p) => p.request.stream))].filter(
      (stream) => !knownVersions.has(stream),
    );
    const keys = batch.flatMap((p) => (p.request.idempotencyKey ? [p.request.idempotencyKey] : []));
    const ids = batch.flatMap((p) => (p.checkIds ? p.request.events.map((e) => e.id) : []));
    const state: BatchState = { versions: knownVersionsOf(batch), keys: new Map(), existingIds: new Set() };
    if (streams.length === 0 && keys.length === 0 && ids.length === 0) return state;
    const { rows } = await client.query<{
      versions: { stream: string; version: number }[] | null;
      keys: { key: string; first_index: number; count: number; fingerprint: string }[] | null;
      ids: string[] | null;
    }>({
      name: 'ledger-batch-state',
      text: `select
         (select json_agg(json_build_object('stream', s.stream, 'version', coalesce(
            (select version from ledger_entries e where e.stream = s.stream order by version desc limit 1), 0)))
          from unnest($1::text[]) as s(stream)) as versions,
         (select json_agg(json_build_object('key', key, 'first_index', first_index, 'count', count,
            'fingerprint', encode(fingerprint, 'base64')))
          from ledger_idempotency where key = any($2::text[])) as keys,
         (select json_agg(id) from ledger_entries where id = any($3::uuid[])) as ids`,
      values: [streams, keys, ids],
    });
    const row = rows[0];
    for (const v of row?.versions ?? []) state.versions.set(v.stream, v.version);
    for (const k of row?.keys ?? []) {
      state.keys.set(k.key, {
        firstIndex: k.first_index,
        count: k.count,
        fingerprint: Buffer.from(k.fingerprint, 'base64'),
      });
    }
    for (const id of row?.ids ?? []) state.existingIds.add(id);
    return state;
  }

  async function entriesByIds(client: pg.PoolClient, ids: string[]): Promise<Entry[]> {
    const { rows } = await client.query(
      'select * from ledger_entries where id = any($1::uuid[]) order by index',
      [ids],
    );
    return rows.map((row) => entryFromRow(row, origin));
  }

  async function entriesInRange(client: pg.PoolClient, from: number, count: number): Promise<Entry[]> {
    const { rows } = await client.query(
      'select * from ledger_entries where index >= $1 and index < $2 order by index',
      [from, from + count],
    );
    return rows.map((row) => entryFromRow(row, origin));
  }

  async function writeBatch(client: pg.PoolClient, batch: Pending[]): Promise<AppendResult[]> {
    // Fast path, one round trip: when this process wrote the head last and the batch needs no
    // lookups, write against that tip in one statement that applies only if the head is still it.
    // A stream expected not to exist is taken as empty: if it does exist, inserting its version 1
    // violates (stream, version) and the batch is retried append by append, with every lookup.
    const fast =
      tip !== undefined &&
      batch.every(
        ({ request, checkIds }) =>
          !request.idempotencyKey &&
          !checkIds &&
          (knownVersions.has(request.stream) || request.expectedVersion === 'no_stream'),
      );
    if (fast && tip) {
      const state: BatchState = { versions: knownVersionsOf(batch), keys: new Map(), existingIds: new Set() };
      for (const { request } of batch)
        if (!state.versions.has(request.stream)) state.versions.set(request.stream, 0);
      const results = await planAndWrite(client, batch, tip, state, { allOrNothing: true });
      if (results) return results;
      // Another process appended, or a command conflicts: decide again under the head's lock.
    }
    const [, headResult] = (await client.query(
      'begin; select tree_size, root_hash from ledger_head for update',
    )) as unknown as [unknown, pg.QueryResult<{ tree_size: number; root_hash: Uint8Array }>];
    const head = headResult.rows[0];
    if (!head) throw new Error('the ledger head is missing; open the ledger first');
    const atTip = tip?.treeSize === head.tree_size && sameBytes(tip.rootHash, head.root_hash);
    if (!atTip || knownVersions.size > 100_000) knownVersions.clear();
    const peaks = atTip && tip ? tip.peaks : await loadPeaks(pool, head.tree_size);
    const state = await readBatchState(client, batch);
    const base = { treeSize: head.tree_size, rootHash: head.root_hash, peaks };
    const results = await planAndWrite(client, batch, base, state, { allOrNothing: false });
    if (!results) throw new Error('the ledger head moved while locked');
    await client.query('commit');
    return results;
  }

  /**
   * Decides each append of the batch against the tree `base` and the stream state, writes the
   * entries, subtree hashes, checkpoint and head in one statement that applies only while the
   * head is still `base`, and returns the outcomes; null when nothing was written because the
   * head moved, or (allOrNothing) because some append did not simply succeed.
   */
  async function planAndWrite(
    client: pg.PoolClient,
    batch: Pending[],
    base: { treeSize: number; rootHash: Uint8Array; peaks: HashedNode[] },
    state: BatchState,
    { allOrNothing }: { allOrNothing: boolean },
  ): Promise<AppendResult[] | null> {
    const treeSize = base.treeSize;
    let peaks = base.peaks;
    lastRecordedAt = Math.max(lastRecordedAt, Date.now());
    const recordedAt = formatRecordedAt(lastRecordedAt);
    const results: (AppendResult | (() => Promise<AppendResult>))[] = [];
    const written: Entry[] = [];
    const treeRows: HashedNode[] = [];
    const keyRows: {
      key: string;
      stream: string;
      firstIndex: number;
      count: number;
      fingerprint: Uint8Array;
    }[] = [];
    let nextIndex = treeSize;

    for (const { request, fingerprint } of batch) {
      const { stream, idempotencyKey } = request;
      const ids = request.events.map((e) => e.id);
      const known = idempotencyKey ? state.keys.get(idempotencyKey) : undefined;
      if (idempotencyKey && known) {
        if (!sameBytes(known.fingerprint, fingerprint)) {
          results.push({ outcome: 'idempotency_key_reused', idempotencyKey });
        } else {
          const { firstIndex, count } = known;
          results.push(async () => {
            const entries =
              firstIndex >= treeSize
                ? written.filter((e) => e.index >= firstIndex && e.index < firstIndex + count)
                : await entriesInRange(client, firstIndex, count);
            return { outcome: 'replayed', entries, streamVersion: entries.at(-1)?.version ?? 0 };
          });
        }
        continue;
      }
      const alreadyCommitted = ids.filter((id) => state.existingIds.has(id));
      if (alreadyCommitted.length === ids.length) {
        // An earlier attempt of this very append committed (its ids are fixed before the first try).
        results.push(async () => {
          const entries = await entriesByIds(client, ids);
          const sameAppend = entries.length === ids.length && entries.every((e) => e.stream === stream);
          return sameAppend
            ? { outcome: 'appended', entries, streamVersion: entries.at(-1)?.version ?? 0 }
            : { outcome: 'duplicate_event_id', eventId: ids[0] as string };
        });
        continue;
      }
      if (alreadyCommitted.length > 0) {
        results.push({ outcome: 'duplicate_event_id', eventId: alreadyCommitted[0] as string });
        continue;
      }
      const actual = state.versions.get(stream) ?? 0;
      if (!versionMatches(request.expectedVersion, actual)) {
        results.push({
          outcome: 'version_conflict',
          expectedVersion: request.expectedVersion,
          actualVersion: actual,
        });
        continue;
      }

      const salts = randomBytes(SALT_SIZE * request.events.length);
      const entries: Entry[] = request.events.map((event, i) => {
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
          dataHash: dataHash(salt, event.data),
        };
        const leaf = entryLeafHash(header);
        const appended = appendLeaf(peaks, header.index, leaf);
        peaks = appended.peaks;
        for (const node of appended.completed) if (node.level > 0) treeRows.push(node);
        return {
          ...header,
          data: event.data,
          salt: toBase64(salt),
          redacted: false,
          leafHash: toBase64(leaf),
        };
      });
      if (idempotencyKey) {
        state.keys.set(idempotencyKey, { firstIndex: nextIndex, count: entries.length, fingerprint });
        keyRows.push({
          key: idempotencyKey,
          stream,
          firstIndex: nextIndex,
          count: entries.length,
          fingerprint,
        });
      }
      for (const id of ids) state.existingIds.add(id);
      nextIndex += entries.length;
      state.versions.set(stream, actual + entries.length);
      written.push(...entries);
      results.push({ outcome: 'appended', entries, streamVersion: actual + entries.length });
    }

    if (allOrNothing && written.length < batch.reduce((n, p) => n + p.request.events.length, 0)) return null;
    if (written.length === 0) return Promise.all(results.map((r) => (typeof r === 'function' ? r() : r)));

    const rootHash = rootFromPeaks(peaks);
    const note = signCheckpoint({ origin, treeSize: nextIndex, rootHash }, key);
    const bytes = (b64: string | Uint8Array) =>
      typeof b64 === 'string'
        ? Buffer.from(b64, 'base64')
        : Buffer.from(b64.buffer, b64.byteOffset, b64.byteLength);
    const { rows } = await client.query({
      // Named, so each connection parses and plans it once.
      name: 'ledger-append-batch',
      text: `with head as (
         update ledger_head set tree_size = $22, root_hash = $23
         where tree_size = $25 and root_hash = $26 returning tree_size),
       entries as (${ENTRY_ROWS_SQL} where exists (select from head)),
       tree as (
         insert into ledger_tree (level, idx, hash)
         select * from unnest($14::smallint[], $15::bigint[], $16::bytea[]) where exists (select from head)),
       keys as (
         insert into ledger_idempotency (key, stream, first_index, count, fingerprint)
         select * from unnest($17::text[], $18::text[], $19::bigint[], $20::int[], $21::bytea[])
         where exists (select from head)),
       checkpoint as (
         insert into ledger_checkpoints (tree_size, root_hash, note)
         select $22, $23, $24 where exists (select from head))
       select pg_notify('${LEDGER_CHANNEL}', tree_size::text) from head`,
      values: [
        ...entryRowValues(written),
        treeRows.map((n) => n.level),
        treeRows.map((n) => n.index),
        treeRows.map((n) => bytes(n.hash)),
        keyRows.map((k) => k.key),
        keyRows.map((k) => k.stream),
        keyRows.map((k) => k.firstIndex),
        keyRows.map((k) => k.count),
        keyRows.map((k) => bytes(k.fingerprint)),
        nextIndex,
        bytes(rootHash),
        note,
        treeSize,
        bytes(base.rootHash),
      ],
    });
    if (rows.length === 0) {
      tip = undefined;
      knownVersions.clear();
      return null;
    }
    const settled = await Promise.all(results.map((r) => (typeof r === 'function' ? r() : r)));
    // Safe even before a commit: both are trusted only while the head shows this very tree.
    tip = { treeSize: nextIndex, rootHash, peaks };
    for (const [stream, version] of state.versions) knownVersions.set(stream, version);
    return settled;
  }

  return {
    append,
    drain: () =>
      inFlight === 0 && queue.length === 0
        ? Promise.resolve()
        : new Promise((resolve) => idleWaiters.push(resolve)),
  };
}
