// The WebSocket connections behind subscriptions, held to the graphql-ws protocol and to their
// session: a refused connection_init closes with 4403, a second one with 4429; a connection whose
// session ended (logout, expiry, revocation) is closed with 4403; and one that stops reading is
// closed with 1013 once too many changes wait for it, so waiting changes never grow without bound.
import type { SessionGate } from '@connect/auth';
import { DEFAULT_MAX_GROUP } from '@connect/db';
import type WebSocket from 'ws';

/** graphql-ws: connection_init refused, or the session it authenticated has ended. */
export const CLOSE_FORBIDDEN = 4403;
/** RFC 6455 "Going Away": the server is shutting down (clients reconnect, to another instance). */
export const CLOSE_GOING_AWAY = 1001;
/** graphql-ws: connection_init sent twice. */
export const CLOSE_TOO_MANY_INITS = 4429;
/**
 * RFC 6455 "Try Again Later". graphql-ws defines no code for a subscriber too slow to keep up; its
 * client retries on this one, and a new connection starts from the current state.
 */
export const CLOSE_TOO_SLOW = 1013;

export interface SubscriptionLimits {
  /**
   * Most changes that may wait for one connection, over all its subscriptions, while its socket
   * cannot take more (500 by default). Changes waiting on the server's own reads do not count.
   */
  maxQueued?: number;
  /** How often connections are checked against their sessions, for expiry (1 s by default). */
  sessionCheckMs?: number;
}

export interface Connection {
  readonly socket: WebSocket;
  /** Set when its first operation is admitted. */
  sessionId: string | undefined;
  /** Changes waiting for it, over all its subscriptions. */
  queued: number;
}

export interface Connections {
  /** At connection_init (mercurius' subscription context): the connection of this socket. */
  open(socket: WebSocket): Connection;
  /** Before each operation: refuses, closing the socket, once the session has ended. */
  admit(connection: Connection, sessionId: string | undefined): Promise<boolean>;
  /** A change was queued for it: closes it if it is too slow to take it. */
  queuedOne(connection: Connection): void;
  close(): void;
}

/** Sessions the sweep checks at a time: as many as the session gate reads in one statement. */
const SWEEP_GROUP = DEFAULT_MAX_GROUP;

export function connections(deps: { sessions: SessionGate; limits?: SubscriptionLimits }): Connections {
  const maxQueued = deps.limits?.maxQueued ?? 500;
  const bySocket = new WeakMap<WebSocket, Connection>();
  const bySession = new Map<string, Set<Connection>>();

  const forget = (connection: Connection) => {
    const { sessionId } = connection;
    if (sessionId === undefined) return;
    const open = bySession.get(sessionId);
    open?.delete(connection);
    if (open?.size === 0) bySession.delete(sessionId);
  };
  const sessionEnded = (connection: Connection) =>
    connection.socket.close(CLOSE_FORBIDDEN, 'Forbidden: the session has ended');

  // The gate forgets a session the moment its end is announced (NOTIFY) and never trusts one past
  // its active_until, so most checks are answered from memory. They are asked SWEEP_GROUP at a
  // time: those the gate must look up again go to the database together, and a request's own
  // check waits behind one such statement at most, even when the gate remembers nothing.
  let sweeping = false;
  const sweep = async () => {
    if (sweeping) return;
    sweeping = true;
    try {
      const held = [...bySession];
      for (let i = 0; i < held.length; i += SWEEP_GROUP) {
        await Promise.all(
          held.slice(i, i + SWEEP_GROUP).map(async ([sessionId, open]) => {
            if (await deps.sessions.isActive(sessionId).catch(() => true)) return;
            for (const connection of open) sessionEnded(connection);
          }),
        );
      }
    } finally {
      sweeping = false;
    }
  };
  const timer = setInterval(() => void sweep(), deps.limits?.sessionCheckMs ?? 1000);
  timer.unref();

  return {
    open(socket) {
      const known = bySocket.get(socket);
      if (known) {
        socket.close(CLOSE_TOO_MANY_INITS, 'Too many initialisation requests');
        return known;
      }
      const connection: Connection = { socket, sessionId: undefined, queued: 0 };
      bySocket.set(socket, connection);
      socket.once('close', () => forget(connection));
      // The legacy subscriptions-transport-ws protocol ('graphql-ws') does refuse with a message.
      if (socket.protocol !== 'graphql-ws') refuseByClosing(socket);
      return connection;
    },
    async admit(connection, sessionId) {
      if (sessionId === undefined || !(await deps.sessions.isActive(sessionId))) {
        sessionEnded(connection);
        return false;
      }
      if (connection.socket.readyState !== connection.socket.OPEN) return false;
      if (connection.sessionId === undefined) {
        connection.sessionId = sessionId;
        const open = bySession.get(sessionId) ?? new Set();
        bySession.set(sessionId, open.add(connection));
      }
      return true;
    },
    queuedOne(connection) {
      const { socket } = connection;
      // Bytes still buffered mean the socket takes no more: the client is not reading fast enough.
      if (connection.queued > maxQueued && socket.bufferedAmount > 0 && socket.readyState === socket.OPEN) {
        socket.close(CLOSE_TOO_SLOW, 'Too slow: reconnect to catch up');
      }
    },
    close() {
      clearInterval(timer);
    },
  };
}

/**
 * mercurius answers a refused connection_init with the legacy `connection_error` message, which
 * graphql-transport-ws does not have: until the connection is acknowledged, that message becomes
 * the protocol's close with 4403 Forbidden.
 */
function refuseByClosing(socket: WebSocket): void {
  const send = socket.send;
  const handshake = (data: unknown, ...rest: unknown[]) => {
    const callback = rest.find((arg) => typeof arg === 'function') as ((error?: Error) => void) | undefined;
    if (typeof data === 'string' && data.startsWith('{"type":"connection_')) {
      if (data.startsWith('{"type":"connection_error"')) {
        socket.close(CLOSE_FORBIDDEN, 'Forbidden');
        callback?.();
        return;
      }
      if (data.startsWith('{"type":"connection_ack"')) Reflect.deleteProperty(socket, 'send');
    }
    Reflect.apply(send, socket, [data, ...rest]);
  };
  Object.defineProperty(socket, 'send', { value: handshake, configurable: true, writable: true });
}
