// Which pg and pg-pool errors say something about the connection rather than the statement.
import type { LookupAddress } from 'node:dns';
import net from 'node:net';
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

test('a host name whose every address refuses is a failure (one AggregateError for all of them)', async () => {
  const refused = await new Promise<unknown>((resolve) => {
    const socket = net.connect({
      host: 'two-addresses.test',
      port: 1,
      autoSelectFamily: true,
      lookup: (_host, _options, callback) =>
        (callback as (error: null, addresses: LookupAddress[]) => void)(null, [
          { address: '::1', family: 6 },
          { address: '127.0.0.1', family: 4 },
        ]),
    });
    socket.on('error', resolve);
  });
  expect(refused).toBeInstanceOf(AggregateError);
  expect(isConnectionFailure(refused)).toBe(true);
});

test('an AggregateError is a failure when any attempt is, whatever its first says', () => {
  const attempts = [
    coded('connect EPROTO ::1:5432', 'EPROTO'),
    coded('connect ECONNREFUSED', 'ECONNREFUSED'),
  ];
  expect(isConnectionFailure(Object.assign(new AggregateError(attempts, ''), { code: 'EPROTO' }))).toBe(true);
  expect(isConnectionFailure(new AggregateError([coded('bad', '23505')], ''))).toBe(false);
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
  coded('connect ENETUNREACH 2001:db8::1:5432', 'ENETUNREACH'),
  coded('getaddrinfo EAI_AGAIN db.internal', 'EAI_AGAIN'),
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
