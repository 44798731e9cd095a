// Reads of the commitment read models: plain functions over a reader transaction, so row-level
// security has already narrowed every table to what the caller may see. What a commitment says is
// sealed in its row (its domain state); the views are made from it once opened.
import {
  type CommitmentsTable,
  commitmentRowPlace,
  compiledOnce,
  compiledPerShape,
  type Database,
  type FieldCipher,
  historyRowPlace,
} from '@connect/db';
import { type Amendment, type Commitment, commitmentStream, type DocumentVersion } from '@connect/domain';
import { streamKeySubject } from '@connect/ledger';
import { type Expression, type ExpressionBuilder, type SqlBool, sql } from 'kysely';
import type { Reader } from '../reader.ts';

export interface PartyView {
  userId: string;
  displayName: string | null;
  role: string;
  response: string;
}

/** A document as the API shows it: the domain's latest version of it; `purpose` tells terms from evidence. */
export type DocumentView = DocumentVersion;

/** An amendment awaiting answers: who proposed it, what it changes, who accepted it so far. */
export interface PendingAmendmentView extends Amendment {
  proposedByName: string | null;
}

export interface CommitmentView {
  id: string;
  type: string;
  title: string;
  description: string;
  terms: string;
  amount: { minor: number; currency: string } | null;
  dueAt: string | null;
  status: string;
  overdue: boolean;
  version: number;
  createdAt: string;
  updatedAt: string;
  parties: PartyView[];
  documents: DocumentView[];
  pendingAmendment: PendingAmendmentView | null;
}

export interface ListFilter {
  status?: string[];
  role?: string;
  type?: string;
  dueBefore?: string;
  dueAfter?: string;
  /** Keyset: commitments created before this (createdAt, id), in the list's order. */
  after?: { createdAt: string; id: string };
  limit: number;
}

/** The commitment columns a view is made from. */
type CommitmentRow = Omit<CommitmentsTable, 'last_index' | 'party_ids'>;

const COMMITMENT_COLUMNS = [
  'c.id',
  'c.type',
  'c.due_at',
  'c.status',
  'c.overdue',
  'c.version',
  'c.created_at',
  'c.updated_at',
  'c.sealed',
] as const;

type WithCommitment = Database & { c: CommitmentsTable };

/** The data key of a commitment's read-model rows: its stream's. */
const keyOf = (id: string) => streamKeySubject(commitmentStream(id));

/** The domain states sealed in these commitment rows, in their order. */
async function statesOf(
  fields: FieldCipher,
  rows: readonly { id: string; sealed: Uint8Array }[],
): Promise<(Commitment | undefined)[]> {
  return fields.open<Commitment>(
    rows.map((row) => ({ subject: keyOf(row.id), place: commitmentRowPlace(row.id), stored: row.sealed })),
  );
}

/** A commitment's parties (named) as a JSON column of the same row. */
function namedParties(eb: ExpressionBuilder<WithCommitment, 'c'>) {
  return [
    // Each party's name is a lookup of its own: joined, the planner would rather hash the whole
    // profiles table for each commitment (and check its policy on every row) than probe it per party.
    eb
      .selectFrom('commitment_parties as p')
      .whereRef('p.commitment_id', '=', 'c.id')
      .select(
        sql<PartyView[]>`coalesce(json_agg(json_build_object('userId', p.user_id,
          'displayName', (select pr.display_name from profiles pr where pr.user_id = p.user_id),
          'role', p.role, 'response', p.response)
          order by case p.role when 'creator' then 0 when 'participant' then 1 else 2 end, p.user_id), '[]')`.as(
          'parties',
        ),
      )
      .as('parties'),
  ];
}

const commitmentRowsById = compiledOnce(
  (db: Reader, ids: readonly string[]) =>
    db
      .selectFrom('commitments as c')
      .select(COMMITMENT_COLUMNS)
      .select(namedParties)
      .where(sql<boolean>`c.id = any(${ids}::uuid[])`), // one statement shape for any number of ids
);

/** Full commitments (with parties and latest documents) by id, in the order given; one statement. */
export async function commitmentsById(
  db: Reader,
  fields: FieldCipher,
  ids: readonly string[],
): Promise<CommitmentView[]> {
  if (ids.length === 0) return [];
  const rows = await commitmentRowsById(db, ids);
  const views = await viewsOf(fields, rows);
  const byId = new Map(views.map((view) => [view.id, view]));
  return ids.flatMap((id) => byId.get(id) ?? []);
}

type ViewRow = CommitmentRow & { parties: PartyView[] | null };

/** The views of these rows, in their order; a commitment whose key is erased has none. */
async function viewsOf(fields: FieldCipher, rows: readonly ViewRow[]): Promise<CommitmentView[]> {
  const states = await statesOf(fields, rows);
  return rows.flatMap((row, i) => {
    const state = states[i];
    return state ? [toView(row, state)] : [];
  });
}

