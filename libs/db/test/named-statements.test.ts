import { sql } from 'kysely';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.ts';
import { named, prepared, statementNameOf } from '../src/index.ts';

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase({ poolSize: 1 });
});

afterAll(async () => {
  await database.close();
});

/** The statements the pool's one connection has prepared, by name. */
async function preparedOnConnection(): Promise<Map<string, string>> {
  const { rows } = await sql<{ name: string; statement: string }>`
    select name, statement from pg_prepared_statements`.execute(database.db);
  return new Map(rows.map((row) => [row.name, row.statement]));
}

test('a query marked prepared runs under its name, with its parameters, again and again', async () => {
  const query = sql<{ n: number }>`select cardinality(${[1, 2, 3]}::int[]) + ${10}::int as n`.compile(
    database.db,
  );
  const answers: number[] = [];
  for (let i = 0; i < 3; i++)
    answers.push((await database.db.executeQuery(prepared('test-cardinality', query))).rows[0]?.n ?? 0);
  expect(answers).toEqual([13, 13, 13]);
  expect((await preparedOnConnection()).get('test-cardinality')).toBe(query.sql);
  const other = sql<{ n: number }>`select cardinality(${[1]}::int[]) + ${1}::int as n`.compile(database.db);
  expect((await database.db.executeQuery(prepared('test-cardinality', other))).rows[0]?.n).toBe(2);
});

test('a query not marked runs unnamed: nothing is kept on the connection for it', async () => {
  await sql`select ${42}::int as unmarked`.execute(database.db);
  expect([...(await preparedOnConnection()).values()].some((text) => text.includes('unmarked'))).toBe(false);
});

test('a name given another text is refused before it reaches the database', () => {
  const first = sql`select ${1}::int as a`.compile(database.db);
  const second = sql`select ${1}::int as b`.compile(database.db);
  prepared('test-one-text', first);
  expect(() => prepared('test-one-text', second)).toThrow(/must not vary/);
});

test('a transaction runs prepared statements on its own connection, and rolls back what they did', async () => {
  await sql`create table if not exists named_statements_probe (n int)`.execute(database.db);
  const insert = (db: typeof database.db, n: number) =>
    db.executeQuery(
      prepared('test-probe-insert', sql`insert into named_statements_probe values (${n}::int)`.compile(db)),
    );
  await database.db
    .transaction()
    .execute(async (trx) => {
      await insert(trx, 1);
      throw new Error('roll back');
    })
    .catch(() => undefined);
  await insert(database.db, 2);
  const { rows } = await sql<{ n: number }>`select n from named_statements_probe`.execute(database.db);
  expect(rows).toEqual([{ n: 2 }]);
});

test('a prepared statement runs on the plan made once for its connection, whatever its values', async () => {
  // Values that would each get a plan of their own under PostgreSQL's default (plan_cache_mode auto).
  const query = (n: number) =>
    prepared(
      'test-generic-plan',
      sql`select count(*) from generate_series(1, ${n}::int) g`.compile(database.db),
    );
  for (const n of [1, 10, 100, 1000, 10_000, 100_000, 7]) await database.db.executeQuery(query(n));
  const { rows } = await sql<{ generic_plans: number; custom_plans: number }>`
    select generic_plans, custom_plans from pg_prepared_statements
     where name = 'test-generic-plan'`.execute(database.db);
  expect(rows).toEqual([{ generic_plans: 7, custom_plans: 0 }]);
});

test('a statement whose result is given as * is refused before it is prepared: it must name its columns', () => {
  const refused = [
    database.db.selectFrom('profiles').selectAll().compile(),
    database.db.selectFrom('profiles as p').selectAll('p').compile(),
    database.db.selectFrom('profiles as p').select('p.user_id').selectAll('p').compile(),
    database.db.deleteFrom('profiles').where('user_id', '=', 'x').returningAll().compile(),
  ];
  for (const [i, query] of refused.entries()) {
    expect(() => prepared(`test-star-${i}`, query), query.sql).toThrow(/must name its result's columns/);
    expect(() => statementNameOf(query.sql), query.sql).toThrow(/must name its result's columns/);
  }
  const named = [
    database.db.selectFrom('profiles').select(['user_id', 'display_name']).compile(),
    sql`select count(*) as n from profiles`.compile(database.db),
    sql`insert into profiles (user_id) select * from unnest(${['x']}::text[]) returning user_id`.compile(
      database.db,
    ),
  ];
  for (const [i, query] of named.entries()) {
    expect(() => prepared(`test-named-${i}`, query), query.sql).not.toThrow();
    expect(statementNameOf(query.sql)).toMatch(/^q-/);
  }
});

test('a statement given to pg under a name of its own is checked the same way, whatever its text becomes', () => {
  const config = (text: string) => ({ name: 'test-own-name', text, values: [] });
  expect(named(config('select user_id from profiles')).text).toBe('select user_id from profiles');
  expect(() => named(config('select p.user_id, e.* from profiles p, ledger_entries e'))).toThrow(
    /must name its result's columns/,
  );
  expect(() => named(config('select user_id, display_name from profiles'))).not.toThrow();
});
