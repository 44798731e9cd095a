// The query service's read connections. On /metrics (connect_db_pool_connections{pool="read"}), an
// operator sizing CONNECT_READ_POOL_SIZE sees how many are open, idle, and how many reads wait.
// CONNECT_READ_TIMEOUT_MS: a read held up in the database (behind a lock, say) is
// stopped at its time limit and answered 503 with Retry-After, freeing its connection for the
// reads behind it; once the database answers again, so do the reads. A read that gets no
// connection within that limit (a server that never answers) is answered the same way.
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { createPool } from '@connect/db';
import { createServer } from '@connect/http';
import type { FastifyInstance } from 'fastify';
import { createClient } from 'graphql-ws';
import type pg from 'pg';
import { afterAll, beforeAll, expect, test } from 'vitest';
import WebSocket from 'ws';
import { type Stack, testStack } from '../../../test/support/stack.ts';
import { queryRoutes } from '../src/app.ts';

let s: Stack;
let app: FastifyInstance;
let token: string;

beforeAll(async () => {
  s = await testStack();
  const signup = await s.app.inject({
    method: 'POST',
    url: '/v1/auth/signup',
    payload: { email: 'pools@example.test', password: 'correct horse battery', displayName: 'Pools' },
  });
  token = signup.json().access_token;
  // The query service as its own process runs it: reading through a pool of its own.
  const { reader: _shared, ...deps } = s.query;
  app = createServer({ logLevel: 'silent', checkReady: async () => undefined });
  app.register(queryRoutes, { ...deps, readPoolSize: 3, readTimeoutMs: 300 });
  await app.ready();
});
afterAll(async () => {
  await app.close();
  await s.close();
});

async function poolSeries(): Promise<Record<string, number>> {
  const response = await app.inject({ method: 'GET', url: '/metrics' });
  expect(response.statusCode).toBe(200);
  const values: Record<string, number> = {};
  for (const match of response.body.matchAll(
    /^connect_db_pool_connections\{pool="(\w+)",state="(\w+)"\} (\S+)$/gm,
  ))
    values[`${match[1]}.${match[2]}`] = Number(match[3]);
  return values;
}

test('the read pool is reported as pool="read": its connections once reads have opened them', async () => {
  const reads = await Promise.all(
    Array.from({ length: 6 }, () =>
      app.inject({ method: 'GET', url: '/v1/commitments', headers: { authorization: `Bearer ${token}` } }),
    ),
  );
  expect(reads.map((read) => read.statusCode)).toEqual([200, 200, 200, 200, 200, 200]);
  const series = await poolSeries();
  expect(series['read.total']).toBeGreaterThan(0);
  expect(series['read.total']).toBeLessThanOrEqual(3);
  expect(series['read.idle']).toBe(series['read.total']);
  expect(series['read.waiting']).toBe(0);
});

/** How a read past its time limit is answered: 503 not-ready, to be tried again in a second. */
function expectPastTimeLimit(answer: Awaited<ReturnType<FastifyInstance['inject']>>) {
  expect(answer.statusCode).toBe(503);
  expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(answer.headers['retry-after']).toBe('1');
  expect(answer.json()).toMatchObject({
    status: 503,
    type: '/problems/not-ready',
    detail: 'The database took too long to answer; try again shortly.',
  });
}

const list = () =>
  app.inject({ method: 'GET', url: '/v1/commitments', headers: { authorization: `Bearer ${token}` } });

test('a read held up past its time limit answers 503 with Retry-After, and the next read, once free, 200', async () => {
  expect((await list()).statusCode).toBe(200);
  const holder = await s.database.pool.connect();
  try {
    await holder.query('begin');
    await holder.query('lock table commitments in access exclusive mode');
    const started = performance.now();
    // More reads than the pool's three connections: the fourth waits for one, and is answered the
    // same way (stopped on a connection a stopped read freed, or at the end of its wait).
    const answers = await Promise.all([list(), list(), list(), list()]);
    const took = performance.now() - started;
    for (const answer of answers) expectPastTimeLimit(answer);
    expect(took).toBeGreaterThanOrEqual(250);
    expect(took).toBeLessThan(5000);
  } finally {
    await holder.query('rollback');
    holder.release();
  }
  expect((await list()).statusCode).toBe(200);
});

