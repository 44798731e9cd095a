// Which pg and pg-pool errors say something about the connection rather than the statement.
import { expect, test } from 'vitest';
import { isConnectionFailure, isConnectionWaitOver } from '../src/connection-errors.ts';
import { createPool } from '../src/database.ts';

const coded = (message: string, code: string) => Object.assign(new Error(message), { code });

test('a connection refused by a port nobody listens on is a failure, not a wait over', async () => {
  const pool = createPool('postgresql://nobody@127.0.0.1:1/none', 1);
  try {
    const refused = await pool.connect().catch((error: unknown) => error);
    expect(isConnectionFailure(refused)).toBe(true);
    expect(isConnectionWaitOver(refused)).toBe(false);
  } finally {
    await pool.end();
  }
});

// pg-pool's own wait (pool-wait.test.ts makes it happen on a real pool), and pg's for a new connection.
test.each([
  'timeout exceeded when trying to connect',
  'Connection terminated due to connection timeout',
  'timeout expired',
])('"%s" is a wait over, and so a connection failure', (message) => {
  expect(isConnectionWaitOver(new Error(message))).toBe(true);
  expect(isConnectionFailure(new Error(message))).toBe(true);
});

test.each([
  coded('terminating connection due to administrator command', '57P01'),
  coded('the database system is shutting down', '57P03'),
  coded('connection failure', '08006'),
  coded('write EPIPE', 'EPIPE'),
  new Error('Connection terminated unexpectedly'),
  new Error('Client has encountered a connection error and is not queryable'),
])('"$message" is a connection failure, not a wait', (error) => {
  expect(isConnectionFailure(error)).toBe(true);
  expect(isConnectionWaitOver(error)).toBe(false);
});

test.each([
  coded('canceling statement due to statement timeout', '57014'),
  coded('duplicate key value violates unique constraint "x"', '23505'),
  coded('could not serialize access due to concurrent update', '40001'),
  new Error('timeout expired while reading a file'),
  'Connection terminated',
  undefined,
])('%s says nothing about the connection', (error) => {
  expect(isConnectionFailure(error)).toBe(false);
  expect(isConnectionWaitOver(error)).toBe(false);
});
