import { loadConfig } from '@connect/db';
import { openAndServe, serverOptionsOf } from '@connect/http';
import { monitorLedger, openLedgerRuntime } from '@connect/ledger';
import { buildApp, queryDeps } from './app.ts';

const config = loadConfig(process.env);
const runtime = await openLedgerRuntime(config);
await openAndServe(config, async (opening) => {
  opening.release(() => runtime.close());
  const app = opening.built(buildApp(await queryDeps(runtime), serverOptionsOf(config)));
  const monitor = monitorLedger(app, runtime, { audit: false });
  opening.release(() => monitor.close());
  return app;
});
