// Reads log in as connect_reader, a role that cannot become any other: a statement smuggled
// into a read cannot take the superuser's role back, as it could after a mere SET ROLE.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type Database, readerLogin, scramVerifier } from '@connect/db';
import { type Kysely, sql } from 'kysely';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.ts';
import { createReaderDb, type ReaderDb, readAs } from '../src/reader.ts';

const ana = { userId: 'ana', isAdmin: false };
let database: TestDatabase;
let dataDir: string;
let reader: ReaderDb;
let admin: string;
let readerUrl: string;

beforeAll(async () => {
  database = await createTestDatabase();
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'connect-reader-'));
  const url = await readerLogin(database.pool, database.url, { dataDir, readerDatabaseUrl: undefined });
  readerUrl = url;
  reader = createReaderDb(url, { max: 2 });
  const { rows } = await database.pool.query<{ user: string }>('select current_user as user');
  admin = rows[0]?.user as string;
});
afterAll(async () => {
  await reader.close();
  await database.close();
  await rm(dataDir, { recursive: true, force: true });
});

test('a read connection logs in as connect_reader, which is no superuser', async () => {
  const { rows } = await readAs(reader.db, ana, (db) =>
    sql<{ session: string; current: string; rolsuper: boolean }>`
      select session_user as session, current_user as current, rolsuper
        from pg_roles where rolname = current_user`.execute(db),
  );
  expect(rows).toEqual([{ session: 'connect_reader', current: 'connect_reader', rolsuper: false }]);
});

test('a read, and the caller set with it, are planned once per connection, not again for each execution’s values', async () => {
  // The shape of a commitment read by ids, whose generic plan PostgreSQL would otherwise deem
  // costlier than a plan for the values, and so re-plan at every execution.
  const readByIds = (db: Kysely<Database>) =>
    db
      .selectFrom('commitments')
      .select('id')
      .where('id', '=', sql<string>`any(${[randomUUID(), randomUUID()]}::uuid[])`)
      .execute();
  const single = createReaderDb(readerUrl, { max: 1 });
  try {
    for (let i = 0; i < 8; i++) await readAs(single.db, ana, readByIds);
    const { rows } = await readAs(single.db, ana, (db) =>
      sql<{ name: string; generic: number; custom: number }>`
        select case when name = 'set-caller' then name else 'read' end as name,
               generic_plans as generic, custom_plans as custom
          from pg_prepared_statements
         where statement like 'select "id" from "commitments" where "id" = any(%' or name = 'set-caller'
         order by 1`.execute(db),
    );
    // The caller is set for each of the 8 reads and for this one, on the statement prepared (and
    // run once, setting nobody) as the connection opened.
    expect(rows).toEqual([
      { name: 'read', generic: 8, custom: 0 },
      { name: 'set-caller', generic: 10, custom: 0 },
    ]);
  } finally {
    await single.close();
  }
});

test('each read runs as its own caller, even many at once on few connections; nothing runs without one', async () => {
  const ben = { userId: 'ben', isAdmin: false };
  const who = (db: Kysely<Database>) =>
    sql<{ me: string }>`select current_setting('connect.user_id') as me`
      .execute(db)
      .then(({ rows }) => rows[0]?.me);
  // Twenty reads on two connections: each connection serves ana and ben in turn.
  const callers = Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? ana : ben));
  const seen = await Promise.all(callers.map((caller) => readAs(reader.db, caller, who)));
  expect(seen).toEqual(callers.map((caller) => caller.userId));

  // A read that fails gives its connection back as one that succeeds does.
  await expect(readAs(reader.db, ben, (db) => sql`select 1 / 0`.execute(db))).rejects.toThrow(
    /division by zero/,
  );
  // After those reads, their connections carry no caller; nor does the pool itself.
  await expect(reader.db.selectFrom('commitments').select('id').execute()).rejects.toThrow(/readAs/);
  await expect(reader.pool.query('select 1')).rejects.toThrow(/readAs/);
  // A reader readAs() does not know (one made without createReaderDb) is refused; a read cannot
  // close the pool it shares.
  await expect(readAs(database.db, ana, who)).rejects.toThrow(/createReaderDb/);
  await expect(readAs(reader.db, ana, (db) => db.destroy())).rejects.toThrow(/ReaderDb.close/);
  expect(await readAs(reader.db, ana, who)).toBe(ana.userId);
});

test('a read cannot switch to the database owner’s role, nor its session to another user', async () => {
  await expect(readAs(reader.db, ana, (db) => sql.raw(`set role ${admin}`).execute(db))).rejects.toThrow(
    /permission denied/,
  );
  await expect(
    readAs(reader.db, ana, (db) => sql.raw(`set session authorization ${admin}`).execute(db)),
  ).rejects.toThrow(/permission denied/);
});

test('the reader’s generated password stays private to the service’s user', async () => {
  expect((await stat(path.join(dataDir, 'reader-password'))).mode & 0o777).toBe(0o600);
});

test('a configured reader URL that logs in as a privileged user is refused', async () => {
  await expect(
    readerLogin(database.pool, database.url, { dataDir, readerDatabaseUrl: database.url }),
  ).rejects.toThrow(/must log in as connect_reader/);
});

test('the password is set as a SCRAM verifier PostgreSQL itself would store', async () => {
  // Another role, so the reader's own password (shared by the whole server) stays as it is.
  const role = `connect_scram_${process.pid}`;
  await database.pool.query(`create role ${role} password 'pencil'`);
  try {
    const { rows } = await database.pool.query<{ stored: string }>(
      'select rolpassword as stored from pg_authid where rolname = $1',
      [role],
    );
    const stored = rows[0]?.stored as string;
    const salt = Buffer.from(stored.split('$')[1]?.split(':')[1] as string, 'base64');
    expect(scramVerifier('pencil', salt)).toBe(stored);
  } finally {
    await database.pool.query(`drop role ${role}`);
  }
});
