// Subscriptions held to the graphql-ws protocol, to their session, and to a bound on what waits
// for a subscriber that stops reading.
import { once } from 'node:events';
import { type Client, createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { type Stack, testStack } from '../../../test/support/stack.ts';
import { type Account, signUp } from '../../command/test/support.ts';
import { CLOSE_FORBIDDEN, CLOSE_TOO_MANY_INITS, CLOSE_TOO_SLOW } from '../src/graphql/connections.ts';

const MAX_QUEUED = 5;
let s: Stack;
let wsUrl: string;
let last = 0;
const clients: Client[] = [];
const sockets: WebSocket[] = [];

beforeAll(async () => {
  s = await testStack({ subscriptions: { maxQueued: MAX_QUEUED, sessionCheckMs: 100 } });
  wsUrl = `${(await s.app.listen({ port: 0, host: '127.0.0.1' })).replace('http', 'ws')}/graphql`;
});
afterAll(async () => {
  for (const c of clients) await c.dispose();
  for (const socket of sockets) socket.terminate();
  await s.close();
});

async function command(who: Account, path: string, payload: object = {}) {
  const response = await s.app.inject({ method: 'POST', url: path, payload, headers: who.auth });
  if (response.statusCode >= 300) throw new Error(`${path}: ${response.statusCode} ${response.body}`);
  const receipt = response.json() as { commitmentId: string; events: { index: number }[] };
  last = Math.max(last, receipt.events.at(-1)?.index ?? 0);
  return receipt;
}

async function until(check: () => boolean, ms = 20_000) {
  await vi.waitFor(() => expect(check()).toBe(true), { timeout: ms, interval: 20 });
}

/** A graphql-ws client's subscription: what it delivers, and how it ended. */
function subscribe(who: Account | null, query: string) {
  const c = createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: who ? { authorization: `Bearer ${who.token}` } : { authorization: 'Bearer nope' },
    retryAttempts: 0,
  });
  clients.push(c);
  const received: { myCommitments: { id: string } }[] = [];
  const ended: { error?: unknown; completed?: true } = {};
  c.subscribe(
    { query },
    {
      next: (message) => {
        if (message.data) received.push(message.data as never);
      },
      error: (error) => {
        ended.error = error;
      },
      complete: () => {
        ended.completed = true;
      },
    },
  );
  return { received, ended };
}

/** A raw socket speaking graphql-transport-ws, to see exactly what the server sends. */
async function rawSocket() {
  const socket = new WebSocket(wsUrl, 'graphql-transport-ws');
  sockets.push(socket);
  const messages: { type: string; id?: string }[] = [];
  socket.on('message', (data) => messages.push(JSON.parse(String(data))));
  const closed = once(socket, 'close').then(([code, reason]) => ({
    code: code as number,
    reason: String(reason),
  }));
  await once(socket, 'open');
  const send = (message: object) => socket.send(JSON.stringify(message));
  return { socket, messages, closed, send };
}

/** Waits until the read models include everything written so far. */
const caughtUp = async (who: Account) =>
  s.app.inject({
    method: 'GET',
    url: '/v1/auth/me',
    headers: { ...who.auth, 'connect-min-index': String(last) },
  });

describe('connection_init', () => {
  it('refused: closes with 4403 Forbidden, and sends no legacy connection_error', async () => {
    const raw = await rawSocket();
    raw.send({ type: 'connection_init', payload: { authorization: 'Bearer not-a-token' } });
    expect(await raw.closed).toEqual({ code: CLOSE_FORBIDDEN, reason: 'Forbidden' });
    expect(raw.messages).toEqual([]);

    // The graphql-ws client sees the same close event.
    const refused = subscribe(null, 'subscription { myCommitments { id } }');
    await until(() => refused.ended.error !== undefined);
    expect(refused.ended.error).toMatchObject({ code: CLOSE_FORBIDDEN, reason: 'Forbidden' });
    expect(refused.received).toEqual([]);
  });

  it('sent twice: closes with 4429', async () => {
    const ana = await signUp(s.app, 'Twice');
    const raw = await rawSocket();
    raw.send({ type: 'connection_init', payload: { authorization: `Bearer ${ana.token}` } });
    await until(() => raw.messages.length > 0);
    expect(raw.messages).toEqual([{ type: 'connection_ack' }]);
    raw.send({ type: 'connection_init', payload: { authorization: `Bearer ${ana.token}` } });
    expect((await raw.closed).code).toBe(CLOSE_TOO_MANY_INITS);
  });
});

