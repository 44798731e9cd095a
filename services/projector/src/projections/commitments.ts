// commitments and what hangs off them (parties, documents, history), from each commitment's
// stream. The domain's own evolve() computes the state; the rows are a function of that state.

import { commitmentRowPlace, type FieldCipher, historyRowPlace, preparedQuery } from '@connect/db';
import {
  applyRecorded,
  COMMITMENT_STREAMS,
  type Commitment,
  commitmentIdOf,
  commitmentStream,
  initialState,
  replayRecorded,
} from '@connect/domain';
import type { Entry } from '@connect/ledger';
import { type BodyCipher, REDACTIONS_STREAM, streamKeySubject, streamRowsBefore } from '@connect/ledger';
import type pg from 'pg';
import { type Projection, ProjectionError, type Tables } from '../projection.ts';
import { arrayLiteral, type Columns, ident, Statement, upsertOn } from '../sql.ts';
import { redactedIndex, redactedStream } from './redactions.ts';

interface CommitmentRow {
  id: string;
  type: string;
  due_at: string | null;
  status: string;
  overdue: boolean;
  version: number;
  created_at: string | null;
  updated_at: string | null;
  last_index: number;
  /** The state the next entry is applied to (and the views are made from), sealed. */
  sealed: Buffer;
  party_ids: string[];
}

const commitmentColumns: Columns<CommitmentRow> = {
  id: 'uuid',
  type: 'text',
  due_at: 'timestamptz',
  status: 'text',
  overdue: 'boolean',
  version: 'integer',
  created_at: 'timestamptz',
  updated_at: 'timestamptz',
  last_index: 'bigint',
  sealed: 'bytea',
  party_ids: 'text[]',
};

/** A party, with the commitment columns a list filters on. */
interface PartyRow {
  commitment_id: string;
  user_id: string;
  role: string;
  response: string;
  status: string;
  type: string;
  due_at: string | null;
  created_at: string | null;
  party_ids: string[];
}

const partyColumns: Columns<PartyRow> = {
  commitment_id: 'uuid',
  user_id: 'text',
  role: 'text',
  response: 'text',
  status: 'text',
  type: 'text',
  due_at: 'timestamptz',
  created_at: 'timestamptz',
  party_ids: 'text[]',
};

interface DocumentRow {
  commitment_id: string;
  document_id: string;
  version: number;
  media_type: string;
  size: number;
  sha256: string;
  latest: boolean;
  purpose: string;
  attached_by: string | null;
  party_ids: string[];
}

const documentColumns: Columns<DocumentRow> = {
  commitment_id: 'uuid',
  document_id: 'uuid',
  version: 'integer',
  media_type: 'text',
  size: 'bigint',
  sha256: 'text',
  latest: 'boolean',
  purpose: 'text',
  attached_by: 'text',
  party_ids: 'text[]',
};

interface HistoryRow {
  index: number;
  commitment_id: string;
  version: number;
  event_type: string;
  actor: string | null;
  recorded_at: string;
  /** The event's data, sealed; null once redacted. */
  sealed: Buffer | null;
  leaf_hash: Buffer;
  redacted: boolean;
  party_ids: string[];
}

const historyColumns: Columns<HistoryRow> = {
  index: 'bigint',
  commitment_id: 'uuid',
  version: 'integer',
  event_type: 'text',
  actor: 'text',
  recorded_at: 'timestamptz',
  sealed: 'bytea',
  leaf_hash: 'bytea',
  redacted: 'boolean',
  party_ids: 'text[]',
};

interface Projected {
  state: Commitment;
  lastIndex: number;
}

export const commitmentsProjection: Projection = {
  name: 'commitments',
  tables: ['commitments', 'commitment_parties', 'commitment_documents', 'commitment_history'],
  streams: [COMMITMENT_STREAMS, REDACTIONS_STREAM],
  async apply(client, entries, tables, cipher) {
    // A commitment's own events, and redactions of them (which replay it from the ledger as now erased).
    const mine = entries.flatMap((entry) => {
      const id = commitmentIdOf(entry.stream) ?? commitmentIdOf(redactedStream(entry) ?? '');
      return id ? [{ id, entry }] : [];
    });
    if (mine.length === 0) return;
    const touched = await loadStates(client, tables, cipher.fields, [...new Set(mine.map((m) => m.id))]);
    const membersBefore = new Map([...touched].map(([id, { state }]) => [id, partyIdsOf(state).join(',')]));
    const history: NewHistoryRow[] = [];
    const redactedIndexes: number[] = [];
    for (const { id, entry } of mine) {
      if (entry.stream === REDACTIONS_STREAM) {
        redactedIndexes.push(redactedIndex(entry));
        const replayed = await replayFromLedger(client, cipher, entry.index, id);
        if (replayed.exists)
          touched.set(id, { state: replayed, lastIndex: touched.get(id)?.lastIndex ?? -1 });
        continue;
      }
      const before = touched.get(id) ?? { state: initialState(id), lastIndex: -1 };
      const { state, changes } = applyEntry(before.state, entry);
      touched.set(id, { state, lastIndex: entry.index });
      history.push({
        index: entry.index,
        commitment_id: id,
        version: entry.version,
        event_type: entry.type,
        actor: entry.actor,
        recorded_at: entry.recordedAt,
        changes,
        leaf_hash: Buffer.from(entry.leafHash, 'base64'),
        redacted: entry.redacted,
      });
    }
    // An entry redacted in the same batch that recorded it shows as redacted at once.
    const shown = history.map((row) =>
      redactedIndexes.includes(row.index) ? { ...row, changes: null, redacted: true } : row,
    );
    // Rows already written for a commitment whose parties changed carry the old party_ids.
    const membershipMoved = [...membersBefore]
      .filter(([id, before]) => {
        const after = touched.get(id);
        return after !== undefined && partyIdsOf(after.state).join(',') !== before;
      })
      .map(([id]) => id);
    await writeRows(client, tables, cipher.fields, [...touched.values()], shown, {
      redactedIndexes,
      membershipMoved,
    });
  },
};

