// One step of a projection: the entries after its checkpoint, their rows and the new checkpoint,
// in one transaction. The checkpoint row is locked first, so two runners (or a runner and a
// replay switching tables) never project the same entries twice.
import { PROJECTED_CHANNEL } from '@connect/db';
import { entryFromRow } from '@connect/ledger';
import type pg from 'pg';
import type { Projection, Tables } from './projection.ts';

export interface BatchResult {
  /** How many entries it projected (0: the projection is at the ledger head). */
  count: number;
  lastIndex: number;
}

/** Reads up to `limit` entries after `from` (from the ledger, in index order). */
export async function readEntriesAfter(client: pg.ClientBase, origin: string, from: number, limit: number) {
  const { rows } = await client.query(
    'select * from ledger_entries where index > $1 order by index limit $2',
    [from, limit],
  );
  return rows.map((row) => entryFromRow(row, origin));
}

export async function projectBatch(
  client: pg.ClientBase,
  projection: Projection,
  tables: Tables,
  options: { origin: string; limit: number },
): Promise<BatchResult> {
  await client.query('begin');
  try {
    // The checkpoint, locked, and the entries after it: one round trip.
    const { rows } = await client.query(
      `with checkpoint as (
         select last_index from projection_checkpoints where projection = $1 for update)
       select checkpoint.last_index as checkpoint_index, e.*
         from checkpoint left join lateral (
           select * from ledger_entries where index > checkpoint.last_index order by index limit $2) e on true`,
      [projection.name, options.limit],
    );
    const from = rows[0]?.checkpoint_index as number | undefined;
    if (from === undefined) throw new Error(`no checkpoint row for projection ${projection.name}`);
    const entries = rows.filter((row) => row.index !== null).map((row) => entryFromRow(row, options.origin));
    if (entries.length === 0) {
      await client.query('commit');
      return { count: 0, lastIndex: from };
    }
    await projection.apply(client, entries, tables);
    const lastIndex = entries.at(-1)?.index as number;
    await client.query(
      `with moved as (
         update projection_checkpoints set last_index = $2, updated_at = now() where projection = $1)
       select pg_notify($3, $1 || ':' || $2)`,
      [projection.name, lastIndex, PROJECTED_CHANNEL],
    );
    await client.query('commit');
    return { count: entries.length, lastIndex };
  } catch (error) {
    await client.query('rollback').catch(() => undefined);
    throw error;
  }
}
