import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../../migrations/', import.meta.url));

// Any constant works; it only has to be the same for every process migrating this database.
const MIGRATION_LOCK = 0x636f6e6e; // "conn"

export interface MigrationResult {
  applied: string[];
}

export async function migrationFiles(dir = MIGRATIONS_DIR): Promise<string[]> {
  return (await readdir(dir)).filter((name) => /^\d+[-_].+\.sql$/.test(name)).sort();
}

/**
 * Applies every migration not yet applied, in name order, each in its own transaction.
 * An advisory lock makes processes that start together take turns instead of racing.
 */
export async function migrate(pool: pg.Pool, dir = MIGRATIONS_DIR): Promise<MigrationResult> {
  const client = await pool.connect();
  try {
    await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK]);
    await client.query(
      'create table if not exists schema_migrations (name text primary key, applied_at timestamptz not null default now())',
    );
    const done = new Set(
      (await client.query<{ name: string }>('select name from schema_migrations')).rows.map(
        (row) => row.name,
      ),
    );
    const applied: string[] = [];
    for (const name of await migrationFiles(dir)) {
      if (done.has(name)) continue;
      const sql = await readFile(`${dir}/${name}`, 'utf8');
      await client.query('begin');
      try {
        await client.query(sql);
        await client.query('insert into schema_migrations (name) values ($1)', [name]);
        await client.query('commit');
      } catch (error) {
        await client.query('rollback');
        throw new Error(`migration ${name} failed: ${(error as Error).message}`, { cause: error });
      }
      applied.push(name);
    }
    return { applied };
  } finally {
    await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    client.release();
  }
}

/** Throws unless the database answers and every migration file has been applied (what /readyz reports). */
export async function assertMigrated(pool: pg.Pool, dir = MIGRATIONS_DIR): Promise<void> {
  const done = new Set<string>();
  try {
    const { rows } = await pool.query<{ exists: boolean }>(
      `select to_regclass('schema_migrations') is not null as exists`,
    );
    if (rows[0]?.exists) {
      const applied = await pool.query<{ name: string }>('select name from schema_migrations');
      for (const row of applied.rows) done.add(row.name);
    }
  } catch (error) {
    throw new Error(`database unreachable (${(error as Error).message})`);
  }
  const pending = (await migrationFiles(dir)).filter((name) => !done.has(name));
  if (pending.length > 0) throw new Error(`migrations not applied: ${pending.join(', ')}`);
}