/**
 * An update giving the history rows of these commitments their new party_ids (the other tables'
 * rows are all rewritten with the commitment; history rows are only added), as a part of `statement`.
 */
function historyMembership(
  statement: Statement,
  table: string,
  ids: string[],
  membersOf: (id: string) => string[],
): string {
  const idList = statement.param(ids, 'uuid[]');
  const members = statement.param(
    ids.map((id) => arrayLiteral(membersOf(id))),
    'text[]',
  );
  return `update ${ident(table)} h set party_ids = m.party_ids::text[]
      from unnest(${idList}, ${members}) as m(id, party_ids)
     where h.commitment_id = m.id and h.party_ids is distinct from m.party_ids::text[]
       -- said again of h, so its index is used
       and h.commitment_id = any(${idList})`;
}

/** The user ids of a commitment's parties, the row-level security policies' party_ids. */
export function partyIdsOf(state: Commitment): string[] {
  return [...new Set(state.parties.map((p) => p.userId))].sort();
}

/** A commitment replayed from its entries before `before`, as the ledger holds them now (redactions erased). */
async function replayFromLedger(
  client: pg.ClientBase,
  cipher: BodyCipher,
  before: number,
  id: string,
): Promise<Commitment> {
  const rows = await streamRowsBefore(client, [commitmentStream(id)], before);
  try {
    return replayRecorded(initialState(id), await cipher.entries(rows, ''));
  } catch (error) {
    throw ProjectionError.of(before, error);
  }
}

/** The state after one entry, and what the history shows it changed. */
function applyEntry(state: Commitment, entry: Entry): { state: Commitment; changes: unknown } {
  try {
    const applied = applyRecorded(state, entry);
    return { state: applied.state, changes: applied.event?.data ?? {} };
  } catch (error) {
    throw ProjectionError.of(entry.index, error);
  }
}

/** The data key of a commitment's read-model rows: its stream's. */
const keyOf = (id: string) => streamKeySubject(commitmentStream(id));

async function loadStates(
  client: pg.ClientBase,
  tables: Tables,
  fields: FieldCipher,
  ids: string[],
): Promise<Map<string, Projected>> {
  const { rows } = await client.query<{ id: string; sealed: Buffer; last_index: number }>(
    preparedQuery(
      `select id, sealed, last_index from ${ident(tables.commitments as string)} where id = any($1::uuid[])`,
      [ids],
    ),
  );
  const states = await fields.open<Commitment>(
    rows.map((row) => ({ subject: keyOf(row.id), place: commitmentRowPlace(row.id), stored: row.sealed })),
  );
  return new Map(
    rows.map((row, i) => [row.id, { state: sealedOrThrow(states[i], row.id), lastIndex: row.last_index }]),
  );
}

/** A commitment's key is never erased while its stream is appended to (body-cipher refuses that). */
function sealedOrThrow<T>(value: T | null | undefined, id: string): T {
  if (value === null || value === undefined) throw new Error(`the data key of commitment ${id} is erased`);
  return value;
}

/** A history row before it is sealed and given its commitment's party_ids. */
type NewHistoryRow = Omit<HistoryRow, 'party_ids' | 'sealed'> & { changes: unknown };

