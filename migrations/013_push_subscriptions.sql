-- Web Push (RFC 8030) subscriptions: one row per browser (or device) that subscribed, as its
-- PushSubscription gave it. The endpoint is the push service's URL for that browser, so it is
-- unique: a browser that subscribes again, for whichever account, replaces its row. A row the push
-- service answers 404 or 410 for is deleted by the notifier.
create table push_subscriptions (
  id uuid primary key,
  user_id uuid not null references users (id) on delete cascade,
  endpoint text not null unique,
  -- The browser's P-256 public key (65 bytes, uncompressed) and auth secret (16 bytes), base64url:
  -- what the payload is encrypted to (RFC 8291).
  p256dh text not null,
  auth text not null,
  created_at timestamptz not null default now(),
  last_success_at timestamptz
);

create index push_subscriptions_by_user on push_subscriptions (user_id);

-- The endpoint is a capability to message the person's device: the query service has no use for it.
revoke all on push_subscriptions from connect_reader;
