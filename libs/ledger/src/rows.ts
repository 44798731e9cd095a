import type { JsonObject } from '@connect/crypto';
import type { LedgerEntriesTable } from '@connect/db';
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

/** The ledger_entries columns as unnest($1 … $13) reads them: one place for the row shape. */
export const ENTRY_ROWS_SQL = `insert into ledger_entries
    (index, id, stream, version, type, schema, recorded_at, actor, meta, data, salt, data_hash, leaf_hash)
  select * from unnest($1::bigint[], $2::uuid[], $3::text[], $4::int[], $5::text[], $6::int[],
    $7::timestamptz[], $8::text[], $9::jsonb[], $10::jsonb[], $11::bytea[], $12::bytea[], $13::bytea[])`;

/** The 13 column arrays of ENTRY_ROWS_SQL, for these entries. */
export function entryRowValues(entries: Entry[]): unknown[][] {
  const b64 = (text: string) => Buffer.from(text, 'base64');
  return [
    entries.map((e) => e.index),
    entries.map((e) => e.id),
    entries.map((e) => e.stream),
    entries.map((e) => e.version),
    entries.map((e) => e.type),
    entries.map((e) => e.schema),
    entries.map((e) => e.recordedAt),
    entries.map((e) => e.actor),
    entries.map((e) => JSON.stringify(e.meta)),
    entries.map((e) => (e.data === null ? null : JSON.stringify(e.data))),
    entries.map((e) => (e.salt === null ? null : b64(e.salt))),
    entries.map((e) => b64(e.dataHash)),
    entries.map((e) => b64(e.leafHash)),
  ];
}
