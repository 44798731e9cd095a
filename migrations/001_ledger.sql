-- The ledger: entries, stored complete-subtree hashes, the head, signed checkpoints and
-- idempotency records. LEDGER.md is the normative format of what these rows encode.

create table ledger_head (
  singleton boolean primary key default true check (singleton),
  origin text not null,
  verifier_key text not null,
  tree_size bigint not null default 0,
  root_hash bytea not null default sha256(''::bytea)
);

create table ledger_entries (
  index bigint primary key check (index >= 0),
  id uuid not null unique,
  stream text not null,
  version integer not null check (version >= 1),
  type text not null,
  schema integer not null,
  recorded_at timestamptz not null,
  actor text,
  meta jsonb not null,
  data jsonb,
  salt bytea,
  data_hash bytea not null,
  leaf_hash bytea not null,
  unique (stream, version)
);

-- Hashes of complete subtrees of two or more leaves (level ≥ 1), as Go's sumdb/tlog stores
-- them: node (level, idx) covers leaves [idx·2^level, (idx+1)·2^level). Level 0 is the
-- leaf_hash of ledger_entries.
create table ledger_tree (
  level smallint not null check (level >= 1),
  idx bigint not null check (idx >= 0),
  hash bytea not null,
  primary key (level, idx)
);

create table ledger_checkpoints (
  tree_size bigint primary key,
  root_hash bytea not null,
  note text not null,
  signed_at timestamptz not null default now()
);

create table ledger_idempotency (
  key text primary key,
  stream text not null,
  first_index bigint not null,
  count integer not null,
  fingerprint bytea not null,
  created_at timestamptz not null default now()
);

-- Entries are immutable: the only change allowed is erasing a body (data and salt) to redact it.
create function ledger_entries_immutable() returns trigger language plpgsql as $$
begin
  if tg_op = 'DELETE' then
    raise exception 'ledger entries cannot be deleted';
  end if;
  if (new.index, new.id, new.stream, new.version, new.type, new.schema, new.recorded_at, new.actor,
      new.meta, new.data_hash, new.leaf_hash)
     is distinct from
     (old.index, old.id, old.stream, old.version, old.type, old.schema, old.recorded_at, old.actor,
      old.meta, old.data_hash, old.leaf_hash)
     or new.data is not null or new.salt is not null then
    raise exception 'ledger entries are immutable (only a redaction may erase data and salt)';
  end if;
  return new;
end $$;

create trigger ledger_entries_immutable before update or delete on ledger_entries
  for each row execute function ledger_entries_immutable();

create function ledger_tree_immutable() returns trigger language plpgsql as $$
begin
  raise exception 'stored tree hashes and checkpoints are immutable';
end $$;

create trigger ledger_tree_immutable before update or delete on ledger_tree
  for each row execute function ledger_tree_immutable();
create trigger ledger_checkpoints_immutable before update or delete on ledger_checkpoints
  for each row execute function ledger_tree_immutable();
