import type { Database } from '@connect/db';
import type { Kysely } from 'kysely';
import { entryFromRow } from './rows.ts';
import type { Entry } from './types.ts';

type Db = Kysely<Database>;

export async function readStream(db: Db, origin: string, stream: string, fromVersion = 1): Promise<Entry[]> {
  const rows = await db
    .selectFrom('ledger_entries')
    .selectAll()
    .where('stream', '=', stream)
    .where('version', '>=', fromVersion)
    .orderBy('version')
    .execute();
  return rows.map((row) => entryFromRow(row, origin));
}

/** Entries from `fromIndex` on, in index order, at most `limit`. */
export async function readEntries(db: Db, origin: string, fromIndex: number, limit = 1000): Promise<Entry[]> {
  const rows = await db
    .selectFrom('ledger_entries')
    .selectAll()
    .where('index', '>=', fromIndex)
    .orderBy('index')
    .limit(limit)
    .execute();
  return rows.map((row) => entryFromRow(row, origin));
}

export async function readEntry(db: Db, origin: string, index: number): Promise<Entry | undefined> {
  const row = await db.selectFrom('ledger_entries').selectAll().where('index', '=', index).executeTakeFirst();
  return row && entryFromRow(row, origin);
}
