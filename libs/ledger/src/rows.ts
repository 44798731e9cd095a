import type { JsonObject } from '@connect/crypto';
import type { LedgerEntriesTable } from '@connect/db';
import { type SqlParameters, sqlParameters } from './sql-parameters.ts';
import type { Entry } from './types.ts';

/** base64 of stored bytes, natively (this runs for every entry read). */
const base64 = (bytes: Uint8Array) =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');

export function entryFromRow(row: LedgerEntriesTable, origin: string): Entry {
  return {
    ledger: origin,
    index: row.index,
    id: row.id,
    stream: row.stream,
    version: row.version,
    type: row.type,
    schema: row.schema,
    recordedAt: row.recorded_at.toISOString(),
    actor: row.actor,
    meta: row.meta as JsonObject,
    dataHash: base64(row.data_hash),
    data: row.data as JsonObject | null,
    salt: row.salt ? base64(row.salt) : null,
    redacted: row.data === null,
    leafHash: base64(row.leaf_hash),
  };
}

const bytes = (text: string) => Buffer.from(text, 'base64');

/** One place for the row shape: each ledger_entries column, its type, and its value from an entry. */
const ENTRY_COLUMNS: readonly { column: string; type: string; value(entry: Entry): unknown }[] = [
  { column: 'index', type: 'bigint', value: (e) => e.index },
  { column: 'id', type: 'uuid', value: (e) => e.id },
  { column: 'stream', type: 'text', value: (e) => e.stream },
  { column: 'version', type: 'int', value: (e) => e.version },
  { column: 'type', type: 'text', value: (e) => e.type },
  { column: 'schema', type: 'int', value: (e) => e.schema },
  { column: 'recorded_at', type: 'timestamptz', value: (e) => e.recordedAt },
  { column: 'actor', type: 'text', value: (e) => e.actor },
  { column: 'meta', type: 'jsonb', value: (e) => JSON.stringify(e.meta) },
  { column: 'data', type: 'jsonb', value: (e) => (e.data === null ? null : JSON.stringify(e.data)) },
  { column: 'salt', type: 'bytea', value: (e) => (e.salt === null ? null : bytes(e.salt)) },
  { column: 'data_hash', type: 'bytea', value: (e) => bytes(e.dataHash) },
  { column: 'leaf_hash', type: 'bytea', value: (e) => bytes(e.leafHash) },
];

/** `insert into ledger_entries … select * from unnest(…)` of these entries, one array per column. */
export function insertEntriesSql(parameters: SqlParameters, entries: readonly Entry[]): string {
  const arrays = ENTRY_COLUMNS.map(
    ({ type, value }) => `${parameters.add(entries.map((entry) => value(entry)))}::${type}[]`,
  );
  return `insert into ledger_entries (${ENTRY_COLUMNS.map((c) => c.column).join(', ')})
  select * from unnest(${arrays.join(', ')})`;
}

/** The insert of entries as a statement of its own, with entryRowValues as its values. */
export const ENTRY_ROWS_SQL = insertEntriesSql(sqlParameters(), []);

/** The column arrays of ENTRY_ROWS_SQL, for these entries. */
export function entryRowValues(entries: readonly Entry[]): unknown[] {
  const parameters = sqlParameters();
  insertEntriesSql(parameters, entries);
  return parameters.values;
}
