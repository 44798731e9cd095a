-- Which notifications a person wants on which channel. A row is a choice the person made; where
-- there is none, the default of services/notifier/src/preferences.ts applies, so defaults can
-- change without rewriting anyone's rows.
create table notification_preferences (
  user_id uuid not null references users (id) on delete cascade,
  channel text not null check (channel in ('inapp', 'email', 'push', 'sms')),
  kind text not null,
  enabled boolean not null,
  updated_at timestamptz not null default now(),
  primary key (user_id, channel, kind)
);
