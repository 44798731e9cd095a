-- A stream whose entry a projection could not apply is set aside for that projection alone: its
-- later entries are skipped while every other stream keeps flowing. The row names the first entry
-- at fault and why; `connect replay` rebuilds the projection and starts this list anew.
create table projection_quarantine (
  projection text not null references projection_checkpoints (projection),
  stream text not null,
  index bigint not null,
  error text not null,
  quarantined_at timestamptz not null default now(),
  primary key (projection, stream)
);