test('over GraphQL, a read stopped at its time limit is an error coded SERVICE_UNAVAILABLE', async () => {
  const holder = await s.database.pool.connect();
  try {
    await holder.query('begin');
    await holder.query('lock table commitments in access exclusive mode');
    const answer = await app.inject({
      method: 'POST',
      url: '/graphql',
      headers: { authorization: `Bearer ${token}` },
      payload: { query: '{ commitments { edges { node { id } } } }' },
    });
    expect(answer.json().errors).toEqual([
      expect.objectContaining({
        message: 'The database took too long to answer; try again shortly.',
        path: ['commitments'],
        extensions: { code: 'SERVICE_UNAVAILABLE' },
      }),
    ]);
  } finally {
    await holder.query('rollback');
    holder.release();
  }
});

test('a subscription whose read is stopped at its time limit ends with an error coded SERVICE_UNAVAILABLE', async () => {
  const url = `${(await app.listen({ port: 0, host: '127.0.0.1' })).replace('http', 'ws')}/graphql`;
  const client = createClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${token}` },
    retryAttempts: 0,
  });
  const holder = await s.database.pool.connect();
  try {
    await holder.query('begin');
    await holder.query('lock table commitments in access exclusive mode');
    // Subscribing to a commitment reads it first (is it yours to watch?): that read is held up.
    const ended = await new Promise((resolve) => {
      client.subscribe(
        { query: `subscription { commitmentChanged(id: "${randomUUID()}") { id } }` },
        { next: () => undefined, error: resolve, complete: () => resolve('completed') },
      );
    });
    expect(ended).toEqual([
      expect.objectContaining({
        message: 'The database took too long to answer; try again shortly.',
        extensions: { code: 'SERVICE_UNAVAILABLE' },
      }),
    ]);
  } finally {
    await holder.query('rollback');
    holder.release();
    await client.dispose();
  }
});

test('reads that get no connection within their time limit (a server that never answers) answer 503', async () => {
  // A server that accepts connections and never says a word: a PostgreSQL hung, or cut off behind
  // a proxy that still accepts.
  const silent: net.Socket[] = [];
  const hung = net.createServer((socket) => void silent.push(socket));
  await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve));
  const { port } = hung.address() as net.AddressInfo;
  const { reader: _shared, ...deps } = s.query;
  const cutOff = createServer({ logLevel: 'silent', checkReady: async () => undefined });
  cutOff.register(queryRoutes, {
    ...deps,
    databaseUrl: `postgresql://connect_reader@127.0.0.1:${port}/connect`,
    readPoolSize: 2,
    readTimeoutMs: 300,
  });
  try {
    await cutOff.ready();
    const started = performance.now();
    // Two reads open the pool's two connections, which the server never answers; the third
    // waits in the pool for one of them.
    const answers = await Promise.all(
      Array.from({ length: 3 }, () =>
        cutOff.inject({
          method: 'GET',
          url: '/v1/commitments',
          headers: { authorization: `Bearer ${token}` },
        }),
      ),
    );
    const took = performance.now() - started;
    for (const answer of answers) expectPastTimeLimit(answer);
    expect(took).toBeGreaterThanOrEqual(250);
    expect(took).toBeLessThan(3000);
    expect(silent.length).toBeGreaterThanOrEqual(2);
  } finally {
    await cutOff.close();
    for (const socket of silent) socket.destroy();
    await new Promise((resolve) => hung.close(resolve));
  }
});

test("over GraphQL, a write that gets no connection within the pool's wait is an error coded SERVICE_UNAVAILABLE", async () => {
  const { reader: _shared, ...deps } = s.query;
  const size = 4;
  const starved = createPool(s.database.url, size, { connectionTimeoutMillis: 200 });
  const held: pg.PoolClient[] = [];
  const busy = createServer({ logLevel: 'silent', checkReady: async () => undefined });
  busy.register(queryRoutes, { ...deps, pool: starved, readPoolSize: 2 });
  try {
    await busy.ready();
    // Every connection busy: those the service's listeners hold, and the rest held here.
    while (starved.totalCount < size || starved.idleCount > 0) held.push(await starved.connect());
    const answer = await busy.inject({
      method: 'POST',
      url: '/graphql',
      headers: { authorization: `Bearer ${token}` },
      payload: { query: 'mutation { markNotificationsRead(all: true) }' },
    });
    expect(answer.json().errors).toEqual([
      expect.objectContaining({
        message: 'No database connection came free in time; try again shortly.',
        path: ['markNotificationsRead'],
        extensions: { code: 'SERVICE_UNAVAILABLE' },
      }),
    ]);
  } finally {
    for (const connection of held) connection.release();
    await busy.close();
    await starved.end();
  }
});
