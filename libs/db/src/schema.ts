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
  /** The body (salt and data) sealed under the stream's data key; then data and salt are null. */
  sealed: Uint8Array | null;
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
  import_progress: ImportProgressTable;
  import_follow: ImportFollowTable;
  sessions: SessionsTable;
  user_roles: UserRolesTable;
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
  notifications: NotificationsTable;
  notification_preferences: NotificationPreferencesTable;
  phone_numbers: PhoneNumbersTable;
  phone_code_sends: PhoneCodeSendsTable;
  calendar_feeds: CalendarFeedsTable;
  webhook_endpoints: WebhookEndpointsTable;
  webhook_deliveries: WebhookDeliveriesTable;
  push_subscriptions: PushSubscriptionsTable;
  account_tokens: AccountTokensTable;
  oidc_logins: OidcLoginsTable;
  oidc_identities: OidcIdentitiesTable;
  oidc_app_codes: OidcAppCodesTable;
  pending_invitations: PendingInvitationsTable;
  data_keys: DataKeysTable;
}

export interface DataKeysTable {
  subject: string;
  /** Null once erased. */
  wrapped_key: Uint8Array | null;
  master_key_id: string | null;
  created_at: Generated<Date>;
  erased_at: Date | null;
}

export interface UsersTable {
  id: string;
  /** The address in the clear: only in rows from before migration 029, until the start-up backfill seals it. */
  email: Generated<string | null>;
  /** The blind index of the normalised address (see email-index.ts): what sign-in finds an account by. */
  email_index: Uint8Array | null;
  /** The address sealed under `user:<id>` at `users:<id>:email`; null once erased. */
  email_sealed: Uint8Array | null;
  /** Null for an account that only signs in through a social login. */
  password_hash: string | null;
  display_name: string;
  /** Unused since migration 018: roles are in user_roles. */
  is_admin: Generated<boolean>;
  created_at: Generated<Date>;
  email_verified_at: Date | null;
  /** An https URL of the owner's picture, set with PATCH /v1/me. */
  avatar_url: Generated<string | null>;
  /** Sign-in is refused until then (a user banned in the Supabase project an import came from). */
  banned_until: Generated<Date | null>;
  /** When the user was erased (migration 026): their personal data is gone and they cannot sign in. */
  erased_at: Generated<Date | null>;
}

/** A source row `connect migrate-from-supabase` has dealt with (migration 021). */
export interface ImportProgressTable {
  kind: string;
  source_id: string;
  outcome: 'imported' | 'skipped' | 'failed';
  /** jsonb: written as JSON text, read as the array. */
  reasons: ColumnType<string[], string | undefined, string>;
  updated_at: Generated<Date>;
}

export interface ImportFollowTable {
  source: string;
  watermark: Date;
  polled_at: Generated<Date>;
  lag_seconds: number | null;
  applied_at: Date | null;
}

export interface UserRolesTable {
  user_id: string;
  role: 'admin' | 'auditor';
  granted_at: Generated<Date>;
  /** The admin who granted it; null for the system. */
  granted_by: string | null;
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
  /** The User-Agent and client address of the login that opened it. */
  user_agent: string | null;
  address: string | null;
}

export interface RefreshTokensTable {
  token_hash: Uint8Array;
  session_id: string;
  issued_at: Generated<Date>;
  used_at: Date | null;
  /** The successor token, sealed with a key derived from this token (see refresh-tokens.ts). */
  successor: Uint8Array | null;
}

/** A single-use token mailed to an address (migration 016); only its SHA-256 is kept. */
export interface AccountTokensTable {
  token_hash: Uint8Array;
  user_id: string;
  purpose: 'verify-email' | 'recover' | 'change-email';
  /** The address in the clear: only in rows from before migration 029, until the backfill seals it. */
  email: Generated<string | null>;
  /** The blind index of the address it was mailed to. */
  email_index: Uint8Array | null;
  /** That address, sealed under `user:<user_id>` (a change moves the account to it). */
  email_sealed: Uint8Array | null;
  created_at: Generated<Date>;
  expires_at: Date;
  used_at: Date | null;
}

/** A social sign-in on its way through an OpenID provider (migration 017). */
export interface OidcLoginsTable {
  /** SHA-256 of the random key in the browser's cookie. */
  key_hash: Uint8Array;
  provider: string;
  state: string;
  nonce: string;
  code_verifier: string;
  redirect_to: string;
  /** What the app asked to get back with its code, if anything. */
  app_state: string | null;
  created_at: Generated<Date>;
  expires_at: Date;
}

/** An account's identity at an OpenID provider. */
export interface OidcIdentitiesTable {
  user_id: string;
  provider: string;
  /** The provider's `sub`. */
  subject: string;
  /** The address in the clear: only in rows from before migration 029, until the backfill seals it. */
  email: Generated<string | null>;
  /** What the provider said the address was, sealed under `user:<user_id>`. */
  email_sealed: Uint8Array | null;
  email_verified: Generated<boolean>;
  created_at: Generated<Date>;
  last_sign_in_at: Generated<Date>;
}

/** A one-time code the app exchanges for a session after a social sign-in; only its SHA-256 is kept. */
export interface OidcAppCodesTable {
  code_hash: Uint8Array;
  user_id: string;
  provider: string;
  redirect_to: string;
  user_agent: string | null;
  address: string | null;
  created_at: Generated<Date>;
  expires_at: Date;
}

