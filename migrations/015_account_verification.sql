-- Accounts that can be verified and recovered, and signed into without a password: an email is
-- verified once its owner follows a link mailed to it (email_verified_at); an account created by a
-- social login has no password until its owner sets one (password_hash null). A session records
-- the client that opened it, so its owner can tell their sessions apart before ending one.
alter table users
  add column email_verified_at timestamptz,
  alter column password_hash drop not null;

alter table sessions
  add column user_agent text,
  add column address text;
