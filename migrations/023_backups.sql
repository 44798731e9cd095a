-- Backups that succeeded (`connect backup`, and the scheduled ones of `connect start`): every
-- process reads the newest for connect_backup_last_success_timestamp_seconds, wherever it was made.
create table backups (
  id bigint generated always as identity primary key,
  trigger text not null check (trigger in ('command', 'schedule')),
  directory text not null,
  started_at timestamptz not null,
  finished_at timestamptz not null,
  tree_size bigint not null,
  bytes bigint not null
);
create index backups_finished on backups (trigger, finished_at desc);
