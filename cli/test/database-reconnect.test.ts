// The database goes away and comes back (every backend of the service terminated, as a restart
// does, and new connections refused meanwhile): /readyz says what is wrong while it is away, and
// afterwards commands, queries, projections and subscriptions work again without a restart.
import { createClient } from 'graphql-ws';
import pg from 'pg';
import { afterAll, beforeAll, expect, inject, test } from 'vitest';
import WebSocket from 'ws';
import { call, type RunningConnect, signUp, startConnect } from './running-connect.ts';

let running: RunningConnect;
let admin: pg.Client;
let name: string;

beforeAll(async () => {
  running = await startConnect();
  name = new URL(running.database.url).pathname.slice(1);
  admin = new pg.Client({ connectionString: inject('adminUrl') });
  await admin.connect();
});
afterAll(async () => {
  await admin.query(`alter database ${name} allow_connections true`).catch(() => undefined);
  await admin.end();
  await running.close();
});

async function eventually<T>(what: string, attempt: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const result = await attempt().catch(() => undefined);
    if (result !== undefined) return result;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Terminates every backend of the service's database, as a restart of PostgreSQL would. */
async function terminateBackends(): Promise<number> {
  const { rows } = await admin.query<{ n: number }>(
    `select count(pg_terminate_backend(pid))::int as n from pg_stat_activity
      where datname = $1 and pid <> pg_backend_pid()`,
    [name],
  );
  return rows[0]?.n ?? 0;
}

test('a database that goes away and comes back: /readyz names it meanwhile, then everything works again', async () => {
  const ana = await signUp(running, 'ana');
  const first = await call(running, 'POST', '/v1/commitments', {
    token: ana.token,
    body: { type: 'personal', title: 'Before the outage' },
  });
  expect(first.status).toBe(201);

  // A subscription opened before the outage.
  const received: string[] = [];
  const client = createClient({
    url: `${running.url.replace('http', 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${ana.token}` },
    retryAttempts: 0,
  });
  client.subscribe<{ myCommitments: { id: string; title: string } }>(
    { query: 'subscription { myCommitments { id title } }' },
    {
      next: (message) => {
        if (message.data) received.push(message.data.myCommitments.title);
      },
      error: () => undefined,
      complete: () => undefined,
    },
  );
  await new Promise((resolve) => setTimeout(resolve, 500));
  expect((await call(running, 'GET', '/readyz')).status).toBe(200);

  // Away: no new connections, and every open one cut.
  await admin.query(`alter database ${name} allow_connections false`);
  expect(await terminateBackends()).toBeGreaterThan(0);

  const red = await eventually('/readyz red', async () => {
    const answer = await call(running, 'GET', '/readyz');
    return answer.status === 503 ? answer : undefined;
  });
  expect(red.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(red.body.detail).toMatch(/^Not ready: database unreachable/);
  const refused = await call(running, 'POST', '/v1/commitments', {
    token: ana.token,
    body: { type: 'personal', title: 'During the outage' },
  });
  expect(refused.status).toBe(503);
  expect(refused.body).toMatchObject({ type: '/problems/not-ready' });
  // The process is still there, waiting for its database.
  expect(running.child.exitCode).toBeNull();

  // Back, and restarted once more for good measure (connections made meanwhile are cut again).
  await admin.query(`alter database ${name} allow_connections true`);
  await terminateBackends();

  await eventually('/readyz green', async () =>
    (await call(running, 'GET', '/readyz')).status === 200 ? true : undefined,
  );
  const after = await eventually('a command after the outage', async () => {
    const answer = await call(running, 'POST', '/v1/commitments', {
      token: ana.token,
      body: { type: 'personal', title: 'After the outage' },
      headers: { 'idempotency-key': 'after-the-outage' },
    });
    return answer.status === 201 ? answer : undefined;
  });
  const id = after.body.commitmentId as string;
  const index = (after.body.events as { index: number }[]).at(-1)?.index as number;

  // The projector follows the ledger again, and reads see it.
  const read = await eventually('the read models after the outage', async () => {
    const answer = await call(running, 'GET', `/v1/commitments/${id}`, {
      token: ana.token,
      headers: { 'connect-min-index': String(index) },
    });
    return answer.status === 200 ? answer : undefined;
  });
  expect(read.body).toMatchObject({ id, title: 'After the outage', version: 1 });
  const list = await call(running, 'GET', '/v1/commitments', { token: ana.token });
  expect((list.body.items as { title: string }[]).map((c) => c.title).sort()).toEqual([
    'After the outage',
    'Before the outage',
  ]);

  // The subscription opened before the outage hears of the new commitment (LISTEN is back).
  await eventually('the subscription after the outage', async () =>
    received.includes('After the outage') ? true : undefined,
  );
  expect(received).not.toContain('During the outage');
  expect((await call(running, 'GET', '/readyz')).body).toMatchObject({ status: 'ready' });
  await client.dispose();

  // And it still shuts down cleanly.
  running.child.kill('SIGTERM');
  expect(await running.exited).toBe(0);
});
