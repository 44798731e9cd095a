// Bulk writes: rows are typed objects; their columns travel as parallel arrays through unnest,
// several tables per statement.
import { preparedQuery } from '@connect/db';
import type pg from 'pg';

/** A quoted identifier; table names come from code, never from input. */
export const ident = (name: string) => `"${name.replaceAll('"', '""')}"`;

/** Each column of a row type, by name, with the PostgreSQL type of one value (e.g. `uuid`, `jsonb`). */
export type Columns<Row> = { readonly [Column in keyof Row & string]: string };

const isArrayType = (type: string) => type.endsWith('[]');

/** A PostgreSQL array literal of these strings, each quoted. */
export const arrayLiteral = (values: readonly string[]) =>
  `{${values.map((value) => `"${value.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`).join(',')}}`;

const names = <Row>(columns: Columns<Row>) => Object.keys(columns) as (keyof Row & string)[];

/** A statement under construction: SQL pieces that each take their parameters from one list. */
export class Statement {
  readonly values: unknown[] = [];
  readonly parts: string[] = [];

  /** A parameter placeholder for this value. */
  param(value: unknown, type?: string): string {
    this.values.push(value);
    return `$${this.values.length}${type ? `::${type}` : ''}`;
  }

  /**
   * `insert into table (…) select … from unnest(…) <onConflict>`, or nothing when there are no rows.
   * A column of an array type (e.g. `text[]`) travels as one array literal per row, since unnest
   * would flatten an array of arrays.
   */
  insert<Row>(
    table: string,
    columns: Columns<Row>,
    rows: readonly Row[],
    onConflict = '',
  ): string | undefined {
    if (rows.length === 0) return undefined;
    const columnNames = names(columns);
    const arrays = columnNames
      .map((name) =>
        isArrayType(columns[name])
          ? this.param(
              rows.map((row) => arrayLiteral(row[name] as readonly string[])),
              'text[]',
            )
          : this.param(
              rows.map((row) => row[name]),
              `${columns[name]}[]`,
            ),
      )
      .join(', ');
    const values = columnNames.map((name, i) =>
      isArrayType(columns[name]) ? `u.c${i}::${columns[name]}` : `u.c${i}`,
    );
    const aliases = columnNames.map((_, i) => `c${i}`).join(', ');
    return `insert into ${ident(table)} (${columnNames.map(ident).join(', ')}) select ${values.join(', ')} from unnest(${arrays}) as u(${aliases}) ${onConflict}`;
  }

  /** Runs the parts as one statement (data-modifying CTEs); nothing when there are none. */
  async run(client: pg.ClientBase): Promise<void> {
    const parts = this.parts.filter(Boolean);
    if (parts.length === 0) return;
    const ctes = parts.map((part, i) => `w${i} as (${part})`).join(',\n');
    // Prepared: a projection's batches run the same few texts (one per set of tables written).
    await client.query(preparedQuery(`with ${ctes} select 1`, this.values));
  }
}

/** `on conflict (keys) do update` setting every other column from the new row. */
export function upsertOn<Row>(
  keys: (keyof Row & string) | (keyof Row & string)[],
  columns: Columns<Row>,
): string {
  const keyList: string[] = [keys].flat();
  const sets = names(columns)
    .filter((name) => !keyList.includes(name))
    .map((name) => `${ident(name)} = excluded.${ident(name)}`)
    .join(', ');
  return `on conflict (${keyList.map(ident).join(', ')}) do update set ${sets}`;
}

export async function insertRows<Row>(
  client: pg.ClientBase,
  table: string,
  columns: Columns<Row>,
  rows: readonly Row[],
  onConflict = '',
): Promise<void> {
  const statement = new Statement();
  const insert = statement.insert(table, columns, rows, onConflict);
  if (!insert) return;
  await client.query(insert, statement.values);
}
