// Fault drill: PostgreSQL restarts under load. A PostgreSQL cluster of the test's own (the
// machine's server tools) with `connect start` on it; clients create commitments and read them
// back, a graphql-ws subscription is open, and the cluster is restarted twice with
// `pg_ctl restart -m fast` (every session cut, new ones refused until it is back). Afterwards the
// service works again without a restart: commands answer 2xx, reads and the subscription see
// them, /readyz is 200; every command answered 2xx (before, during or after) is in the ledger
// exactly once, the projections reach the head, the continuous audit and `connect verify ledger`
// pass. While PostgreSQL is away, requests may only get 503 (never a 500), or a retried command
// 409 while its Idempotency-Key is still held (until the database is back), and each must end in
// 2xx, well within the 30 s after which an in-flight key is taken for abandoned.
// (database-reconnect.test.ts cuts the sessions of an idle service; this is the real restart,
// under load.)
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createClient } from 'graphql-ws';
import pg from 'pg';
import { afterAll, beforeAll, expect, test } from 'vitest';
import WebSocket from 'ws';
import {
  draftsByActor,
  eventually,
  metric,
  pause,
  projectionsAtHead,
  type Queryable,
  type Receipt,
  receiptsMissingFromLedger,
  verifyLedger,
} from './drill-support.ts';
import { clusterRoot, newCluster, type OwnCluster, removeRoot } from './own-cluster.ts';
import { call, type RunningConnect, signUp, startConnectOn } from './running-connect.ts';

/** How long one command or read may keep being retried before the drill counts it as failed. */
const RETRY_FOR_MS = 60_000;

let root: string;
let cluster: OwnCluster | undefined;
let dataDir: string;
let databaseUrl: string;
let admin: pg.Client | undefined;
let connect: Omit<RunningConnect, 'database' | 'dataDir'> | undefined;

/** The admin session, opened anew after a restart cut it. */
async function adminQuery<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]> {
  if (!admin) {
    const client = new pg.Client({ connectionString: databaseUrl });
    client.on('error', () => {
      if (admin === client) admin = undefined;
    });
    await client.connect();
    admin = client;
  }
  try {
    return (await admin.query<R>(text, values)).rows;
  } catch (error) {
    await admin?.end().catch(() => undefined);
    admin = undefined;
    throw error;
  }
}

/** The service's database, through the admin session. */
const database: Queryable = {
  query: async <R extends Record<string, unknown>>(text: string, values?: unknown[]) => ({
    rows: await adminQuery<R>(text, values),
  }),
};

/** Restarts the cluster (sessions cut); when it is back. */
async function restartPostgres(): Promise<number> {
  await (cluster as OwnCluster).restart();
  return Date.now();
}

beforeAll(async () => {
  root = await clusterRoot('connect-pg-restart-');
  cluster = await newCluster(root);
  databaseUrl = cluster.url();
  await adminQuery('create database connect');
  databaseUrl = cluster.url('connect');
  await admin?.end();
  admin = undefined;
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'connect-pg-restart-data-'));
  await chmod(dataDir, 0o711);
  connect = await startConnectOn(databaseUrl, dataDir);
}, 180_000);

afterAll(async () => {
  await admin?.end().catch(() => undefined);
  await connect?.close();
  await removeRoot(root, [cluster]);
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
}, 60_000);

interface User {
  name: string;
  token: string;
  userId: string;
}

interface Done {
  user: User;
  title: string;
  receipt: Receipt;
  answeredAt: number;
}

/**
 * What a client retries: 503 (the database is away), and 409 in flight: a command cut off by the
 * restart could not release its Idempotency-Key meanwhile, and a retry takes it over once it is
 * abandoned (ABANDONED_AFTER_MS in services/command/src/idempotency.ts).
 */
function retryable(answer: { status: number; body: Record<string, unknown> }): boolean {
  return (
    answer.status === 503 ||
    (answer.status === 409 && answer.body.type === '/problems/idempotency-key-in-flight')
  );
}

/**
 * Clients, one per user, each creating a commitment (retried with its Idempotency-Key until 2xx),
 * reading it back with Connect-Min-Index, and listing theirs, until stopped. What is retryable
 * is retried; any other answer that is no 2xx is kept in `unexpected`, and a command or read
 * still failing after RETRY_FOR_MS in `gaveUp`.
 */
