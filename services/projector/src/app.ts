import { assertMigrated } from '@connect/db';
import { createServer, type ServerOptions } from '@connect/http';
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { Gauge } from 'prom-client';
import { listQuarantined, type Projector, type ProjectorOptions, startProjector } from './runner.ts';

export interface ProjectorDeps {
  pool: pg.Pool;
  origin: string;
  options?: ProjectorOptions;
}

/** Starts the projections with the server's logger; they stop when the server closes. */
export function attachProjector(app: FastifyInstance, deps: ProjectorDeps): Projector {
  const projector = startProjector({ pool: deps.pool, origin: deps.origin, log: app.log }, deps.options);
  app.addHook('onClose', () => projector.close());
  app.get('/v1/projections', async () => ({
    projections: projector.status(),
    quarantined: await listQuarantined(deps.pool),
  }));
  new Gauge({
    name: 'connect_projection_quarantined',
    help: 'Streams a projection set aside because it cannot apply one of their entries (1 each)',
    labelNames: ['projection', 'stream', 'index'],
    registers: [app.metrics],
    async collect() {
      this.reset();
      for (const q of await listQuarantined(deps.pool)) {
        this.set({ projection: q.projection, stream: q.stream, index: String(q.index) }, 1);
      }
    },
  });
  return projector;
}

/** The projector service: the runners, and /readyz naming a projection that stopped. */
export function buildApp(
  deps: ProjectorDeps,
  options: Pick<ServerOptions, 'logLevel' | 'timeouts'> = {},
): FastifyInstance {
  let projector: Projector | undefined;
  const app = createServer({
    ...options,
    checkReady: async () => {
      await assertMigrated(deps.pool);
      return projector?.readiness();
    },
  });
  projector = attachProjector(app, deps);
  return app;
}