function toView(row: ViewRow, state: Commitment): CommitmentView {
  const parties = row.parties ?? [];
  const amendment = state.amendment;
  return {
    id: row.id,
    type: row.type,
    title: state.title,
    description: state.description,
    terms: state.terms,
    amount: state.amount,
    dueAt: row.due_at?.toISOString() ?? null,
    status: row.status,
    overdue: row.overdue,
    version: row.version,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
    parties,
    documents: latestDocuments(state.documents),
    pendingAmendment: amendment && {
      amendmentId: amendment.amendmentId,
      proposedBy: amendment.proposedBy,
      proposedByName: parties.find((p) => p.userId === amendment.proposedBy)?.displayName ?? null,
      changes: amendment.changes,
      acceptedBy: amendment.acceptedBy,
    },
  };
}

/** The latest version of each document: the terms first, then evidence, each by name. */
function latestDocuments(versions: readonly DocumentVersion[]): DocumentView[] {
  const latest = new Map<string, DocumentVersion>();
  for (const version of versions) {
    const known = latest.get(version.documentId);
    if (!known || known.version < version.version) latest.set(version.documentId, version);
  }
  return [...latest.values()].map(documentView).sort(byPurposeAndName);
}

const byPurposeAndName = (a: DocumentView, b: DocumentView) =>
  Number(a.purpose === 'evidence') - Number(b.purpose === 'evidence') ||
  compare(a.name, b.name) ||
  compare(a.documentId, b.documentId);

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Only the fields the API shows, whatever else a stored state carries. */
const documentView = (d: DocumentVersion): DocumentView => ({
  documentId: d.documentId,
  name: d.name,
  mediaType: d.mediaType,
  size: d.size,
  sha256: d.sha256,
  version: d.version,
  purpose: d.purpose,
  attachedBy: d.attachedBy,
});

export interface ListPage {
  items: CommitmentView[];
  /** The keyset of the last row, when more may follow. */
  next: { createdAt: string; id: string } | null;
}

/** A page of the caller's commitments, newest first by (createdAt, id), a stable order for cursors; one statement. */
export async function listCommitments(
  db: Reader,
  fields: FieldCipher,
  userId: string,
  filter: ListFilter,
): Promise<ListPage> {
  const status = filter.status?.length ? filter.status : undefined;
  const { role, type, dueBefore, dueAfter, after } = filter;
  const shape = {
    status: !!status,
    role: !!role,
    type: !!type,
    dueBefore: !!dueBefore,
    dueAfter: !!dueAfter,
    after: !!after,
  };
  const rows = await listRows(db, shape, {
    userId,
    status,
    role: role || undefined,
    type: type || undefined,
    dueBefore: dueBefore ? new Date(dueBefore) : undefined,
    dueAfter: dueAfter ? new Date(dueAfter) : undefined,
    afterCreatedAt: after ? new Date(after.createdAt) : undefined,
    afterId: after?.id,
    limit: filter.limit + 1,
  });
  const shown = rows.slice(0, filter.limit);
  const items = await viewsOf(fields, shown);
  const last = shown.at(-1);
  return {
    items,
    next:
      rows.length > filter.limit && last ? { createdAt: last.created_at.toISOString(), id: last.id } : null,
  };
}

// Built once for each combination of filters; a value is undefined when its filter is not asked for.
const listRows = compiledPerShape(
  (
    db: Reader,
    shape: Record<'status' | 'role' | 'type' | 'dueBefore' | 'dueAfter' | 'after', boolean>,
    v: {
      userId: string;
      status: readonly string[] | undefined;
      role: string | undefined;
      type: string | undefined;
      dueBefore: Date | undefined;
      dueAfter: Date | undefined;
      afterCreatedAt: Date | undefined;
      afterId: string | undefined;
      limit: number;
    },
  ) => {
    let page = db
      .selectFrom('commitment_parties as p')
      .select(['p.commitment_id', 'p.created_at'])
      .where('p.user_id', '=', v.userId);
    if (shape.status) page = page.where(sql<boolean>`p.status = any(${v.status}::text[])`);
    if (shape.role) page = page.where('p.role', '=', v.role as string);
    if (shape.type) page = page.where('p.type', '=', v.type as string);
    if (shape.dueBefore) page = page.where('p.due_at', '<', v.dueBefore as Date);
    if (shape.dueAfter) page = page.where('p.due_at', '>=', v.dueAfter as Date);
    if (shape.after) {
      page = page.where(
        (eb): Expression<SqlBool> =>
          sql<SqlBool>`(${eb.ref('p.created_at')}, ${eb.ref('p.commitment_id')}) < (${v.afterCreatedAt}, ${v.afterId}::uuid)`,
      );
    }
    const limited = page.orderBy('p.created_at', 'desc').orderBy('p.commitment_id', 'desc').limit(v.limit);
    return db
      .with('page', () => limited)
      .selectFrom('page')
      .innerJoin('commitments as c', 'c.id', 'page.commitment_id')
      .select(COMMITMENT_COLUMNS)
      .select(namedParties)
      .orderBy('page.created_at', 'desc')
      .orderBy('page.commitment_id', 'desc');
  },
);

