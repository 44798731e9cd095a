// Bulk writes as one statement each: columns travel as parallel arrays through unnest.
import type pg from 'pg';

/** A quoted identifier; table names come from code, never from input. */
export const ident = (name: string) => `"${name.replaceAll('"', '""')}"`;

export interface ColumnSpec {
  name: string;
  /** The PostgreSQL type of one value, e.g. `uuid`, `jsonb`. */
  type: string;
}

export async function insertRows(
  client: pg.ClientBase,
  table: string,
  columns: readonly ColumnSpec[],
  rows: readonly unknown[][],
  onConflict = '',
): Promise<void> {
  if (rows.length === 0) return;
  const names = columns.map((c) => ident(c.name)).join(', ');
  const arrays = columns.map((c, i) => `$${i + 1}::${c.type}[]`).join(', ');
  const values = columns.map((_, i) => rows.map((row) => row[i]));
  await client.query(
    `insert into ${ident(table)} (${names}) select * from unnest(${arrays}) ${onConflict}`,
    values,
  );
}

/** `on conflict (key) do update` setting every other column from the new row. */
export function upsertOn(key: string, columns: readonly ColumnSpec[]): string {
  const sets = columns
    .filter((c) => c.name !== key)
    .map((c) => `${ident(c.name)} = excluded.${ident(c.name)}`)
    .join(', ');
  return `on conflict (${ident(key)}) do update set ${sets}`;
}
