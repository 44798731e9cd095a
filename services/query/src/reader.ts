// Every read of the read models runs here: a read-only transaction as connect_reader (SELECT
// only, no BYPASSRLS) with the caller's id set, so row-level security decides what it sees.
import type { Database } from '@connect/db';
import { type Kysely, sql, type Transaction } from 'kysely';

export interface Caller {
  userId: string;
  isAdmin: boolean;
}

export type Reader = Transaction<Database>;

export function readAs<T>(
  db: Kysely<Database>,
  caller: Caller,
  read: (trx: Reader) => Promise<T>,
): Promise<T> {
  return db
    .transaction()
    .setAccessMode('read only')
    .execute(async (trx) => {
      await sql`select set_config('role', 'connect_reader', true),
        set_config('connect.user_id', ${caller.userId}, true),
        set_config('connect.admin', ${caller.isAdmin ? 'on' : 'off'}, true)`.execute(trx);
      return read(trx);
    });
}
