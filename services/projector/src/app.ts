import { assertMigrated } from '@connect/db';
import { createServer } from '@connect/http';
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';

export interface ProjectorDeps {
  pool: pg.Pool;
}

/** The projector's HTTP face: operations endpoints only; projections arrive with their issue. */
export function buildApp(deps: ProjectorDeps, options: { logLevel?: string } = {}): FastifyInstance {
  return createServer({ logLevel: options.logLevel, checkReady: () => assertMigrated(deps.pool) });
}
