// How subscription sockets are read: in order, one message at a time, a failing one closing the
// connection, and at a small heap cost for each open socket.
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { type Stack, testStack } from '../../../test/support/stack.ts';
import { signUp } from '../../command/test/support.ts';
import {
  type MessageHandler,
  readMessages,
  replaceMercuriusSocketReader,
} from '../src/graphql/message-reader.ts';

/** A real socket pair on loopback: the server's end read by `readMessages` into `handler`. */
async function socketPair(handle: (socket: WebSocket) => Omit<MessageHandler, 'socket'>) {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  const accepted = once(server, 'connection').then(([socket]) => {
    readMessages({ socket, ...handle(socket) });
    return socket as WebSocket;
  });
  const { port } = server.address() as { port: number };
  const client = new WebSocket(`ws://127.0.0.1:${port}`);
  await once(client, 'open');
  const serverSocket = await accepted;
  return {
    client,
    serverSocket,
    close: async () => {
      client.terminate();
      await new Promise((done) => server.close(done));
    },
  };
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

describe('readMessages', () => {
  it('hands messages over in order, each once the one before it is handled', async () => {
    const seen: string[] = [];
    let running = 0;
    let mostAtOnce = 0;
    const pair = await socketPair(() => ({
      fastify: { log: { error: () => {} } },
      handleConnectionClose: () => {},
      handleMessage: async (message) => {
        mostAtOnce = Math.max(mostAtOnce, ++running);
        // Later messages take less time: they would overtake if handled together.
        const n = Number(String(message));
        await sleep(20 - n);
        seen.push(String(message));
        running--;
      },
    }));
    for (let n = 0; n < 20; n++) pair.client.send(String(n));
    await vi.waitFor(() => expect(seen).toHaveLength(20), { timeout: 5_000 });
    expect(seen).toEqual(Array.from({ length: 20 }, (_, n) => String(n)));
    expect(mostAtOnce).toBe(1);
    await pair.close();
  });

  it('logs a message that fails and closes the connection, as mercurius does, then goes on', async () => {
    const logged: unknown[] = [];
    const seen: string[] = [];
    let closes = 0;
    const pair = await socketPair(() => ({
      fastify: { log: { error: (error) => logged.push(error) } },
      handleConnectionClose: () => closes++,
      handleMessage: async (message) => {
        if (String(message) === 'bad') throw new Error('no such message');
        seen.push(String(message));
      },
    }));
    for (const message of ['a', 'bad', 'b']) pair.client.send(message);
    await vi.waitFor(() => expect(seen).toEqual(['a', 'b']), { timeout: 5_000 });
    expect(closes).toBe(1);
    expect(logged).toEqual([new Error('no such message')]);
    await pair.close();
  });

  it('handles what arrived before the socket failed, and nothing after', async () => {
    const seen: string[] = [];
    const pair = await socketPair(() => ({
      fastify: { log: { error: () => {} } },
      handleConnectionClose: () => {},
      handleMessage: async (message) => {
        await sleep(5);
        seen.push(String(message));
      },
    }));
    const { serverSocket } = pair;
    serverSocket.on('error', () => {});
    serverSocket.emit('message', Buffer.from('first'), false);
    serverSocket.emit('message', Buffer.from('second'), false);
    serverSocket.emit('error', new Error('broken frame'));
    serverSocket.emit('message', Buffer.from('after'), false);
    await vi.waitFor(() => expect(seen).toEqual(['first', 'second']), { timeout: 5_000 });
    await sleep(20);
    expect(seen).toEqual(['first', 'second']);
    await pair.close();
  });

  it('stops reading, without an unhandled rejection, when closing the connection throws', async () => {
    const seen: string[] = [];
    const pair = await socketPair(() => ({
      fastify: { log: { error: () => {} } },
      handleConnectionClose: () => {
        throw new Error('already closed');
      },
      handleMessage: async (message) => {
        if (String(message) === 'bad') throw new Error('no such message');
        seen.push(String(message));
      },
    }));
    for (const message of ['a', 'bad', 'b']) pair.client.send(message);
    await vi.waitFor(() => expect(seen).toEqual(['a']), { timeout: 5_000 });
    pair.client.send('c');
    await sleep(50);
    expect(seen).toEqual(['a']);
    expect(pair.serverSocket.listenerCount('message')).toBe(0);
    await pair.close();
  });
});

describe('replaceMercuriusSocketReader', () => {
  it('refuses a mercurius whose socket reading is not the one reviewed', () => {
    class Changed {
      async handleConnection() {
        await Promise.resolve('something new');
      }
    }
    expect(() => replaceMercuriusSocketReader(Changed)).toThrow(
      /mercurius changed how it reads subscription sockets/,
    );
  });
});

describe('subscription sockets through the whole stack', () => {
  let s: Stack;
  let wsUrl: string;
  beforeAll(async () => {
    s = await testStack();
    wsUrl = `${(await s.app.listen({ port: 0, host: '127.0.0.1' })).replace('http', 'ws')}/graphql`;
  });
  afterAll(async () => s.close());

  it('is in place once the app is built, and can be asked again', () => {
    const SubscriptionConnection = createRequire(import.meta.url)('mercurius/lib/subscription-connection.js');
    const installed = SubscriptionConnection.prototype.handleConnection;
    expect(installed.toString()).toContain('readMessages(this)');
    replaceMercuriusSocketReader();
    expect(SubscriptionConnection.prototype.handleConnection).toBe(installed);
  });

  // The iterator mercurius reads with by itself costs about 35 KB for each socket; client and
  // server ends together, acknowledged and idle, cost well under that here.
  it('cost less than 30 KB of heap for each open, acknowledged connection (both ends)', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const ana = await signUp(s.app, 'Sockets');
    const heapNow = () => {
      gc();
      gc();
      return process.memoryUsage().heapUsed;
    };
    const count = 200;
    const sockets: WebSocket[] = [];
    const before = heapNow();
    for (let i = 0; i < count; i++) {
      const socket = new WebSocket(wsUrl, 'graphql-transport-ws');
      sockets.push(socket);
      await once(socket, 'open');
      socket.send(
        JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${ana.token}` } }),
      );
      const [ack] = await once(socket, 'message');
      expect(JSON.parse(String(ack))).toEqual({ type: 'connection_ack' });
    }
    const perConnection = (heapNow() - before) / count;
    for (const socket of sockets) socket.terminate();
    expect(perConnection).toBeLessThan(30_000);
  });
});
