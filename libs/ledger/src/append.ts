// Appends, group-committed (group-commit.ts): each batch is planned without I/O (append-plan.ts)
// and written by one statement (append-writer.ts). Indexes are assigned against the ledger head,
// and a batch's statement applies only while the head is still the tree it was planned on, so
// indexes are dense and commit in order; each batch signs one checkpoint for its new head.
// Batches this process can plan without reading the ledger are pipelined: the next is planned on
// the tree the one in flight makes and queued behind it on its connection, so the head is never
// idle while a batch is being planned.
import { randomUUID } from 'node:crypto';
import { type Checkpoint, formatRecordedAt, type SigningKey, signCheckpoint } from '@connect/crypto';
import { type Database, inTurn, type NewDataKey, randomPool } from '@connect/db';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import {
  type AppendPlan,
  canonicalEvents,
  fingerprintOf,
  type LedgerState,
  planAppend,
  type QueuedAppend,
  sameBytes,
  type TreeTip,
} from './append-plan.ts';
import { lockHead, readLedgerState, settleOutcomes, writePlan } from './append-writer.ts';
import { type BodyCipher, clearBodies, type LedgerSource, type Sealer } from './body-cipher.ts';
import { groupCommit } from './group-commit.ts';
import { signedNotes } from './signed-notes.ts';
import { loadPeaks } from './tree-store.ts';
import type { AppendRequest, AppendResult } from './types.ts';
import { validateAppend } from './validate.ts';

/** Most stream versions kept in memory, by this process's tip or by a pipeline in flight. */
const MAX_KNOWN_STREAMS = 100_000;

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
  /**
   * A checkpoint was signed for a batch about to commit (one that fails leaves its note unstored):
   * what a continuous audit on another thread of this process is told, as signedHere tells one here.
   */
  signed?(checkpoint: Checkpoint, note: string): void;
}

interface Pending extends QueuedAppend {
  /** Whether to look for its event ids in the ledger: ids a caller chose, or a retry's. */
  checkIds: boolean;
}

/** Pipelined writes in flight on one connection, and the tree and stream versions the newest makes. */
interface Pipeline {
  client: pg.PoolClient;
  writes: number;
  /** Whether a write on it failed (then the connection is not reused). */
  failed: boolean;
  tip: TreeTip;
  versions: Map<string, number>;
}

const ignore = () => undefined;

/** An append that begins its stream: its key is made with its batch, and stored by the batch's statement. */
const beginsStream = (request: Pick<AppendRequest, 'expectedVersion'>) =>
  request.expectedVersion === 'no_stream';

/** A batch's outcomes, and the keys of new streams its statement stored. */
interface Written {
  results: AppendResult[];
  newKeys: readonly NewDataKey[];
}

/** The keys made for new streams that the plan appends to: its statement stores them. */
function newKeysOf(sealer: Sealer | undefined, plan: AppendPlan): NewDataKey[] {
  if (!sealer || sealer.newKeys.size === 0) return [];
  const streams = new Set(plan.entries.map((entry) => entry.stream));
  const keys: NewDataKey[] = [];
  for (const [stream, key] of sealer.newKeys) if (streams.has(stream)) keys.push(key);
  return keys;
}

