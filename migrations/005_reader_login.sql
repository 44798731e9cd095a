-- connect_reader logs in as itself. It was a role a superuser session switched to (and so could
-- switch back from); now the query service's connections authenticate as it, and being no
-- superuser and a member of no role, nothing they run can take a more privileged role.
--
-- Roles belong to the whole server and every database on it runs this migration: one running
-- beside it in another database may alter the role first ("tuple concurrently updated"). Then
-- the role already logs in, which the next attempt sees.
do $$
begin
  for attempt in 1..20 loop
    begin
      if exists (select 1 from pg_roles where rolname = 'connect_reader' and not rolcanlogin) then
        alter role connect_reader login;
      end if;
      return;
    exception when others then
      if attempt = 20 or sqlerrm not like '%concurrently%' then
        raise;
      end if;
      perform pg_sleep(0.05 * attempt);
    end;
  end loop;
end $$;
