-- Email addresses at rest (issue 14): no column keeps an address in the clear. Each row keeps the
-- address sealed under a data key (a user's `user:<id>`, so erasing the user shreds it; an invited
-- address that is nobody's yet under `service:invitations`) and, where rows are found by address,
-- its blind index: an HMAC-SHA256 under a key derived for the purpose (libs/db/src/email-index.ts).
-- SQL cannot compute that HMAC (its key is unwrapped by the service), so rows written before this
-- migration are sealed by the service at start-up, before it serves (sealExistingEmails), which
-- sets their clear `email` to null. The clear columns stay, nullable and always null once sealed,
-- until every deployment has run that backfill; a later migration drops them.
-- pending_invitations.email_hash becomes the HMAC blind index (the backfill rewrites the SHA-256
-- ones): a plain hash of an address is found again by hashing a list of addresses.

alter table users
  alter column email drop not null,
  add column email_index bytea unique,
  add column email_sealed bytea;

alter table account_tokens
  alter column email drop not null,
  add column email_index bytea,
  add column email_sealed bytea;

alter table oidc_identities add column email_sealed bytea;

alter table pending_invitations
  alter column email drop not null,
  add column email_sealed bytea;
