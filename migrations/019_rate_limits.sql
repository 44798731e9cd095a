-- Rate limits every instance of the command service shares (services/command/src/rate-limits.ts):
-- one row per limited key and window, counted by one `insert … on conflict do update` per hit. A
-- key names what is limited and by what (`auth:/v1/auth/token:address:203.0.113.7`,
-- `…:account:<SHA-256 of the email>`, `command:user:<id>`): never an email or a secret. A row whose
-- window has passed starts over on its next hit; rows never hit again are deleted in passing.
-- Unlogged: a hit writes no WAL and waits for no flush (about 3× cheaper per command); a crash
-- empties the table, which only forgives the counts of the current minute.
create unlogged table rate_limits (
  key text primary key,
  window_start timestamptz not null,
  expires_at timestamptz not null,
  count integer not null
);
create index rate_limits_expiry on rate_limits (expires_at);

-- Profiles change after signup (PATCH /v1/me, event ProfileUpdated): the picture, on the account
-- and in the read model.
alter table users add column avatar_url text;
alter table profiles add column avatar_url text;
