import { loadConfig } from '@connect/db';
import { serve } from '@connect/http';
import { openLedgerRuntime } from '@connect/ledger';
import { buildApp } from './app.ts';

const config = loadConfig(process.env);
const runtime = await openLedgerRuntime(config);
const app = buildApp(
  { pool: runtime.database.pool, origin: runtime.ledger.origin },
  { logLevel: config.logLevel, timeouts: config.httpTimeouts, corsOrigins: config.corsOrigins },
);
await serve(app, { port: config.port, host: config.host, onClose: runtime.close });
