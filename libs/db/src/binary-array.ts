// One-dimensional PostgreSQL arrays in the binary wire format (array_send), as one Buffer: the pg
// driver sends a Buffer parameter as binary, so a statement reading `$n::bytea[]` (or text[],
// uuid[]…) gets the array without PostgreSQL parsing an array literal, and without the driver
// writing one (hex for every byte string, a backslash before each quote of a JSON text). For the
// columns of a batch insert, that is most of the statement's cost on both sides.

import { isUuidText } from './uuid-text.ts';

/** The element types, by name as SQL spells them, with their type OIDs (pg_type.oid). */
const ELEMENT_OIDS = {
  bytea: 17,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  timestamptz: 1184,
  uuid: 2950,
  jsonb: 3802,
} as const;

export type BinaryElementType = keyof typeof ELEMENT_OIDS;

/** What each element type takes: SQL NULL is null. */
export interface BinaryElementValues {
  bytea: Uint8Array | null;
  int8: number | null;
  int2: number | null;
  int4: number | null;
  text: string | null;
  /** An ISO 8601 time with its zone (as Date.parse reads it, to the millisecond), or a Date. */
  timestamptz: string | Date | null;
  uuid: string | null;
  /** The JSON text. */
  jsonb: string | null;
}

/** Microseconds from the Unix epoch to PostgreSQL's (2000-01-01T00:00:00Z). */
const POSTGRES_EPOCH_US = 946_684_800_000_000n;

const HEADER_BYTES = 20;

/**
 * `values` as a binary array of `type`, to pass as a parameter cast to that array type (for
 * example `unnest($1::bytea[])`). Numbers must be integers in the type's range; a uuid is its
 * canonical text.
 */
export function binaryArray<T extends BinaryElementType>(
  type: T,
  values: readonly BinaryElementValues[T][],
): Buffer {
  const encode = ENCODERS[type] as Encoder<BinaryElementValues[T]>;
  let size = HEADER_BYTES;
  let nulls = 0;
  for (const value of values) {
    // An undefined element is NULL too, as the driver's own array literals have it.
    if (value == null) nulls++;
    else size += encode.size(value);
    size += 4;
  }
  if (values.length === 0) size = 12; // no dimensions: an empty array
  const out = Buffer.allocUnsafe(size);
  out.writeInt32BE(values.length === 0 ? 0 : 1, 0);
  out.writeInt32BE(nulls > 0 ? 1 : 0, 4);
  out.writeUInt32BE(ELEMENT_OIDS[type], 8);
  if (values.length === 0) return out;
  out.writeInt32BE(values.length, 12);
  out.writeInt32BE(1, 16); // the lower bound
  let at = HEADER_BYTES;
  for (const value of values) {
    if (value == null) {
      at = out.writeInt32BE(-1, at);
      continue;
    }
    const length = encode.write(out, at + 4, value);
    out.writeInt32BE(length, at);
    at += 4 + length;
  }
  if (at !== size) throw new Error(`binaryArray(${type}): wrote ${at} bytes of ${size}`);
  return out;
}

interface Encoder<V> {
  /** Bytes of the element. */
  size(value: NonNullable<V>): number;
  /** Writes the element at `at`; returns its bytes. */
  write(out: Buffer, at: number, value: NonNullable<V>): number;
}

function integer(bytes: 2 | 4 | 8): Encoder<number | null> {
  const [min, max] =
    bytes === 8
      ? [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER]
      : [-(2 ** (bytes * 8 - 1)), 2 ** (bytes * 8 - 1) - 1];
  return {
    size: () => bytes,
    write(out, at, value) {
      if (!Number.isInteger(value) || value < min || value > max)
        throw new RangeError(`${value} is not an integer of ${bytes} bytes`);
      if (bytes === 2) out.writeInt16BE(value, at);
      else if (bytes === 4) out.writeInt32BE(value, at);
      else out.writeBigInt64BE(BigInt(value), at);
      return bytes;
    },
  };
}

const text: Encoder<string | null> = {
  size: (value) => Buffer.byteLength(value, 'utf8'),
  write: (out, at, value) => out.write(value, at, 'utf8'),
};

const ENCODERS: { [T in BinaryElementType]: Encoder<BinaryElementValues[T]> } = {
  bytea: {
    size: (value) => value.byteLength,
    write(out, at, value) {
      out.set(value, at);
      return value.byteLength;
    },
  },
  int8: integer(8),
  int2: integer(2),
  int4: integer(4),
  text,
  timestamptz: {
    size: () => 8,
    write(out, at, value) {
      const ms = typeof value === 'string' ? Date.parse(value) : value.getTime();
      if (Number.isNaN(ms)) throw new RangeError(`${String(value)} is not a time`);
      out.writeBigInt64BE(BigInt(ms) * 1000n - POSTGRES_EPOCH_US, at);
      return 8;
    },
  },
  uuid: {
    size: () => 16,
    write(out, at, value) {
      if (!isUuidText(value)) throw new RangeError(`${value} is not a uuid`);
      const hex = value.replaceAll('-', '');
      out.write(hex, at, 'hex');
      return 16;
    },
  },
  jsonb: {
    size: (value) => 1 + Buffer.byteLength(value, 'utf8'),
    write(out, at, value) {
      out[at] = 1; // jsonb's binary format version
      return 1 + out.write(value, at + 1, 'utf8');
    },
  },
};
