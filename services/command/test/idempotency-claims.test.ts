// Who settles an Idempotency-Key's claim when the database fails around it: a claim whose answer a
// cut connection lost is released by the request that made it once the database is back, and a
// run whose key a retry took over leaves the retry's claim and response alone.
import { randomUUID } from 'node:crypto';
import { clearFields } from '@connect/db';
import { createServer } from '@connect/http';
import type { FastifyInstance } from 'fastify';
import {
  InsertQueryNode,
  type KyselyPlugin,
  type PluginTransformQueryArgs,
  type PluginTransformResultArgs,
  type QueryId,
  type QueryResult,
  type RootOperationNode,
  type UnknownRow,
} from 'kysely';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.ts';
import { ABANDONED_AFTER_MS, type Claim, idempotent, type StoredResponse } from '../src/idempotency.ts';

/**
 * Loses PostgreSQL's answer to the next claim of a key after the claim committed, as a connection
 * cut between the commit and its answer does.
 */
class LoseNextClaimAnswer implements KyselyPlugin {
  armed = false;
  private readonly lost = new WeakSet<QueryId>();

  transformQuery({ node, queryId }: PluginTransformQueryArgs): RootOperationNode {
    if (this.armed && InsertQueryNode.is(node) && node.into?.table.identifier.name === 'http_idempotency') {
      this.armed = false;
      this.lost.add(queryId);
    }
    return node;
  }

  async transformResult({ result, queryId }: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    if (this.lost.has(queryId)) throw new Error('Connection terminated unexpectedly');
    return result;
  }
}

const userId = randomUUID();
const lose = new LoseNextClaimAnswer();
let database: TestDatabase;
let app: FastifyInstance;
/** What the route runs next, and how many times it ran. */
let handler: (claim?: Claim) => Promise<StoredResponse>;
let runs = 0;

beforeAll(async () => {
  database = await createTestDatabase();
  const store = { db: database.db.withPlugin(lose), cipher: clearFields, requestKey: new Uint8Array(32) };
  app = createServer({ logLevel: 'silent', checkReady: async () => undefined });
  app.post('/things', (request, reply) =>
    idempotent(
      store,
      request,
      reply,
      userId,
      request.body,
      (claim) => {
        runs++;
        return handler(claim);
      },
      { resumable: true },
    ),
  );
  await app.ready();
});
afterAll(async () => {
  await app?.close();
  await database?.close();
});

const post = (key: string, body: object) =>
  app.inject({ method: 'POST', url: '/things', payload: body, headers: { 'idempotency-key': key } });

async function until<T>(what: string, attempt: () => Promise<T | undefined>): Promise<T> {
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; ) {
    const value = await attempt();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out: ${what}`);
}

test('a claim that committed but whose answer was lost is released by its request, not held until abandoned', async () => {
  runs = 0;
  handler = async () => ({ status: 201, body: { done: true }, headers: {} });
  const key = `lost-${Date.now()}`;
  lose.armed = true;
  const cut = await post(key, { n: 1 });
  expect(cut.statusCode).toBe(503);
  expect(runs).toBe(0);
  const { rows } = await database.pool.query('select status from http_idempotency where key = $1', [key]);
  expect(rows).toEqual([{ status: null }]);

  // Retries meet the claim in flight only until its request released it: seconds, not 30.
  const startedAt = Date.now();
  const answered = await until('the retry runs', async () => {
    const retry = await post(key, { n: 1 });
    if (retry.statusCode === 409 && retry.json().type === '/problems/idempotency-key-in-flight')
      return undefined;
    return retry;
  });
  expect(Date.now() - startedAt).toBeLessThan(ABANDONED_AFTER_MS / 3);
  expect(answered.statusCode).toBe(201);
  expect(answered.json()).toEqual({ done: true });
  expect(runs).toBe(1);
  const replayed = await post(key, { n: 1 });
  expect(replayed.headers['idempotency-replayed']).toBe('true');
  expect(runs).toBe(1);
});

test('a run taken for abandoned does not forget or overwrite the claim of the retry that took it over', async () => {
  runs = 0;
  const key = `taken-${Date.now()}`;
  let failFirst: (error: Error) => void = () => undefined;
  handler = () =>
    new Promise((_, reject) => {
      failFirst = reject;
    });
  const first = post(key, { n: 2 });
  await until('the first run started', async () => (runs === 1 ? true : undefined));
  await database.pool.query(
    'update http_idempotency set created_at = now() - make_interval(secs => $2) where key = $1',
    [key, ABANDONED_AFTER_MS / 1000 + 1],
  );
  handler = async (claim) => ({ status: 201, body: { resumed: claim?.resumed }, headers: {} });
  const retry = await post(key, { n: 2 });
  expect(retry.statusCode).toBe(201);
  expect(retry.json()).toEqual({ resumed: true });

  // The first run fails only now: the key is the retry's, settled, and stays so.
  failFirst(new Error('the first run failed late'));
  expect((await first).statusCode).toBe(500);
  const replayed = await post(key, { n: 2 });
  expect(replayed.statusCode).toBe(201);
  expect(replayed.headers['idempotency-replayed']).toBe('true');
  expect(replayed.json()).toEqual({ resumed: true });
  expect(runs).toBe(2);
});