export interface HistoryRow {
  index: number;
  commitmentId: string;
  version: number;
  type: string;
  actor: string | null;
  actorName: string | null;
  at: string;
  changes: Record<string, unknown>;
  leafHash: string;
  redacted: boolean;
}

/** Every event of these commitments, in ledger order; one statement. */
export async function historyOf(
  db: Reader,
  fields: FieldCipher,
  commitmentIds: readonly string[],
): Promise<HistoryRow[]> {
  if (commitmentIds.length === 0) return [];
  const rows = await db
    .selectFrom('commitment_history as h')
    .leftJoin('profiles as pr', 'pr.user_id', 'h.actor')
    .select([
      'h.index',
      'h.commitment_id',
      'h.version',
      'h.event_type',
      'h.actor',
      'pr.display_name',
      'h.recorded_at',
      'h.sealed',
      'h.leaf_hash',
      'h.redacted',
    ])
    .where(sql<boolean>`h.commitment_id = any(${commitmentIds}::uuid[])`) // one statement shape for any number of ids
    .orderBy('h.index')
    .execute();
  const sealed = rows.flatMap((row) =>
    row.sealed
      ? [{ subject: keyOf(row.commitment_id), place: historyRowPlace(row.index), stored: row.sealed }]
      : [],
  );
  const opened = await fields.open<Record<string, unknown>>(sealed);
  let next = 0;
  return rows.map((row) => ({
    index: row.index,
    commitmentId: row.commitment_id,
    version: row.version,
    type: row.event_type,
    actor: row.actor,
    actorName: row.display_name,
    at: row.recorded_at.toISOString(),
    // Redacted (or its commitment's key erased): what it changed is gone.
    changes: (row.sealed ? opened[next++] : undefined) ?? {},
    leafHash: Buffer.from(row.leaf_hash).toString('base64'),
    redacted: row.redacted,
  }));
}

/** Display names of the profiles the caller may see, by user id. */
export async function displayNames(db: Reader, userIds: readonly string[]): Promise<Map<string, string>> {
  if (userIds.length === 0) return new Map();
  const rows = await db
    .selectFrom('profiles')
    .select(['user_id', 'display_name'])
    .where(sql<boolean>`user_id = any(${[...userIds]}::text[])`) // one statement shape for any number of ids
    .execute();
  return new Map(rows.map((row) => [row.user_id, row.display_name]));
}

/** A user's profile as the read model has it (name and picture); undefined before it is projected. */
export async function profileOf(
  db: Reader,
  userId: string,
): Promise<{ displayName: string; avatarUrl: string | null } | undefined> {
  const row = await db
    .selectFrom('profiles')
    .select(['display_name', 'avatar_url'])
    .where('user_id', '=', userId)
    .executeTakeFirst();
  return row && { displayName: row.display_name, avatarUrl: row.avatar_url };
}

export async function commitmentTypes(db: Reader) {
  const rows = await db
    .selectFrom('commitment_types')
    .select([
      'key',
      'name',
      'requires_amount',
      'requires_due_date',
      'min_witnesses',
      'created_by',
      'witnesses_must_be_verified',
    ])
    .orderBy('key')
    .execute();
  return rows.map((row) => ({
    key: row.key,
    name: row.name,
    requiresAmount: row.requires_amount,
    requiresDueDate: row.requires_due_date,
    minWitnesses: row.min_witnesses,
    createdBy: row.created_by,
    witnessesMustBeVerified: row.witnesses_must_be_verified,
  }));
}

/** Every stored version of a document (metadata only), with the commitment it belongs to. */
export interface DocumentVersionView extends DocumentView {
  commitmentId: string;
}

/** Every version of every document of these commitments, oldest version first per document; one statement. */
export async function documentVersionsOf(
  db: Reader,
  fields: FieldCipher,
  commitmentIds: readonly string[],
): Promise<DocumentVersionView[]> {
  if (commitmentIds.length === 0) return [];
  const rows = await db
    .selectFrom('commitments as c')
    .select(['c.id', 'c.sealed'])
    .where(sql<boolean>`c.id = any(${commitmentIds}::uuid[])`)
    .orderBy('c.id')
    .execute();
  const states = await statesOf(fields, rows);
  return states.flatMap((state) =>
    (state?.documents ?? [])
      .map((d) => ({ commitmentId: state?.id as string, ...documentView(d) }))
      .sort((a, b) => compare(a.documentId, b.documentId) || a.version - b.version),
  );
}
