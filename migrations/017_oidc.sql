-- Social login through OpenID Connect (services/command/src/auth/oidc). Kept in the database, not
-- in one process's memory, so any instance can finish a sign-in another one started.

-- A sign-in on its way through a provider: started by GET …/start, used up by the callback (or
-- forgotten after expires_at). The browser holds a random key in a cookie; only its SHA-256 is
-- kept, so a sign-in finishes only in the browser that started it.
create table oidc_logins (
  key_hash bytea primary key,
  provider text not null,
  state text not null,
  nonce text not null,
  code_verifier text not null,
  redirect_to text not null,
  -- what the app asked to get back with its code (its own check), if anything
  app_state text,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null
);
create index oidc_logins_expiry on oidc_logins (expires_at);

-- An account's identities at providers: the provider's subject (`sub`) is what signs in; the email
-- is what the provider said at the last sign-in, for the owner to recognise it.
create table oidc_identities (
  user_id uuid not null references users (id) on delete cascade,
  provider text not null,
  subject text not null,
  email text,
  email_verified boolean not null default false,
  created_at timestamptz not null default now(),
  last_sign_in_at timestamptz not null default now(),
  unique (provider, subject)
);
create index oidc_identities_user on oidc_identities (user_id);

-- A one-time code handed to the app in its redirect, exchanged at POST /v1/auth/token
-- (grant_type=authorization_code) for a session. Only its SHA-256 is kept; it lasts a minute and
-- is used once. It carries what the session will record of the browser that signed in.
create table oidc_app_codes (
  code_hash bytea primary key,
  user_id uuid not null references users (id) on delete cascade,
  provider text not null,
  redirect_to text not null,
  user_agent text,
  address text,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null
);
create index oidc_app_codes_expiry on oidc_app_codes (expires_at);
