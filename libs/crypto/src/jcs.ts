import canonicalize from 'canonicalize';
import { utf8 } from './bytes.ts';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

export class LedgerJsonError extends TypeError {
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`${path || '(root)'}: ${reason}`);
  }
}

/**
 * Checks that a value is JSON as the ledger allows it: plain objects, arrays, strings,
 * booleans, null, and integers within ±2^53, strings of well-formed Unicode without NUL. Throws a LedgerJsonError naming the path.
 */
export function assertLedgerJson(value: unknown, path = ''): asserts value is JsonValue {
  if (value === null || typeof value === 'boolean') return;
  if (typeof value === 'string') {
    if (!isStorableString(value))
      throw new LedgerJsonError(path, 'strings must be well-formed Unicode without NUL');
    return;
  }
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value))
      throw new LedgerJsonError(path, 'numbers must be integers within ±2^53');
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((item, i) => {
      assertLedgerJson(item, `${path}[${i}]`);
    });
    return;
  }
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    for (const [key, item] of Object.entries(value)) {
      const at = path ? `${path}.${key}` : key;
      if (!isStorableString(key))
        throw new LedgerJsonError(at, 'keys must be well-formed Unicode without NUL');
      assertLedgerJson(item, at);
    }
    return;
  }
  throw new LedgerJsonError(path, `${typeof value} is not JSON`);
}

// PostgreSQL's jsonb, where entries are stored, holds neither NUL nor lone surrogates.
function isStorableString(text: string): boolean {
  return text.isWellFormed() && !text.includes('\u0000');
}

/** RFC 8785 JSON Canonicalization Scheme, as UTF-8 bytes. */
export function jcs(value: JsonValue): Uint8Array {
  return utf8(jcsText(value));
}

export function jcsText(value: JsonValue): string {
  const text = canonicalize(value);
  if (text === undefined) throw new LedgerJsonError('', 'value has no JSON form');
  return text;
}

/**
 * A writer of the JCS of objects with these keys, given their values' JCS (from jcsText, or
 * JSON.stringify of a string, integer or null, which JCS writes alike): for callers that have the
 * values' JCS in hand. The keys are put in JCS's order (UTF-16 code units, as sort() orders) once.
 */
export function jcsObjectWriter<K extends string>(keys: readonly K[]): (values: Record<K, string>) => string {
  const sorted = [...keys].sort();
  const prefixes = sorted.map((key, i) => `${i === 0 ? '{' : ','}${JSON.stringify(key)}:`);
  return (values) => {
    let text = '';
    for (const [i, key] of sorted.entries()) text += prefixes[i] + values[key];
    return `${text}}`;
  };
}
