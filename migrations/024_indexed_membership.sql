-- Membership as data. Every commitment read-model row carries the user ids of its commitment's
-- parties (party_ids, written by the projector with the rows whenever the parties change), so a
-- policy checks an array on the row it is looking at. Before, each row read called
-- connect_can_see_commitment(), a security-definer function that looked the parties up: one
-- function call and one index probe per row, which the planner could neither see into nor
-- estimate. connect_can_see() below is plain SQL that the planner inlines; the rows a read wants
-- are found by the indexes it already had (a get by primary key, a list page in the order of
-- commitment_parties_by_user), and the policy costs an array test on each.
--
-- No GIN index on party_ids: under row-level security the planner cannot use one. A query's own
-- `party_ids @> …` waits behind the policy because @> is not leakproof, and the policy's own test
-- is one arm of an OR with the admin's right to see everything.
alter table commitments add column party_ids text[] not null default '{}';
alter table commitment_parties add column party_ids text[] not null default '{}';
alter table commitment_documents add column party_ids text[] not null default '{}';
alter table commitment_history add column party_ids text[] not null default '{}';

-- The projector sorts the ids as JavaScript does (by code unit); "C" collation is that order.
update commitments c set party_ids = m.ids
  from (select commitment_id, array_agg(user_id order by user_id collate "C") as ids
          from commitment_parties group by commitment_id) m
 where m.commitment_id = c.id;
update commitment_parties t set party_ids = c.party_ids from commitments c where c.id = t.commitment_id;
update commitment_documents t set party_ids = c.party_ids from commitments c where c.id = t.commitment_id;
update commitment_history t set party_ids = c.party_ids from commitments c where c.id = t.commitment_id;

-- Whether the caller sees a row of a commitment with these parties: a party, or an admin or
-- auditor (connect.admin). A single expression, so it is inlined into each policy's plan.
-- Membership is asked as array_position(…) is not null rather than party_ids @> array[…]: the
-- planner estimates @> from the column's statistics and multiplies that by the query's own
-- condition on the same user (a list's user_id = $1), so it expected one row of a user's 150 and
-- sorted them all instead of reading the first page in index order. A function's IS NOT NULL it
-- takes as nearly always true, which for rows a query already narrowed to the caller's is right.
create function connect_can_see(party_ids text[]) returns boolean language sql stable as $$
  select connect_user_id() is not null and array_position(party_ids, connect_user_id()) is not null
      or connect_is_admin()
$$;
grant execute on function connect_can_see(text[]) to connect_reader;

select connect_protect_read_model('commitments', 'connect_can_see(party_ids)');
select connect_protect_read_model('commitment_parties', 'connect_can_see(party_ids)');
select connect_protect_read_model('commitment_documents', 'connect_can_see(party_ids)');
select connect_protect_read_model('commitment_history', 'connect_can_see(party_ids)');
drop function connect_can_see_commitment(uuid);
