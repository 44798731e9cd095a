import { loadConfig } from '@connect/db';
import { serve } from '@connect/http';
import { monitorLedger, openLedgerRuntime } from '@connect/ledger';
import { buildApp, queryDeps } from './app.ts';

const config = loadConfig(process.env);
const runtime = await openLedgerRuntime(config);
const app = buildApp(await queryDeps(runtime), {
  logLevel: config.logLevel,
  timeouts: config.httpTimeouts,
  corsOrigins: config.corsOrigins,
  metricsToken: config.metricsToken,
});
const monitor = monitorLedger(app, runtime, { audit: false });
await serve(app, {
  port: config.port,
  host: config.host,
  onClose: async () => {
    await monitor.close();
    await runtime.close();
  },
});
