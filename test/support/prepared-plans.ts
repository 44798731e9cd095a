import { createKysely, createPool, type Database } from '@connect/db';
import type { Kysely } from 'kysely';

/**
 * Runs `read` `times` over one connection of its own, then tells how PostgreSQL planned the
 * prepared statement `name` there (undefined: no statement of that name was prepared).
 */
export async function plansOfPrepared(
  url: string,
  name: string,
  times: number,
  read: (db: Kysely<Database>) => Promise<unknown>,
): Promise<{ generic: number; custom: number } | undefined> {
  const pool = createPool(url, 1);
  try {
    const db = createKysely(pool);
    for (let i = 0; i < times; i++) await read(db);
    const { rows } = await pool.query<{ generic: number; custom: number }>(
      'select generic_plans as generic, custom_plans as custom from pg_prepared_statements where name = $1',
      [name],
    );
    return rows[0];
  } finally {
    await pool.end();
  }
}
