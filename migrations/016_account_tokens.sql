-- Single-use tokens mailed to prove a person reads an address: to verify an account's email, to
-- recover an account, to move an account to a new address. Only a SHA-256 of each token is kept;
-- the token itself exists only in the mail. `email` is the address it was mailed to: a
-- verification holds only while the account still has it, a change moves the account to it.
create table account_tokens (
  token_hash bytea primary key,
  user_id uuid not null references users (id) on delete cascade,
  purpose text not null check (purpose in ('verify-email', 'recover', 'change-email')),
  email text not null,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  used_at timestamptz
);
create index account_tokens_user on account_tokens (user_id, purpose) where used_at is null;