describe('a session that ends', () => {
  it('closes its subscriptions’ sockets with 4403 (logout), and a new connection is refused', async () => {
    const dan = await signUp(s.app, 'Dan');
    const eve = await signUp(s.app, 'Eve');
    const dans = subscribe(dan, 'subscription { myCommitments { id } }');
    const eves = subscribe(eve, 'subscription { myCommitments { id } }');
    // Live once a change gets through.
    while (!dans.received.length || !eves.received.length) {
      await command(dan, '/v1/commitments', { type: 'personal', title: 'Dan' });
      await command(eve, '/v1/commitments', { type: 'personal', title: 'Eve' });
      await new Promise((resolve) => setTimeout(resolve, 200));
    }

    const logout = await s.app.inject({ method: 'POST', url: '/v1/auth/logout', headers: dan.auth });
    expect(logout.statusCode).toBe(204);
    await until(() => dans.ended.error !== undefined, 10_000);
    expect(dans.ended.error).toMatchObject({ code: CLOSE_FORBIDDEN });

    const again = await rawSocket();
    again.send({ type: 'connection_init', payload: { authorization: `Bearer ${dan.token}` } });
    expect((await again.closed).code).toBe(CLOSE_FORBIDDEN);

    // Another session's subscription lives on.
    const before = eves.received.length;
    await command(eve, '/v1/commitments', { type: 'personal', title: 'Eve again' });
    await until(() => eves.received.length > before);
    expect(eves.ended).toEqual({});
  });
});

describe('a subscriber that stops reading', () => {
  it(`is closed with 1013 once more than ${MAX_QUEUED} changes wait for it; a healthy one keeps receiving`, async () => {
    const fay = await signUp(s.app, 'Fay');
    const SUBSCRIPTIONS = 10;
    const stuck = await rawSocket();
    stuck.send({ type: 'connection_init', payload: { authorization: `Bearer ${fay.token}` } });
    await until(() => stuck.messages.length > 0);
    for (let id = 1; id <= SUBSCRIPTIONS; id++) {
      stuck.send({
        id: String(id),
        type: 'subscribe',
        payload: { query: 'subscription { myCommitments { id title description terms } }' },
      });
    }
    const healthy = subscribe(fay, 'subscription { myCommitments { id } }');
    const next = () => stuck.messages.filter((m) => m.type === 'next').length;
    const ids = new Set<string>();
    while (next() < SUBSCRIPTIONS || !healthy.received.length) {
      ids.add((await command(fay, '/v1/commitments', { type: 'personal', title: 'Warm-up' })).commitmentId);
      await caughtUp(fay);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }

    // It stops reading: 10 subscriptions × 50 kB per commitment soon fill the socket's buffers.
    (stuck.socket as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
    for (let i = 0; i < 40; i++) {
      const terms = `${i}`.padEnd(50_000, 'x');
      ids.add(
        (await command(fay, '/v1/commitments', { type: 'personal', title: `Big ${i}`, terms })).commitmentId,
      );
    }
    await until(() => new Set(healthy.received.map((m) => m.myCommitments.id)).size === ids.size);
    expect(healthy.ended).toEqual({});

    // Reading again, it finds what was already sent, then the close.
    (stuck.socket as unknown as { _socket: { resume(): void } })._socket.resume();
    const closed = await stuck.closed;
    expect(closed).toEqual({ code: CLOSE_TOO_SLOW, reason: 'Too slow: reconnect to catch up' });
    expect(next()).toBeLessThan(SUBSCRIPTIONS * ids.size);
  }, 120_000);
});
