// LISTEN on one pooled connection per pool, shared by every listener of that pool and held while
// any lives: PostgreSQL wakes every listening connection of the database at each NOTIFY, whatever
// its channels, so each connection that listens costs a wakeup per notification.
// When the connection drops, or cannot be made, it goes back to the pool destroyed and is tried
// again after a delay that doubles up to a ceiling. Notifications sent while no LISTEN is in force
// are lost, so `onListening` runs each time a listener's LISTEN takes effect: the place to catch up.
import pg from 'pg';
import { inTurn } from './client-turns.ts';
import { isConnectionFailure } from './connection-errors.ts';

export interface ListenOptions {
  /** Called each time LISTEN takes effect: the first time, and after every reconnect. */
  onListening?(): void;
  /** Called when the listening connection is lost, or LISTEN could not be set up. */
  onDown?(error: unknown): void;
  /** Delay before the first retry (default 1000 ms); it doubles with each failure in a row. */
  retryMs?: number;
  /** Longest delay between retries (default 30 s). */
  maxRetryMs?: number;
}

export interface Listener {
  /** Settles after the first attempt to listen, whether or not it succeeded. */
  ready: Promise<void>;
  /** Whether LISTEN is in force now. */
  isListening(): boolean;
  /** Stops retrying, and gives the connection back to the pool once no other listener needs it. */
  close(): Promise<void>;
}

interface Subscriber {
  channels: readonly string[];
  onNotify(message: pg.Notification): void;
  options: ListenOptions;
  listening: boolean;
  /** Its LISTEN is on its way: what arrives meanwhile is its (LISTEN takes effect before its answer). */
  pending: boolean;
  closed: boolean;
  /** Its own retry of a LISTEN PostgreSQL refused (the connection itself is fine). */
  retry?: NodeJS.Timeout;
  delay: number;
  /** The attempt under way for it, if any: what close() waits for. */
  attempt?: Promise<void>;
  settled(): void;
}

const shared = new WeakMap<pg.Pool, SharedConnection>();

export function listen(
  pool: pg.Pool,
  channels: readonly string[],
  onNotify: (message: pg.Notification) => void,
  options: ListenOptions = {},
): Listener {
  let connection = shared.get(pool);
  if (!connection) {
    connection = new SharedConnection(pool, () => shared.delete(pool));
    shared.set(pool, connection);
  }
  const owner = connection;
  let settled!: () => void;
  const ready = new Promise<void>((resolve) => {
    settled = resolve;
  });
  const subscriber: Subscriber = {
    channels,
    onNotify,
    options,
    listening: false,
    pending: false,
    closed: false,
    delay: options.retryMs ?? 1000,
    settled,
  };
  owner.add(subscriber);
  return {
    ready,
    isListening: () => subscriber.listening,
    close: () => owner.remove(subscriber),
  };
}

/**
 * Runs a listener's callback. Should it throw, the error surfaces on its own (as an uncaught
 * exception), not in the middle of the shared connection's bookkeeping or another listener's turn.
 */
function call<A extends unknown[]>(callback: ((...args: A) => void) | undefined, ...args: A): void {
  if (!callback) return;
  try {
    callback(...args);
  } catch (error) {
    process.nextTick(() => {
      throw error;
    });
  }
}

const statement = (verb: 'listen' | 'unlisten', channels: Iterable<string>) =>
  [...channels].map((channel) => `${verb} ${pg.escapeIdentifier(channel)}`).join('; ');

/** The one listening connection of a pool, and the listeners it serves. */
class SharedConnection {
  private readonly subscribers = new Set<Subscriber>();
  private current: { client: pg.PoolClient; unwatch(): void } | undefined;
  private connecting: Promise<void> | undefined;
  private retry: NodeJS.Timeout | undefined;
  private delay: number | undefined;

  constructor(
    private readonly pool: pg.Pool,
    private readonly unused: () => void,
  ) {}

  add(subscriber: Subscriber): void {
    this.subscribers.add(subscriber);
    if (this.current) subscriber.attempt = this.listenFor(subscriber, this.current.client);
    else if (!this.connecting) {
      // Down and waiting to retry: a new listener tries at once, as one on its own would.
      clearTimeout(this.retry);
      this.retry = undefined;
      this.connecting = this.connect();
    }
  }

