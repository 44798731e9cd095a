import { assertMigrated } from '@connect/db';
import { createServer } from '@connect/http';
import type { Ledger } from '@connect/ledger';
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';

export interface CommandDeps {
  pool: pg.Pool;
  ledger: Ledger;
}

/** The command service's routes (auth and commitment commands arrive with their issue). */
export async function commandRoutes(_app: FastifyInstance, _deps: CommandDeps): Promise<void> {}

export function buildApp(deps: CommandDeps, options: { logLevel?: string } = {}): FastifyInstance {
  const app = createServer({ logLevel: options.logLevel, checkReady: () => assertMigrated(deps.pool) });
  app.register(commandRoutes, deps);
  return app;
}
