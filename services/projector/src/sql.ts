// Bulk writes: columns travel as parallel arrays through unnest, several tables per statement.
import type pg from 'pg';

/** A quoted identifier; table names come from code, never from input. */
export const ident = (name: string) => `"${name.replaceAll('"', '""')}"`;

export interface ColumnSpec {
  name: string;
  /** The PostgreSQL type of one value, e.g. `uuid`, `jsonb`. */
  type: string;
}

/** A statement under construction: SQL pieces that each take their parameters from one list. */
export class Statement {
  readonly values: unknown[] = [];
  readonly parts: string[] = [];

  /** A parameter placeholder for this value. */
  param(value: unknown, type?: string): string {
    this.values.push(value);
    return `$${this.values.length}${type ? `::${type}` : ''}`;
  }

  /** `insert into table (…) select * from unnest(…) <onConflict>`, or nothing when there are no rows. */
  insert(
    table: string,
    columns: readonly ColumnSpec[],
    rows: readonly unknown[][],
    onConflict = '',
  ): string | undefined {
    if (rows.length === 0) return undefined;
    const names = columns.map((c) => ident(c.name)).join(', ');
    const arrays = columns
      .map((c, i) =>
        this.param(
          rows.map((row) => row[i]),
          `${c.type}[]`,
        ),
      )
      .join(', ');
    return `insert into ${ident(table)} (${names}) select * from unnest(${arrays}) ${onConflict}`;
  }

  /** Runs the parts as one statement (data-modifying CTEs); nothing when there are none. */
  async run(client: pg.ClientBase): Promise<void> {
    const parts = this.parts.filter(Boolean);
    if (parts.length === 0) return;
    const ctes = parts.map((part, i) => `w${i} as (${part})`).join(',\n');
    await client.query(`with ${ctes} select 1`, this.values);
  }
}

/** `on conflict (keys) do update` setting every other column from the new row. */
export function upsertOn(keys: string | string[], columns: readonly ColumnSpec[]): string {
  const keyList = [keys].flat();
  const sets = columns
    .filter((c) => !keyList.includes(c.name))
    .map((c) => `${ident(c.name)} = excluded.${ident(c.name)}`)
    .join(', ');
  return `on conflict (${keyList.map(ident).join(', ')}) do update set ${sets}`;
}

export async function insertRows(
  client: pg.ClientBase,
  table: string,
  columns: readonly ColumnSpec[],
  rows: readonly unknown[][],
  onConflict = '',
): Promise<void> {
  const statement = new Statement();
  const insert = statement.insert(table, columns, rows, onConflict);
  if (!insert) return;
  await client.query(insert, statement.values);
}
