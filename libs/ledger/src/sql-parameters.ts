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
   * Adds one array per column of `rows` (for `unnest`), each sent in the binary format: nothing to
   * escape here or to parse in PostgreSQL. Returns their placeholders, each cast to its array type.
   */
  arrays<R>(rows: readonly R[], columns: readonly Column<R>[]): string[];
}

/** A column of rows written through `unnest`: its name, its type, and its value in a row. */
export interface Column<R> {
  name: string;
  type: BinaryElementType;
  value(row: R): BinaryElementValues[BinaryElementType];
}

export const column = <R, T extends BinaryElementType>(
  name: string,
  type: T,
  value: (row: R) => BinaryElementValues[T],
): Column<R> => ({ name, type, value }) as Column<R>;

export const columnNames = (columns: readonly Column<never>[]) => columns.map((c) => c.name).join(', ');

export function sqlParameters(): SqlParameters {
  const values: unknown[] = [];
  const add = (value: unknown) => {
    values.push(value);
    return `$${values.length}`;
  };
  return {
    values,
    add,
    arrays: (rows, columns) =>
      columns.map(({ type, value }) => `${add(binaryArray(type, rows.map(value)))}::${type}[]`),
  };
}
