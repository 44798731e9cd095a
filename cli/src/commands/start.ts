import { commandDeps, commandOperations, commandRoutes } from '@connect/command';
import { assertMigrated, loadConfig } from '@connect/db';
import { createServer, docsRoutes, openAndServe, serverOptionsOf } from '@connect/http';
import { monitorLedger, openLedgerRuntime } from '@connect/ledger';
import { exposeProjector } from '@connect/projector';
import { queryDeps, queryOperations, queryRoutes } from '@connect/query';
import { startDocumentArchiving } from '../backup/document-archive.ts';
import { scheduleBackups } from '../backup/schedule.ts';
import { type ProjectorThread, startProjectorThread } from '../projector-thread/thread.ts';

/**
 * Runs the command and query services and the projector (the notifier too, unless
 * CONNECT_NOTIFIER=false) in one process, on one port, with the embedded PostgreSQL unless
 * DATABASE_URL is set; the projector, the notifier and the continuous audit on a thread of their
 * own. (docker-compose runs each service's own main.ts.)
 */
export async function start(): Promise<number> {
  const config = loadConfig(process.env);
  const runtime = await openLedgerRuntime(config);
  const { pool } = runtime.database;
  const { ledger } = runtime;
  const { app, address } = await openAndServe(config, async (opening) => {
    opening.release(() => runtime.close());
    let projector: ProjectorThread | undefined;
    const app = opening.built(
      createServer({
        ...serverOptionsOf(config),
        checkReady: async () => {
          await assertMigrated(pool);
          return projector?.readiness();
        },
      }),
    );
    // The continuous audit runs on the projector thread.
    const monitor = monitorLedger(app, runtime, { audit: false });
    opening.release(() => monitor.close());
    const thread = await startProjectorThread({
      config: { ...config, databaseUrl: runtime.database.url },
      verifierKey: ledger.verifierKey,
      log: app.log,
      closeTimeoutMs: config.shutdownTimeoutMs,
      // As a projector that failed on the main thread would: the process ends, and not with 0.
      onStopped: () => {
        process.exitCode = 1;
        process.kill(process.pid, 'SIGTERM');
      },
    });
    projector = thread;
    opening.release(() => thread.close());
    // Each checkpoint signed here is one the thread's audit need not check the signature of.
    opening.release(
      ledger.observe({
        appended() {},
        committed() {},
        signed: (checkpoint, note) => thread.signed(checkpoint, note),
      }),
    );
    exposeProjector(app, thread, pool);
    app.addMetricsSource(() => thread.metrics());
    if (config.walArchive && config.databaseUrl)
      app.log.warn(
        'CONNECT_WAL_ARCHIVE applies to the embedded PostgreSQL only; with DATABASE_URL, archive on that server',
      );
    else if (config.walArchive) {
      const archiving = startDocumentArchiving(config.dataDir, config.walArchive, runtime.keys, app.log);
      opening.release(() => archiving.stop());
    }
    if (config.backups && config.databaseUrl)
      app.log.warn(
        'CONNECT_BACKUP_SCHEDULE backs up the embedded PostgreSQL only; with DATABASE_URL no backup is scheduled',
      );
    else if (config.backups) {
      const backups = scheduleBackups(
        config.backups,
        { dataDir: config.dataDir, url: runtime.database.url, walArchive: config.walArchive },
        app.log,
      );
      opening.release(() => backups.stop());
    }
    // Both read the database before any route is registered: closing an app after a failure
    // loads its registered plugins first, and they would open what they then close.
    const command = await commandDeps(runtime);
    const query = await queryDeps(runtime, command.tokens);
    app.register(commandRoutes, command);
    app.register(queryRoutes, query);
    app.register(docsRoutes, { operations: [...commandOperations, ...queryOperations] });
    return app;
  });
  app.log.info({ address, origin: ledger.origin, verifierKey: ledger.verifierKey }, 'Connect is running');
  return 0;
}
