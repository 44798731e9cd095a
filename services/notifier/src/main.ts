// The notifier as a service of its own (docker-compose): the projector's runner and /readyz, with
// the notifications projection alone, and the delivery worker (graphile-worker, same database).
import { loadConfig } from '@connect/db';
import { openAndServe, serverOptionsOf } from '@connect/http';
import { monitorLedger, openLedgerRuntime } from '@connect/ledger';
import { buildApp } from '@connect/projector';
import { openNotifier } from './projection.ts';
import { openDeliveryQueue } from './queue/setup.ts';

const config = loadConfig(process.env);
const runtime = await openLedgerRuntime(config);
await openAndServe(config, async (opening) => {
  opening.release(() => runtime.close());
  const { pool, db } = runtime.database;
  const delivery = await openDeliveryQueue({ pool, db, cipher: runtime.ledger.cipher, config });
  opening.release(() => delivery.close());
  const notifier = await openNotifier(pool, { appUrl: config.appUrl, ...delivery.hooks });
  const app = opening.built(
    buildApp(
      {
        pool,
        origin: runtime.ledger.origin,
        cipher: runtime.ledger.cipher,
        options: { projections: [notifier] },
      },
      {
        ...serverOptionsOf(config),
        alsoReady: () => delivery.assertHealthy(),
      },
    ),
  );
  delivery.registerMetrics(app);
  const monitor = monitorLedger(app, runtime, { audit: false });
  opening.release(() => monitor.close());
  await delivery.start(app.log);
  return app;
});