function startLoad(running: { url: string }, users: User[]) {
  let stopped = false;
  const done: Done[] = [];
  const unexpected: string[] = [];
  const gaveUp: string[] = [];
  const statuses = new Map<number, number>();
  /** The longest wait from a first attempt to its 2xx, and what the attempts got meanwhile. */
  const longest = { ms: 0, what: '' };

  async function untilOk(what: string, send: () => ReturnType<typeof call>, ok: number) {
    const firstAt = Date.now();
    const deadline = firstAt + RETRY_FOR_MS;
    const seen: number[] = [];
    for (;;) {
      const answer: { status: number; body: Record<string, unknown> } = await send().catch(
        (error: Error) => ({ status: 0, body: { detail: error.message } }),
      );
      statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
      seen.push(answer.status);
      if (answer.status === ok) {
        if (Date.now() - firstAt > longest.ms) {
          Object.assign(longest, {
            ms: Date.now() - firstAt,
            what: `${what}: ${[...new Set(seen)].join(', ')}`,
          });
        }
        return answer;
      }
      if (!retryable(answer)) unexpected.push(`${what}: ${answer.status} ${JSON.stringify(answer.body)}`);
      if (Date.now() > deadline) {
        gaveUp.push(`${what}: ${seen.join(' ')}`);
        return undefined;
      }
      await pause(100);
    }
  }

  async function client(user: User) {
    for (let i = 0; !stopped; i++) {
      const title = `${user.name} #${i}`;
      const created = await untilOk(
        `POST ${title}`,
        () =>
          call(running, 'POST', '/v1/commitments', {
            token: user.token,
            body: { type: 'personal', title },
            headers: { 'idempotency-key': `${user.name}-${i}` },
          }),
        201,
      );
      if (!created) continue;
      const receipt = created.body as unknown as Receipt;
      done.push({ user, title, receipt, answeredAt: Date.now() });
      const index = Math.max(...receipt.events.map((event) => event.index));
      const read = await untilOk(
        `GET ${title}`,
        () =>
          call(running, 'GET', `/v1/commitments/${receipt.commitmentId}`, {
            token: user.token,
            headers: { 'connect-min-index': String(index) },
          }),
        200,
      );
      if (read && read.body.title !== title)
        unexpected.push(`GET ${title}: read ${JSON.stringify(read.body)}`);
      await untilOk(
        `GET list of ${user.name}`,
        () => call(running, 'GET', '/v1/commitments', { token: user.token }),
        200,
      );
    }
  }

  const clients = Promise.all(users.map(client));
  return {
    done,
    unexpected,
    gaveUp,
    statuses,
    longest,
    /** Waits until every client has had `count` more commands answered 2xx since `since`. */
    async progress(since: number, count: number) {
      await eventually(
        `${count} commands of each client after ${new Date(since).toISOString()}`,
        async () =>
          users.every((user) => done.filter((d) => d.user === user && d.answeredAt > since).length >= count)
            ? true
            : undefined,
        RETRY_FOR_MS * 2,
      );
    },
    async stop() {
      stopped = true;
      await clients;
    },
  };
}

