// How a subscription socket's messages reach mercurius. mercurius (16.10) reads them with
// `for await (… of events.on(socket, 'message'))`, and Node's on() iterator preallocates two queues
// of 2,048 slots: about 35 KB of heap for every open WebSocket however few messages wait, a third
// of the heap at 2,000 subscribers, walked by every full collection. A listener feeding an array
// reads them the same way: one message at a time, in order, each handled before the next starts.
import { createRequire } from 'node:module';
import type WebSocket from 'ws';

/** What the reader uses of mercurius' SubscriptionConnection. */
export interface MessageHandler {
  readonly socket: WebSocket;
  readonly fastify: { log: { error(error: unknown): void } };
  handleMessage(message: WebSocket.RawData, isBinary: boolean): Promise<unknown>;
  handleConnectionClose(): void;
}

/**
 * Reads the socket's messages into `handleMessage`, one at a time and in order. A message that
 * fails is logged and closes the connection, as in mercurius; after a socket error no further
 * message is taken, as when on() rejects.
 */
export function readMessages(handler: MessageHandler): void {
  const { socket } = handler;
  const waiting: [WebSocket.RawData, boolean][] = [];
  let reading = false;
  const readWaiting = async () => {
    reading = true;
    for (let next = waiting.shift(); next; next = waiting.shift()) {
      try {
        await handler.handleMessage(...next);
      } catch (error) {
        handler.fastify.log.error(error);
        handler.handleConnectionClose();
      }
    }
    reading = false;
  };
  const take = (message: WebSocket.RawData, isBinary: boolean) => {
    waiting.push([message, isBinary]);
    if (!reading) void readWaiting();
  };
  socket.on('message', take);
  socket.once('error', () => socket.off('message', take));
}

interface SubscriptionConnectionClass {
  prototype: { handleConnection(this: MessageHandler): Promise<void>; handleMessage?: unknown };
}

const require = createRequire(import.meta.url);

/**
 * Makes every subscription connection mercurius opens from now on read its socket with
 * `readMessages`. Throws if mercurius no longer has the method it replaces, so an upgrade that
 * moves it fails at start, not silently back to the iterator.
 */
export function readSubscriptionMessagesByListener(): void {
  const SubscriptionConnection: SubscriptionConnectionClass = require('mercurius/lib/subscription-connection.js');
  const { prototype } = SubscriptionConnection;
  if (typeof prototype.handleConnection !== 'function' || typeof prototype.handleMessage !== 'function') {
    throw new Error('mercurius changed how it reads subscription sockets: review message-reader.ts');
  }
  prototype.handleConnection = async function handleConnection(this: MessageHandler) {
    readMessages(this);
  };
}
