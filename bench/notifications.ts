// npm run bench -- notifications: the commands mix of `npm run bench -- commands` on `connect
// start`, first with the notifier off and then on, every channel pointed at receivers in this
// process: an SMTP server (smtp-server) and 8 webhook endpoints (verifying a sample of signatures
// with standardwebhooks), while users hold `notificationAdded` subscriptions over graphql-ws.
//   inapp_lag:      the entry's recordedAt (set before its commit) → the notification reaching a
//                   subscriber, which happens after it is readable: an upper bound of commit → readable
//   email, webhooks: delivered per second from the start of the load until the queue is empty
//   backlog_s:      from the end of the load until the notifier and its queue are done
//   commands_ratio: commands/s with the notifier ÷ without, same database and users, one run
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createClient } from 'graphql-ws';
import pg from 'pg';
import { SMTPServer } from 'smtp-server';
import { Webhook } from 'standardwebhooks';
import WebSocket from 'ws';
import { type BenchUser, commandsMix, json, signUpUsers } from './commands.ts';
import { benchDatabase, type Metrics, percentile, round, startConnect, stopConnect } from './support.ts';

const CONNECTIONS = 64;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const ENDPOINTS = 8;
const SUBSCRIBERS = 32;
const NOTIFICATION_KINDS = [
  'invitation',
  'response',
  'lifecycle',
  'amendment',
  'dispute',
  'document',
  'reminder',
];

/** Arrival times (ms, performance.now) of what a receiver took in. */
class Arrivals {
  readonly times: number[] = [];
  add() {
    this.times.push(performance.now());
  }
  between(from: number, to: number) {
    return this.times.filter((t) => t >= from && t <= to).length;
  }
  last() {
    return this.times.at(-1) ?? Number.NaN;
  }
}

