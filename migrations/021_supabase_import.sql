-- Moving from Supabase (connect migrate-from-supabase, cli/src/supabase). A user banned there stays
-- banned here: no password, refresh or social sign-in succeeds before banned_until. Each source row
-- the import has dealt with is kept in import_progress, so a rerun imports nothing twice and an
-- interrupted run goes on where it stopped.
alter table users add column banned_until timestamptz;

create table import_progress (
  -- 'user', 'type' or 'commitment'
  kind text not null,
  source_id text not null,
  -- 'imported', 'skipped' or 'failed'; a failed row is tried again by the next run
  outcome text not null check (outcome in ('imported', 'skipped', 'failed')),
  reasons jsonb not null default '[]',
  updated_at timestamptz not null default now(),
  primary key (kind, source_id)
);
