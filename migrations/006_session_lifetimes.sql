-- Sessions end on their own: after an idle timeout (no refresh for that long) and at an absolute
-- lifetime however active they are. The command service writes both deadlines from its
-- configuration, so whoever checks a session (every service) only compares active_until with the
-- clock. Sessions from before this migration get the default lifetimes.
alter table sessions
  add column last_active_at timestamptz not null default now(),
  add column expires_at timestamptz not null default now() + interval '30 days',
  add column active_until timestamptz not null default now() + interval '7 days';

update sessions set
  expires_at = created_at + interval '30 days',
  active_until = least(now() + interval '7 days', created_at + interval '30 days');

-- A used refresh token keeps its successor, sealed with a key only the used token itself yields,
-- so a retry within the grace window is answered with the same successor.
alter table refresh_tokens add column successor bytea;
