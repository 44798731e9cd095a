// The appender's SQL, on the connection of the batch: lock the head, read what a plan needs,
// write a plan in one statement, and read back entries a plan points to.
import type { HashedNode } from '@connect/crypto';
import { dataKeyRows, insertDataKeysSql, LEDGER_CHANNEL, type NewDataKey, named } from '@connect/db';
import type pg from 'pg';
import type {
  AppendPlan,
  IdempotencyRecord,
  IdempotencyRow,
  PlannedOutcome,
  TreeTip,
} from './append-plan.ts';
import type { LedgerSource, SealBody } from './body-cipher.ts';
import { insertEntriesSql } from './rows.ts';
import { type Column, column, columnNames, sqlParameters } from './sql-parameters.ts';
import type { AppendResult, Entry } from './types.ts';

const bytes = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/** Opens the batch's transaction and locks the head until it commits, in one round trip. */
export async function lockHead(client: pg.PoolClient): Promise<{ treeSize: number; rootHash: Uint8Array }> {
  const [, headResult] = (await client.query(
    'begin; select tree_size, root_hash from ledger_head for update',
  )) as unknown as [unknown, pg.QueryResult<{ tree_size: number; root_hash: Uint8Array }>];
  const head = headResult.rows[0];
  if (!head) throw new Error('the ledger head is missing; open the ledger first');
  return { treeSize: head.tree_size, rootHash: head.root_hash };
}

