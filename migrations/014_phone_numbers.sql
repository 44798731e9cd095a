-- A person's phone number for SMS, in E.164. It gets no SMS but its confirmation code until the
-- person sends that code back. Only a hash of the code is kept, with its expiry and the attempts
-- made at it. connect_reader (the query service's reads) gets no grant on these tables.
create table phone_numbers (
  user_id uuid primary key references users (id) on delete cascade,
  phone text not null check (phone ~ '^\+[1-9][0-9]{1,14}$'),
  confirmed_at timestamptz,
  code_hash bytea,
  code_expires_at timestamptz,
  code_attempts integer not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

-- Each confirmation code sent, for the limit per person (it outlives removing the number).
create table phone_code_sends (
  user_id uuid not null references users (id) on delete cascade,
  sent_at timestamptz not null default now()
);
create index phone_code_sends_by_user on phone_code_sends (user_id, sent_at);
