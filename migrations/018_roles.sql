-- Roles held by users, read on every request with the session (libs/auth session-gate.ts), so a
-- grant or a revocation takes effect at once. Each change is also a RoleGranted / RoleRevoked
-- event in the user's `roles-<user id>` ledger stream, so who held authority when is verifiable.
create table user_roles (
  user_id uuid not null references users (id),
  role text not null check (role in ('admin', 'auditor')),
  granted_at timestamptz not null default now(),
  -- The admin who granted it; null for the system (the CLI, or this migration).
  granted_by uuid references users (id),
  primary key (user_id, role)
);
create index user_roles_role on user_roles (role);

insert into user_roles (user_id, role, granted_at, granted_by)
select id, 'admin', created_at, null from users where is_admin;

comment on column users.is_admin is
  'Unused since 018_roles: admins are the users holding the admin role in user_roles.';

-- Commitment type policies: who may create one, and whether witnesses need a verified email.
alter table commitment_types
  add column created_by text not null default 'anyone',
  add column witnesses_must_be_verified boolean not null default false;
