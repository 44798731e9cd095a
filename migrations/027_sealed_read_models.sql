-- What a commitment says (its title, description, terms, amount, document names, the changes in
-- its history, the domain state the projector continues from) is kept sealed under the
-- commitment's data key, bound to its row; only what lists, filters and row-level security need
-- stays in the clear (ids, type, status, dates, parties, roles, responses, documents' hashes).
-- Sealing needs the keys, which SQL does not have: the tables are emptied and the projector
-- rebuilds them from the ledger when it starts (reads wait for it as for any projection behind).
truncate commitments, commitment_parties, commitment_documents, commitment_history;
delete from projection_quarantine where projection = 'commitments';
update projection_checkpoints set last_index = -1, updated_at = now() where projection = 'commitments';

alter table commitments
  drop column title,
  drop column description,
  drop column terms,
  drop column amount_minor,
  drop column amount_currency,
  drop column state,
  -- The commitment's domain state as JSON: what the views are made from.
  add column sealed bytea not null;

-- A document's name is in the sealed state; its row keeps what downloads and restores need.
alter table commitment_documents drop column name;

alter table commitment_history
  drop column changes,
  -- The event's data as JSON; null once redacted.
  add column sealed bytea;
