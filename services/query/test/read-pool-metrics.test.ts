// The query service's read connections on /metrics (connect_db_pool_connections{pool="read"}): an
// operator sizing CONNECT_READ_POOL_SIZE sees how many are open, idle, and how many reads wait.
import { createServer } from '@connect/http';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, expect, test } from 'vitest';
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
  app.register(queryRoutes, { ...deps, readPoolSize: 3 });
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
