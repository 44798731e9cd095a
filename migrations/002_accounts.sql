-- Accounts are mutable tables, not ledger events: secrets never enter an immutable log. Only a
-- profile (user id and display name) is written to the ledger.

create table users (
  id uuid primary key,
  email text not null unique check (email = lower(email)),
  password_hash text not null,
  display_name text not null,
  is_admin boolean not null default false,
  created_at timestamptz not null default now()
);

create table sessions (
  id uuid primary key,
  user_id uuid not null references users (id),
  created_at timestamptz not null default now(),
  revoked_at timestamptz
);
create index sessions_user on sessions (user_id);

-- Only hashes of refresh tokens are kept. A token is used once; its successor replaces it.
create table refresh_tokens (
  token_hash bytea primary key,
  session_id uuid not null references sessions (id),
  issued_at timestamptz not null default now(),
  used_at timestamptz
);
create index refresh_tokens_session on refresh_tokens (session_id);

-- Idempotency-Key records of the command API: the first response, replayed for a retry.
create table http_idempotency (
  user_id uuid not null,
  key text not null,
  request_hash bytea not null,
  status integer,
  body jsonb,
  headers jsonb,
  created_at timestamptz not null default now(),
  primary key (user_id, key)
);
