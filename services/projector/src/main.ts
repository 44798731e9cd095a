import { loadConfig } from '@connect/db';
import { serve, serverOptionsOf } from '@connect/http';
import { monitorLedger, openLedgerRuntime } from '@connect/ledger';
import { buildApp } from './app.ts';

const config = loadConfig(process.env);
const runtime = await openLedgerRuntime(config);
const app = buildApp(
  { pool: runtime.database.pool, origin: runtime.ledger.origin, cipher: runtime.ledger.cipher },
  serverOptionsOf(config),
);
// The continuous audit runs beside the projector, which follows the ledger anyway.
const monitor = monitorLedger(app, runtime, { audit: true });
await serve(app, {
  port: config.port,
  host: config.host,
  shutdownTimeoutMs: config.shutdownTimeoutMs,
  onClose: async () => {
    await monitor.close();
    await runtime.close();
  },
});
