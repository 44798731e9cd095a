// An entry a projection cannot apply must not stop it for everyone: the stream it belongs to (a
// commitment, a profile) is set aside for that projection, named with the entry and the reason,
// and every other stream keeps flowing. `connect replay` rebuilds the projection after a fix and
// sets aside only what still fails.
import { errorCode } from '@connect/db';
import type { BodyCipher, Entry } from '@connect/ledger';
import type pg from 'pg';
import { type Projection, ProjectionError, type Tables } from './projection.ts';
import { redactedStream } from './projections/redactions.ts';
import { isTransient } from './transient.ts';

export interface Quarantined {
  stream: string;
  /** The first entry the projection could not apply. */
  index: number;
  error: string;
}

/** The stream an entry is about: a redaction is about the stream of the entry it erased. */
export const subjectOf = (entry: Entry): string => redactedStream(entry) ?? entry.stream;

/**
 * Whether the error is about the entry (its data cannot be applied or stored) rather than about the
 * system (the database went away, a table is missing): only the former sets a stream aside.
 */
function isEntryFault(error: unknown): boolean {
  if (isTransient(error)) return false;
  if (error instanceof ProjectionError) return true;
  const code = errorCode(error);
  // SQLSTATE classes 22 (data exception) and 23 (integrity constraint violation) are about values.
  if (code && /^[0-9A-Z]{5}$/.test(code)) return /^2[23]/.test(code);
  return true;
}

function reasonOf(error: unknown): string {
  return error instanceof ProjectionError
    ? error.reason
    : error instanceof Error
      ? error.message
      : String(error);
}

export async function quarantinedStreams(client: pg.ClientBase, projection: string): Promise<Set<string>> {
  const { rows } = await client.query<{ stream: string }>(
    'select stream from projection_quarantine where projection = $1',
    [projection],
  );
  return new Set(rows.map((row) => row.stream));
}

export async function recordQuarantined(
  client: pg.ClientBase,
  projection: string,
  quarantined: readonly Quarantined[],
): Promise<void> {
  if (quarantined.length === 0) return;
  await client.query(
    `insert into projection_quarantine (projection, stream, index, error)
     select $1, * from unnest($2::text[], $3::bigint[], $4::text[]) on conflict do nothing`,
    [
      projection,
      quarantined.map((q) => q.stream),
      quarantined.map((q) => q.index),
      quarantined.map((q) => q.error),
    ],
  );
}

/** How a batch's entries are applied inside its transaction; returns the streams newly set aside. */
export type ApplyEntries = (
  client: pg.ClientBase,
  projection: Projection,
  entries: readonly Entry[],
  tables: Tables,
  skip: Set<string>,
  cipher: BodyCipher,
) => Promise<Quarantined[]>;

/** An entry of the batch applyAll was given cannot be applied: its transaction is aborted. */
export class BatchEntryFault extends Error {
  constructor(readonly fault: unknown) {
    super(`an entry of the batch cannot be applied: ${reasonOf(fault)}`);
  }
}

/**
 * Applies the entries of streams not set aside in one go, inside the caller's transaction. An
 * entry that cannot be applied aborts it (BatchEntryFault): the caller then applies the batch
 * again with applyEachOrQuarantine. No savepoint, so the usual batch costs two round trips fewer.
 */
export const applyAll: ApplyEntries = async (client, projection, entries, tables, skip, cipher) => {
  const live = entries.filter((entry) => !skip.has(subjectOf(entry)));
  if (live.length === 0) return [];
  try {
    await projection.apply(client, live, tables, cipher);
  } catch (error) {
    throw isEntryFault(error) ? new BatchEntryFault(error) : error;
  }
  return [];
};

/**
 * Applies the entries of streams not set aside, inside the caller's transaction. When the batch
 * fails on an entry's account, it is applied again entry by entry (applyEachOrQuarantine).
 */
export const applyOrQuarantine: ApplyEntries = async (client, projection, entries, tables, skip, cipher) => {
  const live = entries.filter((entry) => !skip.has(subjectOf(entry)));
  if (live.length === 0) return [];
  await client.query('savepoint projection_batch');
  try {
    await projection.apply(client, live, tables, cipher);
    await client.query('release savepoint projection_batch');
    return [];
  } catch (error) {
    if (!isEntryFault(error)) throw error;
    await client.query('rollback to savepoint projection_batch');
  }
  return applyEachOrQuarantine(client, projection, live, tables, skip, cipher);
};

/**
 * Applies the entries one by one, each under a savepoint, setting aside the stream of each entry
 * that fails (`skip` grows). Returns the streams newly set aside.
 */
export const applyEachOrQuarantine: ApplyEntries = async (
  client,
  projection,
  entries,
  tables,
  skip,
  cipher,
) => {
  const quarantined: Quarantined[] = [];
  for (const entry of entries) {
    const stream = subjectOf(entry);
    if (skip.has(stream)) continue;
    await client.query('savepoint projection_entry');
    try {
      await projection.apply(client, [entry], tables, cipher);
      await client.query('release savepoint projection_entry');
    } catch (error) {
      if (!isEntryFault(error)) throw error;
      await client.query('rollback to savepoint projection_entry');
      skip.add(stream);
      quarantined.push({ stream, index: entry.index, error: reasonOf(error) });
    }
  }
  return quarantined;
};
