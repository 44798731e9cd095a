// Appends, group-committed (group-commit.ts): each batch is planned without I/O (append-plan.ts)
// and written by one statement (append-writer.ts). Indexes are assigned against the ledger head,
// and a batch's statement applies only while the head is still the tree it was planned on, so
// indexes are dense and commit in order; each batch signs one checkpoint for its new head.
import { randomUUID } from 'node:crypto';
import { type Checkpoint, formatRecordedAt, type SigningKey, signCheckpoint } from '@connect/crypto';
import { type Database, randomPool } from '@connect/db';
import type { Kysely } from 'kysely';
import { LRUCache } from 'lru-cache';
import type pg from 'pg';
import {
  canonicalEvents,
  fingerprintOf,
  type LedgerState,
  planAppend,
  type QueuedAppend,
  sameBytes,
  type TreeTip,
} from './append-plan.ts';
import { lockHead, readLedgerState, settleOutcomes, writePlan } from './append-writer.ts';
import { type BodyCipher, clearBodies, type LedgerSource, type SealBody } from './body-cipher.ts';
import { groupCommit } from './group-commit.ts';
import { loadPeaks } from './tree-store.ts';
import type { AppendRequest, AppendResult } from './types.ts';
import { validateAppend } from './validate.ts';

/** Notes kept for signedHere: more than a continuous audit round ever finds new. */
const SIGNED_KEPT = 4096;

export interface AppenderDeps {
  pool: pg.Pool;
  db: Kysely<Database>;
  origin: string;
  key: SigningKey;
  /** How entry bodies are stored; in the clear when absent. */
  cipher?: BodyCipher;
  /** Most events one transaction takes (a single larger append still goes alone). */
  maxBatchEvents?: number;
}

export interface Appender {
  /**
   * Hashes the events as they are when called (their JCS is taken at once) and stores them later:
   * the caller must not change the request's objects until the append has settled.
   */
  append(request: AppendRequest): Promise<AppendResult>;
  /** Waits for queued appends to finish. */
  drain(): Promise<void>;
  /** Tells `observer` about each append and committed batch (for metrics); returns the unsubscribe. */
  observe(observer: AppendObserver): () => void;
  /**
   * The checkpoint of size `treeSize` if this appender signed exactly `note` for it lately: a note
   * identical to one signed here needs no second signature check (the continuous audit's shortcut).
   */
  signedHere(treeSize: number, note: string): Checkpoint | undefined;
}

export interface AppendObserver {
  /** An append settled: its outcome, or `failed` when it threw (database, validation). */
  appended(outcome: AppendResult['outcome'] | 'failed'): void;
  /** A batch committed `events` new entries in one transaction. */
  committed(events: number): void;
}

interface Pending extends QueuedAppend {
  /** Whether to look for its event ids in the ledger: ids a caller chose, or a retry's. */
  checkIds: boolean;
}

