import { compiledOnce, type Database, type LedgerEntriesTable, named, prepared } from '@connect/db';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import type { LedgerSource } from './body-cipher.ts';
import { ENTRY_COLUMN_NAMES, entryColumnsOf } from './rows.ts';
import type { Entry } from './types.ts';

type Db = Kysely<Database>;

// Prepared, as every command reads its stream: PostgreSQL parsed and planned it each time.
const streamRows = compiledOnce(
  (db: Db, stream: string, fromVersion: number) =>
    db
      .selectFrom('ledger_entries')
      .select(ENTRY_COLUMN_NAMES)
      .where('stream', '=', stream)
      .where('version', '>=', fromVersion)
      .orderBy('version'),
  (query) => prepared('read-stream', query),
);

export async function readStream(
  db: Db,
  source: LedgerSource,
  stream: string,
  fromVersion = 1,
): Promise<Entry[]> {
  const rows = await streamRows(db, stream, fromVersion);
  return source.cipher.entries(rows, source.origin);
}

/** Entries from `fromIndex` on, in index order, at most `limit`. */
export async function readEntries(
  db: Db,
  source: LedgerSource,
  fromIndex: number,
  limit = 1000,
): Promise<Entry[]> {
  const rows = await db
    .selectFrom('ledger_entries')
    .selectAll()
    .where('index', '>=', fromIndex)
    .orderBy('index')
    .limit(limit)
    .execute();
  return source.cipher.entries(rows, source.origin);
}

/** The entries an append recorded under `idempotencyKey` committed, or undefined when none did. */
export async function entriesAppendedUnder(
  db: Db,
  source: LedgerSource,
  idempotencyKey: string,
): Promise<Entry[] | undefined> {
  const record = await db
    .selectFrom('ledger_idempotency')
    .select(['first_index', 'count'])
    .where('key', '=', idempotencyKey)
    .executeTakeFirst();
  return record && readEntries(db, source, Number(record.first_index), record.count);
}

export async function readEntry(db: Db, source: LedgerSource, index: number): Promise<Entry | undefined> {
  const row = await db.selectFrom('ledger_entries').selectAll().where('index', '=', index).executeTakeFirst();
  return row && (await source.cipher.entries([row], source.origin))[0];
}

/** The stored rows of these streams' entries before ledger index `before`, in index order. */
export function streamRowsBefore(
  client: pg.ClientBase | pg.Pool,
  streams: readonly string[],
  before: number,
): Promise<LedgerEntriesTable[]> {
  return streamRowsAfter(
    client,
    streams.map((stream) => ({ stream, version: -1 })),
    before,
  );
}

/**
 * The stored rows of each stream's entries after its `version` and before ledger index `before`,
 * in index order: what follows a state already folded up to that version (-1: the whole stream).
 * Each stream's rows are read on their own, by (stream, version), the unique index (the ordered
 * subquery is kept apart, never joined whole: on a ledger not yet analysed, the planner chose to
 * scan every entry of the streams), so what is read grows with the entries not yet folded, not
 * with the stream's history.
 */
export async function streamRowsAfter(
  client: pg.ClientBase | pg.Pool,
  streams: readonly { stream: string; version: number }[],
  before: number,
): Promise<LedgerEntriesTable[]> {
  const { rows } = await client.query<LedgerEntriesTable>(
    `${STREAM_ROWS_AFTER} order by e.index`,
    streamRowsParameters(streams, before),
  );
  return rows;
}

/** The rows of streamRowsAfter, parameters $1–$3, in no order. */
const STREAM_ROWS_AFTER = `select ${entryColumnsOf('e')} from unnest($1::text[], $2::bigint[]) as s(stream, version)
       cross join lateral (
         select ${entryColumnsOf()} from ledger_entries
          where stream = s.stream and version > s.version order by version) e
     where e.index < $3`;

const STREAM_ROWS_WITH_ERASURES = `select c.changes as body_erasures, ${entryColumnsOf('e')}
       from ledger_body_changes c
       left join lateral (${STREAM_ROWS_AFTER}) e on true
      order by e.index`;

const streamRowsParameters = (streams: readonly { stream: string; version: number }[], before: number) => [
  streams.map((s) => s.stream),
  streams.map((s) => s.version),
  before,
];

/**
 * The stored rows of each stream's entries after its `version` and before ledger index `before`
 * (as streamRowsAfter), with how many times a ledger entry's body was erased, counted in each
 * erasing transaction (migrations/032_ledger_body_changes.sql), recorded or not: what keeps states
 * folded from bodies drops them when it moves. One statement, so one snapshot: the rows are those
 * the count stands for, and one round trip.
 */
export async function streamRowsWithErasures(
  client: pg.ClientBase | pg.Pool,
  streams: readonly { stream: string; version: number }[],
  before: number,
): Promise<{ erasures: number; rows: LedgerEntriesTable[] }> {
  const { rows } = await client.query<Nullable<LedgerEntriesTable> & { body_erasures: string }>(
    named({
      // Named: the projections run it at every batch, so each connection plans it once.
      name: 'ledger-stream-rows-with-erasures',
      text: STREAM_ROWS_WITH_ERASURES,
      values: streamRowsParameters(streams, before),
    }),
  );
  const changes = rows[0]?.body_erasures;
  if (changes === undefined) throw new Error('ledger_body_changes has lost its row: erasures cannot be seen');
  return {
    erasures: Number(changes),
    rows: rows.filter((row): row is LedgerEntriesTable & { body_erasures: string } => row.index !== null),
  };
}

type Nullable<T> = { [K in keyof T]: T[K] | null };
