-- Invitations by email to addresses no account has yet. The person is mailed; once an account
-- verifies this address, the invitation becomes a PartyInvited event for it (accepted_at), or is
-- void (voided_at) when the commitment no longer takes it. `email` is the address to mail (as
-- given, trimmed); lookups go by `email_hash`, a SHA-256 of the normalised address, so the address
-- itself can be encrypted later without losing the index.
create table pending_invitations (
  id uuid primary key,
  commitment_id uuid not null,
  email text not null,
  email_hash bytea not null,
  role text not null check (role in ('participant', 'witness')),
  invited_by uuid not null references users (id) on delete cascade,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  accepted_at timestamptz,
  accepted_by uuid references users (id) on delete set null,
  cancelled_at timestamptz,
  voided_at timestamptz
);
-- One open invitation per address and commitment: inviting it again renews that one.
create unique index pending_invitations_open
  on pending_invitations (commitment_id, email_hash)
  where accepted_at is null and cancelled_at is null and voided_at is null;
create index pending_invitations_by_email
  on pending_invitations (email_hash)
  where accepted_at is null and cancelled_at is null and voided_at is null;
