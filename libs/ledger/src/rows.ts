import type { JsonObject } from '@connect/crypto';
import type { LedgerEntriesTable } from '@connect/db';
import type { SealBody } from './body-cipher.ts';
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

/** An entry as its row stores it: its body in the clear, or sealed (then data and salt are null). */
interface StoredEntry {
  entry: Entry;
  sealed: Buffer | undefined;
}

/** One place for the row shape: each ledger_entries column, its type, and its value from an entry. */
const ENTRY_COLUMNS: readonly { column: string; type: string; value(stored: StoredEntry): unknown }[] = [
  { column: 'index', type: 'bigint', value: ({ entry }) => entry.index },
  { column: 'id', type: 'uuid', value: ({ entry }) => entry.id },
  { column: 'stream', type: 'text', value: ({ entry }) => entry.stream },
  { column: 'version', type: 'int', value: ({ entry }) => entry.version },
  { column: 'type', type: 'text', value: ({ entry }) => entry.type },
  { column: 'schema', type: 'int', value: ({ entry }) => entry.schema },
  { column: 'recorded_at', type: 'timestamptz', value: ({ entry }) => entry.recordedAt },
  { column: 'actor', type: 'text', value: ({ entry }) => entry.actor },
  { column: 'meta', type: 'jsonb', value: ({ entry }) => JSON.stringify(entry.meta) },
  {
    column: 'data',
    type: 'jsonb',
    value: ({ entry, sealed }) => (sealed || entry.data === null ? null : JSON.stringify(entry.data)),
  },
  {
    column: 'salt',
    type: 'bytea',
    value: ({ entry, sealed }) => (sealed || entry.salt === null ? null : bytes(entry.salt)),
  },
  { column: 'sealed', type: 'bytea', value: ({ sealed }) => sealed ?? null },
  { column: 'data_hash', type: 'bytea', value: ({ entry }) => bytes(entry.dataHash) },
  { column: 'leaf_hash', type: 'bytea', value: ({ entry }) => bytes(entry.leafHash) },
];

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
  const arrays = ENTRY_COLUMNS.map(
    ({ type, value }) => `${parameters.add(stored.map((row) => value(row)))}::${type}[]`,
  );
  return `insert into ledger_entries (${ENTRY_COLUMNS.map((c) => c.column).join(', ')})
  select * from unnest(${arrays.join(', ')})`;
}

/** The insert of entries as a statement of its own, with entryRowValues as its values. */
export const ENTRY_ROWS_SQL = insertEntriesSql(sqlParameters(), []);

/** The column arrays of ENTRY_ROWS_SQL, for these entries. */
export function entryRowValues(entries: readonly Entry[], seal?: SealBody): unknown[] {
  const parameters = sqlParameters();
  insertEntriesSql(parameters, entries, seal);
  return parameters.values;
}
