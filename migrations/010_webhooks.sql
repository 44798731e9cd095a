-- Webhooks for integrators (Standard Webhooks). Admins register endpoints; every event sent to one
-- is a delivery, retried with backoff for about a day, after which the endpoint is disabled.
--
-- The secret is stored as is (`whsec_<base64>`): signing needs it in the clear, so it cannot be
-- hashed like a password. It never leaves the service after the response that created it, and the
-- connect_reader role (the query service) gets no grant on these tables.
create table webhook_endpoints (
  id uuid primary key,
  url text not null,
  -- null: every event type.
  events text[],
  secret text not null,
  created_by text,
  created_at timestamptz not null default now(),
  -- Set when deliveries kept failing for a day; nothing is sent to a disabled endpoint.
  disabled_at timestamptz,
  -- Why it was disabled, for admins (GET /v1/admin/webhooks).
  disabled_reason text,
  -- The first failure since the last success; null while it works.
  failing_since timestamptz
);

create table webhook_deliveries (
  id uuid primary key,
  endpoint_id uuid not null references webhook_endpoints (id) on delete cascade,
  -- The message id (the webhook-id header): the same on every attempt, so receivers deduplicate.
  webhook_id text not null,
  event_type text not null,
  payload jsonb not null,
  attempts integer not null default 0,
  status text not null default 'pending' check (status in ('pending', 'delivered', 'failed', 'dead')),
  last_status_code integer,
  last_error text,
  -- null once delivered or dead.
  next_attempt_at timestamptz,
  delivered_at timestamptz,
  created_at timestamptz not null default now(),
  unique (endpoint_id, webhook_id)
);

create index webhook_deliveries_by_endpoint on webhook_deliveries (endpoint_id, created_at desc);
create index webhook_deliveries_due on webhook_deliveries (next_attempt_at)
  where status in ('pending', 'failed');

-- Secrets stay with the service: the read-only role of the query service sees neither table.
revoke all on webhook_endpoints, webhook_deliveries from connect_reader;