async function smtpSink(arrivals: Arrivals) {
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    size: 1024 * 1024,
    onData(stream, _session, callback) {
      stream.on('end', () => {
        arrivals.add();
        callback();
      });
      stream.resume();
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as AddressInfo;
  return {
    url: `smtp://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A webhook receiver; every 50th message's signature is checked once its secret is known. */
async function webhookSink(arrivals: Arrivals, failures: string[]) {
  let verifier: Webhook | undefined;
  let seen = 0;
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      arrivals.add();
      if (verifier && seen++ % 50 === 0) {
        try {
          verifier.verify(Buffer.concat(chunks).toString(), request.headers as Record<string, string>);
        } catch (error) {
          failures.push((error as Error).message);
        }
      }
      response.writeHead(204).end();
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    trust(secret: string) {
      verifier = new Webhook(secret);
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** `notificationAdded` for each user, recording arrival − createdAt of every notification. */
function subscribeAll(url: string, users: readonly BenchUser[], lags: { at: number; ms: number }[]) {
  const clients = users.map((user) =>
    createClient({
      url: `${url.replace(/^http/, 'ws')}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${user.token}` },
      retryAttempts: 0,
    }),
  );
  const ready = clients.map(
    (client) =>
      new Promise<void>((resolve, reject) => {
        client.on('connected', () => resolve());
        client.subscribe<{ notificationAdded: { createdAt: string } }>(
          { query: 'subscription { notificationAdded { id createdAt } }' },
          {
            next: ({ data }) => {
              if (!data) return;
              lags.push({
                at: performance.now(),
                ms: Date.now() - Date.parse(data.notificationAdded.createdAt),
              });
            },
            error: reject,
            complete: () => {},
          },
        );
      }),
  );
  return { ready: Promise.all(ready), close: () => Promise.all(clients.map((client) => client.dispose())) };
}

/**
 * Waits until the notifier has projected the whole ledger and no delivery job is left; returns
 * then, or after `timeoutMs` with what was left.
 */
async function drained(pool: pg.Pool, timeoutMs = 120_000): Promise<{ at: number; left?: string }> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const { rows } = await pool.query<{ behind: string; jobs: string }>(
      `select (select tree_size - 1 from ledger_head)
                - (select last_index from projection_checkpoints where projection = 'notifications') as behind,
              (select count(*) from graphile_worker.jobs where attempts < max_attempts) as jobs`,
    );
    const row = rows[0];
    if (row && Number(row.behind) <= 0 && Number(row.jobs) === 0) return { at: performance.now() };
    if (performance.now() > deadline)
      return { at: performance.now(), left: `${row?.behind} entries, ${row?.jobs} jobs` };
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export async function benchNotifications(): Promise<Metrics> {
  const emails = new Arrivals();
  const webhooks = new Arrivals();
  const signatureFailures: string[] = [];
  const smtp = await smtpSink(emails);
  const sinks = await Promise.all(
    Array.from({ length: ENDPOINTS }, () => webhookSink(webhooks, signatureFailures)),
  );
  const database = await benchDatabase(4);
  const observer = new pg.Pool({ connectionString: database.url, max: 2 });
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'connect-bench-notify-'));
  await chmod(dataDir, 0o711);
  const env = {
    DATABASE_URL: database.url,
    CONNECT_DATA_DIR: dataDir,
    CONNECT_SMTP_URL: smtp.url,
    CONNECT_WEBHOOKS_ALLOW_PRIVATE: 'true',
    CONNECT_REMINDERS: '',
  };
  let server: Awaited<ReturnType<typeof startConnect>> | undefined;
  try {
    // Without the notifier: the commands mix alone.
    server = await startConnect({ ...env, CONNECT_NOTIFIER: 'false' });
    console.log(`signing up ${CONNECTIONS * 2} users…`);
    const users = await signUpUsers(server.url, CONNECTIONS * 2);
    console.log('warming up for 3s, then the commands mix without the notifier…');
    await commandsMix(server.url, users, CONNECTIONS, 3);
    const without = await commandsMix(server.url, users, CONNECTIONS, SECONDS);
    await stopConnect(server.child);

    // With it: every user wants every kind by email; 8 endpoints take every event.
    server = await startConnect(env);
    const admin = users[0] as BenchUser;
    await observer.query(
      "insert into user_roles (user_id, role) values ($1, 'admin') on conflict do nothing",
      [admin.id],
    );
    const login = await json(`${server.url}/v1/auth/token`, {
      method: 'POST',
      body: JSON.stringify({ grant_type: 'password', email: admin.email, password: 'bench password 1' }),
    });
    for (const sink of sinks) {
      const endpoint = await json(`${server.url}/v1/admin/webhooks`, {
        method: 'POST',
        headers: { authorization: `Bearer ${login.access_token}` },
        body: JSON.stringify({ url: sink.url }),
      });
      sink.trust(endpoint.secret as string);
    }
    const everyKind = Object.fromEntries(NOTIFICATION_KINDS.map((kind) => [kind, true]));
    for (const user of users) {
      await json(`${server.url}/v1/me/notification-preferences`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${user.token}` },
        body: JSON.stringify({ email: everyKind }),
      });
    }
    const lags: { at: number; ms: number }[] = [];
    const subscriptions = subscribeAll(server.url, users.slice(0, SUBSCRIBERS), lags);
    await subscriptions.ready;
    console.log('warming up for 3s with the notifier…');
    await commandsMix(server.url, users, CONNECTIONS, 3);
    await drained(observer);

    console.log(`the commands mix with the notifier, ${SECONDS}s, then until the queue is empty…`);
    const started = performance.now();
    const withNotifier = await commandsMix(server.url, users, CONNECTIONS, SECONDS);
    const stopped = performance.now();
    const drain = await drained(observer);
    const done = drain.at;
    if (drain.left)
      console.warn(`  not drained ${round((done - stopped) / 1000, 0)} s after the load: ${drain.left} left`);
    await subscriptions.close();

    const measured = lags.filter((lag) => lag.at >= started).map((lag) => lag.ms);
    measured.sort((a, b) => a - b);
    const emailCount = emails.between(started, done);
    const webhookCount = webhooks.between(started, done);
    const deliveringSeconds = (done - started) / 1000;
    const perSecond = (result: { '2xx': number }) => result['2xx'] / SECONDS;
    console.log(
      `  commands/s without ${round(perSecond(without), 0)}, with ${round(perSecond(withNotifier), 0)}; ` +
        `${measured.length} in-app notifications seen, ${emailCount} emails, ${webhookCount} webhooks ` +
        `(${signatureFailures.length} signatures failed) in ${round(deliveringSeconds, 1)} s`,
    );
    if (signatureFailures.length > 0) throw new Error(`webhook signatures failed: ${signatureFailures[0]}`);
    return {
      'notifications.inapp_lag.p50_ms': { value: round(percentile(measured, 50), 1), unit: 'ms' },
      'notifications.inapp_lag.p99_ms': { value: round(percentile(measured, 99), 1), unit: 'ms' },
      'notifications.email.per_s': { value: round(emailCount / deliveringSeconds, 0), unit: 'emails/s' },
      'notifications.webhooks.per_s': {
        value: round(webhookCount / deliveringSeconds, 0),
        unit: 'deliveries/s',
      },
      'notifications.backlog_s': { value: round((done - stopped) / 1000, 2), unit: 's' },
      'notifications.commands_per_s': { value: round(perSecond(withNotifier), 0), unit: 'commands/s' },
      'notifications.commands_ratio': {
        value: round(perSecond(withNotifier) / perSecond(without), 3),
        unit: 'ratio',
      },
    };
  } finally {
    if (server) await stopConnect(server.child);
    await observer.end();
    await database.close();
    await Promise.all([smtp.close(), ...sinks.map((sink) => sink.close())]);
    await rm(dataDir, { recursive: true, force: true });
  }
}
