-- Notifications: what the notifier (a projection named 'notifications', services/notifier) tells
-- each person, one row per recipient and ledger entry. Only the recipient reads a row; the
-- recipient marks it read (read_at), the one column written outside the projection.
-- The checkpoint row is not inserted here: the notifier inserts it the first time it runs,
-- at the ledger's head (services/notifier/src/projection.ts says why).
create table notifications (
  -- ledgerIndex:recipient:kind, the same however often the entry is projected
  id text primary key,
  recipient_id text not null,
  kind text not null
    check (kind in ('invitation', 'response', 'lifecycle', 'amendment', 'dispute', 'document', 'reminder')),
  title text not null,
  body text not null,
  link text not null,
  commitment_id uuid not null,
  ledger_index bigint not null,
  -- when its entry was recorded (millisecond precision, as the ledger gives it)
  created_at timestamptz not null,
  read_at timestamptz
);
-- A recipient's page, newest first, and their unread count.
create index notifications_by_recipient
  on notifications (recipient_id, created_at desc, ledger_index desc, id desc);
create index notifications_unread on notifications (recipient_id) where read_at is null;

select connect_protect_read_model('notifications', 'recipient_id = connect_user_id()');
