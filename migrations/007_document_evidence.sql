-- Documents are the terms (attached to a draft by its creator) or evidence (attached by any party
-- once the commitment is agreed, never changing the terms). Every document before this migration
-- is of the terms, attached by the creator.
alter table commitment_documents
  add column purpose text not null default 'terms' check (purpose in ('terms', 'evidence')),
  add column attached_by text;

update commitment_documents d set attached_by = p.user_id
  from commitment_parties p
  where p.commitment_id = d.commitment_id and p.role = 'creator';

-- The state the projector applies the next entry to gets the same two facts per document, so
-- a commitment projected before this migration carries on as if replayed now.
update commitments c set state = jsonb_set(c.state, '{documents}', (
    select coalesce(jsonb_agg(
      d.document || jsonb_build_object(
        'purpose', 'terms',
        'attachedBy', (select p->'userId' from jsonb_array_elements(c.state->'parties') p
                       where p->>'role' = 'creator' limit 1)
      ) order by d.position), '[]'::jsonb)
    from jsonb_array_elements(c.state->'documents') with ordinality as d(document, position)
  ))
  where jsonb_array_length(coalesce(c.state->'documents', '[]'::jsonb)) > 0;
