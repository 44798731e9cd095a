// Kysely types of the tables the migrations create.
import type { ColumnType } from 'kysely';

type Generated<T> = ColumnType<T, T | undefined, T>;

export interface LedgerHeadTable {
  singleton: Generated<boolean>;
  origin: string;
  verifier_key: string;
  tree_size: Generated<number>;
  root_hash: Generated<Uint8Array>;
}

export interface LedgerEntriesTable {
  index: number;
  id: string;
  stream: string;
  version: number;
  type: string;
  schema: number;
  recorded_at: Date;
  actor: string | null;
  meta: unknown;
  data: unknown;
  salt: Uint8Array | null;
  data_hash: Uint8Array;
  leaf_hash: Uint8Array;
}

export interface LedgerTreeTable {
  level: number;
  idx: number;
  hash: Uint8Array;
}

export interface LedgerCheckpointsTable {
  tree_size: number;
  root_hash: Uint8Array;
  note: string;
  signed_at: Generated<Date>;
}

export interface LedgerIdempotencyTable {
  key: string;
  stream: string;
  first_index: number;
  count: number;
  fingerprint: Uint8Array;
  created_at: Generated<Date>;
}

export interface Database {
  ledger_head: LedgerHeadTable;
  ledger_entries: LedgerEntriesTable;
  ledger_tree: LedgerTreeTable;
  ledger_checkpoints: LedgerCheckpointsTable;
  ledger_idempotency: LedgerIdempotencyTable;
  schema_migrations: { name: string; applied_at: Generated<Date> };
  users: UsersTable;
  sessions: SessionsTable;
  refresh_tokens: RefreshTokensTable;
  http_idempotency: HttpIdempotencyTable;
  projection_checkpoints: ProjectionCheckpointsTable;
  projection_quarantine: ProjectionQuarantineTable;
  profiles: ProfilesTable;
  commitment_types: CommitmentTypesTable;
  commitments: CommitmentsTable;
  commitment_parties: CommitmentPartiesTable;
  commitment_documents: CommitmentDocumentsTable;
  commitment_history: CommitmentHistoryTable;
}

export interface UsersTable {
  id: string;
  email: string;
  password_hash: string;
  display_name: string;
  is_admin: Generated<boolean>;
  created_at: Generated<Date>;
}

export interface SessionsTable {
  id: string;
  user_id: string;
  created_at: Generated<Date>;
  revoked_at: Date | null;
  last_active_at: Generated<Date>;
  /** The absolute end of the session, however active it is. */
  expires_at: Generated<Date>;
  /** When the session lapses unless refreshed: the earlier of the idle deadline and expires_at. */
  active_until: Generated<Date>;
}

export interface RefreshTokensTable {
  token_hash: Uint8Array;
  session_id: string;
  issued_at: Generated<Date>;
  used_at: Date | null;
  /** The successor token, sealed with a key derived from this token (see refresh-tokens.ts). */
  successor: Uint8Array | null;
}

export interface HttpIdempotencyTable {
  user_id: string;
  key: string;
  request_hash: Uint8Array;
  status: number | null;
  body: unknown;
  headers: unknown;
  created_at: Generated<Date>;
}

export interface ProjectionQuarantineTable {
  projection: string;
  stream: string;
  index: number;
  error: string;
  quarantined_at: Generated<Date>;
}

export interface ProjectionCheckpointsTable {
  projection: string;
  last_index: Generated<number>;
  updated_at: Generated<Date>;
}

export interface ProfilesTable {
  user_id: string;
  display_name: string;
  registered_at: Date;
  redacted: Generated<boolean>;
  last_index: number;
}

export interface CommitmentTypesTable {
  key: string;
  name: string;
  requires_amount: boolean;
  requires_due_date: boolean;
  min_witnesses: number;
  last_index: number;
}

export interface CommitmentsTable {
  id: string;
  type: string;
  title: string;
  description: string;
  terms: string;
  amount_minor: number | null;
  amount_currency: string | null;
  due_at: Date | null;
  status: string;
  overdue: boolean;
  version: number;
  created_at: Date;
  updated_at: Date;
  last_index: number;
  state: unknown;
}

export interface CommitmentPartiesTable {
  commitment_id: string;
  user_id: string;
  role: string;
  response: string;
  status: string;
  type: string;
  due_at: Date | null;
  created_at: Date;
}

export interface CommitmentDocumentsTable {
  commitment_id: string;
  document_id: string;
  version: number;
  name: string;
  media_type: string;
  size: number;
  sha256: string;
  latest: boolean;
  /** terms | evidence */
  purpose: Generated<string>;
  attached_by: string | null;
}

export interface CommitmentHistoryTable {
  index: number;
  commitment_id: string;
  version: number;
  event_type: string;
  actor: string | null;
  recorded_at: Date;
  changes: unknown;
  leaf_hash: Uint8Array;
  redacted: Generated<boolean>;
}
