-- Read models: what the projector builds from the ledger and the query service reads. Every
-- table is under row-level security; the query service reads as connect_reader, a role that can
-- only SELECT, with the caller's user id in the setting connect.user_id (and connect.admin).

create table projection_checkpoints (
  projection text primary key,
  last_index bigint not null default -1,
  updated_at timestamptz not null default now()
);
insert into projection_checkpoints (projection) values ('profiles'), ('commitment_types'), ('commitments');

create table profiles (
  user_id text primary key,
  display_name text not null,
  registered_at timestamptz not null,
  redacted boolean not null default false,
  last_index bigint not null
);

create table commitment_types (
  key text primary key,
  name text not null,
  requires_amount boolean not null,
  requires_due_date boolean not null,
  min_witnesses integer not null,
  last_index bigint not null
);

create table commitments (
  id uuid primary key,
  type text not null,
  title text not null,
  description text not null,
  terms text not null,
  amount_minor bigint,
  amount_currency text,
  due_at timestamptz,
  status text not null,
  overdue boolean not null,
  version integer not null,
  created_at timestamptz not null,
  updated_at timestamptz not null,
  last_index bigint not null,
  -- The evolved domain state, which the projector continues from with the next event.
  state jsonb not null
);
create index commitments_due on commitments (due_at) where status = 'active' and not overdue;

-- One row per party, carrying the commitment's list columns so a caller's list is one index scan
-- in a stable order (created_at, id).
create table commitment_parties (
  commitment_id uuid not null,
  user_id text not null,
  role text not null,
  response text not null,
  status text not null,
  type text not null,
  due_at timestamptz,
  created_at timestamptz not null,
  primary key (commitment_id, user_id)
);
create index commitment_parties_by_user on commitment_parties (user_id, created_at desc, commitment_id desc);

create table commitment_documents (
  commitment_id uuid not null,
  document_id uuid not null,
  version integer not null,
  name text not null,
  media_type text not null,
  size bigint not null,
  sha256 text not null,
  latest boolean not null,
  primary key (commitment_id, document_id, version)
);

create table commitment_history (
  index bigint primary key,
  commitment_id uuid not null,
  version integer not null,
  event_type text not null,
  actor text,
  recorded_at timestamptz not null,
  changes jsonb not null,
  leaf_hash bytea not null,
  redacted boolean not null default false
);
create index commitment_history_by_commitment on commitment_history (commitment_id, index);

-- The caller, as the query service set it for this transaction.
create function connect_user_id() returns text language sql stable as $$
  select nullif(current_setting('connect.user_id', true), '')
$$;

create function connect_is_admin() returns boolean language sql stable as $$
  select coalesce(current_setting('connect.admin', true), '') = 'on' and connect_user_id() is not null
$$;

-- Visibility checks read commitment_parties by name (resolved when they run, so a replay that
-- swaps tables keeps them working) and bypass its own policy (security definer), which would
-- otherwise recurse.
create function connect_can_see_commitment(commitment uuid) returns boolean
language sql stable security definer set search_path = public, pg_temp as $$
  select connect_is_admin() or exists (
    select 1 from commitment_parties p where p.commitment_id = commitment and p.user_id = connect_user_id())
$$;

do $$
begin
  create role connect_reader nologin noinherit;
exception when duplicate_object or unique_violation then
  null; -- another database on this server created it first
end $$;

do $$
begin
  if not pg_has_role(current_user, 'connect_reader', 'member') then
    execute format('grant connect_reader to %I', current_user);
  end if;
exception when duplicate_object or unique_violation then
  null;
end $$;

grant usage on schema public to connect_reader;
grant execute on function connect_user_id(), connect_is_admin(), connect_can_see_commitment(uuid) to connect_reader;

-- Turns on row-level security for a read-model table and lets connect_reader SELECT the rows
-- `visible` allows. Replay calls it for the tables it builds.
create function connect_protect_read_model(table_name text, visible text) returns void
language plpgsql as $$
begin
  execute format('alter table %I enable row level security', table_name);
  execute format('drop policy if exists reader_sees on %I', table_name);
  execute format('create policy reader_sees on %I for select to connect_reader using (%s)', table_name, visible);
  execute format('grant select on %I to connect_reader', table_name);
end $$;

select connect_protect_read_model('projection_checkpoints', 'connect_user_id() is not null');
select connect_protect_read_model('commitment_types', 'connect_user_id() is not null');
-- Display names are seen by every signed-in user (as a directory would show them), so naming
-- the parties of a list of commitments costs no visibility check per name.
select connect_protect_read_model('profiles', 'connect_user_id() is not null');
select connect_protect_read_model('commitments', 'connect_can_see_commitment(id)');
select connect_protect_read_model('commitment_parties',
  'user_id = connect_user_id() or connect_can_see_commitment(commitment_id)');
select connect_protect_read_model('commitment_documents', 'connect_can_see_commitment(commitment_id)');
select connect_protect_read_model('commitment_history', 'connect_can_see_commitment(commitment_id)');
