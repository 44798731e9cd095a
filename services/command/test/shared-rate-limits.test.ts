import { postgresRateLimitStore, rateLimitCounter } from '@connect/http';
import type { FastifyInstance } from 'fastify';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { buildApp } from '../src/app.ts';
import { type Account, signUp, type TestApp, testApp } from './support.ts';

// Two instances of the command service on one database, as behind a load balancer.
let t: TestApp;
let other: FastifyInstance;
let clock = new Date();
let ana: Account;
let ben: Account;

beforeAll(async () => {
  t = await testApp({ authAttemptsPerMinute: 3, commandsPerMinute: 4, now: () => clock });
  other = buildApp(t.deps, { logLevel: 'silent' });
  await other.ready();
  ana = await signUp(t.app, 'Ana');
  ben = await signUp(other, 'Ben');
});
afterAll(async () => {
  await other.close();
  await t.close();
});

const instances = () => [t.app, other];
const login = (app: FastifyInstance, email: string, remoteAddress: string) =>
  app.inject({
    method: 'POST',
    url: '/v1/auth/token',
    remoteAddress,
    payload: { grant_type: 'password', email, password: 'not the password' },
  });

function expectLimited(response: Awaited<ReturnType<FastifyInstance['inject']>>) {
  expect(response.statusCode).toBe(429);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(Number(response.headers['retry-after'])).toBeGreaterThan(0);
  expect(Number(response.headers['retry-after'])).toBeLessThanOrEqual(60);
  expect(response.json()).toMatchObject({ status: 429, type: '/problems/rate-limited' });
}

test('attempts from one address split across both instances reach the limit together', async () => {
  const address = '203.0.113.10';
  for (let i = 0; i < 3; i++) {
    const response = await login(instances()[i % 2] as FastifyInstance, `nobody-${i}@example.test`, address);
    expect(response.statusCode).toBe(400);
  }
  expectLimited(await login(t.app, 'nobody-3@example.test', address));
  expectLimited(await login(other, 'nobody-4@example.test', address));
  // Another address is not limited, nor is another route from this one.
  expect((await login(other, 'nobody-5@example.test', '203.0.113.11')).statusCode).toBe(400);
  const recover = await t.app.inject({
    method: 'POST',
    url: '/v1/auth/recover',
    remoteAddress: address,
    payload: { email: 'nobody-6@example.test' },
  });
  expect(recover.statusCode).toBe(202);
});

test('attempts on one account from many addresses are limited per account; the table holds no email', async () => {
  for (let i = 0; i < 3; i++) {
    const response = await login(instances()[i % 2] as FastifyInstance, ana.email, `198.51.100.${i + 1}`);
    expect(response.statusCode).toBe(400);
  }
  // The same account however it is spelt.
  expectLimited(await login(other, `  ${ana.email.toUpperCase()} `, '198.51.100.9'));
  // Another account from the same addresses goes on.
  expect((await login(t.app, ben.email, '198.51.100.1')).statusCode).toBe(400);

  const keys = (await t.database.db
    .selectFrom('rate_limits' as never)
    .select('key' as never)
    .execute()) as {
    key: string;
  }[];
  expect(keys.length).toBeGreaterThan(0);
  for (const { key } of keys) {
    expect(key).not.toContain('@');
    expect(key).not.toContain(ana.email.split('@')[0]);
  }
});

test('the window resets', async () => {
  const address = '203.0.113.20';
  for (let i = 0; i < 3; i++) await login(t.app, `later-${i}@example.test`, address);
  expectLimited(await login(other, 'later-3@example.test', address));
  clock = new Date(clock.getTime() + 61_000);
  expect((await login(other, 'later-4@example.test', address)).statusCode).toBe(400);
  expect((await login(t.app, ana.email, '198.51.100.1')).statusCode).toBe(400);
});

test('commands are limited per user across both instances', async () => {
  const create = (app: FastifyInstance, who: Account) =>
    app.inject({
      method: 'POST',
      url: '/v1/commitments',
      headers: who.auth,
      payload: { type: 'personal', title: 'Water the plants' },
    });
  for (let i = 0; i < 4; i++)
    expect((await create(instances()[i % 2] as FastifyInstance, ana)).statusCode).toBe(201);
  const limited = await create(t.app, ana);
  expectLimited(limited);
  expect(limited.json().detail).toMatch(/Too many commands/);
  // Every command counts, on any commitment; profile changes too.
  const patch = await other.inject({
    method: 'PATCH',
    url: '/v1/me',
    headers: ana.auth,
    payload: { displayName: 'Ana B' },
  });
  expectLimited(patch);
  // Another user has a limit of their own; unauthenticated requests get their 401.
  expect((await create(other, ben)).statusCode).toBe(201);
  const anonymous = await t.app.inject({
    method: 'POST',
    url: '/v1/commitments',
    payload: { type: 'personal', title: 'Water the plants' },
  });
  expect(anonymous.statusCode).toBe(401);
  clock = new Date(clock.getTime() + 61_000);
  expect((await create(t.app, ana)).statusCode).toBe(201);
});

test('hits counted at once by two instances each get a count of their own, and none is lost', async () => {
  const counters = [rateLimitCounter(t.database.db), rateLimitCounter(t.database.db)];
  const keys = ['test:burst:a', 'test:burst:b', 'test:burst:c'];
  const hits = await Promise.all(
    Array.from({ length: 90 }, async (_, i) => {
      const key = keys[i % keys.length] as string;
      const hit = await (counters[i % 2] as (typeof counters)[0])(key, 60_000, clock);
      return { key, count: hit.count };
    }),
  );
  for (const key of keys) {
    const counts = hits.filter((hit) => hit.key === key).map((hit) => hit.count);
    expect(counts.sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
  }
  const { rows } = await t.database.pool.query(
    'select key, count from rate_limits where key like $1 order by key',
    ['test:burst:%'],
  );
  expect(rows).toEqual(keys.map((key) => ({ key, count: 30 })));
});

test('when the database cannot count, requests go through (fail-open)', async () => {
  const unreachable = new pg.Pool({
    connectionString: 'postgresql://postgres@127.0.0.1:1/postgres',
    connectionTimeoutMillis: 500,
  });
  const db = new Kysely<never>({ dialect: new PostgresDialect({ pool: unreachable }) });
  const warnings: unknown[] = [];
  const log = t.app.log.child({});
  log.warn = ((...args: unknown[]) => {
    warnings.push(args);
  }) as typeof log.warn;
  const Store = postgresRateLimitStore({ db: db as never, log });
  const store = new Store({});
  const result = await new Promise<{ current: number; ttl: number } | undefined>((resolve, reject) =>
    store.incr('test:key', (error, counted) => (error ? reject(error) : resolve(counted))),
  );
  expect(result?.current).toBe(0);
  expect(warnings).toHaveLength(1);
  await db.destroy();
});
