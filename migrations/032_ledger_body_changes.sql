-- How many times a ledger entry's body was erased (a redaction), counted in the transaction that
-- erases it: whatever keeps states folded from bodies (the notifier) knows, from one row, that a
-- body it may have read is gone, even when the redaction was never recorded in the ledger (a
-- failure between the erasure and its record, or an erasure made by hand). The immutability
-- trigger lets an update through only when it erases bodies, so every update counts (a session
-- that turns triggers off, as a replica does, escapes both).
create table ledger_body_changes (
  only_row boolean primary key default true check (only_row),
  changes bigint not null
);
insert into ledger_body_changes values (true, 0);

create function ledger_body_changed() returns trigger language plpgsql as $$
begin
  update ledger_body_changes set changes = changes + 1;
  if not found then
    raise exception 'ledger_body_changes has lost its row: an erasure would go unseen';
  end if;
  return null;
end $$;

create trigger ledger_body_changed after update on ledger_entries
  for each statement execute function ledger_body_changed();
