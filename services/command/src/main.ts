import { loadConfig } from '@connect/db';
import { serve, serverOptionsOf } from '@connect/http';
import { monitorLedger, openLedgerRuntime } from '@connect/ledger';
import { buildApp, commandDeps } from './app.ts';

const config = loadConfig(process.env);
const runtime = await openLedgerRuntime(config);
const app = buildApp(await commandDeps(runtime), serverOptionsOf(config));
const monitor = monitorLedger(app, runtime, { audit: false });
await serve(app, {
  port: config.port,
  host: config.host,
  shutdownTimeoutMs: config.shutdownTimeoutMs,
  onClose: async () => {
    await monitor.close();
    await runtime.close();
  },
});
