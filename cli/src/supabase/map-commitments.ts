// A Supabase commitment → the events of its stream. Its history rows become the domain events they
// record; where they cannot (missing, unknown, or not replaying to the row as it stands), one
// CommitmentImported states the source's state instead. Either way the stream replays to that
// state. Pure: file hashes come in as arguments.
import {
  type Amount,
  type Commitment,
  type CommitmentEvent,
  eventSchemas,
  evolve,
  initialState,
  type Party,
  STATUSES,
  type Status,
} from '@connect/domain';
import type { SourceCommitment, SourceCommitmentRows, SourceDocument, SourceHistory } from './source.ts';

export const IMPORTED_FROM = 'supabase';

const STATUS: Record<string, Status> = {
  draft: 'draft',
  pending: 'proposed',
  active: 'active',
  completed: 'fulfilled',
  disputed: 'disputed',
  breached: 'breached',
  cancelled: 'cancelled',
};
/** Our status for a source status; undefined for one the app never had. */
export const statusOf = (status: string): Status | undefined =>
  Object.hasOwn(STATUS, status) ? STATUS[status] : undefined;
const ROLES = ['creator', 'participant', 'witness'] as const;
const RESPONSES = ['invited', 'accepted', 'declined'] as const;

/** An exported file as found: null when the storage export lacks it. */
export type FileFacts = { sha256: string; size: number } | null;

export interface MappingContext {
  /** Type keys by source type id (the types imported). */
  typeKeys: ReadonlyMap<string, string>;
  /** The users imported (a party who is not one is left out). */
  users: ReadonlySet<string>;
  /** By commitment_documents id. */
  files: ReadonlyMap<string, FileFacts>;
}

export interface PlannedEvent {
  event: CommitmentEvent;
  meta: {
    importedFrom: string;
    sourceId: string;
    originalAt: string;
    originalActor: string | null;
    /** On a CommitmentImported: the newest history row the state it states includes. */
    historyThrough?: string;
  };
}

export type CommitmentDecision =
  | {
      outcome: 'import';
      events: PlannedEvent[];
      expected: Commitment;
      fromHistory: boolean;
      reasons: string[];
    }
  | { outcome: 'failed'; reasons: string[] };

class Unmappable extends Error {}

const iso = (date: Date) => date.toISOString();
export const text = (value: unknown) =>
  value === null || value === undefined ? '' : typeof value === 'string' ? value : JSON.stringify(value);

function amountOf(cents: unknown, currency: unknown): Amount | null {
  if ((cents === null || cents === undefined) && (currency === null || currency === undefined)) return null;
  const minor = Number(cents);
  if (cents === null || cents === undefined || !Number.isSafeInteger(minor) || minor < 0)
    throw new Unmappable(`invalid amount_cents ${JSON.stringify(cents)}`);
  const code = typeof currency === 'string' ? currency.trim() : '';
  if (!/^[A-Z]{3}$/.test(code) || !Intl.supportedValuesOf('currency').includes(code))
    throw new Unmappable(`invalid currency ${JSON.stringify(currency)}`);
  return { minor, currency: code };
}

function dateOf(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  const date = value instanceof Date ? value : new Date(String(value));
  if (Number.isNaN(date.getTime())) throw new Unmappable(`invalid date ${JSON.stringify(value)}`);
  return iso(date);
}

/** The row's title, description and terms as our domain holds them. */
export const textsOf = (c: SourceCommitment) => ({
  title: c.title.trim(),
  description: c.description ?? '',
  terms: text(c.terms),
});

