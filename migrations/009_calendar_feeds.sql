-- Calendar feeds: each user may have one secret feed URL (GET /v1/calendar/<token>.ics) that a
-- calendar app polls without an Authorization header, so the token alone says whose feed it is.
--
-- Only the SHA-256 of the token is stored, to find the feed. The token itself is not stored: it
-- is HMAC-SHA256(feed key, nonce), the feed key derived from the ledger key (a server secret),
-- so the service can show the same URL again while the database alone cannot rebuild it.
-- A new nonce (rotation) makes a new token; the old one then matches no row.
-- connect_reader (the query service's reads) gets no grant: feeds are looked up by the service,
-- and the commitments of a feed are then read as its user, under row-level security.
create table calendar_feeds (
  user_id uuid primary key references users (id),
  nonce bytea not null check (octet_length(nonce) = 32),
  token_hash bytea not null unique check (octet_length(token_hash) = 32),
  created_at timestamptz not null default now()
);
