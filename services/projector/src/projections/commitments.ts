// commitments and what hangs off them (parties, documents, history), from each commitment's
// stream. The domain's own evolve() computes the state; the rows are a function of that state.
import {
  applyRecorded,
  type Commitment,
  commitmentIdOf,
  commitmentStream,
  initialState,
  replayRecorded,
} from '@connect/domain';
import type { Entry } from '@connect/ledger';
import { entryFromRow, REDACTIONS_STREAM } from '@connect/ledger';
import type pg from 'pg';
import { type Projection, ProjectionError, type Tables } from '../projection.ts';
import { ident, Statement, upsertOn } from '../sql.ts';
import { redactedIndex, redactedStream } from './redactions.ts';

const commitmentColumns = [
  { name: 'id', type: 'uuid' },
  { name: 'type', type: 'text' },
  { name: 'title', type: 'text' },
  { name: 'description', type: 'text' },
  { name: 'terms', type: 'text' },
  { name: 'amount_minor', type: 'bigint' },
  { name: 'amount_currency', type: 'text' },
  { name: 'due_at', type: 'timestamptz' },
  { name: 'status', type: 'text' },
  { name: 'overdue', type: 'boolean' },
  { name: 'version', type: 'integer' },
  { name: 'created_at', type: 'timestamptz' },
  { name: 'updated_at', type: 'timestamptz' },
  { name: 'last_index', type: 'bigint' },
  { name: 'state', type: 'jsonb' },
] as const;

const partyColumns = [
  { name: 'commitment_id', type: 'uuid' },
  { name: 'user_id', type: 'text' },
  { name: 'role', type: 'text' },
  { name: 'response', type: 'text' },
  { name: 'status', type: 'text' },
  { name: 'type', type: 'text' },
  { name: 'due_at', type: 'timestamptz' },
  { name: 'created_at', type: 'timestamptz' },
] as const;

const documentColumns = [
  { name: 'commitment_id', type: 'uuid' },
  { name: 'document_id', type: 'uuid' },
  { name: 'version', type: 'integer' },
  { name: 'name', type: 'text' },
  { name: 'media_type', type: 'text' },
  { name: 'size', type: 'bigint' },
  { name: 'sha256', type: 'text' },
  { name: 'latest', type: 'boolean' },
] as const;

const historyColumns = [
  { name: 'index', type: 'bigint' },
  { name: 'commitment_id', type: 'uuid' },
  { name: 'version', type: 'integer' },
  { name: 'event_type', type: 'text' },
  { name: 'actor', type: 'text' },
  { name: 'recorded_at', type: 'timestamptz' },
  { name: 'changes', type: 'jsonb' },
  { name: 'leaf_hash', type: 'bytea' },
  { name: 'redacted', type: 'boolean' },
] as const;

interface Projected {
  state: Commitment;
  lastIndex: number;
}

export const commitmentsProjection: Projection = {
  name: 'commitments',
  tables: ['commitments', 'commitment_parties', 'commitment_documents', 'commitment_history'],
  streams: ['commitment-%', 'redactions'],
  async apply(client, entries, tables) {
    // A commitment's own events, and redactions of them (which replay it from the ledger as now erased).
    const mine = entries.flatMap((entry) => {
      const id = commitmentIdOf(entry.stream) ?? commitmentIdOf(redactedStream(entry) ?? '');
      return id ? [{ id, entry }] : [];
    });
    if (mine.length === 0) return;
    const touched = await loadStates(client, tables, [...new Set(mine.map((m) => m.id))]);
    const history: unknown[][] = [];
    const redactedIndexes: number[] = [];
    for (const { id, entry } of mine) {
      if (entry.stream === REDACTIONS_STREAM) {
        redactedIndexes.push(redactedIndex(entry));
        const replayed = await replayFromLedger(client, entry.index, id);
        if (replayed.exists)
          touched.set(id, { state: replayed, lastIndex: touched.get(id)?.lastIndex ?? -1 });
        continue;
      }
      const before = touched.get(id) ?? { state: initialState(id), lastIndex: -1 };
      const { state, changes } = applyEntry(before.state, entry);
      touched.set(id, { state, lastIndex: entry.index });
      history.push([
        entry.index,
        id,
        entry.version,
        entry.type,
        entry.actor,
        entry.recordedAt,
        JSON.stringify(changes),
        Buffer.from(entry.leafHash, 'base64'),
        entry.redacted,
      ]);
    }
    for (const row of history) {
      if (redactedIndexes.includes(row[0] as number)) {
        row[6] = '{}';
        row[8] = true;
      }
    }
    await writeRows(client, tables, [...touched.values()], history, redactedIndexes);
  },
};

