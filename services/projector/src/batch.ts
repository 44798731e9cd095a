// One step of a projection: the entries after its checkpoint, their rows and the new checkpoint,
// in one transaction. The checkpoint row is locked first, so two runners (or a runner and a
// replay switching tables) never project the same entries twice.
import { type LedgerEntriesTable, named, PROJECTED_CHANNEL, queryPipelined } from '@connect/db';
import { entryColumnsOf, type LedgerSource } from '@connect/ledger';
import type pg from 'pg';
import type { Projection, Tables } from './projection.ts';
import {
  type ApplyEntries,
  applyAll,
  applyEachOrQuarantine,
  BatchEntryFault,
  type Quarantined,
  recordQuarantined,
} from './quarantine.ts';

export interface BatchResult {
  /** How many entries it projected (0: the projection is at the ledger head). */
  count: number;
  lastIndex: number;
  /** How many of them were the projection's (and so applied, or set aside). */
  applied: number;
  /** Streams this batch set aside because an entry of theirs could not be applied. */
  quarantined: Quarantined[];
}

/**
 * A read model is derived from the ledger: a batch whose commit a crash of PostgreSQL loses is
 * lost with its checkpoint, and projected again from the ledger. So a batch does not wait for its
 * commit to reach the disk (the appends to the ledger do): its first statement selects this.
 */
const COMMIT_UNSYNCED = "set_config('synchronous_commit', 'off', true) as commit_mode";

// A batch's transaction begins in the write of its first statement and commits in the write of
// its last, so a batch of a projection's entries takes four round trips, not six: each one waits
// its turn on a busy server, and while a batch runs the next entries wait for it.
const BEGIN = [{ text: 'begin' }];
const COMMIT = [{ text: 'commit' }];

/** Reads up to `limit` entries after `from` (from the ledger, in index order). */
export async function readEntriesAfter(
  client: pg.ClientBase,
  source: LedgerSource,
  from: number,
  limit: number,
) {
  const { rows } = await client.query(
    'select * from ledger_entries where index > $1 order by index limit $2',
    [from, limit],
  );
  return source.cipher.entries(rows, source.origin);
}

/**
 * The CTEs that claim a batch: the projection's checkpoint ($1), locked, the next $2 entries after
 * it (next: index and stream, found by index) and how far they reach (upto). Bounds the planner
 * cannot see (they come from the checkpoint) must not reach ledger_entries any other way: asked of
 * the whole table between them, a question was a scan of every entry (250 ms a batch at a million
 * entries, and a catch-up went quadratic).
 */
const CLAIM = `checkpoint as (
         select last_index from projection_checkpoints where projection = $1 for update),
       next as (
         select index, stream from ledger_entries where index > (select last_index from checkpoint)
         order by index limit $2),
       reach as (select max(index) as upto from next)`;

/**
 * What an update of a projection's checkpoint returns: its new index, having told the listeners
 * `<projection>:<index>` (services/query/src/projected-index.ts reads it). `projection` is the SQL
 * that names it: a parameter, or the updated row's column.
 */
const movedReturning = (projection: string) =>
  `last_index, pg_notify('${PROJECTED_CHANNEL}', ${projection} || ':' || last_index)`;

/**
 * Moves the checkpoint over the next `limit` entries when none of them is in the projection's
 * streams (profiles, for commitment events), in one statement and so one transaction of its own:
 * a batch with nothing to apply then costs one round trip instead of four. Undefined when some of
 * them are the projection's: projectBatch applies them.
 */
export async function skipBatch(
  client: pg.ClientBase,
  projection: Projection,
  limit: number,
): Promise<BatchResult | undefined> {
  return (await skipBatches(client, [projection], limit))[0];
}

/**
 * skipBatch for several projections in one statement (each projection's checkpoint locked, its
 * next `limit` entries found and its checkpoint moved on its own): the projections that only move
 * their checkpoint, woken by the same append, take one round trip between them. Results in the
 * order of `projections`.
 */