export function createAppender(deps: AppenderDeps): Appender {
  const { pool, origin, key } = deps;
  const source: LedgerSource = { origin, cipher: deps.cipher ?? clearBodies };
  // The tree as this process last wrote it. It is used only when the head shows the same size
  // and root (then it is the same tree); after another process appends, peaks are re-read.
  let tip: TreeTip | undefined;
  // Stream versions as of `tip`: exact while the head is still that tip, cleared otherwise.
  const knownVersions = new Map<string, number>();
  let lastRecordedAt = 0;
  // Salts for every append, cut from draws of 4 KiB (256 salts).
  const salts = randomPool(4096);
  const observers = new Set<AppendObserver>();
  /** The notes this appender signed lately, by tree size. */
  const signed = new LRUCache<number, { note: string; checkpoint: Checkpoint }>({ max: SIGNED_KEPT });
  /** Appends whose stream keys are being read or made: not queued yet, but drained too. */
  const preparing = new Set<Promise<void>>();

  const queue = groupCommit<Pending, AppendResult>({
    maxBatchWeight: deps.maxBatchEvents ?? 2000,
    weight: (pending) => pending.request.events.length,
    // A retried append may have committed in the attempt that failed: its ids tell.
    commit: (batch, retry) => commitBatch(retry ? batch.map((p) => ({ ...p, checkIds: true })) : batch),
  });

  function append(request: AppendRequest): Promise<AppendResult> {
    try {
      validateAppend(request);
    } catch (error) {
      for (const observer of observers) observer.appended('failed');
      return Promise.reject(error);
    }
    // Ids are fixed before the first attempt, so a retry can tell whether that attempt committed.
    const events = request.events.map((event) => ({ ...event, id: event.id ?? randomUUID() }));
    const canonical = canonicalEvents(request);
    const pending: Pending = {
      request: { ...request, events },
      fingerprint: fingerprintOf(request, canonical),
      canonical,
      checkIds: request.events.some((event) => event.id !== undefined),
    };
    // The stream's data key is looked up (or made, for a new stream) before the append queues:
    // the batch finds it cached, rather than every append queued behind holding for the round trip.
    const ready = source.cipher.prepare([request.stream]);
    preparing.add(ready);
    ready.then(
      () => preparing.delete(ready),
      () => preparing.delete(ready),
    );
    const result = ready.then(() => queue.submit(pending));
    if (observers.size === 0) return result;
    return result.then(
      (settled) => {
        for (const observer of observers) observer.appended(settled.outcome);
        return settled;
      },
      (error: unknown) => {
        for (const observer of observers) observer.appended('failed');
        throw error;
      },
    );
  }

  async function commitBatch(batch: Pending[]): Promise<AppendResult[]> {
    // Cached since each append queued, unless an erasure was heard meanwhile (then read again).
    const seal = await source.cipher.sealerFor(batch.map((pending) => pending.request.stream));
    const client = await pool.connect();
    // A checked-out client whose connection dies emits 'error' besides failing its query.
    const ignore = () => undefined;
    client.on('error', ignore);
    try {
      const results = await writeBatch(client, batch, seal);
      client.off('error', ignore);
      client.release();
      const appended = results.reduce((n, r) => n + (r.outcome === 'appended' ? r.entries.length : 0), 0);
      if (appended > 0) for (const observer of observers) observer.committed(appended);
      return results;
    } catch (error) {
      await client.query('rollback').catch(() => undefined);
      client.off('error', ignore);
      client.release(true); // a connection that failed mid-transaction is not reused
      throw error;
    }
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

  async function writeBatch(
    client: pg.PoolClient,
    batch: Pending[],
    seal: SealBody | undefined,
  ): Promise<AppendResult[]> {
    // Fast path, one round trip: when this process wrote the head last and the batch needs no
    // lookups, write against that tip in one statement that applies only if the head is still it.
    // A stream expected not to exist is taken as empty: if it does exist, inserting its version 1
    // violates (stream, version) and the batch is retried append by append, with every lookup.
    const fast = batch.every(
      ({ request, checkIds }) =>
        !request.idempotencyKey &&
        !checkIds &&
        (knownVersions.has(request.stream) || request.expectedVersion === 'no_stream'),
    );
    if (fast && tip) {
      const versions = knownVersionsOf(batch);
      for (const { request } of batch) if (!versions.has(request.stream)) versions.set(request.stream, 0);
      const state = { versions, keys: new Map(), existingIds: new Set<string>() };
      const results = await planAndWrite(client, batch, tip, state, { allOrNothing: true, seal });
      if (results) return results;
      // Another process appended, or a command conflicts: decide again under the head's lock.
    }
    const head = await lockHead(client);
    const atTip = tip?.treeSize === head.treeSize && sameBytes(tip.rootHash, head.rootHash);
    if (!atTip || knownVersions.size > 100_000) knownVersions.clear();
    const peaks = atTip && tip ? tip.peaks : await loadPeaks(client, head.treeSize);
    const read = await readLedgerState(client, {
      streams: [...new Set(batch.map((p) => p.request.stream))].filter((s) => !knownVersions.has(s)),
      keys: batch.flatMap((p) => (p.request.idempotencyKey ? [p.request.idempotencyKey] : [])),
      ids: batch.flatMap((p) => (p.checkIds ? p.request.events.map((e) => e.id) : [])),
    });
    const state = { ...read, versions: new Map([...knownVersionsOf(batch), ...read.versions]) };
    const results = await planAndWrite(client, batch, { ...head, peaks }, state, {
      allOrNothing: false,
      seal,
    });
    if (!results) throw new Error('the ledger head moved while locked');
    await client.query('commit');
    return results;
  }

  /**
   * Plans the batch on the tree `base`, writes the plan (if it appends anything) while the head
   * is still `base`, and returns the outcomes; null when nothing was written because the head
   * moved, or (allOrNothing) because some append would not simply be appended.
   */
  async function planAndWrite(
    client: pg.PoolClient,
    batch: Pending[],
    base: TreeTip,
    state: LedgerState,
    { allOrNothing, seal }: { allOrNothing: boolean; seal: SealBody | undefined },
  ): Promise<AppendResult[] | null> {
    lastRecordedAt = Math.max(lastRecordedAt, Date.now());
    const plan = planAppend({
      origin,
      base,
      appends: batch,
      state,
      recordedAt: formatRecordedAt(lastRecordedAt),
      randomBytes: salts,
    });
    const events = batch.reduce((n, p) => n + p.request.events.length, 0);
    if (allOrNothing && plan.entries.length < events) return null;
    if (plan.entries.length === 0) return settleOutcomes(client, source, plan.outcomes);
    const note = signCheckpoint(plan.checkpoint, key);
    if (!(await writePlan(client, base, plan, note, seal))) {
      tip = undefined;
      knownVersions.clear();
      return null;
    }
    // Kept before the commit: were it rolled back, the note stored at this size would be another.
    signed.set(plan.checkpoint.treeSize, { note, checkpoint: plan.checkpoint });
    const results = await settleOutcomes(client, source, plan.outcomes);
    // Safe even before a commit: both are trusted only while the head shows this very tree.
    tip = plan.tree;
    for (const [stream, version] of plan.versions) knownVersions.set(stream, version);
    return results;
  }

  return {
    append,
    async drain() {
      while (preparing.size > 0) await Promise.allSettled([...preparing]);
      await queue.drain();
    },
    observe: (observer) => {
      observers.add(observer);
      return () => observers.delete(observer);
    },
    signedHere(treeSize, note) {
      const kept = signed.get(treeSize);
      return kept?.note === note ? kept.checkpoint : undefined;
    },
  };
}
