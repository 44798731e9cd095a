import { randomUUID } from 'node:crypto';
import { type Kysely, sql } from 'kysely';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.ts';
import { compiledOnce, compiledPerShape, type Database, prepared } from '../src/index.ts';

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

test('a statement with optional filters is built once for each combination of them, and each call gets its values', async () => {
  const builds: string[] = [];
  const names = compiledPerShape(
    (
      db: Kysely<Database>,
      shape: { only: boolean; before: boolean },
      v: { prefix: string; only: readonly string[] | undefined; before: string | undefined },
    ) => {
      builds.push(JSON.stringify(shape));
      let query = db
        .selectFrom('users')
        .select('display_name')
        .where('display_name', 'like', sql<string>`${v.prefix} || '%'`)
        .orderBy('display_name');
      if (shape.only) query = query.where(sql<boolean>`id = any(${v.only}::uuid[])`);
      if (shape.before) query = query.where('display_name', '<', v.before as string);
      return query;
    },
  );
  const [first, , third] = users.map((user) => user.id) as [string, string, string];
  const shown = async (prefix: string, only?: readonly string[], before?: string) =>
    (await names(database.db, { only: !!only, before: !!before }, { prefix, only, before })).map(
      (row) => row.display_name,
    );
  expect(await shown('Person')).toEqual(['Person 0', 'Person 1', 'Person 2']);
  expect(await shown('Person', [first, third])).toEqual(['Person 0', 'Person 2']);
  expect(await shown('Person', [third])).toEqual(['Person 2']);
  expect(await shown('Person', undefined, 'Person 2')).toEqual(['Person 0', 'Person 1']);
  expect(await shown('Person', [first, third], 'Person 2')).toEqual(['Person 0']);
  expect(await shown('Nobody', [first, third], 'Person 2')).toEqual([]);
  expect(builds).toEqual([
    '{"only":false,"before":false}',
    '{"only":true,"before":false}',
    '{"only":false,"before":true}',
    '{"only":true,"before":true}',
  ]);
});

test('a value its shape leaves out must be undefined, at the first call of the shape and after', async () => {
  const byId = compiledPerShape(
    (db: Kysely<Database>, shape: { name: boolean }, v: { id: string; name: string | undefined }) => {
      const query = db.selectFrom('users').select('id').where('id', '=', v.id);
      return shape.name ? query.where('display_name', '=', v.name as string) : query;
    },
  );
  const user = users[0] as { id: string };
  await expect(byId(database.db, { name: false }, { id: user.id, name: 'Person 0' })).rejects.toThrow(
    /value name never reached the statement's parameters/,
  );
  expect(await byId(database.db, { name: false }, { id: user.id, name: undefined })).toEqual([
    { id: user.id },
  ]);
  await expect(byId(database.db, { name: false }, { id: user.id, name: 'Person 0' })).rejects.toThrow(
    /value name is set, but its statement's shape leaves it out/,
  );
  expect(await byId(database.db, { name: true }, { id: user.id, name: 'Person 0' })).toEqual([
    { id: user.id },
  ]);
  expect(await byId(database.db, { name: true }, { id: user.id, name: 'Person 1' })).toEqual([]);
});

test('a value the first call of its shape lacks altogether still has its place in the calls after', async () => {
  const named = compiledPerShape(
    (db: Kysely<Database>, _shape: Record<string, never>, v: { name?: string }) =>
      db
        .selectFrom('users')
        .select('id')
        .where('display_name', '=', v.name as string),
  );
  const user = users[2] as { id: string; name: string };
  expect(await named(database.db, {}, {})).toEqual([]);
  expect(await named(database.db, {}, { name: user.name })).toEqual([{ id: user.id }]);
});