/** The state the source shows, as our domain holds it; throws Unmappable when the row itself is invalid. */
function sourceState(rows: SourceCommitmentRows, ctx: MappingContext, reasons: string[]) {
  const { commitment: c } = rows;
  const status = statusOf(c.status);
  if (!status) throw new Unmappable(`unknown status "${c.status}"`);
  const type = ctx.typeKeys.get(c.type_id);
  if (!type) throw new Unmappable(`type ${c.type_id} was not imported`);
  if (!ctx.users.has(c.creator_id)) throw new Unmappable(`creator ${c.creator_id} was not imported`);
  const parties: Party[] = [{ userId: c.creator_id, role: 'creator', response: 'accepted' }];
  for (const party of rows.parties) {
    const row = `party ${party.user_id}`;
    if (!ctx.users.has(party.user_id)) reasons.push(`${row} left out: no such user imported (orphan row)`);
    else if (!(ROLES as readonly string[]).includes(party.role))
      reasons.push(`${row} left out: unknown role "${party.role}"`);
    else if (!(RESPONSES as readonly string[]).includes(party.status))
      reasons.push(`${row} left out: unknown response "${party.status}"`);
    else if (party.role === 'creator') {
      if (party.user_id !== c.creator_id) reasons.push(`${row} left out: a second creator`);
    } else
      parties.push({
        userId: party.user_id,
        role: party.role as Party['role'],
        response: party.status as Party['response'],
      });
  }
  const documentIds = new Map<string, string>();
  const documents = rows.documents.flatMap((doc) => {
    const facts = ctx.files.get(doc.id);
    if (!facts) {
      reasons.push(
        `document "${doc.name}" version ${doc.version} left out: file documents/${doc.storage_path} missing from the storage export`,
      );
      return [];
    }
    if (doc.size_bytes !== null && Number(doc.size_bytes) !== facts.size)
      reasons.push(
        `document "${doc.name}" version ${doc.version}: the file has ${facts.size} bytes, the row says ${doc.size_bytes}`,
      );
    const documentId = documentIds.get(doc.name) ?? doc.id;
    documentIds.set(doc.name, documentId);
    return [
      {
        documentId,
        name: doc.name,
        mediaType: doc.mime_type || 'application/octet-stream',
        size: facts.size,
        sha256: facts.sha256,
        version: doc.version,
      },
    ];
  });
  return {
    status,
    type,
    creatorId: c.creator_id,
    ...textsOf(c),
    amount: amountOf(c.amount_cents, c.currency),
    dueAt: dateOf(c.due_date),
    parties,
    documents,
    documentIds,
  };
}

type Expected = ReturnType<typeof sourceState>;

function validated(event: CommitmentEvent): CommitmentEvent {
  const parsed = eventSchemas[event.type].safeParse(event.data);
  if (!parsed.success)
    throw new Unmappable(
      `${event.type}: ${parsed.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join(', ')}`,
    );
  return { type: event.type, data: parsed.data } as CommitmentEvent;
}

const needsActor = (from: Status, to: Status) =>
  (to === 'fulfilled' || to === 'disputed') && (from === 'active' || from === 'fulfilment_claimed');

/** The one event that moves a commitment from `from` to `to`, if there is one; `by` made the change. */
function statusEvent(
  from: Status,
  to: Status,
  by: string | null,
  reason: string,
): CommitmentEvent | undefined {
  if (to === 'proposed' && from === 'draft') return { type: 'CommitmentProposed', data: {} };
  if (to === 'draft' && from === 'proposed') return { type: 'ProposalWithdrawn', data: {} };
  if (to === 'active' && from === 'proposed') return { type: 'CommitmentActivated', data: {} };
  if (to === 'cancelled' && from !== 'cancelled') return { type: 'CommitmentCancelled', data: {} };
  if (by && needsActor(from, to))
    return to === 'fulfilled'
      ? { type: 'FulfilmentConfirmed', data: { userId: by } }
      : { type: 'CommitmentDisputed', data: { userId: by, reason: reason || 'disputed in Supabase' } };
  if ((to === 'fulfilled' || to === 'breached') && from === 'disputed')
    return { type: 'DisputeResolved', data: { outcome: to, decidedBy: 'agreement' } };
  return undefined;
}

/** The shortest run of status events from `from` to `to`, each made by `by`; undefined when none leads there. */
function statusPath(from: Status, to: Status, by: string): CommitmentEvent[] | undefined {
  const paths = new Map<Status, CommitmentEvent[]>([[from, []]]);
  const queue: Status[] = [from];
  for (let status = queue.shift(); status !== undefined; status = queue.shift()) {
    const path = paths.get(status) ?? [];
    if (status === to) return path;
    for (const next of STATUSES) {
      const event = paths.has(next) ? undefined : statusEvent(status, next, by, '');
      if (event) {
        paths.set(next, [...path, event]);
        queue.push(next);
      }
    }
  }
  return undefined;
}

const TERM_KEYS = ['title', 'description', 'terms', 'due_date', 'amount_cents', 'currency'];