/** Versions of the streams, records of the idempotency keys, and which event ids exist: one round trip. */
export async function readLedgerState(
  client: pg.PoolClient,
  lookups: { streams: string[]; keys: string[]; ids: string[] },
): Promise<{
  versions: Map<string, number>;
  keys: Map<string, IdempotencyRecord>;
  existingIds: Set<string>;
}> {
  const state = { versions: new Map(), keys: new Map(), existingIds: new Set<string>() };
  if (lookups.streams.length === 0 && lookups.keys.length === 0 && lookups.ids.length === 0) return state;
  const p = sqlParameters();
  const { rows } = await client.query<{
    versions: { stream: string; version: number }[] | null;
    keys: { key: string; first_index: number; count: number; fingerprint: string }[] | null;
    ids: string[] | null;
  }>(
    named({
      name: 'ledger-batch-state',
      text: `select
       (select json_agg(json_build_object('stream', s.stream, 'version', coalesce(
          (select version from ledger_entries e where e.stream = s.stream order by version desc limit 1), 0)))
        from unnest(${p.add(lookups.streams)}::text[]) as s(stream)) as versions,
       (select json_agg(json_build_object('key', key, 'first_index', first_index, 'count', count,
          'fingerprint', encode(fingerprint, 'base64')))
        from ledger_idempotency where key = any(${p.add(lookups.keys)}::text[])) as keys,
       (select json_agg(id) from ledger_entries where id = any(${p.add(lookups.ids)}::uuid[])) as ids`,
      values: p.values,
    }),
  );
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

const TREE_COLUMNS: readonly Column<HashedNode>[] = [
  column('level', 'int2', (node) => node.level),
  column('idx', 'int8', (node) => node.index),
  column('hash', 'bytea', (node) => node.hash),
];

/** The key first: the head's update checks that none of the batch's keys is recorded. */
const KEY_COLUMNS: readonly Column<IdempotencyRow>[] = [
  column('key', 'text', (row) => row.key),
  column('stream', 'text', (row) => row.stream),
  column('first_index', 'int8', (row) => row.firstIndex),
  column('count', 'int4', (row) => row.count),
  column('fingerprint', 'bytea', (row) => row.fingerprint),
];

/**
 * Writes a plan's entries, subtree hashes, idempotency records, signed checkpoint and head, and
 * the data keys of new streams it seals with, in one statement that applies only while the head is
 * still `base` and none of the plan's idempotency keys is recorded, and NOTIFYs; false when nothing
 * was written. (Every append moves the head, so no key can be recorded between the check and the
 * write.) A new stream's key that is stored already fails the statement (unique violation).
 */
export async function writePlan(
  client: pg.PoolClient,
  base: Pick<TreeTip, 'treeSize' | 'rootHash'>,
  plan: AppendPlan,
  note: string,
  seal: SealBody | undefined,
  newKeys: readonly NewDataKey[],
): Promise<boolean> {
  const p = sqlParameters();
  const [subjects, wrapped, masterKeyIds] = dataKeyRows(newKeys);
  const tree = plan.treeRows;
  const keys = plan.idempotencyRows;
  const treeSize = p.add(plan.tree.treeSize);
  const rootHash = p.add(bytes(plan.tree.rootHash));
  const keyArrays = p.arrays(keys, KEY_COLUMNS);
  const { rows } = await client.query(
    named({
      // Named, so each connection parses and plans it once.
      name: 'ledger-append-batch',
      text: `with head as (
       update ledger_head set tree_size = ${treeSize}, root_hash = ${rootHash}
       where tree_size = ${p.add(base.treeSize)} and root_hash = ${p.add(bytes(base.rootHash))}
         and not exists (select from ledger_idempotency where key = any(${keyArrays[0]}))
       returning tree_size),
     entries as (${insertEntriesSql(p, plan.entries, seal)} where exists (select from head)),
     tree as (
       insert into ledger_tree (${columnNames(TREE_COLUMNS)})
       select * from unnest(${p.arrays(tree, TREE_COLUMNS).join(', ')})
       where exists (select from head)),
     keys as (
       insert into ledger_idempotency (${columnNames(KEY_COLUMNS)})
       select * from unnest(${keyArrays.join(', ')})
       where exists (select from head)),
     data_keys_made as (
       ${insertDataKeysSql(p.add(subjects), p.add(wrapped), p.add(masterKeyIds), 'exists (select from head)')}),
     checkpoint as (
       insert into ledger_checkpoints (tree_size, root_hash, note)
       select ${treeSize}, ${rootHash}, ${p.add(note)} where exists (select from head))
     select pg_notify('${LEDGER_CHANNEL}', tree_size::text) from head`,
      values: p.values,
    }),
  );
  return rows.length > 0;
}

/** The outcomes of a plan, with the entries committed before the batch that some of them need. */
export async function settleOutcomes(
  client: pg.PoolClient,
  source: LedgerSource,
  outcomes: readonly PlannedOutcome[],
): Promise<AppendResult[]> {
  // One after another: they read on one connection, which runs one statement at a time.
  const results: AppendResult[] = [];
  for (const outcome of outcomes) {
    if (outcome.outcome === 'replay_stored') {
      const entries = await entriesInRange(client, source, outcome.firstIndex, outcome.count);
      results.push({ outcome: 'replayed', entries, streamVersion: entries.at(-1)?.version ?? 0 });
    } else if (outcome.outcome === 'committed_before') {
      const { ids, stream } = outcome;
      const entries = await entriesByIds(client, source, ids);
      const sameAppend = entries.length === ids.length && entries.every((e) => e.stream === stream);
      results.push(
        sameAppend
          ? { outcome: 'appended', entries, streamVersion: entries.at(-1)?.version ?? 0 }
          : { outcome: 'duplicate_event_id', eventId: ids[0] as string },
      );
    } else results.push(outcome);
  }
  return results;
}

async function entriesByIds(client: pg.PoolClient, source: LedgerSource, ids: string[]): Promise<Entry[]> {
  const { rows } = await client.query(
    'select * from ledger_entries where id = any($1::uuid[]) order by index',
    [ids],
  );
  return source.cipher.entries(rows, source.origin);
}

async function entriesInRange(
  client: pg.PoolClient,
  source: LedgerSource,
  from: number,
  count: number,
): Promise<Entry[]> {
  const { rows } = await client.query(
    'select * from ledger_entries where index >= $1 and index < $2 order by index',
    [from, from + count],
  );
  return source.cipher.entries(rows, source.origin);
}
