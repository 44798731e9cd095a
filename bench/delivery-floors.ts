// npm run bench -- delivery-floors: the CPU a delivery costs in the libraries the notifier is built
// on, before any of Connect's own work (no templates, sealing, preferences or delivery rows):
//   smtp.cpu_us       one email through a pooled nodemailer transport into an smtp-server
//                     receiver: sender and receiver, both in this process
//   http.cpu_us       one webhook-sized POST over a kept-alive node:http agent into a node:http
//                     receiver: sender and receiver, both in this process
//   queue_job.cpu_us  one graphile-worker job run (fetched and completed in batches on a pool
//                     like the notifier's, with a task that does nothing): this process and every
//                     PostgreSQL process on the machine (from /proc), jobs added beforehand
// The notifications suite runs its receivers on the same machine as the service, so its
// deliveries cannot cost the machine less than these, however the notifier is written.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { workerPreset } from '@connect/notifier';
import { Logger, run, runMigrations } from 'graphile-worker';
import nodemailer from 'nodemailer';
import { SMTPServer } from 'smtp-server';
import {
  benchDatabase,
  type Metrics,
  notifierWorkerPool,
  postgresCpuMs,
  processCpuMs,
  round,
  settle,
  WORKER_CONCURRENCY,
} from './support.ts';

const EMAILS = 3000;
const WEBHOOKS = 20_000;
const JOBS = 20_000;
const quiet = new Logger(() => () => {});

/**
 * Runs `count` of `send`, `concurrency` at a time, after a tenth as many at the same concurrency
 * (which open the connections); CPU µs per send.
 */
async function cpuPer(
  count: number,
  concurrency: number,
  send: (i: number) => Promise<unknown>,
): Promise<number> {
  const sendAll = async (total: number) => {
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < total) await send(next++);
      }),
    );
  };
  await sendAll(Math.ceil(count / 10));
  const before = processCpuMs();
  await sendAll(count);
  return ((processCpuMs() - before) / count) * 1000;
}

async function smtpFloor(): Promise<number> {
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, _session, callback) {
      stream.on('end', () => callback());
      stream.resume();
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as AddressInfo;
  const transport = nodemailer.createTransport({
    url: `smtp://127.0.0.1:${port}`,
    pool: true,
    maxConnections: 3,
  });
  const paragraph =
    'Bob Example invited you to “Paint the fence”, due 12 March. Open it to accept or decline.';
  try {
    return await cpuPer(EMAILS, 6, (i) =>
      transport.sendMail({
        from: 'Connect <no-reply@connect.example>',
        to: { name: 'Ana Example', address: `ana${i}@example.com` },
        subject: 'Bob Example invited you to “Paint the fence”',
        text: `${paragraph}\n\nhttps://app.connect.example/commitments/${i}\n`,
        html: `<p>${paragraph}</p><p><a href="https://app.connect.example/commitments/${i}">Open it</a></p>`,
        messageId: `<floor-${i}@connect.example>`,
        headers: {
          'List-Unsubscribe': `<https://api.connect.example/v1/unsubscribe?token=${'t'.repeat(120)}>`,
          'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
        },
      }),
    );
  } finally {
    transport.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

async function httpFloor(): Promise<number> {
  const server = http.createServer((request, response) => {
    request.resume();
    request.on('end', () => response.writeHead(204).end());
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const body = JSON.stringify({
    type: 'commitment.activated',
    timestamp: new Date().toISOString(),
    data: {
      commitmentId: '3f2b8c1e-9d4a-4f6b-8e2d-1a7c5b9e0f34',
      index: 123_456,
      type: 'CommitmentActivated',
      status: 'active',
      version: 4,
      recordedAt: new Date().toISOString(),
    },
  });
  const headers = {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
    'webhook-id': 'evt_123456',
    'webhook-timestamp': String(Math.floor(Date.now() / 1000)),
    'webhook-signature': `v1,${'s'.repeat(44)}`,
  };
  const post = () =>
    new Promise<void>((resolve, reject) => {
      const request = http.request(
        { host: '127.0.0.1', port, path: '/hook', method: 'POST', agent, headers },
        (response) => {
          response.resume();
          response.on('end', resolve);
        },
      );
      request.on('error', reject);
      request.end(body);
    });
  try {
    return await cpuPer(WEBHOOKS, 8, post);
  } finally {
    agent.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
}

async function queueJobFloor(): Promise<number> {
  const database = await benchDatabase(2);
  const workerPool = notifierWorkerPool(database.url);
  try {
    await runMigrations({ pgPool: database.pool, logger: quiet });
    for (let i = 0; i < JOBS; i += 100) {
      const specs = Array.from({ length: 100 }, (_, j) => ({ identifier: 'noop', payload: { i: i + j } }));
      await database.pool.query(
        'select graphile_worker.add_jobs(array(select json_populate_recordset(null::graphile_worker.job_spec, $1::json)))',
        [JSON.stringify(specs)],
      );
    }
    await settle(database.pool);
    let done = 0;
    let allDone = () => {};
    const finished = new Promise<void>((resolve) => {
      allDone = resolve;
    });
    const before = processCpuMs() + (await postgresCpuMs(database.pool));
    const runner = await run({
      pgPool: workerPool,
      concurrency: WORKER_CONCURRENCY,
      noHandleSignals: true,
      logger: quiet,
      preset: workerPreset(WORKER_CONCURRENCY),
      taskList: {
        noop: async () => {
          if (++done === JOBS) allDone();
        },
      },
    });
    await finished;
    await runner.stop();
    return ((processCpuMs() + (await postgresCpuMs(database.pool)) - before) / JOBS) * 1000;
  } finally {
    await workerPool.end();
    await database.close();
  }
}

export async function benchDeliveryFloors(): Promise<Metrics> {
  console.log(`${EMAILS} emails over SMTP, ${WEBHOOKS} webhook POSTs, ${JOBS} queue jobs…`);
  const smtp = await smtpFloor();
  const webhook = await httpFloor();
  const job = await queueJobFloor();
  return {
    'delivery_floors.smtp.cpu_us': { value: round(smtp, 0), unit: 'µs per email' },
    'delivery_floors.http.cpu_us': { value: round(webhook, 0), unit: 'µs per webhook' },
    'delivery_floors.queue_job.cpu_us': { value: round(job, 0), unit: 'µs per job' },
  };
}
