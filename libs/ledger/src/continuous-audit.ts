// The continuous audit: while a service runs, it re-verifies the ledger as it grows. The tip
// follows new entries (woken by the ledger's NOTIFY, with a poll as the fallback): it recomputes
// each new entry's leaf and the subtree hashes it completes, opens each new signed checkpoint
// against the recomputed root, and checks the stored tree proves the newest checkpoint consistent
// with the last one it verified. A sweep walks the whole ledger again at a steady pace (entries a
// second, however often rounds run: under load one every roundSpacingMs), so an entry or tree
// hash altered after it was first verified is found as well. A mismatch is final:
// the audit stops and reports it until the process restarts (someone must look).
import { setTimeout as sleep } from 'node:timers/promises';
import {
  appendLeaf,
  bodyProblem,
  entryLeafHash,
  equalBytes,
  type HashedNode,
  nodeKey,
  openCheckpoint,
  parseVerifierKey,
  rootFromPeaks,
  verifyConsistency,
} from '@connect/crypto';
import { SealBroken } from '@connect/crypto/envelope';
import { compiledOnce, type Database, LEDGER_CHANNEL, listen, prepared } from '@connect/db';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import type { Appender } from './append.ts';
import { storedNodesCompletedIn } from './audit.ts';
import type { LedgerSource } from './body-cipher.ts';
import { newestCheckpointRow } from './checkpoints.ts';
import { withNativeVerifier } from './native-crypto.ts';
import { ENTRY_COLUMN_NAMES } from './rows.ts';
import { consistencyHashes, loadPeaks, MissingTreeHashError } from './tree-store.ts';
import type { Entry } from './types.ts';
import { verifiedNotes } from './verified-notes.ts';

export interface AuditLog {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
}

export interface AuditStatus {
  /** When a round last verified everything it looked at (ms since the epoch); undefined before. */
  lastSuccessAt: number | undefined;
  /** Rounds that found the ledger not matching (0 or 1: the first one stops the audit). */
  failures: number;
  /** The tree size the tip has verified up to. */
  verifiedEntries: number;
  /** Entries the sweep has re-verified since the audit started. */
  sweptEntries: number;
  /** Checkpoint signatures it checked (a note signed in this process, or checked before, is not again). */
  signaturesChecked: number;
  /** What did not match, when the audit failed. */
  failure: string | undefined;
}

export interface ContinuousAudit {
  status(): AuditStatus;
  /** Throws, naming what did not match, once the audit has failed. */
  assertHealthy(): void;
  /** Runs one round now (tests); resolves when it is done. */
  round(): Promise<void>;
  close(): Promise<void>;
}

export interface ContinuousAuditOptions {
  log: AuditLog;
  /** Round interval when no NOTIFY arrives (default 1000 ms). */
  pollMs?: number;
  /** Entries the tip verifies per read (default 1000). */
  pageSize?: number;
  /** Entries the sweep re-verifies a second (default 500). */
  sweepPerSecond?: number;
  /**
   * Least time from one round's start to the next's while appends keep coming (default 250 ms): under
   * load, fewer rounds that each verify more, rather than a round per append. Each round reads the
   * newest checkpoint, the entries after the last verified one, their tree hashes and checkpoints.
   */
  roundSpacingMs?: number;
}

/**
 * Entries the sweep checks between two pauses: it runs beside requests, and a page of 1000 held
 * the event loop long enough to show in their p99.
 */
const SWEEP_PAGE = 50;

// Prepared, as every round runs them: each connection plans them once.
const entriesFrom = compiledOnce(
  (db: Kysely<Database>, first: number, end: number) =>
    db
      .selectFrom('ledger_entries')
      .select(ENTRY_COLUMN_NAMES)
      .where('index', '>=', first)
      .where('index', '<', end)
      .orderBy('index'),
  (query) => prepared('audit-entries-from', query),
);

/** The checkpoints signed at tree sizes in (after, upTo]. */
const checkpointsWithin = compiledOnce(
  (db: Kysely<Database>, after: number, upTo: number) =>
    db
      .selectFrom('ledger_checkpoints')
      .select(['tree_size', 'root_hash', 'note'])
      .where('tree_size', '>', after)
      .where('tree_size', '<=', upTo),
  (query) => prepared('audit-checkpoints-within', query),
);

/** A mismatch the audit found (not a database error, which is only retried). */
class AuditMismatch extends Error {}

interface Cursor {
  size: number;
  peaks: HashedNode[];
}

