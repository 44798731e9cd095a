// Every read of the read models runs here, on connections that log in as connect_reader (SELECT
// only, no BYPASSRLS, read-only): the caller's id is set first, so row-level security decides
// what each statement sees. Setting it for the session rather than a transaction saves two round
// trips per read (BEGIN, COMMIT), which is most of a read's cost; nothing else uses these
// connections, and every read sets the caller anew before its first statement.
import { createPool, type Database } from '@connect/db';
import { Kysely, type LogEvent, PostgresDialect, sql } from 'kysely';

export interface Caller {
  userId: string;
  isAdmin: boolean;
}

export type Reader = Kysely<Database>;

export interface ReaderDb {
  db: Kysely<Database>;
  close(): Promise<void>;
}

/** A pool whose sessions start as connect_reader, read-only. */
export function createReaderDb(
  url: string,
  options: { max?: number; log?(event: LogEvent): void } = {},
): ReaderDb {
  const pool = createPool(url, options.max ?? 20, {
    options: '-c role=connect_reader -c default_transaction_read_only=on',
  });
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }), log: options.log });
  return { db, close: () => db.destroy() };
}

export function readAs<T>(
  reader: Kysely<Database>,
  caller: Caller,
  read: (db: Reader) => Promise<T>,
): Promise<T> {
  return reader.connection().execute(async (connection) => {
    await sql`select set_config('connect.user_id', ${caller.userId}, false),
      set_config('connect.admin', ${caller.isAdmin ? 'on' : 'off'}, false)`.execute(connection);
    return read(connection);
  });
}
