-- Erasing a user (DELETE /v1/me, connect users erase): their data keys are destroyed and their
-- personal data overwritten, but the row stays, so the commitments they took part in keep their
-- party. erased_at marks it: such an account signs in no more, and a rerun of an interrupted
-- erasure finds what is left to do.
alter table users add column erased_at timestamptz;
