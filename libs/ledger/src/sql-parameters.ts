import { type BinaryElementType, type BinaryElementValues, binaryArray } from '@connect/db';

/**
 * Collects a statement's parameter values and hands out their `$n` placeholders, numbered here
 * in the order the values are added: a statement is written with the placeholders where the
 * values go, and no position is ever counted by hand. Build a statement's text the same way
 * each time, and it stays the same text (as a named, prepared statement must).
 */
export interface SqlParameters {
  /** The values, in placeholder order. */
  readonly values: unknown[];
  /** Adds a value; returns its placeholder, to use as often as the statement needs it. */
  add(value: unknown): string;
  /**
   * Adds an array of `type`, sent in the binary format (nothing to escape here or to parse in
   * PostgreSQL); returns its placeholder cast to `type[]`.
   */
  array<T extends BinaryElementType>(type: T, values: readonly BinaryElementValues[T][]): string;
}

export function sqlParameters(): SqlParameters {
  const values: unknown[] = [];
  const add = (value: unknown) => {
    values.push(value);
    return `$${values.length}`;
  };
  return {
    values,
    add,
    array: (type, elements) => `${add(binaryArray(type, elements))}::${type}[]`,
  };
}