export async function skipBatches(
  client: pg.ClientBase,
  projections: readonly Projection[],
  limit: number,
): Promise<(BatchResult | undefined)[]> {
  const patterns = projections.flatMap((p) => p.streams.map((pattern) => ({ projection: p.name, pattern })));
  const { rows } = await client.query<{
    projection: string;
    checkpoint_index: number;
    moved_to: number | null;
    wanted: boolean;
  }>(
    named({
      name: 'projector-skip-batches',
      text: `with patterns as (select * from unnest($1::text[], $3::text[]) as p(projection, pattern)),
       checkpoint as (
         select projection, last_index from projection_checkpoints
          where projection in (select projection from patterns) order by projection for update),
       next as (
         select c.projection, n.index, n.stream from checkpoint c cross join lateral (
           select index, stream from ledger_entries where index > c.last_index order by index limit $2) n),
       reach as (select projection, max(index) as upto from next group by projection),
       wanted as (
         select distinct n.projection from next n
           join patterns p on p.projection = n.projection and n.stream like p.pattern),
       moved as (
         update projection_checkpoints c set last_index = reach.upto, updated_at = now()
           from reach
          where c.projection = reach.projection and reach.projection not in (select projection from wanted)
          returning c.projection, ${movedReturning('c.projection')})
       select c.projection, c.last_index as checkpoint_index,
              c.projection in (select projection from wanted) as wanted,
              (select last_index from moved m where m.projection = c.projection) as moved_to,
              ${COMMIT_UNSYNCED}
         from checkpoint c`,
      values: [patterns.map((p) => p.projection), limit, patterns.map((p) => p.pattern)],
    }),
  );
  const found = new Map(rows.map((row) => [row.projection, row]));
  return projections.map((projection) => {
    const row = found.get(projection.name);
    if (!row) throw new Error(`no checkpoint row for projection ${projection.name}`);
    if (row.wanted) return undefined;
    const lastIndex = row.moved_to ?? row.checkpoint_index;
    return { count: lastIndex - row.checkpoint_index, lastIndex, applied: 0, quarantined: [] };
  });
}

/**
 * Projects the next `limit` entries after the checkpoint in one transaction, setting aside the
 * streams of entries the projection cannot apply.
 */
export async function projectBatch(
  client: pg.ClientBase,
  projection: Projection,
  tables: Tables,
  options: LedgerSource & { limit: number },
): Promise<BatchResult> {
  try {
    return await projectOnce(client, projection, tables, options, applyAll);
  } catch (error) {
    if (!(error instanceof BatchEntryFault)) throw error;
    // An entry of the batch cannot be applied: the batch again, entry by entry, setting aside the
    // streams of those that fail.
    return projectOnce(client, projection, tables, options, applyEachOrQuarantine);
  }
}

/**
 * The claim's statement: CLAIM, the transaction's commit mode, the streams set aside and the
 * claimed entries (one a row, none: one row of nulls). Its parameters are those of CLAIM.
 */
const CLAIM_BATCH = `with ${CLAIM}
         select checkpoint.last_index as checkpoint_index, reach.upto, ${COMMIT_UNSYNCED},
                array(select stream from projection_quarantine where projection = $1) as quarantined,
                ${entryColumnsOf('e')}
           from checkpoint cross join reach left join lateral (
             select ${entryColumnsOf()} from ledger_entries
             where index > checkpoint.last_index and index <= reach.upto and stream like any($3)
             order by index) e on true`;

/** A row of the claim: the batch's bounds, with one of its entries (none: all null). */
type ClaimedRow = Nullable<LedgerEntriesTable> & {
  checkpoint_index: number;
  upto: number | null;
  quarantined: string[];
};
type Nullable<T> = { [K in keyof T]: T[K] | null };

async function projectOnce(
  client: pg.ClientBase,
  projection: Projection,
  tables: Tables,
  options: LedgerSource & { limit: number },
  apply: ApplyEntries,
): Promise<BatchResult> {
  try {
    // The transaction begun, the checkpoint locked, how far the next `limit` entries reach, those
    // of them in the projection's streams, and the streams set aside: one round trip.
    const { rows } = await queryPipelined<ClaimedRow>(
      client,
      named({
        // Named, as every statement a batch runs each time: each connection parses and plans it once.
        name: 'projector-claim-batch',
        text: CLAIM_BATCH,
        values: [projection.name, options.limit, projection.streams],
      }),
      { before: BEGIN },
    );
    const from = rows[0]?.checkpoint_index;
    if (from === undefined) throw new Error(`no checkpoint row for projection ${projection.name}`);
    const upto = rows[0]?.upto ?? from;
    const entries = await options.cipher.entries(
      rows.filter((row): row is LedgerEntriesTable & ClaimedRow => row.index !== null),
      options.origin,
    );
    if (upto === from) {
      await client.query('commit');
      return { count: 0, lastIndex: from, applied: 0, quarantined: [] };
    }
    const skip = new Set(rows[0]?.quarantined ?? []);
    const quarantined = await apply(client, projection, entries, tables, skip, options.cipher);
    await recordQuarantined(client, projection.name, quarantined);
    const lastIndex = upto;
    await queryPipelined(
      client,
      named({
        name: 'projector-move-checkpoint',
        text: `update projection_checkpoints set last_index = $2, updated_at = now() where projection = $1
         returning ${movedReturning('$1')}`,
        values: [projection.name, lastIndex],
      }),
      { after: COMMIT },
    );
    return { count: upto - from, lastIndex, applied: entries.length, quarantined };
  } catch (error) {
    await client.query('rollback').catch(() => undefined);
    throw error;
  }
}