async function writeRows(
  client: pg.ClientBase,
  tables: Tables,
  fields: FieldCipher,
  projected: Projected[],
  newHistory: NewHistoryRow[],
  changed: {
    redactedIndexes: number[];
    /** Commitments whose parties changed: their history rows written before carry the old party_ids. */
    membershipMoved: string[];
  },
): Promise<void> {
  const { redactedIndexes, membershipMoved } = changed;
  const ids = projected.map((p) => p.state.id);
  const partyIds = new Map(projected.map(({ state }) => [state.id, partyIdsOf(state)]));
  const membersOf = (id: string) => partyIds.get(id) ?? [];
  const sealed = await fields.seal([
    ...projected.map(({ state }) => ({
      subject: keyOf(state.id),
      place: commitmentRowPlace(state.id),
      value: state,
    })),
    ...newHistory.map((row) => ({
      subject: keyOf(row.commitment_id),
      place: historyRowPlace(row.index),
      value: row.changes,
    })),
  ]);
  const sealedHistory = sealed.slice(projected.length);
  // Field by field: spreading a row into a literal that adds keys costs microseconds in this V8.
  const history = newHistory.map(
    (row, i): HistoryRow => ({
      index: row.index,
      commitment_id: row.commitment_id,
      version: row.version,
      event_type: row.event_type,
      actor: row.actor,
      recorded_at: row.recorded_at,
      sealed: row.redacted ? null : sealedOrThrow(sealedHistory[i], row.commitment_id),
      leaf_hash: row.leaf_hash,
      redacted: row.redacted,
      party_ids: membersOf(row.commitment_id),
    }),
  );
  const commitments = projected.map(
    ({ state, lastIndex }, i): CommitmentRow => ({
      id: state.id,
      type: state.type,
      due_at: state.dueAt,
      status: state.status,
      overdue: state.overdue,
      version: state.version,
      created_at: state.createdAt,
      updated_at: state.updatedAt,
      last_index: lastIndex,
      sealed: sealedOrThrow(sealed[i], state.id),
      party_ids: membersOf(state.id),
    }),
  );
  const parties = projected.flatMap(({ state }) =>
    state.parties.map(
      (p): PartyRow => ({
        commitment_id: state.id,
        user_id: p.userId,
        role: p.role,
        response: p.response,
        status: state.status,
        type: state.type,
        due_at: state.dueAt,
        created_at: state.createdAt,
        party_ids: membersOf(state.id),
      }),
    ),
  );
  const documents = projected.flatMap(({ state }) => {
    const latest = new Map(state.documents.map((d) => [d.documentId, d.version]));
    return state.documents.map(
      (d): DocumentRow => ({
        commitment_id: state.id,
        document_id: d.documentId,
        version: d.version,
        media_type: d.mediaType,
        size: d.size,
        sha256: d.sha256,
        latest: latest.get(d.documentId) === d.version,
        purpose: d.purpose,
        attached_by: d.attachedBy,
        party_ids: membersOf(state.id),
      }),
    );
  });
  // One statement: upsert the commitments and their parties and documents, drop parties and
  // documents no longer there, add the history rows.
  const statement = new Statement();
  const table = (name: string) => tables[name] as string;
  /** Deletes this commitment's rows whose keys are not among the rows written now. */
  const dropOthers = <Row>(
    target: string,
    columns: Columns<Row>,
    keys: (keyof Row & string)[],
    rows: readonly Row[],
  ) => {
    const arrays = keys.map((key) =>
      statement.param(
        rows.map((row) => row[key]),
        `${columns[key]}[]`,
      ),
    );
    const names = keys.map((_, i) => `k${i}`);
    const match = keys.map((key, i) => `n.k${i} = t.${ident(key)}`).join(' and ');
    return `delete from ${ident(target)} t where t.commitment_id = any(${statement.param(ids, 'uuid[]')})
      and not exists (select 1 from unnest(${arrays.join(', ')}) as n(${names.join(', ')}) where ${match})`;
  };
  statement.parts.push(
    statement.insert(
      table('commitments'),
      commitmentColumns,
      commitments,
      upsertOn('id', commitmentColumns),
    ) ?? '',
    dropOthers(table('commitment_parties'), partyColumns, ['commitment_id', 'user_id'], parties),
    statement.insert(
      table('commitment_parties'),
      partyColumns,
      parties,
      upsertOn(['commitment_id', 'user_id'], partyColumns),
    ) ?? '',
    dropOthers(
      table('commitment_documents'),
      documentColumns,
      ['commitment_id', 'document_id', 'version'],
      documents,
    ),
    statement.insert(
      table('commitment_documents'),
      documentColumns,
      documents,
      upsertOn(['commitment_id', 'document_id', 'version'], documentColumns),
    ) ?? '',
    statement.insert(table('commitment_history'), historyColumns, history) ?? '',
    redactedIndexes.length === 0
      ? ''
      : `update ${ident(table('commitment_history'))} set redacted = true, sealed = null
          where index = any(${statement.param(redactedIndexes, 'bigint[]')})`,
    // The rows this statement adds are not seen by this update (one snapshot): they carry the new party_ids already.
    membershipMoved.length === 0 || redactedIndexes.length > 0
      ? ''
      : historyMembership(statement, table('commitment_history'), membershipMoved, membersOf),
  );
  await statement.run(client);
  // After a statement that marks history rows redacted, in one of its own: one statement must not update a row twice.
  if (membershipMoved.length > 0 && redactedIndexes.length > 0) {
    const membership = new Statement();
    membership.parts.push(
      historyMembership(membership, table('commitment_history'), membershipMoved, membersOf),
    );
    await membership.run(client);
  }
}
