// Redaction: an entry's body (data and salt) is erased, for a lawful erasure request, while its
// header, leaf hash and every proof stay as they were. Who redacted what and why is itself
// recorded in the ledger (EntryRedacted in the `redactions` stream), and the projections react
// to that event.
import type { Database } from '@connect/db';
import { type Kysely, sql } from 'kysely';
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
