-- The dual run (connect migrate-from-supabase --follow): per source database, the source time up
-- to which its changes have been brought over, so a follower that stops and starts again looks at
-- everything changed since; and how far behind it was, for /metrics.
create table import_follow (
  -- host, port and database of the source; never its credentials
  source text primary key,
  -- changes at or after this time (the source's clock), less an overlap, are looked at again
  watermark timestamptz not null,
  polled_at timestamptz not null default now(),
  -- source commit to visible here, of the newest change brought over
  lag_seconds double precision,
  applied_at timestamptz
);
