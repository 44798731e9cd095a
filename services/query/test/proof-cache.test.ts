// The running server's proof cache: filled from the stored tree once the server is ready.
import { createServer } from '@connect/http';
import { afterAll, beforeAll, expect, test, vi } from 'vitest';
import { event, KEY, ORIGIN, testLedger } from '../../../libs/ledger/test/support.ts';
import type { TestDatabase } from '../../../test/support/database.ts';
import { ledgerRoutes } from '../src/ledger-routes.ts';

const SIZE = 40;
let database: TestDatabase;
let verifierKey: string;

beforeAll(async () => {
  const { database: opened, ledger } = await testLedger();
  database = opened;
  verifierKey = ledger.verifierKey;
  for (let i = 0; i < SIZE; i++)
    await ledger.append({
      stream: `p-${i % 4}`,
      expectedVersion: 'any',
      actor: null,
      events: [event('E', { i })],
    });
  await ledger.drain();
});
afterAll(() => database.close());

/** The ledger routes on a server of their own, over a pool that counts the statements they send. */
async function ledgerServer(warmProofCache: boolean) {
  const counted = { statements: 0 };
  const pool = {
    query: ((...args: unknown[]) => {
      counted.statements++;
      return (database.pool.query as (...a: unknown[]) => unknown)(...args);
    }) as typeof database.pool.query,
  };
  const app = createServer({ logLevel: 'silent', checkReady: async () => undefined });
  await app.register(ledgerRoutes, {
    db: database.db,
    pool,
    origin: ORIGIN,
    verifierKey,
    key: KEY,
    warmProofCache,
  });
  await app.ready();
  return { app, counted };
}

test('a server set to warm its proof cache reads the stored tree once ready, then proves with no statement', async () => {
  const { app, counted } = await ledgerServer(true);
  // The head, then one page for each level of a 40-leaf tree (40, 20, 10, 5, 2 and 1 nodes).
  await vi.waitFor(() => expect(counted.statements).toBe(7));
  for (let size = 1; size <= SIZE; size++) {
    const inclusion = await app.inject({
      url: `/v1/ledger/proofs/inclusion?index=${size - 1}&treeSize=${size}`,
    });
    expect(inclusion.statusCode).toBe(200);
    const consistency = await app.inject({
      url: `/v1/ledger/proofs/consistency?from=${Math.ceil(size / 2)}&to=${size}`,
    });
    expect(consistency.statusCode).toBe(200);
  }
  expect(counted.statements).toBe(7);
  // Beyond the head it still asks the database, and refuses.
  const beyond = await app.inject({ url: `/v1/ledger/proofs/inclusion?index=0&treeSize=${SIZE + 1}` });
  expect(beyond.statusCode).toBe(400);
  expect(counted.statements).toBe(8);
  await app.close();
});

test('without it, the cache fills only as proofs read', async () => {
  const { app, counted } = await ledgerServer(false);
  expect(counted.statements).toBe(0);
  expect((await app.inject({ url: `/v1/ledger/proofs/inclusion?index=3&treeSize=${SIZE}` })).statusCode).toBe(
    200,
  );
  expect(counted.statements).toBe(1);
  await app.close();
});
