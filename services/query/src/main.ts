import { loadConfig } from '@connect/db';
import { serve } from '@connect/http';
import { openLedgerRuntime } from '@connect/ledger';
import { buildApp } from './app.ts';

const config = loadConfig(process.env);
const runtime = await openLedgerRuntime(config);
const app = buildApp(
  {
    pool: runtime.database.pool,
    db: runtime.database.db,
    origin: runtime.ledger.origin,
    verifierKey: runtime.ledger.verifierKey,
    key: runtime.ledger.key,
  },
  { logLevel: config.logLevel },
);
await serve(app, { port: config.port, host: config.host, onClose: runtime.close });