/** Every title of the user's commitments, through the list endpoint, all pages. */
async function listedTitles(running: { url: string }, user: User): Promise<string[]> {
  const titles: string[] = [];
  for (let cursor: string | undefined; ; ) {
    const page = await call(
      running,
      'GET',
      `/v1/commitments?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      { token: user.token },
    );
    expect(page.status).toBe(200);
    titles.push(...(page.body.items as { title: string }[]).map((item) => item.title));
    cursor = (page.body.nextCursor as string | null) ?? undefined;
    if (!cursor) return titles.sort();
  }
}

test('PostgreSQL restarted twice under load: no 2xx lost, no corruption, the service recovers by itself', async () => {
  const running = connect as NonNullable<typeof connect>;
  const users: User[] = [];
  for (const name of ['ana', 'ben', 'cy']) users.push({ name, ...(await signUp(running, name)) });
  const [ana] = users as [User];

  // A subscription open across both restarts.
  const heard: string[] = [];
  let subscribed: () => void = () => undefined;
  const acknowledged = new Promise<void>((resolve) => {
    subscribed = resolve;
  });
  const subscription = createClient({
    url: `${running.url.replace('http', 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${ana.token}` },
    retryAttempts: 0,
    on: { connected: () => subscribed() },
  });
  subscription.subscribe<{ myCommitments: { title: string } }>(
    { query: 'subscription { myCommitments { title } }' },
    {
      next: (message) => {
        if (message.data) heard.push(message.data.myCommitments.title);
      },
      error: () => undefined,
      complete: () => undefined,
    },
  );
  await acknowledged;

  const [before] = await adminQuery<{ started: Date }>('select pg_postmaster_start_time() as started');
  const load = startLoad(running, users);
  const recoveries: number[] = [];
  try {
    await load.progress(0, 3);
    for (let round = 0; round < 2; round++) {
      const backAt = await restartPostgres();
      await load.progress(backAt, 3);
      // Recovery: from PostgreSQL accepting again to the first command answered 2xx after it.
      const firstAfter = Math.min(...load.done.filter((d) => d.answeredAt > backAt).map((d) => d.answeredAt));
      recoveries.push(firstAfter - backAt);
    }
  } finally {
    await load.stop();
  }
  const loadStoppedAt = Date.now();
  const [after] = await adminQuery<{ started: Date }>('select pg_postmaster_start_time() as started');
  expect(after?.started.getTime()).toBeGreaterThan(before?.started.getTime() as number);

  const warnings = new Map<string, number>();
  for (const log of running.logs) {
    if ((log.level as number) >= 40) warnings.set(String(log.msg), (warnings.get(String(log.msg)) ?? 0) + 1);
  }
  console.info(
    `drill-postgres-restart: ${load.done.length} commands answered 2xx; answers by status ${JSON.stringify(
      Object.fromEntries(load.statuses),
    )}; first 2xx command ${recoveries.join(' ms and ')} ms after PostgreSQL was back; longest wait ${load.longest.ms} ms (${load.longest.what}); ` +
      `log lines at warn or above ${JSON.stringify(Object.fromEntries(warnings))}`,
  );
  // While PostgreSQL was away the service answered 503 (retried), nothing else; nothing stayed failing.
  expect(load.unexpected).toEqual([]);
  expect(load.gaveUp).toEqual([]);
  // A key the outage left in flight is settled once the database is back, well before a retry
  // would take its request for abandoned (30 s).
  expect(load.longest.ms).toBeLessThan(20_000);

  // Recovered without a restart: ready, new commands and reads work, the subscription hears them.
  await eventually('/readyz 200', async () =>
    (await call(running, 'GET', '/readyz')).status === 200 ? true : undefined,
  );
  const last = await call(running, 'POST', '/v1/commitments', {
    token: ana.token,
    body: { type: 'personal', title: 'After the restarts' },
  });
  expect(last.status).toBe(201);
  const lastReceipt = last.body as unknown as Receipt;
  const read = await call(running, 'GET', `/v1/commitments/${lastReceipt.commitmentId}`, {
    token: ana.token,
    headers: { 'connect-min-index': String(Math.max(...lastReceipt.events.map((e) => e.index))) },
  });
  expect(read.status).toBe(200);
  expect(read.body.title).toBe('After the restarts');
  await eventually('the subscription hears the commitment made after the restarts', async () =>
    heard.includes('After the restarts') ? true : undefined,
  );
  await subscription.dispose();

  // Every command answered 2xx is in the ledger as answered, exactly once (no retry applied twice).
  const receipts = [...load.done.map((d) => d.receipt), lastReceipt];
  expect(await receiptsMissingFromLedger(database, receipts)).toEqual([]);
  const drafted = await draftsByActor(
    database,
    users.map((user) => user.userId),
  );
  for (const user of users) {
    const answered = load.done.filter((d) => d.user === user).map((d) => d.title);
    if (user === ana) answered.push('After the restarts');
    expect(drafted.get(user.userId), user.name).toBe(answered.length);
    expect(await listedTitles(running, user), user.name).toEqual(answered.sort());
  }

  // The read models reach the head, nothing was set aside, and the audit passes.
  await eventually('the projections at the head', async () =>
    (await projectionsAtHead(database)) ? true : undefined,
  );
  const projections = await call(running, 'GET', '/v1/projections');
  expect(projections.body.quarantined).toEqual([]);
  expect((projections.body.projections as { state: string }[]).map((p) => p.state)).not.toContain('failed');
  const [head] = await adminQuery<{ size: number }>('select tree_size::int as size from ledger_head');
  const audited = await eventually(
    'a continuous audit round over the whole ledger after the restarts',
    async () => {
      const text = await (await fetch(`${running.url}/metrics`)).text();
      const verified = metric(text, 'connect_audit_verified_entries') ?? 0;
      const succeededAt = (metric(text, 'connect_audit_last_success_timestamp_seconds') ?? 0) * 1000;
      return verified >= (head?.size ?? Number.POSITIVE_INFINITY) && succeededAt > loadStoppedAt
        ? text
        : undefined;
    },
  );
  expect(metric(audited, 'connect_audit_failures_total')).toBe(0);
  const verified = await verifyLedger({ DATABASE_URL: databaseUrl, CONNECT_DATA_DIR: dataDir });
  expect(verified.output).toMatch(/verified: \d+ entries/);
  expect(verified.code).toBe(0);

  // And it still shuts down cleanly.
  running.child.kill('SIGTERM');
  expect(await running.exited).toBe(0);
}, 300_000);
