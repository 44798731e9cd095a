import { randomUUID } from 'node:crypto';
import { type Kysely, sql } from 'kysely';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.ts';
import { compiledOnce, type Database, prepared } from '../src/index.ts';

let database: TestDatabase;
const users = Array.from({ length: 3 }, (_, i) => ({ id: randomUUID(), name: `Person ${i}` }));

beforeAll(async () => {
  database = await createTestDatabase({ poolSize: 1 });
  for (const user of users) {
    await database.pool.query(
      `insert into users (id, email, password_hash, display_name) values ($1, $2, 'test:no-login', $3)`,
      [user.id, `${user.id}@compiled-once.test`, user.name],
    );
  }
});

afterAll(async () => {
  await database.close();
});

test('a statement is built once and each call runs with its own values, in their places', async () => {
  let builds = 0;
  const namesOf = compiledOnce((db: Kysely<Database>, ids: readonly string[], suffix: string) => {
    builds++;
    return db
      .selectFrom('users')
      .select(sql<string>`display_name || ${suffix}`.as('name'))
      .where(sql<boolean>`id = any(${ids}::uuid[])`)
      .where('erased_at', 'is', null)
      .orderBy('display_name');
  });
  const [first, second, third] = users.map((user) => user.id) as [string, string, string];
  expect(await namesOf(database.db, [first], '!')).toEqual([{ name: 'Person 0!' }]);
  expect(await namesOf(database.db, [second, third], '?')).toEqual([
    { name: 'Person 1?' },
    { name: 'Person 2?' },
  ]);
  expect(await namesOf(database.db, [], '.')).toEqual([]);
  expect(builds).toBe(1);
});

test('it runs in a transaction, and under a name of its own when marked prepared', async () => {
  const nameOf = compiledOnce(
    (db: Kysely<Database>, id: string) => db.selectFrom('users').select('display_name').where('id', '=', id),
    (query) => prepared('test-compiled-once-name', query),
  );
  const user = users[1] as { id: string; name: string };
  const { found, statements } = await database.db.transaction().execute(async (trx) => ({
    found: await nameOf(trx, user.id),
    statements: (await sql<{ name: string }>`select name from pg_prepared_statements`.execute(trx)).rows,
  }));
  expect(found).toEqual([{ display_name: user.name }]);
  expect(statements.map((row) => row.name)).toContain('test-compiled-once-name');
});

test('a value the build does not pass as a parameter is refused at the first call, before anything runs', async () => {
  let builds = 0;
  const inlined = compiledOnce((db: Kysely<Database>, id: string) => {
    builds++;
    return db
      .selectFrom('users')
      .select('id')
      .where('display_name', '=', sql.lit(String(id)));
  });
  await expect(inlined(database.db, 'Person 0')).rejects.toThrow(
    /value 1 never reached the statement's parameters/,
  );
  expect(builds).toBe(1);
});
