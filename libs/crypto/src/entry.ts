// An entry's header and body → dataHash → leaf hash, exactly as LEDGER.md defines them.
import { fromBase64, toBase64, utf8 } from './bytes.ts';
import { type JsonObject, jcs, jcsObjectWriter, jcsText } from './jcs.ts';
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

/** `dataJcs`: jcsText(data), when the caller has it already. */
export function dataHash(salt: Uint8Array, data: JsonObject, dataJcs = jcsText(data)): string {
  return toBase64(sha256(salt, dataJcs));
}

const json = JSON.stringify;
const SCALAR_FIELDS = HEADER_FIELDS.filter((field) => field !== 'meta');
const headerJcs = jcsObjectWriter(HEADER_FIELDS);
const isScalar = (value: unknown) =>
  value === null || typeof value === 'string' || Number.isSafeInteger(value);

/**
 * JCS of exactly the 11 header fields, whatever else the object carries. `metaJcs`: jcsText(meta),
 * when the caller has it already.
 */
export function leafInput(header: EntryHeader, metaJcs?: string): Uint8Array {
  const text = leafInputText(header, metaJcs);
  return typeof text === 'string' ? utf8(text) : text;
}

/**
 * leafInput as text, put together from its members when every field but meta is a string, an
 * integer or null, which JSON.stringify writes exactly as JCS does (a property test holds it to the
 * library); anything else (an outside receipt's) goes through the library, as bytes.
 */
function leafInputText(header: EntryHeader, metaJcs?: string): string | Uint8Array {
  const h = header;
  if (h.meta === undefined || !SCALAR_FIELDS.every((field) => isScalar(h[field]))) {
    const fields: JsonObject = {};
    for (const field of HEADER_FIELDS) fields[field] = h[field];
    return jcs(fields);
  }
  return headerJcs({
    actor: json(h.actor),
    dataHash: json(h.dataHash),
    id: json(h.id),
    index: json(h.index),
    ledger: json(h.ledger),
    meta: metaJcs ?? jcsText(h.meta),
    recordedAt: json(h.recordedAt),
    schema: json(h.schema),
    stream: json(h.stream),
    type: json(h.type),
    version: json(h.version),
  });
}

export function entryLeafHash(header: EntryHeader, metaJcs?: string): Uint8Array {
  return leafHash(leafInputText(header, metaJcs));
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
