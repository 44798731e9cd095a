// SIGTERM on `connect start`: the request under way finishes, new connections are refused,
// subscriptions close with 1001 "going away", and the process exits 0 within the bound.
import http from 'node:http';
import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, expect, test } from 'vitest';
import WebSocket from 'ws';
import { type RunningConnect, signUp, startConnect } from './running-connect.ts';

const SHUTDOWN_TIMEOUT_MS = 8000;
let running: RunningConnect;

beforeAll(async () => {
  running = await startConnect({ CONNECT_SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS) });
});
afterAll(() => running.close());

/** A command whose body arrives slowly: it is under way until `finish` sends the rest. */
function slowCommand(token: string) {
  const body = JSON.stringify({ type: 'personal', title: 'Sent across a shutdown' });
  const half = Math.floor(body.length / 2);
  const url = new URL('/v1/commitments', running.url);
  const request = http.request(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      authorization: `Bearer ${token}`,
    },
  });
  const answer = new Promise<{ status: number; connection: string | undefined; body: string }>(
    (resolve, reject) => {
      request.on('response', (response) => {
        let text = '';
        response.on('data', (chunk) => {
          text += chunk;
        });
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, connection: response.headers.connection, body: text }),
        );
      });
      request.on('error', reject);
    },
  );
  request.flushHeaders();
  request.write(body.slice(0, half));
  return { answer, finish: () => request.end(body.slice(half)) };
}

test('SIGTERM: the request under way completes, new connections are refused, subscriptions close with 1001, exit 0', async () => {
  const ana = await signUp(running, 'ana');

  // A live subscription.
  let closedWith: { code: number; reason: string } | undefined;
  let acknowledged: () => void = () => undefined;
  const connected = new Promise<void>((resolve) => {
    acknowledged = resolve;
  });
  const client = createClient({
    url: `${running.url.replace('http', 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${ana.token}` },
    retryAttempts: 0,
    on: {
      connected: () => acknowledged(),
      closed: (event) => {
        const { code, reason } = event as { code: number; reason: string };
        closedWith = { code, reason };
      },
    },
  });
  client.subscribe(
    { query: 'subscription { myCommitments { id } }' },
    {
      next: () => undefined,
      error: () => undefined,
      complete: () => undefined,
    },
  );
  await connected;

  // A request under way: its headers and half its body are in.
  const slow = slowCommand(ana.token);
  await new Promise((resolve) => setTimeout(resolve, 500));

  const signalled = Date.now();
  running.child.kill('SIGTERM');

  // New connections are refused once the listener closes.
  let refused = false;
  for (let i = 0; i < 100 && !refused; i++) {
    try {
      await fetch(`${running.url}/healthz`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    } catch (error) {
      refused = (error as { cause?: { code?: string } }).cause?.code === 'ECONNREFUSED';
    }
  }
  expect(refused).toBe(true);

  // The subscription was told the server is going away.
  for (let i = 0; i < 100 && !closedWith; i++) await new Promise((resolve) => setTimeout(resolve, 50));
  expect(closedWith?.code).toBe(1001);

  // The request under way still completes, with a receipt, and closes its connection.
  slow.finish();
  const answer = await slow.answer;
  expect(answer.status).toBe(201);
  expect(answer.connection).toBe('close');
  expect(JSON.parse(answer.body)).toMatchObject({ version: 1, events: [{ type: 'CommitmentDrafted' }] });

  expect(await running.exited).toBe(0);
  expect(Date.now() - signalled).toBeLessThan(SHUTDOWN_TIMEOUT_MS);
  // Its append was flushed: the entry is in the ledger.
  const { rows } = await running.database.pool.query<{ type: string }>(
    'select type from ledger_entries where stream = $1',
    [`commitment-${JSON.parse(answer.body).commitmentId}`],
  );
  expect(rows).toEqual([{ type: 'CommitmentDrafted' }]);
  expect(running.logs.map((log) => log.msg)).toContain('shut down');
  await client.dispose();
});