/** The events one history row records, given the state before it. */
function eventsOf(
  row: SourceHistory,
  state: Commitment,
  rows: SourceCommitmentRows,
  expected: Expected,
  ctx: MappingContext,
): CommitmentEvent[] {
  const data = row.new_data ?? {};
  const old = row.old_data ?? {};
  const by = row.changed_by;
  const needBy = () => {
    if (!by) throw new Unmappable(`history ${row.id}: ${row.change_type} without changed_by`);
    return by;
  };
  switch (row.change_type) {
    case 'created':
      if (state.exists) throw new Unmappable(`history ${row.id}: created twice`);
      return [
        {
          type: 'CommitmentDrafted',
          data: {
            type: expected.type,
            creatorId: rows.commitment.creator_id,
            title: text(data.title).trim(),
            description: text(data.description),
            terms: text(data.terms),
            amount: amountOf(data.amount_cents, data.currency),
            dueAt: dateOf(data.due_date),
          },
        },
      ];
    case 'updated': {
      const keys = Object.keys(data).filter((key) => TERM_KEYS.includes(key));
      if (keys.length === 0) throw new Unmappable(`history ${row.id}: an update of no known field`);
      const changes: Record<string, unknown> = {};
      if ('title' in data) changes.title = text(data.title).trim();
      if ('description' in data) changes.description = text(data.description);
      if ('terms' in data) changes.terms = text(data.terms);
      if ('due_date' in data) changes.dueAt = dateOf(data.due_date);
      if ('amount_cents' in data || 'currency' in data)
        changes.amount = amountOf(
          data.amount_cents ?? state.amount?.minor,
          data.currency ?? state.amount?.currency,
        );
      return [{ type: 'CommitmentUpdated', data: { changes } } as CommitmentEvent];
    }
    case 'status_changed': {
      const to = STATUS[text(data.status)];
      if (!to) throw new Unmappable(`history ${row.id}: unknown status "${text(data.status)}"`);
      const from = state.status;
      const event = statusEvent(from, to, needsActor(from, to) ? needBy() : null, text(data.reason));
      if (!event) throw new Unmappable(`history ${row.id}: no event goes from ${from} to ${to}`);
      return [event];
    }
    case 'party_added': {
      const userId = text(data.user_id);
      if (!ctx.users.has(userId) || data.role === 'creator') return [];
      return [{ type: 'PartyInvited', data: { userId, role: data.role } } as CommitmentEvent];
    }
    case 'party_responded': {
      const userId = text(data.user_id);
      if (!ctx.users.has(userId)) return [];
      if (data.status === 'accepted') return [{ type: 'InvitationAccepted', data: { userId } }];
      if (data.status === 'declined') return [{ type: 'InvitationDeclined', data: { userId } }];
      throw new Unmappable(`history ${row.id}: unknown response "${text(data.status)}"`);
    }
    case 'party_removed': {
      const userId = text(old.user_id);
      if (!ctx.users.has(userId)) return [];
      return [{ type: 'PartyRemoved', data: { userId } }];
    }
    case 'document_added': {
      const doc = findDocument(rows.documents, data);
      if (!doc)
        throw new Unmappable(`history ${row.id}: the document it adds is not in commitment_documents`);
      const facts = ctx.files.get(doc.id);
      if (!facts) return [];
      const documentId = expected.documentIds.get(doc.name) ?? doc.id;
      return [
        {
          type: 'DocumentAttached',
          data: {
            documentId,
            name: doc.name,
            mediaType: doc.mime_type || 'application/octet-stream',
            size: facts.size,
            sha256: facts.sha256,
            version: doc.version,
          },
        },
      ];
    }
    case 'document_removed': {
      const name = text(old.name);
      const documentId = state.documents.find((d) => d.name === name || d.documentId === old.id)?.documentId;
      if (!documentId) throw new Unmappable(`history ${row.id}: removes a document the history never added`);
      return [{ type: 'DocumentRemoved', data: { documentId } }];
    }
    default:
      throw new Unmappable(`history ${row.id}: unknown change_type "${row.change_type}"`);
  }
}

/** Where an event brought over from a history row came from (its meta.sourceId). */
export const historySourceId = (row: Pick<SourceHistory, 'id'>) => `commitment_history:${row.id}`;

/** The events one history row records, validated, each with the row's time and author in its meta. */
function historyEvents(
  row: SourceHistory,
  state: Commitment,
  rows: SourceCommitmentRows,
  expected: Expected,
  ctx: MappingContext,
): PlannedEvent[] {
  return eventsOf(row, state, rows, expected, ctx).map((raw) => ({
    event: validated(raw),
    meta: {
      importedFrom: IMPORTED_FROM,
      sourceId: historySourceId(row),
      originalAt: iso(row.created_at),
      originalActor: row.changed_by,
    },
  }));
}

function findDocument(
  documents: SourceDocument[],
  data: Record<string, unknown>,
): SourceDocument | undefined {
  return (
    documents.find((d) => d.id === data.id) ??
    documents.find((d) => d.name === data.name && d.version === Number(data.version ?? 1))
  );
}