/** A new stream's key that the statement could not store: one is stored already. */
const isDataKeyStored = (error: unknown) =>
  error instanceof Error &&
  (error as { code?: string }).code === '23505' &&
  (error as { constraint?: string }).constraint === 'data_keys_pkey';

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
  const signed = signedNotes();
  const keepSigned = (checkpoint: Checkpoint, note: string) => {
    signed.keep(checkpoint, note);
    for (const observer of observers) observer.signed?.(checkpoint, note);
  };
  /** Appends whose stream keys are being read or made: not queued yet, but drained too. */
  const preparing = new Set<Promise<void>>();
  let pipeline: Pipeline | undefined;

  const queue = groupCommit<Pending, AppendResult>({
    maxBatchWeight: deps.maxBatchEvents ?? 2000,
    weight: (pending) => pending.request.events.length,
    // A retried append may have committed in the attempt that failed: its ids tell.
    commit: (batch, retry, sent) =>
      commitBatch(retry ? batch.map((p) => ({ ...p, checkIds: true })) : batch, retry, sent),
    failsWholeBatch: (error) => unconnected.has(error as object),
  });

  function append(request: AppendRequest): Promise<AppendResult> {
    try {
      validateAppend(request);
    } catch (error) {
      for (const observer of observers) observer.appended('failed');
      return Promise.reject(error);
    }
    // Ids are fixed before the first attempt, so a retry can tell whether that attempt committed.
    const events = request.events.map(({ id, type, schema, data, meta }) => ({
      id: id ?? randomUUID(),
      type,
      schema,
      data,
      meta,
    }));
    const canonical = canonicalEvents(request);
    const pending: Pending = {
      request: { ...request, events },
      fingerprint: fingerprintOf(request, canonical),
      canonical,
      checkIds: request.events.some((event) => event.id !== undefined),
    };
    // The stream's data key is looked up (or made) before the append queues: the batch finds it
    // cached, rather than every append queued behind holding for the round trip. A new stream's
    // key is made with its batch instead, and stored by the batch's statement.
    let result: Promise<AppendResult>;
    if (beginsStream(request)) result = queue.submit(pending);
    else {
      const ready = source.cipher.prepare([request.stream]);
      preparing.add(ready);
      ready.then(
        () => preparing.delete(ready),
        () => preparing.delete(ready),
      );
      result = ready.then(() => queue.submit(pending));
    }
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

  async function commitBatch(batch: Pending[], retry: boolean, sent: () => void): Promise<AppendResult[]> {
    const streams = batch.map((pending) => pending.request.stream);
    // New streams' keys are made here, except on a retry: the attempt that failed may have stored
    // them. The others are cached since each append queued, unless an erasure was heard meanwhile
    // (then they are read again).
    const newStreams = retry
      ? undefined
      : new Set(batch.flatMap(({ request }) => (beginsStream(request) ? [request.stream] : [])));
    let written: Written;
    try {
      written = await write(batch, await source.cipher.sealerFor(streams, newStreams), sent);
    } catch (error) {
      if (!newStreams?.size || !isDataKeyStored(error)) throw error;
      // A new stream has a key stored already (a tombstone, one another process made): the batch
      // goes again with its keys read, rather than append by append.
      written = await write(batch, await source.cipher.sealerFor(streams), sent);
    }
    const { results, newKeys } = written;
    if (newKeys.length > 0) await source.cipher.committed(newKeys);
    const appended = results.reduce((n, r) => n + (r.outcome === 'appended' ? r.entries.length : 0), 0);
    if (appended > 0) for (const observer of observers) observer.committed(appended);
    return results;
  }

  async function write(batch: Pending[], sealer: Sealer | undefined, sent: () => void): Promise<Written> {
    return (await writePipelined(batch, sealer, sent)) ?? (await writeLocked(batch, sealer));
  }

  /**
   * Fast path, one round trip: when this process wrote the head last (or has a write of its own
   * in flight) and the batch needs no lookups, the batch is planned on that tree and written in one
   * statement that applies only if the head is still it and none of its idempotency keys is
   * recorded. A stream expected not to exist is taken as empty: if it does exist, inserting its
   * version 1 violates (stream, version) and the batch is retried append by append, with every
   * lookup. Null when the batch is not for this path or its write did not apply.
   */
  async function writePipelined(
    batch: Pending[],
    sealer: Sealer | undefined,
    sent: () => void,
  ): Promise<Written | null> {
    const ahead = pipeline;
    // A long pipeline's versions are let go: the batch waits for its writes, under the lock.
    if (ahead && ahead.versions.size > MAX_KNOWN_STREAMS) return null;
    const base = ahead?.tip ?? tip;
    const versionOf = (stream: string) => ahead?.versions.get(stream) ?? knownVersions.get(stream);
    const fast = batch.every(
      ({ request, checkIds }) =>
        !checkIds && (versionOf(request.stream) !== undefined || request.expectedVersion === 'no_stream'),
    );
    if (!base || !fast) return null;
    const versions = new Map(batch.map(({ request }) => [request.stream, versionOf(request.stream) ?? 0]));
    const plan = planBatch(batch, base, { versions, keys: new Map(), existingIds: new Set() });
    // Some append would not simply be appended (a conflict, a key used twice): decided under the lock.
    if (plan.entries.length < batch.reduce((n, p) => n + p.request.events.length, 0)) return null;
    const note = signCheckpoint(plan.checkpoint, key);
    keepSigned(plan.checkpoint, note);
    const stage = ahead ?? {
      client: await connect(),
      writes: 0,
      failed: false,
      tip: base,
      versions: new Map(),
    };
    stage.writes++;
    try {
      stage.tip = plan.tree;
      for (const [stream, version] of plan.versions) stage.versions.set(stream, version);
      pipeline = stage;
      // Queued behind the write ahead on its connection: it runs once that one has committed.
      // Whatever its outcomes read goes in the same turn, before the write queued behind it.
      const newKeys = newKeysOf(sealer, plan);
      const settled = inTurn(stage.client, async () => {
        if (!(await writePlan(stage.client, base, plan, note, sealer?.seal, newKeys))) return null;
        moveTip(plan);
        return settleOutcomes(stage.client, source, plan.outcomes);
      });
      sent();
      const results = await settled;
      if (results) return { results, newKeys };
      // Another process appended, or a key is recorded: decided under the lock. Nothing planned
      // on this stage can apply now.
      abandon(stage);
      return null;
    } catch (error) {
      stage.failed = true;
      abandon(stage);
      throw error;
    } finally {
      if (--stage.writes === 0) {
        if (pipeline === stage) pipeline = undefined;
        release(stage.client, stage.failed);
      }
    }
  }

  /** Errors of getting a connection (none came within the pool's wait): no append caused them. */
  const unconnected = new WeakSet<object>();

  async function connect(): Promise<pg.PoolClient> {
    const client = await pool.connect().catch((error: unknown) => {
      if (typeof error === 'object' && error !== null) unconnected.add(error);
      throw error;
    });
    // A checked-out client whose connection dies emits 'error' besides failing its query.
    client.on('error', ignore);
    return client;
  }

  function release(client: pg.PoolClient, failed: boolean) {
    client.off('error', ignore);
    client.release(failed); // a connection that failed mid-transaction is not reused
  }

  /** The slow path: under the head's lock, with what the batch needs read from the ledger. */
  async function writeLocked(batch: Pending[], sealer: Sealer | undefined): Promise<Written> {
    const client = await connect();
    try {
      const head = await lockHead(client);
      const atTip = tip?.treeSize === head.treeSize && sameBytes(tip.rootHash, head.rootHash);
      if (!atTip || knownVersions.size > MAX_KNOWN_STREAMS) knownVersions.clear();
      const peaks = atTip && tip ? tip.peaks : await loadPeaks(client, head.treeSize);
      const read = await readLedgerState(client, {
        streams: [...new Set(batch.map((p) => p.request.stream))].filter((s) => !knownVersions.has(s)),
        keys: batch.flatMap((p) => (p.request.idempotencyKey ? [p.request.idempotencyKey] : [])),
        ids: batch.flatMap((p) => (p.checkIds ? p.request.events.map((e) => e.id) : [])),
      });
      const state = { ...read, versions: new Map([...knownVersionsOf(batch), ...read.versions]) };
      const base = { ...head, peaks };
      const plan = planBatch(batch, base, state);
      let results: AppendResult[];
      const newKeys = newKeysOf(sealer, plan);
      if (plan.entries.length === 0) results = await settleOutcomes(client, source, plan.outcomes);
      else {
        const note = signCheckpoint(plan.checkpoint, key);
        if (!(await writePlan(client, base, plan, note, sealer?.seal, newKeys)))
          throw new Error('the ledger head moved while locked');
        // Kept before the commit: were it rolled back, the note stored at this size would be another.
        keepSigned(plan.checkpoint, note);
        results = await settleOutcomes(client, source, plan.outcomes);
      }
      await client.query('commit');
      // Only once committed: a pipelined batch plans on the versions it holds.
      if (plan.entries.length > 0) moveTip(plan);
      release(client, false);
      return { results, newKeys };
    } catch (error) {
      await client.query('rollback').catch(() => undefined);
      release(client, true);
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

  function planBatch(batch: Pending[], base: TreeTip, state: LedgerState): AppendPlan {
    lastRecordedAt = Math.max(lastRecordedAt, Date.now());
    return planAppend({
      origin,
      base,
      appends: batch,
      state,
      recordedAt: formatRecordedAt(lastRecordedAt),
      randomBytes: salts,
    });
  }

  /**
   * This process's tree moves on to a plan's, never back: a pipelined write may settle after a
   * locked one that waited for it.
   */
  function moveTip(plan: AppendPlan) {
    if (tip && tip.treeSize >= plan.tree.treeSize) return;
    tip = plan.tree;
    for (const [stream, version] of plan.versions) knownVersions.set(stream, version);
  }

  /** A pipelined write did not apply: its stage, and this process's tree, are no longer trusted. */
  function abandon(stage: Pipeline) {
    if (pipeline === stage) pipeline = undefined;
    tip = undefined;
    knownVersions.clear();
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
    signedHere: signed.signedHere,
  };
}
