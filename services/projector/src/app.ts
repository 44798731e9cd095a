import { assertMigrated } from '@connect/db';
import { createServer, type ServerOptions } from '@connect/http';
import type { LedgerSource } from '@connect/ledger';
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { Gauge } from 'prom-client';
import { listLag, listQuarantined, type Projector, type ProjectorOptions, startProjector } from './runner.ts';

export interface ProjectorDeps extends LedgerSource {
  pool: pg.Pool;
  options?: ProjectorOptions;
}

/** Starts the projections with the server's logger; they stop when the server closes. */
export function attachProjector(app: FastifyInstance, deps: ProjectorDeps): Projector {
  const projector = startProjector(
    { pool: deps.pool, origin: deps.origin, cipher: deps.cipher, log: app.log },
    deps.options,
  );
  app.addHook('onClose', () => projector.close());
  exposeProjector(app, projector, deps.pool);
  return projector;
}

/**
 * /v1/projections and the projections' gauges on /metrics, for a projector running here or on a
 * thread of its own (`connect start`): the gauges read the database, the states ask the projector.
 */
export function exposeProjector(
  app: FastifyInstance,
  projector: Pick<Projector, 'status'>,
  pool: pg.Pool,
): void {
  app.get('/v1/projections', async () => ({
    projections: await projector.status(),
    quarantined: await listQuarantined(pool),
  }));
  new Gauge({
    name: 'connect_projection_quarantined',
    help: 'Streams a projection set aside because it cannot apply one of their entries (1 each)',
    labelNames: ['projection', 'stream', 'index'],
    registers: [app.metrics],
    async collect() {
      this.reset();
      for (const q of await listQuarantined(pool)) {
        this.set({ projection: q.projection, stream: q.stream, index: String(q.index) }, 1);
      }
    },
  });
  const lag = (key: 'entries' | 'seconds') =>
    async function collect(this: Gauge) {
      const rows = await listLag(pool);
      this.reset();
      for (const row of rows) this.set({ projection: row.projection }, row[key]);
    };
  new Gauge({
    name: 'connect_projection_lag_entries',
    help: 'Ledger entries a projection has yet to apply (the head index less its checkpoint)',
    labelNames: ['projection'],
    registers: [app.metrics],
    collect: lag('entries'),
  });
  new Gauge({
    name: 'connect_projection_lag_seconds',
    help: 'Age of the oldest ledger entry a projection has yet to apply (0 at the head)',
    labelNames: ['projection'],
    registers: [app.metrics],
    collect: lag('seconds'),
  });
}

/**
 * The projector service: the runners, and /readyz naming a projection that stopped or is stuck
 * (and whatever `alsoReady` throws, e.g. the notifier's delivery worker having stopped).
 */
export function buildApp(
  deps: ProjectorDeps,
  {
    alsoReady,
    ...options
  }: Pick<ServerOptions, 'logLevel' | 'timeouts' | 'corsOrigins' | 'trustedProxies' | 'metricsToken'> & {
    alsoReady?(): void;
  } = {},
): FastifyInstance {
  let projector: Projector | undefined;
  const app = createServer({
    ...options,
    checkReady: async () => {
      await assertMigrated(deps.pool);
      alsoReady?.();
      return projector?.readiness();
    },
  });
  projector = attachProjector(app, deps);
  return app;
}
