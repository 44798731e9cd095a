// What a service process that opened the ledger runtime reports about it: the operations metrics
// on its /metrics and, where it runs the continuous audit, the audit's state on /readyz.
import type pg from 'pg';
import type { Registry } from 'prom-client';
import { type AuditLog, type ContinuousAudit, startContinuousAudit } from './continuous-audit.ts';
import { registerOperationsMetrics } from './operations-metrics.ts';
import type { LedgerRuntime } from './runtime.ts';

export interface MonitoredServer {
  metrics: Registry;
  watchPool(name: string, pool: pg.Pool): void;
  log: AuditLog;
  addReadinessCheck(check: () => void): void;
}

export interface LedgerMonitor {
  audit: ContinuousAudit | undefined;
  close(): Promise<void>;
}

/**
 * Registers the operations metrics of `runtime` on the server; with `audit`, runs the continuous
 * audit too, and /readyz answers 503 naming what did not match once it fails.
 */
export function monitorLedger(
  server: MonitoredServer,
  runtime: Pick<LedgerRuntime, 'database' | 'appendPool' | 'ledger' | 'config'>,
  options: { audit: boolean },
): LedgerMonitor {
  const { pool, db } = runtime.database;
  const audit = options.audit
    ? startContinuousAudit(
        {
          pool,
          db,
          origin: runtime.ledger.origin,
          cipher: runtime.ledger.cipher,
          verifierKey: runtime.ledger.verifierKey,
          signedHere: runtime.ledger.signedHere,
        },
        { log: server.log },
      )
    : undefined;
  if (audit) server.addReadinessCheck(() => audit.assertHealthy());
  server.watchPool('main', pool);
  server.watchPool('append', runtime.appendPool);
  const stopCounting = registerOperationsMetrics(server.metrics, {
    db,
    appender: runtime.ledger,
    audit,
    dataDir: runtime.config.dataDir,
  });
  return {
    audit,
    close: async () => {
      stopCounting();
      await audit?.close();
    },
  };
}