  async remove(subscriber: Subscriber): Promise<void> {
    if (subscriber.closed) return;
    subscriber.closed = true;
    subscriber.listening = false;
    subscriber.pending = false;
    clearTimeout(subscriber.retry);
    await this.connecting;
    await subscriber.attempt;
    this.subscribers.delete(subscriber);
    const current = this.current;
    if (this.subscribers.size === 0) {
      clearTimeout(this.retry);
      this.retry = undefined;
      this.current = undefined;
      this.unused();
      if (!current) return;
      // A connection that may still listen goes back to the pool destroyed, never kept.
      const cleared = await inTurn(current.client, () => current.client.query('unlisten *')).then(
        () => true,
        () => false,
      );
      current.client.release(!cleared);
      current.unwatch();
      return;
    }
    // Its channels that no other listener wants (whether its LISTEN took effect or not).
    const wanted = new Set([...this.subscribers].flatMap((s) => s.channels));
    const dropped = subscriber.channels.filter((channel) => !wanted.has(channel));
    if (current && dropped.length > 0)
      await inTurn(current.client, () => current.client.query(statement('unlisten', dropped))).catch(
        () => {},
      );
  }

  private async connect(): Promise<void> {
    let client: pg.PoolClient | undefined;
    let unwatch: (() => void) | undefined;
    try {
      client = await this.pool.connect();
      if (this.subscribers.size === 0) {
        client.release();
        return;
      }
      unwatch = this.watch(client);
    } catch (error) {
      client?.release(true);
      unwatch?.();
      this.down(error);
      return;
    } finally {
      this.connecting = undefined;
    }
    this.current = { client, unwatch };
    await Promise.all(
      [...this.subscribers].map((s) => (s.attempt = this.listenFor(s, client as pg.PoolClient))),
    );
  }

  /** LISTENs for one listener on the live connection; a refusal is that listener's alone to retry. */
  private async listenFor(subscriber: Subscriber, client: pg.PoolClient): Promise<void> {
    subscriber.pending = true;
    try {
      await inTurn(client, () => client.query(statement('listen', subscriber.channels)));
    } catch (error) {
      subscriber.pending = false;
      // The connection lost: every listener is told, once. A LISTEN refused: only this one retries.
      if (isConnectionFailure(error) || (error as { severity?: string }).severity === 'FATAL')
        this.lost(client, error);
      else if (this.current?.client === client && !subscriber.closed) this.retryFor(subscriber, error);
      return;
    } finally {
      subscriber.settled();
    }
    subscriber.pending = false;
    if (this.current?.client !== client || subscriber.closed) return;
    subscriber.listening = true;
    subscriber.delay = subscriber.options.retryMs ?? 1000;
    this.delay = undefined;
    call(subscriber.options.onListening);
  }

  private retryFor(subscriber: Subscriber, error: unknown): void {
    subscriber.retry = setTimeout(() => {
      subscriber.retry = undefined;
      if (this.current && !subscriber.closed)
        subscriber.attempt = this.listenFor(subscriber, this.current.client);
    }, subscriber.delay);
    subscriber.retry.unref();
    subscriber.delay = Math.min(subscriber.delay * 2, subscriber.options.maxRetryMs ?? 30_000);
    call(subscriber.options.onDown, error);
  }

  /** Handlers on the connection LISTEN runs on; removed as it goes back to the pool. */
  private watch(client: pg.PoolClient): () => void {
    const onNotification = (message: pg.Notification) => {
      for (const subscriber of this.subscribers) {
        if ((subscriber.listening || subscriber.pending) && subscriber.channels.includes(message.channel))
          call(subscriber.onNotify, message);
      }
    };
    const onError = (error: unknown) => this.lost(client, error);
    const onEnd = () => this.lost(client, new Error('the listening connection ended'));
    client.on('notification', onNotification);
    client.on('error', onError);
    client.on('end', onEnd);
    return () => {
      client.off('notification', onNotification);
      client.off('error', onError);
      client.off('end', onEnd);
    };
  }

  private lost(client: pg.PoolClient, error: unknown): void {
    if (this.current?.client !== client) return; // a dying connection can report more than once
    const { unwatch } = this.current;
    this.current = undefined;
    client.release(true);
    unwatch();
    this.down(error);
  }

  /** Every listener is told, and the connection is tried again after the shortest retry delay asked for. */
  private down(error: unknown): void {
    // Every listener's state first: a callback that throws leaves none of them listening on a
    // connection that is gone, nor the retry unscheduled.
    const told = [...this.subscribers].filter((s) => !s.closed);
    for (const subscriber of this.subscribers) {
      subscriber.listening = false;
      subscriber.pending = false;
      clearTimeout(subscriber.retry);
    }
    if (told.length > 0) {
      const first = Math.min(...told.map((s) => s.options.retryMs ?? 1000));
      const most = Math.min(...told.map((s) => s.options.maxRetryMs ?? 30_000));
      const delay = this.delay ?? first;
      this.retry = setTimeout(() => {
        this.retry = undefined;
        if (!this.connecting && !this.current && this.subscribers.size > 0) this.connecting = this.connect();
      }, delay);
      this.retry.unref();
      this.delay = Math.min(delay * 2, most);
    }
    for (const subscriber of this.subscribers) subscriber.settled();
    for (const subscriber of told) call(subscriber.options.onDown, error);
  }
}