/** Where the replayed state and the source differ, one phrase each. */
export function differences(state: Commitment, expected: Omit<Expected, 'documentIds'>): string[] {
  const sortParties = (parties: Party[]) =>
    [...parties]
      .sort((a, b) => a.userId.localeCompare(b.userId))
      .map((p) => `${p.userId}:${p.role}:${p.response}`);
  const sortDocs = (docs: Expected['documents']) =>
    docs.map((d) => `${d.documentId}:${d.version}:${d.name}:${d.mediaType}:${d.size}:${d.sha256}`).sort();
  const pairs: [string, unknown, unknown][] = [
    ['status', state.status, expected.status],
    ['type', state.type, expected.type],
    ['title', state.title, expected.title],
    ['description', state.description, expected.description],
    ['terms', state.terms, expected.terms],
    ['amount', state.amount, expected.amount],
    ['due date', state.dueAt, expected.dueAt],
    ['parties', sortParties(state.parties), sortParties(expected.parties)],
    ['documents', sortDocs(state.documents), sortDocs(expected.documents)],
  ];
  return pairs
    .filter(([, a, b]) => JSON.stringify(a) !== JSON.stringify(b))
    .map(([field, a, b]) => `${field}: history says ${JSON.stringify(a)}, the row ${JSON.stringify(b)}`);
}

export function mapCommitment(rows: SourceCommitmentRows, ctx: MappingContext): CommitmentDecision {
  const reasons: string[] = [];
  let expected: Expected;
  try {
    expected = sourceState(rows, ctx, reasons);
  } catch (error) {
    if (error instanceof Unmappable) return { outcome: 'failed', reasons: [...reasons, error.message] };
    throw error;
  }
  const { commitment: c } = rows;
  const replay = (events: PlannedEvent[]) =>
    events.reduce(
      (state, { event, meta }) => evolve(state, { event, at: meta.originalAt }),
      initialState(c.id),
    );
  try {
    if (rows.history.length === 0) throw new Unmappable('no history');
    const planned: PlannedEvent[] = [];
    let state = initialState(c.id);
    for (const row of rows.history) {
      for (const next of historyEvents(row, state, rows, expected, ctx)) {
        state = evolve(state, { event: next.event, at: next.meta.originalAt });
        planned.push(next);
      }
      if (row.change_type === 'created' && !state.exists)
        throw new Unmappable(`history ${row.id}: created nothing`);
    }
    if (!state.exists) throw new Unmappable('the history never creates it');
    const contradictions = differences(state, expected);
    if (contradictions.length > 0)
      throw new Unmappable(`history contradicts the current row (${contradictions.join('; ')})`);
    return { outcome: 'import', events: planned, expected: state, fromHistory: true, reasons };
  } catch (error) {
    if (!(error instanceof Unmappable)) throw error;
    reasons.push(`imported as it stands, without its history: ${error.message}`);
  }
  try {
    const { documentIds: _ids, ...state } = expected;
    const event = validated({ type: 'CommitmentImported', data: { source: IMPORTED_FROM, ...state } });
    const events = [
      {
        event,
        meta: {
          importedFrom: IMPORTED_FROM,
          sourceId: `commitments:${c.id}`,
          originalAt: iso(c.updated_at),
          originalActor: c.creator_id,
          historyThrough: rows.history.at(-1)?.id ?? '0',
        },
      },
    ];
    return { outcome: 'import', events, expected: replay(events), fromHistory: false, reasons };
  } catch (error) {
    if (error instanceof Unmappable) return { outcome: 'failed', reasons: [...reasons, error.message] };
    throw error;
  }
}

const sameAmount = (a: Amount | null, b: Amount | null) => JSON.stringify(a) === JSON.stringify(b);

/**
 * Events that take `state` to the source's state without history to say how: the terms, parties and
 * documents as they now stand, then the status by the shortest run of transitions (responses before
 * or after it, whichever order arrives). Changes nobody is known to have made are the creator's.
 */
