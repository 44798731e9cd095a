import { type JsonObject, toBase64 } from '@connect/crypto';
import type { LedgerEntriesTable } from '@connect/db';
import type { Entry } from './types.ts';

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
    dataHash: toBase64(row.data_hash),
    data: row.data as JsonObject | null,
    salt: row.salt ? toBase64(row.salt) : null,
    redacted: row.data === null,
    leafHash: toBase64(row.leaf_hash),
  };
}
