-- Reminders already in graphile-worker's queue and not due within its horizon (ten minutes; see
-- 034) move to reminders_scheduled, so the queue's fetches no longer walk them. A database whose
-- notifier never ran has no queue yet, and nothing to move. A job being run stays.
do $$
begin
  if to_regclass('graphile_worker._private_jobs') is null then
    return;
  end if;
  with moved as (
    delete from graphile_worker._private_jobs as job
     using graphile_worker._private_tasks as task
     where task.id = job.task_id
       and task.identifier = 'remind'
       and job.key like 'reminder:%'
       and job.locked_at is null
       and job.attempts = 0
       and job.run_at > now() + interval '10 minutes'
    returning job.key, job.run_at, job.payload
  )
  insert into reminders_scheduled (commitment_id, job_key, run_at, payload)
  select (payload ->> 'commitmentId')::uuid, key, run_at, payload::jsonb from moved;
end
$$;
