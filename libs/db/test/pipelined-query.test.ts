import type pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.ts';
import { queryPipelined } from '../src/index.ts';

let database: TestDatabase;
let client: pg.PoolClient;
/** ReadyForQuery messages the client has had: one per Sync, so one per round trip. */
let roundTrips = 0;
const countRoundTrip = () => {
  roundTrips++;
};
const connectionOf = (of: pg.PoolClient) => (of as unknown as { connection: NodeJS.EventEmitter }).connection;

beforeAll(async () => {
  database = await createTestDatabase({ poolSize: 2 });
  await database.pool.query('create table pipelined (n int primary key)');
});

beforeEach(async () => {
  client = await database.pool.connect();
  connectionOf(client).on('readyForQuery', countRoundTrip);
  roundTrips = 0;
});

afterEach(async () => {
  connectionOf(client).off('readyForQuery', countRoundTrip);
  client.release();
  await database.pool.query('delete from pipelined');
});

afterAll(async () => {
  await database.close();
});

const committed = async () =>
  (await database.pool.query<{ n: number }>('select n from pipelined order by n')).rows.map((row) => row.n);

test('a transaction begun ahead of a statement and committed after it: one round trip, its own rows', async () => {
  const result = await queryPipelined<{ n: number }>(
    client,
    {
      name: 'pipelined-insert',
      text: 'insert into pipelined select unnest($1::int[]) returning n',
      values: [[1, 2]],
    },
    {
      before: [{ text: 'begin' }, { text: 'select $1::text as noise', values: ['not mine'] }],
      after: [{ text: 'commit' }],
    },
  );
  expect(result.rows).toEqual([{ n: 1 }, { n: 2 }]);
  expect(result.rowCount).toBe(2);
  expect(result.command).toBe('INSERT');
  expect(roundTrips).toBe(1);
  // Committed: another connection sees the rows, and this one is in no transaction.
  expect(await committed()).toEqual([1, 2]);
  const again = await queryPipelined<{ n: number }>(
    client,
    {
      name: 'pipelined-insert',
      text: 'insert into pipelined select unnest($1::int[]) returning n',
      values: [[3]],
    },
    { before: [{ text: 'begin' }], after: [{ text: 'commit' }] },
  );
  expect(again.rows).toEqual([{ n: 3 }]);
  expect(roundTrips).toBe(2);
  expect(await committed()).toEqual([1, 2, 3]);
});

test('a statement after that fails rejects the query, and what came before it can be rolled back', async () => {
  await client.query('begin');
  await expect(
    queryPipelined(
      client,
      { text: 'insert into pipelined values ($1)', values: [7] },
      { after: [{ text: 'select 1 / $1::int', values: [0] }, { text: 'commit' }] },
    ),
  ).rejects.toThrow(/division by zero/);
  await client.query('rollback');
  expect(await committed()).toEqual([]);
  expect((await client.query('select 1 as still_usable')).rows).toEqual([{ still_usable: 1 }]);
});

test('a statement ahead that fails rejects the query, and the statement does not run', async () => {
  await expect(
    queryPipelined(
      client,
      { text: 'insert into pipelined values ($1)', values: [8] },
      { before: [{ text: 'select 1 / 0' }] },
    ),
  ).rejects.toThrow(/division by zero/);
  expect(await committed()).toEqual([]);
  expect((await client.query('select 2 as still_usable')).rows).toEqual([{ still_usable: 2 }]);
});

test('an error in the statement itself names it, and nothing of the pipeline is kept', async () => {
  await expect(
    queryPipelined(
      client,
      { text: 'insert into pipelined values ($1), ($1)', values: [9] },
      { before: [{ text: 'begin' }], after: [{ text: 'commit' }] },
    ),
  ).rejects.toThrow(/duplicate key/);
  await client.query('rollback');
  expect(await committed()).toEqual([]);
});

test('a value that cannot be sent rejects the query before anything runs', async () => {
  const circular: Record<string, unknown> = {};
  circular.self = circular;
  await expect(
    queryPipelined(
      client,
      { text: 'insert into pipelined values ($1)', values: [10] },
      {
        before: [{ text: 'begin' }],
        after: [{ text: 'select $1::jsonb', values: [circular] }, { text: 'commit' }],
      },
    ),
  ).rejects.toThrow(/circular/i);
  expect(await committed()).toEqual([]);
  expect((await client.query('select 3 as still_usable')).rows).toEqual([{ still_usable: 3 }]);
});

test('a named statement that fails to parse behind a companion fails the same way the next time', async () => {
  const missing = {
    name: 'pipelined-missing',
    text: 'select n from no_such_table where n = $1',
    values: [1],
  };
  for (let attempt = 0; attempt < 2; attempt++)
    await expect(queryPipelined(client, missing, { before: [{ text: 'select 1' }] })).rejects.toThrow(
      /relation "no_such_table" does not exist/,
    );
  const ahead = { name: 'pipelined-after-failed-companion', text: 'select $1::int as n', values: [4] };
  await expect(queryPipelined(client, ahead, { before: [{ text: 'select 1 / 0' }] })).rejects.toThrow(
    /division by zero/,
  );
  expect((await queryPipelined(client, ahead, { before: [{ text: 'select 1' }] })).rows).toEqual([{ n: 4 }]);
});

test('a statement whose own values cannot be sent sends nothing after it: the transaction stays open', async () => {
  const circular: Record<string, unknown> = {};
  circular.self = circular;
  await expect(
    queryPipelined(
      client,
      { text: 'select $1::jsonb', values: [circular] },
      { before: [{ text: 'begin' }], after: [{ text: 'commit' }] },
    ),
  ).rejects.toThrow(/circular/i);
  await client.query('insert into pipelined values (11)');
  await client.query('rollback');
  expect(await committed()).toEqual([]);
});

test('paged rows and empty companions are refused', async () => {
  await expect(
    queryPipelined(client, { text: 'select 1', rows: 1 } as pg.QueryConfig, { after: [{ text: 'commit' }] }),
  ).rejects.toThrow(/all its rows/);
  await expect(queryPipelined(client, { text: 'select 1' }, { before: [{ text: ' ' }] })).rejects.toThrow(
    /no text/,
  );
});

test('a companion prepared beforehand is bound by its name, with its own values, in the same round trip', async () => {
  await client.query(`prepare "set-label"(text) as select set_config('pipelined.label', $1, true)`);
  roundTrips = 0;
  for (const label of ['first', 'second']) {
    const result = await queryPipelined<{ label: string }>(
      client,
      { text: `select current_setting('pipelined.label') as label` },
      { before: [{ text: 'ignored when prepared', preparedAs: 'set-label', values: [label] }] },
    );
    expect(result.rows).toEqual([{ label }]);
  }
  expect(roundTrips).toBe(2);
  const { rows } = await client.query<{ generic: number; custom: number }>(
    `select generic_plans as generic, custom_plans as custom from pg_prepared_statements where name = 'set-label'`,
  );
  expect(rows).toEqual([{ generic: 2, custom: 0 }]);
  await client.query('deallocate "set-label"');
});
