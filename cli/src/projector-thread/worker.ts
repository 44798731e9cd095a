// The projector thread of `connect start`: the projections (the notifier's too, and its delivery
// worker, unless CONNECT_NOTIFIER=false) and the continuous audit, on an event loop of their own,
// so that a batch does not wait its turn behind the requests the main thread serves, nor do the
// requests wait behind the audit's hashing. It reaches the database on connections of its own and
// answers the main thread's calls (thread.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { assertMasterKeysHeld, openDatabase } from '@connect/db';
import { eventLoopMetrics, poolGauge, releaseEach } from '@connect/http';
import { openBodyCipher, registerAuditMetrics, signedNotes, startContinuousAudit } from '@connect/ledger';
import { type DeliveryQueue, openDeliveryQueue, openNotifier } from '@connect/notifier';
import { PROJECTIONS, startProjector } from '@connect/projector';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { Call, MainMessage, ThreadData, ThreadMessage } from './protocol.ts';

const port = parentPort;
if (!port) throw new Error('worker.ts runs as a worker thread (thread.ts starts it)');

const { config, verifierKey } = workerData as ThreadData;
const log = pino({ level: config.logLevel }).child({ thread: 'projector' });
const metrics = new Registry();
const watchPool = poolGauge(metrics);
eventLoopMetrics(metrics, 'projector');

/** The checkpoints the main thread signed lately: the audit does not check their signatures again. */
const signed = signedNotes();
const opened: Array<() => unknown> = [];
let released: Promise<void> | undefined;
const release = () => {
  released ??= releaseEach(opened.toReversed()).catch((error: unknown) => {
    // Only a message crosses to the main thread: what failed is logged here.
    log.error({ err: error }, 'the projector thread could not release everything it opened');
    throw error;
  });
  return released;
};
const calls = await open().catch(async (error: unknown) => {
  await release().catch(() => undefined);
  throw error;
});

port.on('message', (message: MainMessage) => {
  if ('signed' in message) return signed.keep(message.signed.checkpoint, message.signed.note);
  const { id, call } = message;
  calls[call]().then(
    (value) => port.postMessage({ id, value } satisfies ThreadMessage),
    (error: unknown) => port.postMessage({ id, error: (error as Error).message } satisfies ThreadMessage),
  );
});
port.postMessage({ started: true } satisfies ThreadMessage);

async function open(): Promise<Record<Call, () => Promise<unknown>>> {
  const { pool, db, close } = await openDatabase(config);
  opened.push(close);
  watchPool('projector', pool);
  const { keys, cipher } = await openBodyCipher(pool, config, { create: false });
  opened.push(() => keys.close());
  await assertMasterKeysHeld(pool, keys.masterKeys);
  const projections = [...PROJECTIONS];
  let delivery: DeliveryQueue | undefined;
  if (config.notifier) {
    const queue = await openDeliveryQueue({ pool, db, cipher, config, log });
    delivery = queue;
    opened.push(() => queue.close());
    queue.registerMetrics({ metrics, watchPool });
    projections.push(await openNotifier(pool, { appUrl: config.appUrl, ...queue.hooks }));
  }
  const projector = startProjector({ pool, origin: config.ledgerOrigin, cipher, log }, { projections });
  opened.push(() => projector.close());
  await delivery?.start(log);
  const audit = startContinuousAudit(
    { pool, db, origin: config.ledgerOrigin, cipher, verifierKey, signedHere: signed.signedHere },
    { log },
  );
  opened.push(() => audit.close());
  registerAuditMetrics(metrics, audit);
  return {
    readiness: async () => {
      audit.assertHealthy();
      delivery?.assertHealthy();
      return projector.readiness();
    },
    status: () => projector.status(),
    metrics: () => metrics.getMetricsAsJSON(),
    close: release,
  };
}