/** A commitment replayed from its entries before `before`, as the ledger holds them now (redactions erased). */
async function replayFromLedger(client: pg.ClientBase, before: number, id: string): Promise<Commitment> {
  const { rows } = await client.query(
    'select * from ledger_entries where stream = $1 and index < $2 order by version',
    [commitmentStream(id), before],
  );
  try {
    return replayRecorded(
      initialState(id),
      rows.map((row) => entryFromRow(row, '')),
    );
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

async function loadStates(
  client: pg.ClientBase,
  tables: Tables,
  ids: string[],
): Promise<Map<string, Projected>> {
  const { rows } = await client.query<{ id: string; state: Commitment; last_index: number }>(
    `select id, state, last_index from ${ident(tables.commitments as string)} where id = any($1::uuid[])`,
    [ids],
  );
  return new Map(rows.map((row) => [row.id, { state: row.state, lastIndex: row.last_index }]));
}

async function writeRows(
  client: pg.ClientBase,
  tables: Tables,
  projected: Projected[],
  history: unknown[][],
  redactedIndexes: number[],
): Promise<void> {
  const ids = projected.map((p) => p.state.id);
  const commitments = projected.map(({ state, lastIndex }) => [
    state.id,
    state.type,
    state.title,
    state.description,
    state.terms,
    state.amount?.minor ?? null,
    state.amount?.currency ?? null,
    state.dueAt,
    state.status,
    state.overdue,
    state.version,
    state.createdAt,
    state.updatedAt,
    lastIndex,
    JSON.stringify(state),
  ]);
  const parties = projected.flatMap(({ state }) =>
    state.parties.map((p) => [
      state.id,
      p.userId,
      p.role,
      p.response,
      state.status,
      state.type,
      state.dueAt,
      state.createdAt,
    ]),
  );
  const documents = projected.flatMap(({ state }) => {
    const latest = new Map(state.documents.map((d) => [d.documentId, d.version]));
    return state.documents.map((d) => [
      state.id,
      d.documentId,
      d.version,
      d.name,
      d.mediaType,
      d.size,
      d.sha256,
      latest.get(d.documentId) === d.version,
    ]);
  });
  // One statement: upsert the commitments and their parties and documents, drop parties and
  // documents no longer there, add the history rows.
  const statement = new Statement();
  const table = (name: string) => tables[name] as string;
  const dropOthers = (target: string, keys: string[], rows: unknown[][], types: string[]) => {
    const arrays = keys.map((_, i) =>
      statement.param(
        rows.map((row) => row[i]),
        `${types[i]}[]`,
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
    dropOthers(table('commitment_parties'), ['commitment_id', 'user_id'], parties, ['uuid', 'text']),
    statement.insert(
      table('commitment_parties'),
      partyColumns,
      parties,
      upsertOn(['commitment_id', 'user_id'], partyColumns),
    ) ?? '',
    dropOthers(table('commitment_documents'), ['commitment_id', 'document_id', 'version'], documents, [
      'uuid',
      'uuid',
      'integer',
    ]),
    statement.insert(
      table('commitment_documents'),
      documentColumns,
      documents,
      upsertOn(['commitment_id', 'document_id', 'version'], documentColumns),
    ) ?? '',
    statement.insert(table('commitment_history'), historyColumns, history) ?? '',
    redactedIndexes.length === 0
      ? ''
      : `update ${ident(table('commitment_history'))} set redacted = true, changes = '{}'
          where index = any(${statement.param(redactedIndexes, 'bigint[]')})`,
  );
  await statement.run(client);
}
