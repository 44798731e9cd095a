// Recomputes the ledger from its rows: every dataHash, every leaf hash, every stored subtree
// hash and the head's root, and opens every signed checkpoint against the recomputed tree.
// Streams in pages, holding only the tree's peaks, so memory stays flat as the ledger grows.
import {
  appendLeaf,
  bodyProblem,
  entryLeafHash,
  equalBytes,
  type HashedNode,
  nodeKey,
  openCheckpoint,
  rootFromPeaks,
  toBase64,
  type VerifierKey,
} from '@connect/crypto';
import { SealBroken } from '@connect/crypto/envelope';
import { type Database, type LedgerEntriesTable, prepared } from '@connect/db';
import { type Kysely, sql } from 'kysely';
import { type BodyCipher, clearBodies } from './body-cipher.ts';
import { readHead } from './head.ts';
import type { Entry } from './types.ts';

export type AuditResult =
  | { ok: true; treeSize: number; checkpoints: number }
  | { ok: false; treeSize: number; index: number | null; problem: string };

export interface AuditProgress {
  checked: number;
  total: number;
}

function levelsAbove(size: number): number {
  let levels = 0;
  for (let width = 2; width <= size; width *= 2) levels++;
  return levels;
}

/** The page's entries, bodies opened; where one does not open, what is wrong with it. */
async function openBodies(
  cipher: BodyCipher,
  rows: LedgerEntriesTable[],
  origin: string,
): Promise<(Entry | { problem: string })[]> {
  try {
    return await cipher.entries(rows, origin);
  } catch (error) {
    // A database or key service failure is not a finding: it fails the audit run instead.
    if (!(error instanceof SealBroken)) throw error;
    // One at a time, to name the entries that do not open.
    return Promise.all(
      rows.map((row) =>
        cipher.entries([row], origin).then(
          ([entry]) => entry as Entry,
          (failure: unknown) => {
            if (!(failure instanceof SealBroken)) throw failure;
            return { problem: `body does not open: ${failure.message}` };
          },
        ),
      ),
    );
  }
}

export async function auditLedger(
  db: Kysely<Database>,
  key: VerifierKey,
  options: {
    pageSize?: number;
    onProgress?(progress: AuditProgress): void;
    /** Opens sealed bodies, to check them against their data hashes; in the clear when absent. */
    cipher?: BodyCipher;
  } = {},
): Promise<AuditResult> {
  const pageSize = options.pageSize ?? 5000;
  const cipher = options.cipher ?? clearBodies;
  const head = await readHead(db);
  if (!head) return { ok: true, treeSize: 0, checkpoints: 0 };
  const origin = head.origin;
  const total = head.treeSize;
  const fail = (index: number | null, problem: string): AuditResult => ({
    ok: false,
    treeSize: total,
    index,
    problem,
  });

  let peaks: HashedNode[] = [];
  let expected = 0;
  let checkpointsChecked = 0;
  let checkpoints = await nextCheckpoints(db, 0, total, pageSize);
  let checkpointAt = 0;

  const checkCheckpointsAt = async (size: number): Promise<AuditResult | undefined> => {
    for (;;) {
      if (checkpointAt >= checkpoints.length) {
        if (checkpoints.length < pageSize) return undefined;
        checkpoints = await nextCheckpoints(db, (checkpoints.at(-1)?.tree_size ?? 0) + 1, total, pageSize);
        checkpointAt = 0;
        continue;
      }
      const checkpoint = checkpoints[checkpointAt];
      if (!checkpoint || checkpoint.tree_size > size) return undefined;
      checkpointAt++;
      if (checkpoint.tree_size < size) {
        return fail(null, `checkpoint of size ${checkpoint.tree_size} does not match the tree`);
      }
      const root = rootFromPeaks(peaks);
      try {
        const opened = openCheckpoint(checkpoint.note, [key]);
        if (
          opened.treeSize !== size ||
          !equalBytes(opened.rootHash, root) ||
          !equalBytes(checkpoint.root_hash, root)
        ) {
          return fail(
            size > 0 ? size - 1 : null,
            `checkpoint of size ${size} does not match the recomputed root`,
          );
        }
      } catch (error) {
        return fail(null, `checkpoint of size ${size} does not verify: ${(error as Error).message}`);
      }
      checkpointsChecked++;
    }
  };

  const emptyTree = await checkCheckpointsAt(0);
  if (emptyTree) return emptyTree;
  for (;;) {
    // Entries appended after the head was read are the next audit's: a live ledger keeps growing.
    const rows = await db
      .selectFrom('ledger_entries')
      .selectAll()
      .where('index', '>=', expected)
      .where('index', '<', total)
      .orderBy('index')
      .limit(pageSize)
      .execute();
    if (rows.length === 0) break;
    const first = expected;
    const last = first + rows.length;
    const stored = await storedNodesCompletedIn(db, first, last);
    const opened = await openBodies(cipher, rows, origin);
    for (const [at, row] of rows.entries()) {
      const index = expected;
      if (row.index !== index) return fail(index, `entry ${index} is missing (found ${row.index} next)`);
      const entry = opened[at];
      if (!(entry && 'id' in entry)) return fail(index, entry?.problem ?? 'entry not read');
      const body = bodyProblem(entry);
      if (body) return fail(index, body);
      const leaf = entryLeafHash(entry);
      if (!equalBytes(leaf, row.leaf_hash)) return fail(index, 'leaf hash does not match the header');
      const appended = appendLeaf(peaks, index, leaf);
      peaks = appended.peaks;
      for (const node of appended.completed) {
        if (node.level === 0) continue;
        const hash = stored.get(nodeKey(node));
        if (!hash) return fail(index, `stored tree hash ${nodeKey(node)} is missing`);
        if (!equalBytes(hash, node.hash))
          return fail(index, `stored tree hash ${nodeKey(node)} does not match`);
      }
      expected++;
      const bad = await checkCheckpointsAt(expected);
      if (bad) return bad;
    }
    options.onProgress?.({ checked: expected, total });
  }
  if (expected !== total) return fail(expected, `the head says ${total} entries but ${expected} are stored`);
  if (!equalBytes(rootFromPeaks(peaks), head.rootHash)) {
    return fail(null, `the head's root ${toBase64(head.rootHash)} does not match the recomputed root`);
  }
  if (checkpointAt < checkpoints.length || (await checkpointBeyondHead(db, total)))
    return fail(null, 'a checkpoint is signed for a size beyond the head');
  return { ok: true, treeSize: total, checkpoints: checkpointsChecked };
}

