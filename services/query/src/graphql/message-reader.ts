// How a subscription socket's messages reach mercurius. mercurius (16.10) reads them with
// `for await (… of events.on(socket, 'message'))`, and Node's on() iterator preallocates two queues
// of 2,048 slots: about 35 KB of heap for every open WebSocket however few messages wait (in a heap
// snapshot under the load bench at 2,000 users, 66 of 235 MB). A listener feeding an array reads
// them the same way: one message at a time, in order, each handled before the next starts.
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
 * Reads the socket's messages into `handleMessage`, one at a time and in order. As in mercurius, a
 * message that fails is logged and closes the connection; messages that arrived before a socket
 * error are still handled, none after it; and should closing itself throw, reading stops.
 */
export function readMessages(handler: MessageHandler): void {
  const { socket } = handler;
  const waiting: [WebSocket.RawData, boolean][] = [];
  let reading = false;
  const readWaiting = async () => {
    reading = true;
    try {
      for (let next = waiting.shift(); next; next = waiting.shift()) {
        try {
          await handler.handleMessage(...next);
        } catch (error) {
          handler.fastify.log.error(error);
          handler.handleConnectionClose();
        }
      }
    } finally {
      reading = false;
    }
  };
  const take = (message: WebSocket.RawData, isBinary: boolean) => {
    waiting.push([message, isBinary]);
    if (!reading) readWaiting().catch(stopReading);
  };
  const stopReading = () => {
    socket.off('message', take);
    waiting.length = 0;
  };
  socket.on('message', take);
  socket.once('error', () => socket.off('message', take));
}

interface SubscriptionConnectionClass {
  prototype: { handleConnection(this: MessageHandler): Promise<void> };
}

/** The method replaced, as released in mercurius 16.10.1. */
const REPLACED = `async handleConnection () {
    for await (const [message, isBinary] of on(this.socket, 'message')) {
      try {
        await this.handleMessage(message, isBinary)
      } catch (err) {
        this.fastify.log.error(err)
        this.handleConnectionClose()
      }
      /* c8 ignore next 3 */
    }
  }`;

async function handleConnection(this: MessageHandler): Promise<void> {
  readMessages(this);
}

const require = createRequire(import.meta.url);

/**
 * Replaces, for the whole process, how mercurius' subscription connections read their socket, with
 * `readMessages`. Throws if mercurius' method is no longer the one reviewed here, so an upgrade
 * that changes it fails at start rather than losing what it added.
 */
export function replaceMercuriusSocketReader(
  SubscriptionConnection: SubscriptionConnectionClass = require('mercurius/lib/subscription-connection.js'),
): void {
  const { prototype } = SubscriptionConnection;
  if (prototype.handleConnection === handleConnection) return;
  if (prototype.handleConnection.toString() !== REPLACED) {
    throw new Error('mercurius changed how it reads subscription sockets: review message-reader.ts');
  }
  prototype.handleConnection = handleConnection;
}
