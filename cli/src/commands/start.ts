import { commandDeps, commandOperations, commandRoutes } from '@connect/command';
import { assertMigrated, loadConfig } from '@connect/db';
import { createServer, docsRoutes, serve, serverOptionsOf } from '@connect/http';
import { monitorLedger, openLedgerRuntime } from '@connect/ledger';
import { type DeliveryQueue, openDeliveryQueue, openNotifier } from '@connect/notifier';
import { attachProjector, PROJECTIONS, type Projector } from '@connect/projector';
import { queryDeps, queryOperations, queryRoutes } from '@connect/query';
import { type DocumentArchiving, startDocumentArchiving } from '../backup/document-archive.ts';
import { type ScheduledBackups, scheduleBackups } from '../backup/schedule.ts';

/**
 * Runs the command and query services and the projector (the notifier too, unless
 * CONNECT_NOTIFIER=false) in one process, on one port, with the embedded PostgreSQL unless
 * DATABASE_URL is set. (docker-compose runs each service's own main.ts.)
 */
export async function start(): Promise<number> {
  const config = loadConfig(process.env);
  const runtime = await openLedgerRuntime(config);
  const { pool } = runtime.database;
  const { ledger } = runtime;
  let projector: Projector | undefined;
  let delivery: DeliveryQueue | undefined;
  const app = createServer({
    ...serverOptionsOf(config),
    checkReady: async () => {
      await assertMigrated(pool);
      delivery?.assertHealthy();
      return projector?.readiness();
    },
  });
  let monitor: ReturnType<typeof monitorLedger> | undefined;
  let backups: ScheduledBackups | undefined;
  let documentArchiving: DocumentArchiving | undefined;
  // Each part is released even if one before it fails, the runtime (pools, embedded PostgreSQL)
  // last; once, whether a shutdown or a failed start asks first.
  let released: Promise<void> | undefined;
  const release = () => {
    released ??= (async () => {
      const parts = [
        () => backups?.stop(),
        () => documentArchiving?.stop(),
        () => monitor?.close(),
        () => delivery?.close(),
        () => runtime.close(),
      ];
      const failures: unknown[] = [];
      for (const part of parts)
        await Promise.resolve()
          .then(part)
          .catch((error: unknown) => failures.push(error));
      if (failures.length > 0) throw new AggregateError(failures, 'could not release everything');
    })();
    return released;
  };
  let address: string;
  try {
    monitor = monitorLedger(app, runtime, { audit: true });
    const projections = [...PROJECTIONS];
    if (config.notifier) {
      delivery = await openDeliveryQueue({
        pool,
        db: runtime.database.db,
        cipher: ledger.cipher,
        config,
        log: app.log,
      });
      delivery.registerMetrics(app);
      projections.push(await openNotifier(pool, { appUrl: config.appUrl, ...delivery.hooks }));
    }
    projector = attachProjector(app, {
      pool,
      origin: ledger.origin,
      cipher: ledger.cipher,
      options: { projections },
    });
    await delivery?.start();
    if (config.walArchive && config.databaseUrl)
      app.log.warn(
        'CONNECT_WAL_ARCHIVE applies to the embedded PostgreSQL only; with DATABASE_URL, archive on that server',
      );
    else if (config.walArchive)
      documentArchiving = startDocumentArchiving(config.dataDir, config.walArchive, runtime.keys, app.log);
    if (config.backups && config.databaseUrl)
      app.log.warn(
        'CONNECT_BACKUP_SCHEDULE backs up the embedded PostgreSQL only; with DATABASE_URL no backup is scheduled',
      );
    else if (config.backups)
      backups = scheduleBackups(
        config.backups,
        { dataDir: config.dataDir, url: runtime.database.url, walArchive: config.walArchive },
        app.log,
      );
    // Both read the database before any route is registered: closing an app after a failure
    // loads its registered plugins first, and they would open what they then close.
    const command = await commandDeps(runtime);
    const query = await queryDeps(runtime, command.tokens);
    app.register(commandRoutes, command);
    app.register(queryRoutes, query);
    app.register(docsRoutes, { operations: [...commandOperations, ...queryOperations] });
    address = await serve(app, {
      port: config.port,
      host: config.host,
      shutdownTimeoutMs: config.shutdownTimeoutMs,
      onClose: release,
    });
  } catch (error) {
    // A service that could not start (its port taken, say) stops what it had started, the
    // projector and the embedded PostgreSQL among them, rather than run on unreachable; within the
    // shutdown's bound.
    setTimeout(() => process.exit(1), config.shutdownTimeoutMs + 10_000).unref();
    await app
      .close()
      .catch((closeError: unknown) => app.log.error({ err: closeError }, 'could not close the app'));
    await release().catch((releaseError: unknown) =>
      app.log.error({ err: releaseError }, 'could not release everything the service opened'),
    );
    throw error;
  }
  app.log.info({ address, origin: ledger.origin, verifierKey: ledger.verifierKey }, 'Connect is running');
  return 0;
}
