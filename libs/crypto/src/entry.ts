// An entry's header and body → dataHash → leaf hash, exactly as LEDGER.md defines them.
import { concatBytes, fromBase64, toBase64 } from './bytes.ts';
import { type JsonObject, jcs } from './jcs.ts';
import { leafHash } from './merkle.ts';
import { sha256 } from './sha256.ts';

export const HEADER_FIELDS = [
  'ledger',
  'index',
  'id',
  'stream',
  'version',
  'type',
  'schema',
  'recordedAt',
  'actor',
  'meta',
  'dataHash',
] as const;

export interface EntryHeader {
  ledger: string;
  index: number;
  id: string;
  stream: string;
  version: number;
  type: string;
  schema: number;
  /** `YYYY-MM-DDTHH:mm:ss.sssZ`, UTC. */
  recordedAt: string;
  actor: string | null;
  meta: JsonObject;
  /** base64 of SHA-256(salt ‖ JCS(data)). */
  dataHash: string;
}

export const SALT_SIZE = 16;

export function dataHash(salt: Uint8Array, data: JsonObject): string {
  return toBase64(sha256(concatBytes(salt, jcs(data))));
}

/** JCS of exactly the 11 header fields, whatever else the object carries. */
export function leafInput(header: EntryHeader): Uint8Array {
  const fields: JsonObject = {};
  for (const field of HEADER_FIELDS) fields[field] = header[field];
  return jcs(fields);
}

export function entryLeafHash(header: EntryHeader): Uint8Array {
  return leafHash(leafInput(header));
}

/** The recordedAt form: ISO 8601 UTC with milliseconds, from epoch milliseconds. */
export function formatRecordedAt(epochMs: number): string {
  return new Date(epochMs).toISOString();
}

/**
 * What is wrong with an entry's body, if anything: a body must hash to the header's dataHash
 * with its salt; a redacted body (data erased) keeps no salt, and its dataHash stands as recorded.
 */
export function bodyProblem(entry: {
  data: JsonObject | null;
  salt: string | null;
  dataHash: string;
}): string | undefined {
  if (entry.data === null) return entry.salt === null ? undefined : 'redacted entry still holds a salt';
  if (!entry.salt) return 'entry has data but no salt';
  return dataHash(fromBase64(entry.salt), entry.data) === entry.dataHash
    ? undefined
    : 'dataHash does not match the data and salt';
}
