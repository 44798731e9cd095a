// What a request is answered when the database fails it rather than the request itself.
import { expect, test } from 'vitest';
import { createServer } from '../src/server.ts';

async function answerTo(error: Error) {
  const app = createServer({ logLevel: 'silent', checkReady: async () => ({ checked: true }) });
  app.get('/read', async () => {
    throw error;
  });
  try {
    return await app.inject({ method: 'GET', url: '/read' });
  } finally {
    await app.close();
  }
}

test.each([
  // pg-pool, when no pooled connection came free within its connectionTimeoutMillis (POOL_WAIT_MS)
  'timeout exceeded when trying to connect',
  // pg, when a new connection's server did not answer within that time
  'Connection terminated due to connection timeout',
])('"%s" is a 503 with Retry-After saying no connection came free, not a 500', async (message) => {
  const response = await answerTo(new Error(message));
  expect(response.statusCode).toBe(503);
  expect(response.headers['retry-after']).toBe('1');
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(response.json()).toMatchObject({
    status: 503,
    detail: 'No database connection came free in time; try again shortly.',
  });
});

test.each([
  Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }),
  new Error('Connection terminated unexpectedly'),
  Object.assign(new Error('the database system is shutting down'), { code: '57P03' }),
  Object.assign(new Error('database "connect" is not currently accepting connections'), { code: '55000' }),
])('"$message" is a 503 saying the database is unreachable', async (error) => {
  const response = await answerTo(error);
  expect(response.statusCode).toBe(503);
  expect(response.headers['retry-after']).toBe('1');
  expect(response.json()).toMatchObject({
    status: 503,
    detail: 'The database is unreachable; try again shortly.',
  });
});

test('a statement stopped at its time limit is a 503 saying so', async () => {
  const response = await answerTo(
    Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' }),
  );
  expect(response.statusCode).toBe(503);
  expect(response.json()).toMatchObject({
    status: 503,
    detail: 'The database took too long to answer; try again shortly.',
  });
});

test('any other failure is a 500 that tells nothing of it', async () => {
  const response = await answerTo(new Error('password authentication failed for user "connect"'));
  expect(response.statusCode).toBe(500);
  expect(response.body).not.toContain('password');
});
