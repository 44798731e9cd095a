import { loadConfig } from '@connect/db';
import { openAndServe, serverOptionsOf } from '@connect/http';
import { monitorLedger, openLedgerRuntime } from '@connect/ledger';
import { buildApp } from './app.ts';

const config = loadConfig(process.env);
const runtime = await openLedgerRuntime(config);
await openAndServe(config, async (opening) => {
  opening.release(() => runtime.close());
  const app = opening.built(
    buildApp(
      { pool: runtime.database.pool, origin: runtime.ledger.origin, cipher: runtime.ledger.cipher },
      serverOptionsOf(config),
    ),
  );
  // The continuous audit runs beside the projector, which follows the ledger anyway.
  const monitor = monitorLedger(app, runtime, { audit: true });
  opening.release(() => monitor.close());
  return app;
});
