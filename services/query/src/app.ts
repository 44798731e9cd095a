import { assertMigrated } from '@connect/db';
import { createServer } from '@connect/http';
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { type LedgerRouteDeps, ledgerRoutes } from './ledger-routes.ts';
import { verifyRoutes } from './verify-routes.ts';

export interface QueryDeps extends LedgerRouteDeps {
  pool: pg.Pool;
}

/** The query service's routes, for a server of its own or the combined `connect start`. */
export async function queryRoutes(app: FastifyInstance, deps: QueryDeps): Promise<void> {
  await app.register(ledgerRoutes, deps);
  await app.register(verifyRoutes, deps);
}

export function buildApp(deps: QueryDeps, options: { logLevel?: string } = {}): FastifyInstance {
  const app = createServer({ logLevel: options.logLevel, checkReady: () => assertMigrated(deps.pool) });
  app.register(queryRoutes, deps);
  return app;
}