async function nextCheckpoints(db: Kysely<Database>, fromSize: number, toSize: number, limit: number) {
  return db
    .selectFrom('ledger_checkpoints')
    .select(['tree_size', 'root_hash', 'note'])
    .where('tree_size', '>=', fromSize)
    .where('tree_size', '<=', toSize)
    .orderBy('tree_size')
    .limit(limit)
    .execute();
}

/**
 * A checkpoint beyond a head that has not moved since the audit read it (both read in one
 * statement, so an append meanwhile, which writes both at once, is no finding).
 */
async function checkpointBeyondHead(db: Kysely<Database>, size: number): Promise<boolean> {
  const { rows } = await sql<{ beyond: boolean }>`
    select exists (select 1 from ledger_checkpoints where tree_size > ${size})
       and (select tree_size from ledger_head) = ${size} as beyond`.execute(db);
  return rows[0]?.beyond === true;
}

/** Stored hashes of the subtrees (level ≥ 1) that leaves [first, last) complete. */
export async function storedNodesCompletedIn(db: Kysely<Database>, first: number, last: number) {
  const levels: number[] = [];
  const lows: number[] = [];
  const highs: number[] = [];
  for (let level = 1, width = 2; level <= levelsAbove(last); level++, width *= 2) {
    // Node (level, idx) completes with leaf (idx+1)·width − 1.
    const low = Math.ceil((first + 1) / width) - 1;
    const high = Math.floor(last / width);
    if (high > low) {
      levels.push(level);
      lows.push(low);
      highs.push(high);
    }
  }
  // One index range per level. As a plain join the planner reads `level` alone as the join key
  // (most rows share the low levels) and hashes a scan of the whole table: 300 ms on a ledger of a
  // million entries, for the few dozen hashes of a page. `offset 0` keeps the lateral subquery
  // from being flattened into that join, so each level is an index range scan.
  const query = sql<{ level: number; idx: number; hash: Uint8Array }>`
    select t.level, t.idx, t.hash
    from unnest(${levels}::smallint[], ${lows}::bigint[], ${highs}::bigint[]) as q(level, low, high)
    cross join lateral (
      select level, idx, hash from ledger_tree
      where level = q.level and idx >= q.low and idx < q.high
      offset 0) as t`.compile(db);
  // Prepared: the continuous audit runs it for every page it verifies.
  const { rows } = await db.executeQuery(prepared('audit-nodes-completed', query));
  return new Map(rows.map((row) => [nodeKey({ level: row.level, index: row.idx }), row.hash]));
}