function eventsToReach(state: Commitment, expected: Expected): CommitmentEvent[] | undefined {
  const by = expected.creatorId;
  const changes: Record<string, unknown> = {};
  if (state.title !== expected.title) changes.title = expected.title;
  if (state.description !== expected.description) changes.description = expected.description;
  if (state.terms !== expected.terms) changes.terms = expected.terms;
  if (!sameAmount(state.amount, expected.amount)) changes.amount = expected.amount;
  if (state.dueAt !== expected.dueAt) changes.dueAt = expected.dueAt;
  const edits: CommitmentEvent[] =
    Object.keys(changes).length > 0
      ? [{ type: 'CommitmentUpdated', data: { changes } } as CommitmentEvent]
      : [];

  const current = new Map(state.parties.map((p) => [p.userId, p]));
  const wanted = new Map(expected.parties.map((p) => [p.userId, p]));
  const responses: { userId: string; response: 'accepted' | 'declined' }[] = [];
  for (const party of state.parties)
    if (party.role !== 'creator' && wanted.get(party.userId)?.role !== party.role)
      edits.push({ type: 'PartyRemoved', data: { userId: party.userId } });
  for (const party of expected.parties) {
    if (party.role === 'creator') continue;
    const kept = current.get(party.userId)?.role === party.role;
    if (!kept)
      edits.push({
        type: 'PartyInvited',
        data: { userId: party.userId, role: party.role },
      } as CommitmentEvent);
    if (party.response !== 'invited') responses.push({ userId: party.userId, response: party.response });
  }

  const key = (d: { documentId: string; version: number }) => `${d.documentId}:${d.version}`;
  const attached = new Set(state.documents.map(key));
  const kept = new Set(expected.documents.map(key));
  const dropped = new Set(state.documents.filter((d) => !kept.has(key(d))).map((d) => d.documentId));
  for (const documentId of dropped) edits.push({ type: 'DocumentRemoved', data: { documentId } });
  for (const doc of expected.documents)
    if (!attached.has(key(doc)) || dropped.has(doc.documentId))
      edits.push({ type: 'DocumentAttached', data: doc });

  for (const responsesFirst of [false, true]) {
    let draft = state;
    const events: CommitmentEvent[] = [];
    const apply = (list: CommitmentEvent[]) => {
      for (const event of list) {
        draft = evolve(draft, { event, at: draft.updatedAt ?? '' });
        events.push(event);
      }
    };
    apply(edits);
    const answers = () =>
      responses
        .filter((r) => draft.parties.find((p) => p.userId === r.userId)?.response !== r.response)
        .map(
          ({ userId, response }): CommitmentEvent =>
            response === 'accepted'
              ? { type: 'InvitationAccepted', data: { userId } }
              : { type: 'InvitationDeclined', data: { userId } },
        );
    if (responsesFirst) apply(answers());
    const path = statusPath(draft.status, expected.status, by);
    if (!path) continue;
    apply(path);
    if (!responsesFirst) apply(answers());
    if (differences(draft, expected).length === 0) return events.map(validated);
  }
  return undefined;
}

export type ChangeDecision =
  | { outcome: 'changed'; events: PlannedEvent[]; reasons: string[] }
  | { outcome: 'unchanged'; reasons: string[] }
  | { outcome: 'failed'; reasons: string[] };

/**
 * What an imported commitment needs to reach the source's state again (the dual run): the events of
 * the history rows not yet `applied`, in order; then, where those do not arrive (no history, or rows
 * that cannot be mapped), events that state the difference. Pure, as mapCommitment.
 */
export function mapChanges(
  rows: SourceCommitmentRows,
  ctx: MappingContext,
  current: Commitment,
  applied: (row: SourceHistory) => boolean,
): ChangeDecision {
  const reasons: string[] = [];
  let expected: Expected;
  try {
    expected = sourceState(rows, ctx, reasons);
  } catch (error) {
    if (error instanceof Unmappable) return { outcome: 'failed', reasons: [...reasons, error.message] };
    throw error;
  }
  const { commitment: c } = rows;
  const planned: PlannedEvent[] = [];
  let state = current;
  try {
    for (const row of rows.history) {
      if (applied(row)) continue;
      for (const next of historyEvents(row, state, rows, expected, ctx)) {
        state = evolve(state, { event: next.event, at: next.meta.originalAt });
        planned.push(next);
      }
    }
  } catch (error) {
    if (!(error instanceof Unmappable)) throw error;
    reasons.push(`the rest of its history cannot be replayed: ${error.message}`);
  }
  if (differences(state, expected).length > 0) {
    let events: CommitmentEvent[] | undefined;
    try {
      events = eventsToReach(state, expected);
    } catch (error) {
      if (!(error instanceof Unmappable)) throw error;
      reasons.push(error.message);
    }
    if (!events)
      return {
        outcome: 'failed',
        reasons: [
          ...reasons,
          `no events lead to the source's state (${differences(state, expected).join('; ')})`,
        ],
      };
    if (planned.length > 0 || reasons.length > 0) reasons.push('brought to the source state as it stands');
    const meta = {
      importedFrom: IMPORTED_FROM,
      sourceId: `commitments:${c.id}`,
      originalAt: iso(c.updated_at),
      originalActor: null,
    };
    planned.push(...events.map((event) => ({ event, meta })));
  }
  return planned.length > 0
    ? { outcome: 'changed', events: planned, reasons }
    : { outcome: 'unchanged', reasons };
}
