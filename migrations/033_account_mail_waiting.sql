-- Account mail asked for while no worker can send it (CONNECT_SMTP_URL unset) waits here, out of
-- the job queue: every job fetch steps past the queue's jobs that no worker runs, so one such job
-- per sign-up made each fetch cost a scan that grew with the number of users. A worker started
-- with SMTP puts them back into the queue. The payload is the job's: no address in the clear, no
-- token.
create table account_mail_waiting (
  -- The queue job it came from: parked twice (a job run again after a crash), it is kept once.
  job_id bigint primary key,
  payload jsonb not null,
  waiting_since timestamptz not null default now()
);