export function startContinuousAudit(
  deps: {
    pool: pg.Pool;
    db: Kysely<Database>;
    verifierKey: string;
    /**
     * The appender of this process, if it writes: a stored note identical to one it signed is that
     * checkpoint, signature and all, so its signature is not checked a second time.
     */
    signedHere?: Appender['signedHere'];
  } & LedgerSource,
  options: ContinuousAuditOptions,
): ContinuousAudit {
  const { log, pollMs = 1000, pageSize = 1000, sweepPerSecond = 500, roundSpacingMs = 250 } = options;
  // Node's native Ed25519: the pure one took most of a busy server's CPU, a checkpoint per append.
  const key = withNativeVerifier(parseVerifierKey(deps.verifierKey));
  const state: AuditStatus = {
    lastSuccessAt: undefined,
    failures: 0,
    verifiedEntries: 0,
    sweptEntries: 0,
    signaturesChecked: 0,
    failure: undefined,
  };
  let tip: (Cursor & { root: Uint8Array }) | undefined;
  let sweep: Cursor = { size: 0, peaks: [] };
  /** Up to when the sweep's pace has been spent. */
  let sweptUntil = Date.now();
  const verified = verifiedNotes();
  let closed = false;
  let running: Promise<void> | undefined;
  let again = false;

  const mismatch = (message: string): never => {
    throw new AuditMismatch(message);
  };

  /**
   * The checkpoint's note opened with the ledger key; its size and root must be these. A note
   * already opened here, unchanged, over the same root, is not opened again (verified-notes.ts).
   */
  function checkCheckpoint(
    row: { tree_size: number; root_hash: Uint8Array; note: string },
    root: Uint8Array,
  ) {
    if (!verified.has(row.tree_size, row.note, root)) {
      let opened = deps.signedHere?.(row.tree_size, row.note);
      if (!opened)
        try {
          state.signaturesChecked++;
          opened = openCheckpoint(row.note, [key]);
        } catch (error) {
          return mismatch(`checkpoint of size ${row.tree_size} does not verify: ${(error as Error).message}`);
        }
      if (opened.treeSize !== row.tree_size || !equalBytes(opened.rootHash, root))
        mismatch(`checkpoint of size ${row.tree_size} does not match the recomputed root`);
      verified.add(row.tree_size, row.note, root);
    }
    if (!equalBytes(row.root_hash, root))
      mismatch(`checkpoint of size ${row.tree_size} does not match the recomputed root`);
  }

  /**
   * Verifies entries [cursor.size, upTo) onto the cursor, with the checkpoints signed in between,
   * `page` at a time (each page's checks run without a pause, so a small page keeps requests moving).
   */
  async function advance(cursor: Cursor, upTo: number, limit: number, page = pageSize): Promise<void> {
    const end = Math.min(upTo, cursor.size + limit);
    while (cursor.size < end) {
      const first = cursor.size;
      const rows = await entriesFrom(deps.db, first, Math.min(end, first + page));
      const last = first + rows.length;
      if (rows.length === 0) mismatch(`entry ${first} is missing`);
      const [stored, checkpoints] = await Promise.all([
        storedNodesCompletedIn(deps.db, first, last),
        checkpointsWithin(deps.db, first, last),
      ]);
      const checkpointAt = new Map(checkpoints.map((row) => [row.tree_size, row]));
      const entries = await deps.cipher.entries(rows, deps.origin).catch((error: unknown) => {
        // Only a body that does not open is a finding; a database error is retried like the others.
        if (!(error instanceof SealBroken)) throw error;
        mismatch(`a body in entries ${first}..${last - 1} does not open: ${error.message}`);
      });
      for (const [at, row] of rows.entries()) {
        const index = cursor.size;
        if (row.index !== index) mismatch(`entry ${index} is missing (found ${row.index} next)`);
        const entry = (entries as Entry[])[at] as Entry;
        const body = bodyProblem(entry);
        if (body) mismatch(`entry ${index}: ${body}`);
        const leaf = entryLeafHash(entry);
        if (!equalBytes(leaf, row.leaf_hash)) mismatch(`entry ${index}: leaf hash does not match the header`);
        const appended = appendLeaf(cursor.peaks, index, leaf);
        for (const node of appended.completed) {
          if (node.level === 0) continue;
          const hash = stored.get(nodeKey(node));
          if (!hash) mismatch(`stored tree hash ${nodeKey(node)} is missing`);
          else if (!equalBytes(hash, node.hash)) mismatch(`stored tree hash ${nodeKey(node)} does not match`);
        }
        cursor.peaks = appended.peaks;
        cursor.size = index + 1;
        const checkpoint = checkpointAt.get(cursor.size);
        if (checkpoint) checkCheckpoint(checkpoint, rootFromPeaks(cursor.peaks));
      }
    }
  }

  async function latestCheckpointRow() {
    const [row] = await newestCheckpointRow(deps.db);
    return row ?? mismatch('the ledger has no signed checkpoint');
  }

  /** Starts the tip at the newest checkpoint: its stored peaks must fold into its signed root. */
  async function startTip() {
    const checkpoint = await latestCheckpointRow();
    let peaks: HashedNode[];
    try {
      peaks = await loadPeaks(deps.pool, checkpoint.tree_size);
    } catch (error) {
      if (error instanceof MissingTreeHashError) mismatch(error.message);
      throw error;
    }
    const root = rootFromPeaks(peaks);
    checkCheckpoint(checkpoint, root);
    return { size: checkpoint.tree_size, peaks, root };
  }

  async function runRound(): Promise<void> {
    if (!tip) tip = await startTip();
    const latest = await latestCheckpointRow();
    if (latest.tree_size > tip.size) {
      const from = { size: tip.size, root: tip.root };
      const cursor = { size: tip.size, peaks: tip.peaks };
      await advance(cursor, latest.tree_size, Number.MAX_SAFE_INTEGER);
      const root = rootFromPeaks(cursor.peaks);
      // The proof a client would be served between the two checkpoints must hold.
      if (from.size > 0) {
        let hashes: Uint8Array[];
        try {
          hashes = await consistencyHashes(deps.pool, from.size, cursor.size);
        } catch (error) {
          if (error instanceof MissingTreeHashError) mismatch(`consistency proof: ${error.message}`);
          throw error;
        }
        if (!verifyConsistency({ from: from.size, to: cursor.size, hashes }, from.root, root))
          mismatch(`the stored tree does not prove checkpoint ${cursor.size} consistent with ${from.size}`);
      }
      tip = { ...cursor, root };
    } else if (latest.tree_size < tip.size) {
      mismatch(`the newest checkpoint is of size ${latest.tree_size}, below the verified ${tip.size}`);
    }
    state.verifiedEntries = tip.size;
    // The sweep goes on once a quarter second of its pace has built up: few, full pages.
    const owed = Math.min(sweepPerSecond, Math.floor(((Date.now() - sweptUntil) * sweepPerSecond) / 1000));
    if (owed >= sweepPerSecond / 4) {
      sweptUntil = Date.now();
      const from = sweep.size;
      await advance(sweep, tip.size, owed, SWEEP_PAGE);
      state.sweptEntries += sweep.size - from;
    }
    if (sweep.size === tip.size) {
      if (!equalBytes(rootFromPeaks(sweep.peaks), tip.root))
        mismatch(`the ledger re-read from the start does not fold into the root of size ${tip.size}`);
      sweep = { size: 0, peaks: [] };
    }
    state.lastSuccessAt = Date.now();
  }

  async function roundsUntilQuiet(): Promise<void> {
    do {
      again = false;
      if (closed || state.failure) return;
      const startedAt = Date.now();
      try {
        await runRound();
      } catch (error) {
        if (!(error instanceof AuditMismatch)) {
          log.warn({ err: error }, 'ledger audit round could not run; retrying');
          return;
        }
        state.failures++;
        state.failure = error.message;
        log.error(
          { audit: { failure: error.message, verifiedEntries: state.verifiedEntries } },
          `LEDGER AUDIT FAILED: ${error.message}; the audit has stopped, investigate before restarting`,
        );
        return;
      }
      const spacing = startedAt + roundSpacingMs - Date.now();
      if (again && spacing > 0 && !closed) await sleep(spacing);
    } while (again);
  }

  function wake(): Promise<void> {
    if (closed) return Promise.resolve();
    if (running) {
      again = true;
      return running;
    }
    running = roundsUntilQuiet().finally(() => {
      running = undefined;
    });
    return running;
  }

  const timer = setInterval(wake, pollMs);
  timer.unref();
  const listener = listen(deps.pool, [LEDGER_CHANNEL], () => void wake(), {
    onListening: () => void wake(),
    retryMs: pollMs,
  });
  void wake();

  return {
    status: () => ({ ...state }),
    assertHealthy: () => {
      if (state.failure) throw new Error(`the ledger audit failed: ${state.failure}`);
    },
    round: async () => {
      await running;
      await wake();
    },
    close: async () => {
      closed = true;
      clearInterval(timer);
      await running;
      await listener.close();
    },
  };
}
