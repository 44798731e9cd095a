-- Deadline reminders not due soon wait here rather than as graphile-worker jobs. A job fetch
-- checks run_at on every future job in the queue's index until it finds a due one, so the three
-- reminders of each dated commitment made every fetch cost a walk that grew with the commitments:
-- with 200,000 of them queued, a job arriving alone cost 12.2 ms of CPU, against 3.7 ms with them
-- here (npm run bench -- reminders). The notifications projection writes a reminder here when it
-- is due later than the queue's horizon (reminders/schedule.ts), and the delivery worker moves
-- each into the queue, as the job `job_key`, shortly before it is due. Ids and dates only: no
-- grant to connect_reader.
create table reminders_scheduled (
  commitment_id uuid not null,
  job_key text not null,
  run_at timestamptz not null,
  -- The job's payload: the commitment, the offset, the due date and the entry that set it.
  payload jsonb not null,
  primary key (commitment_id, job_key)
);

create index reminders_scheduled_run_at on reminders_scheduled (run_at);
