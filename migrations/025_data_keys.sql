-- Envelope encryption. Each subject (a commitment, a user, …) has a data key, kept here wrapped
-- (sealed) by a master key that never enters the database; master_key_id names which. Erasing a
-- subject destroys its wrapped key: what was sealed under it is unrecoverable, even with the
-- master key (crypto-shredding).
create table data_keys (
  subject text primary key,
  wrapped_key bytea,
  master_key_id text,
  created_at timestamptz not null default now(),
  erased_at timestamptz,
  check ((wrapped_key is null) = (erased_at is not null)),
  check ((wrapped_key is null) = (master_key_id is null))
);
create index data_keys_by_master_key on data_keys (master_key_id) where wrapped_key is not null;

-- A ledger entry's body (salt and data) sealed under its stream's data key; data and salt are
-- then null. A redaction erases it like the others.
alter table ledger_entries add column sealed bytea;

create or replace function ledger_entries_immutable() returns trigger language plpgsql as $$
begin
  if tg_op = 'DELETE' then
    raise exception 'ledger entries cannot be deleted';
  end if;
  if (new.index, new.id, new.stream, new.version, new.type, new.schema, new.recorded_at, new.actor,
      new.meta, new.data_hash, new.leaf_hash)
     is distinct from
     (old.index, old.id, old.stream, old.version, old.type, old.schema, old.recorded_at, old.actor,
      old.meta, old.data_hash, old.leaf_hash)
     or new.data is not null or new.salt is not null or new.sealed is not null then
    raise exception 'ledger entries are immutable (only a redaction may erase data and salt)';
  end if;
  return new;
end $$;
