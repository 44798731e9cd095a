// Redaction: an entry's body (data and salt) is erased, for a lawful erasure request, while its
// header, leaf hash and every proof stay as they were. Who redacted what and why is itself
// recorded in the ledger (EntryRedacted in the `redactions` stream), and the projections react
// to that event.
import type { Database, LedgerEntriesTable } from '@connect/db';
import { type Kysely, sql } from 'kysely';
import type pg from 'pg';
import { readStream } from './entries.ts';
import type { Ledger } from './ledger.ts';

export const REDACTIONS_STREAM = 'redactions';
/** The event in the redactions stream that names the redacted entry (its index and stream). */
export const ENTRY_REDACTED = 'EntryRedacted';

export interface Redacted {
  index: number;
  stream: string;
  /** false when the body was already erased (a redaction that is finished, not repeated) */
  erased: boolean;
}

/** Which entries to redact: one by index, or every entry of a stream (a user's profile). */
export type RedactionTarget = { index: number } | { stream: string };

export async function redactEntries(
  deps: { db: Kysely<Database>; ledger: Ledger },
  target: RedactionTarget,
  options: { reason: string; by: string },
): Promise<Redacted[]> {
  const { db, ledger } = deps;
  const entries = await db
    .selectFrom('ledger_entries')
    .select(['index', 'stream', sql<boolean>`data is not null or sealed is not null`.as('hasBody')])
    .where((eb) => ('index' in target ? eb('index', '=', target.index) : eb('stream', '=', target.stream)))
    .where('stream', '!=', REDACTIONS_STREAM)
    .orderBy('index')
    .execute();
  // The entries whose redaction is already recorded (a rerun after a failure records the rest).
  const recorded = new Set(
    (await readStream(db, ledger, REDACTIONS_STREAM)).map((redaction) => redaction.data?.index),
  );
  const done: Redacted[] = [];
  for (const entry of entries) {
    if (entry.hasBody) {
      await db
        .updateTable('ledger_entries')
        .set({ data: null, salt: null, sealed: null })
        .where('index', '=', entry.index)
        .execute();
    }
    // Recorded after the erasure, so projections that react to it see the body gone; a rerun
    // after a failure between the two records it then.
    if (!recorded.has(entry.index)) {
      const result = await ledger.append({
        stream: REDACTIONS_STREAM,
        expectedVersion: 'any',
        actor: options.by,
        events: [
          {
            type: ENTRY_REDACTED,
            data: { index: entry.index, stream: entry.stream, reason: options.reason },
          },
        ],
      });
      if (result.outcome !== 'appended') throw new Error(`could not record the redaction: ${result.outcome}`);
    }
    done.push({ index: entry.index, stream: entry.stream, erased: entry.hasBody });
  }
  return done;
}

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
    `select c.changes as body_erasures, e.*
       from ledger_body_changes c
       left join lateral (
         select e.* from unnest($1::text[], $2::bigint[]) as s(stream, version)
           cross join lateral (
             select * from ledger_entries where stream = s.stream and version > s.version order by version) e
         where e.index < $3) e on true
      order by e.index`,
    [streams.map((s) => s.stream), streams.map((s) => s.version), before],
  );
  const changes = rows[0]?.body_erasures;
  if (changes === undefined) throw new Error('ledger_body_changes has lost its row: erasures cannot be seen');
  return {
    erasures: Number(changes),
    rows: rows.filter((row): row is LedgerEntriesTable & { body_erasures: string } => row.index !== null),
  };
}

type Nullable<T> = { [K in keyof T]: T[K] | null };