export interface HttpIdempotencyTable {
  user_id: string;
  key: string;
  request_hash: Uint8Array;
  status: number | null;
  /** The first response's body as JSON, sealed under the caller's key (migration 030); null in flight or once erased. */
  body: Uint8Array | null;
  headers: unknown;
  /** The token of the request holding or settling this key (migration 031); null for older rows. */
  claim: string | null;
  created_at: Generated<Date>;
}

export interface NotificationsTable {
  id: string;
  recipient_id: string;
  kind: string;
  /** {title, body} (NotificationText), sealed under user:<recipient_id> for notifications:<id>. */
  sealed: Uint8Array;
  link: string;
  commitment_id: string;
  ledger_index: number;
  created_at: Date;
  read_at: Date | null;
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
  avatar_url: Generated<string | null>;
}

export interface CommitmentTypesTable {
  key: string;
  name: string;
  requires_amount: boolean;
  requires_due_date: boolean;
  min_witnesses: number;
  created_by: Generated<string>;
  witnesses_must_be_verified: Generated<boolean>;
  last_index: number;
}

export interface CommitmentsTable {
  id: string;
  type: string;
  due_at: Date | null;
  status: string;
  overdue: boolean;
  version: number;
  created_at: Date;
  updated_at: Date;
  last_index: number;
  /** The commitment's domain state as JSON, sealed under its key (migration 027). */
  sealed: Uint8Array;
  /** The parties' user ids, which row-level security checks (migration 024). */
  party_ids: Generated<string[]>;
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
  party_ids: Generated<string[]>;
}

export interface CommitmentDocumentsTable {
  commitment_id: string;
  document_id: string;
  version: number;
  media_type: string;
  size: number;
  sha256: string;
  latest: boolean;
  /** terms | evidence */
  purpose: Generated<string>;
  attached_by: string | null;
  party_ids: Generated<string[]>;
}

export interface CommitmentHistoryTable {
  index: number;
  commitment_id: string;
  version: number;
  event_type: string;
  actor: string | null;
  recorded_at: Date;
  /** The event's data as JSON, sealed under the commitment's key; null once redacted. */
  sealed: Uint8Array | null;
  leaf_hash: Uint8Array;
  redacted: Generated<boolean>;
  party_ids: Generated<string[]>;
}

export interface WebhookEndpointsTable {
  id: string;
  url: string;
  events: string[] | null;
  /** `whsec_<base64>` as JSON, sealed under service:webhooks (migration 030): signing needs it back. */
  secret: Uint8Array;
  created_by: string | null;
  created_at: Generated<Date>;
  disabled_at: Date | null;
  disabled_reason: string | null;
  failing_since: Date | null;
}

export type WebhookDeliveryStatus = 'pending' | 'delivered' | 'failed' | 'dead';

export interface WebhookDeliveriesTable {
  id: string;
  endpoint_id: string;
  webhook_id: string;
  event_type: string;
  /** The message's payload as JSON, sealed under service:webhooks (migration 030). */
  payload: Uint8Array;
  attempts: Generated<number>;
  status: Generated<WebhookDeliveryStatus>;
  last_status_code: number | null;
  last_error: string | null;
  next_attempt_at: Date | null;
  delivered_at: Date | null;
  created_at: Generated<Date>;
}

export interface CalendarFeedsTable {
  user_id: string;
  /** The feed token is HMAC-SHA256(feed key, nonce); a new nonce revokes the old token. */
  nonce: Uint8Array;
  /** SHA-256 of the token, which finds the feed. */
  token_hash: Uint8Array;
  created_at: Generated<Date>;
}

/** A person's choice to have one kind of notification on one channel, or not (no row: the default). */
export interface NotificationPreferencesTable {
  user_id: string;
  channel: string;
  kind: string;
  enabled: boolean;
  updated_at: Generated<Date>;
}

/** A browser's Web Push subscription (its PushSubscription JSON); keys are base64url. */
export interface PushSubscriptionsTable {
  id: string;
  user_id: string;
  endpoint: string;
  p256dh: string;
  auth: string;
  created_at: Generated<Date>;
  last_success_at: Date | null;
}

/** A person's phone number for SMS (E.164); SMS other than the confirmation code waits for confirmed_at. */
export interface PhoneNumbersTable {
  user_id: string;
  /** The number in E.164 as JSON, sealed under the person's key (phone-number.ts, migration 030). */
  phone: Uint8Array;
  confirmed_at: Date | null;
  /** SHA-256 of the pending confirmation code (with the user and the number); null once confirmed. */
  code_hash: Uint8Array | null;
  code_expires_at: Date | null;
  code_attempts: Generated<number>;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

/** One confirmation code sent (or tried), for the per-person limit; kept when the number is removed. */
export interface PhoneCodeSendsTable {
  user_id: string;
  sent_at: Generated<Date>;
}

/** An invitation by email to an address no account had (migration 020). */
export interface PendingInvitationsTable {
  id: string;
  commitment_id: string;
  /** The address in the clear: only in rows from before migration 029, until the backfill seals it. */
  email: Generated<string | null>;
  /** The address to mail, as given (trimmed), sealed under `service:invitations`. */
  email_sealed: Uint8Array | null;
  /** The blind index of the normalised address (an HMAC since migration 029): what lookups go by. */
  email_hash: Uint8Array;
  role: 'participant' | 'witness';
  invited_by: string;
  created_at: Generated<Date>;
  expires_at: Date;
  accepted_at: Date | null;
  accepted_by: string | null;
  cancelled_at: Date | null;
  voided_at: Date | null;
}
