import { assertMigrated } from '@connect/db';
import { createServer } from '@connect/http';
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { type Projector, type ProjectorOptions, startProjector } from './runner.ts';

export interface ProjectorDeps {
  pool: pg.Pool;
  origin: string;
  options?: ProjectorOptions;
}

/** Starts the projections with the server's logger; they stop when the server closes. */
export function attachProjector(app: FastifyInstance, deps: ProjectorDeps): Projector {
  const projector = startProjector({ pool: deps.pool, origin: deps.origin, log: app.log }, deps.options);
  app.addHook('onClose', () => projector.close());
  app.get('/v1/projections', async () => ({ projections: projector.status() }));
  return projector;
}

/** The projector service: the runners, and /readyz naming a projection that stopped. */
export function buildApp(deps: ProjectorDeps, options: { logLevel?: string } = {}): FastifyInstance {
  let projector: Projector | undefined;
  const app = createServer({
    logLevel: options.logLevel,
    checkReady: async () => {
      await assertMigrated(deps.pool);
      projector?.assertHealthy();
    },
  });
  projector = attachProjector(app, deps);
  return app;
}
