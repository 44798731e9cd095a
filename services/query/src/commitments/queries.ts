// Reads of the commitment read models: plain functions over a reader transaction, so row-level
// security has already narrowed every table to what the caller may see.
import type { CommitmentsTable, Database } from '@connect/db';
import type { Amendment, DocumentVersion } from '@connect/domain';
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

/** The commitment columns a view is made from (the read model's `state` stays inside). */
type CommitmentRow = Omit<CommitmentsTable, 'last_index' | 'state' | 'party_ids'>;

const COMMITMENT_COLUMNS = [
  'c.id',
  'c.type',
  'c.title',
  'c.description',
  'c.terms',
  'c.amount_minor',
  'c.amount_currency',
  'c.due_at',
  'c.status',
  'c.overdue',
  'c.version',
  'c.created_at',
  'c.updated_at',
] as const;

type WithCommitment = Database & { c: CommitmentsTable };

/** A commitment's parties (named), latest documents and pending amendment, as JSON columns of the same row. */
function partiesAndDocuments(eb: ExpressionBuilder<WithCommitment, 'c'>) {
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
    eb
      .selectFrom('commitment_documents as d')
      .whereRef('d.commitment_id', '=', 'c.id')
      .where('d.latest', '=', true)
      .select(
        sql<DocumentView[]>`coalesce(json_agg(json_build_object('documentId', d.document_id, 'name', d.name,
          'mediaType', d.media_type, 'size', d.size, 'sha256', d.sha256, 'version', d.version,
          'purpose', d.purpose, 'attachedBy', d.attached_by)
          order by d.purpose = 'evidence', d.name, d.document_id), '[]')`.as('documents'),
      )
      .as('documents'),
    // The domain's state keeps the amendment awaiting answers; its proposer is named here. The
    // proposer's id is a subquery of its own: jsonb's operators are not leakproof, so under
    // row-level security a condition applying them could not be an index condition on profiles.
    sql<PendingAmendmentView | null>`nullif(c.state->'amendment', 'null'::jsonb)
      || jsonb_build_object('proposedByName', (select pr.display_name from profiles pr
        where pr.user_id = (select c.state->'amendment'->>'proposedBy')))`.as('pending_amendment'),
  ];
}

/** Full commitments (with parties and latest documents) by id, in the order given; one statement. */
export async function commitmentsById(db: Reader, ids: readonly string[]): Promise<CommitmentView[]> {
  if (ids.length === 0) return [];
  const rows = await db
    .selectFrom('commitments as c')
    .select(COMMITMENT_COLUMNS)
    .select(partiesAndDocuments)
    .where(sql<boolean>`c.id = any(${ids}::uuid[])`) // one statement shape for any number of ids
    .execute();
  const byId = new Map(rows.map((row) => [row.id, toView(row)]));
  return ids.flatMap((id) => byId.get(id) ?? []);
}

function toView(
  row: CommitmentRow & {
    parties: PartyView[] | null;
    documents: DocumentView[] | null;
    pending_amendment: PendingAmendmentView | null;
  },
): CommitmentView {
  const amendment = row.pending_amendment;
  return {
    id: row.id,
    type: row.type,
    title: row.title,
    description: row.description,
    terms: row.terms,
    amount:
      row.amount_minor === null || row.amount_currency === null
        ? null
        : { minor: row.amount_minor, currency: row.amount_currency },
    dueAt: row.due_at?.toISOString() ?? null,
    status: row.status,
    overdue: row.overdue,
    version: row.version,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
    parties: row.parties ?? [],
    documents: row.documents ?? [],
    pendingAmendment: amendment && {
      amendmentId: amendment.amendmentId,
      proposedBy: amendment.proposedBy,
      proposedByName: amendment.proposedByName ?? null,
      changes: amendment.changes,
      acceptedBy: amendment.acceptedBy,
    },
  };
}

export interface ListPage {
  items: CommitmentView[];
  /** The keyset of the last row, when more may follow. */
  next: { createdAt: string; id: string } | null;
}

/** A page of the caller's commitments, newest first by (createdAt, id), a stable order for cursors; one statement. */
export async function listCommitments(db: Reader, userId: string, filter: ListFilter): Promise<ListPage> {
  let page = db
    .selectFrom('commitment_parties as p')
    .select(['p.commitment_id', 'p.created_at'])
    .where('p.user_id', '=', userId);
  if (filter.status?.length) page = page.where('p.status', 'in', filter.status);
  if (filter.role) page = page.where('p.role', '=', filter.role);
  if (filter.type) page = page.where('p.type', '=', filter.type);
  if (filter.dueBefore) page = page.where('p.due_at', '<', new Date(filter.dueBefore));
  if (filter.dueAfter) page = page.where('p.due_at', '>=', new Date(filter.dueAfter));
  const after = filter.after;
  if (after) {
    page = page.where(
      (eb): Expression<SqlBool> =>
        sql<SqlBool>`(${eb.ref('p.created_at')}, ${eb.ref('p.commitment_id')}) < (${new Date(after.createdAt)}, ${after.id}::uuid)`,
    );
  }
  const limited = page
    .orderBy('p.created_at', 'desc')
    .orderBy('p.commitment_id', 'desc')
    .limit(filter.limit + 1);
  const rows = await db
    .with('page', () => limited)
    .selectFrom('page')
    .innerJoin('commitments as c', 'c.id', 'page.commitment_id')
    .select(COMMITMENT_COLUMNS)
    .select(partiesAndDocuments)
    .orderBy('page.created_at', 'desc')
    .orderBy('page.commitment_id', 'desc')
    .execute();
  const items = rows.slice(0, filter.limit).map(toView);
  const last = items.at(-1);
  return {
    items,
    next: rows.length > filter.limit && last ? { createdAt: last.createdAt, id: last.id } : null,
  };
}

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
export async function historyOf(db: Reader, commitmentIds: readonly string[]): Promise<HistoryRow[]> {
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
      'h.changes',
      'h.leaf_hash',
      'h.redacted',
    ])
    .where(sql<boolean>`h.commitment_id = any(${commitmentIds}::uuid[])`) // one statement shape for any number of ids
    .orderBy('h.index')
    .execute();
  return rows.map((row) => ({
    index: row.index,
    commitmentId: row.commitment_id,
    version: row.version,
    type: row.event_type,
    actor: row.actor,
    actorName: row.display_name,
    at: row.recorded_at.toISOString(),
    changes: row.changes as Record<string, unknown>,
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
    .where('user_id', 'in', userIds)
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
  const rows = await db.selectFrom('commitment_types').selectAll().orderBy('key').execute();
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
  commitmentIds: readonly string[],
): Promise<DocumentVersionView[]> {
  if (commitmentIds.length === 0) return [];
  const rows = await db
    .selectFrom('commitment_documents as d')
    .select([
      'd.commitment_id',
      'd.document_id',
      'd.name',
      'd.media_type',
      'd.size',
      'd.sha256',
      'd.version',
      'd.purpose',
      'd.attached_by',
    ])
    .where(sql<boolean>`d.commitment_id = any(${commitmentIds}::uuid[])`)
    .orderBy('d.commitment_id')
    .orderBy('d.document_id')
    .orderBy('d.version')
    .execute();
  return rows.map((row) => ({
    commitmentId: row.commitment_id,
    documentId: row.document_id,
    name: row.name,
    mediaType: row.media_type,
    size: Number(row.size),
    sha256: row.sha256,
    version: row.version,
    purpose: row.purpose as DocumentView['purpose'],
    attachedBy: row.attached_by,
  }));
}
