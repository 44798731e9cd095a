-- Account mail asked for while no worker can send it (CONNECT_SMTP_URL unset) waits here, out of
-- the job queue: every job fetch steps past the queue's jobs that no worker runs, so one such job
-- per sign-up made each fetch cost a scan that grew with the number of users. A worker with SMTP
-- puts them back into the queue, as it starts and every minute. The payload is the job's as
-- queued: addresses sealed, no token. connect_reader gets no grant on this table.
create table account_mail_waiting (
  -- The queue job it came from.
  job_id bigint primary key,
  payload jsonb not null,
  waiting_since timestamptz not null default now()
);
