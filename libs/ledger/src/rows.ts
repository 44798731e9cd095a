import type { JsonObject } from '@connect/crypto';
import type { LedgerEntriesTable } from '@connect/db';
import type { SealBody } from './body-cipher.ts';
import { type Column, column, columnNames, type SqlParameters, sqlParameters } from './sql-parameters.ts';
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

/** An entry as its row stores it: its body in the clear, or sealed (then data and salt are null). */
interface StoredEntry {
  entry: Entry;
  sealed: Buffer | undefined;
}

/** One place for the row shape: each ledger_entries column, its type, and its value from an entry. */
const ENTRY_COLUMNS: readonly Column<StoredEntry>[] = [
  column('index', 'int8', ({ entry }) => entry.index),
  column('id', 'uuid', ({ entry }) => entry.id),
  column('stream', 'text', ({ entry }) => entry.stream),
  column('version', 'int4', ({ entry }) => entry.version),
  column('type', 'text', ({ entry }) => entry.type),
  column('schema', 'int4', ({ entry }) => entry.schema),
  column('recorded_at', 'timestamptz', ({ entry }) => entry.recordedAt),
  column('actor', 'text', ({ entry }) => entry.actor),
  column('meta', 'jsonb', ({ entry }) => JSON.stringify(entry.meta)),
  column('data', 'jsonb', ({ entry, sealed }) =>
    sealed || entry.data === null ? null : JSON.stringify(entry.data),
  ),
  column('salt', 'bytea', ({ entry, sealed }) => (sealed || entry.salt === null ? null : bytes(entry.salt))),
  column('sealed', 'bytea', ({ sealed }) => sealed ?? null),
  column('data_hash', 'bytea', ({ entry }) => bytes(entry.dataHash)),
  column('leaf_hash', 'bytea', ({ entry }) => bytes(entry.leafHash)),
];

/** The columns of a ledger_entries row, for reads that name them (a prepared `select *` breaks on a new one). */
export const ENTRY_COLUMN_NAMES = ENTRY_COLUMNS.map((c) => c.name as keyof LedgerEntriesTable);

/** The columns of ledger_entries rows, for SQL: `index, id, …`, or under `alias`: `e.index, e.id, …`. */
export const entryColumnsOf = (alias?: string): string =>
  ENTRY_COLUMN_NAMES.map((column) => (alias ? `${alias}.${column}` : column)).join(', ');

/**
 * `insert into ledger_entries … select * from unnest(…)` of these entries, one array per column;
 * with `seal`, their bodies are stored sealed.
 */
export function insertEntriesSql(
  parameters: SqlParameters,
  entries: readonly Entry[],
  seal?: SealBody,
): string {
  const stored = entries.map((entry) => ({
    entry,
    sealed: seal?.(entry),
  }));
  return `insert into ledger_entries (${columnNames(ENTRY_COLUMNS)})
  select * from unnest(${parameters.arrays(stored, ENTRY_COLUMNS).join(', ')})`;
}

/** The insert of entries as a statement of its own, with entryRowValues as its values. */
export const ENTRY_ROWS_SQL = insertEntriesSql(sqlParameters(), []);

/** The column arrays of ENTRY_ROWS_SQL, for these entries. */
export function entryRowValues(entries: readonly Entry[], seal?: SealBody): unknown[] {
  const parameters = sqlParameters();
  insertEntriesSql(parameters, entries, seal);
  return parameters.values;
}
