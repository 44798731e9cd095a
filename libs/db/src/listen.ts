// LISTEN on a pooled connection held for as long as the listener lives. When the connection
// drops, or cannot be made, it goes back to the pool destroyed and LISTEN is tried again after a
// delay that doubles up to a ceiling. Notifications sent while no LISTEN is in force are lost, so
// `onListening` runs each time LISTEN takes effect: the place to catch up.
import pg from 'pg';

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
  /** Stops retrying, and gives the connection back to the pool. */
  close(): Promise<void>;
}

export function listen(
  pool: pg.Pool,
  channels: readonly string[],
  onNotify: (message: pg.Notification) => void,
  options: ListenOptions = {},
): Listener {
  const { retryMs = 1000, maxRetryMs = 30_000 } = options;
  const statement = (verb: 'listen' | 'unlisten') =>
    channels.map((channel) => `${verb} ${pg.escapeIdentifier(channel)}`).join('; ');
  let listening: { connection: pg.PoolClient; unwatch(): void } | undefined;
  let attempt: Promise<void> | undefined;
  let retry: NodeJS.Timeout | undefined;
  let delay = retryMs;
  let closed = false;

  function scheduleRetry(): void {
    if (closed) return;
    retry = setTimeout(() => {
      retry = undefined;
      attempt = connect();
    }, delay);
    retry.unref();
    delay = Math.min(delay * 2, maxRetryMs);
  }

  /** Handlers on the connection LISTEN runs on; removed as it goes back to the pool. */
  function watch(connection: pg.PoolClient): () => void {
    const onError = (error: unknown) => lost(connection, error);
    const onEnd = () => lost(connection, new Error('the listening connection ended'));
    connection.on('notification', onNotify);
    connection.on('error', onError);
    connection.on('end', onEnd);
    return () => {
      connection.off('notification', onNotify);
      connection.off('error', onError);
      connection.off('end', onEnd);
    };
  }

  function lost(connection: pg.PoolClient, error: unknown): void {
    if (listening?.connection !== connection) return; // a dying connection can report more than once
    const { unwatch } = listening;
    listening = undefined;
    connection.release(true);
    unwatch();
    options.onDown?.(error);
    scheduleRetry();
  }

  async function connect(): Promise<void> {
    let connection: pg.PoolClient | undefined;
    let unwatch: (() => void) | undefined;
    try {
      connection = await pool.connect();
      if (closed) {
        connection.release();
        return;
      }
      unwatch = watch(connection);
      await connection.query(statement('listen'));
      if (closed) {
        connection.release(true);
        unwatch();
        return;
      }
    } catch (error) {
      // A connection whose LISTEN failed goes back to the pool destroyed, never kept.
      connection?.release(true);
      unwatch?.();
      options.onDown?.(error);
      scheduleRetry();
      return;
    }
    listening = { connection, unwatch };
    delay = retryMs;
    options.onListening?.();
  }

  attempt = connect();
  return {
    ready: attempt,
    isListening: () => listening !== undefined,
    async close() {
      closed = true;
      clearTimeout(retry);
      await attempt;
      const current = listening;
      listening = undefined;
      if (!current) return;
      await current.connection.query(statement('unlisten')).catch(() => undefined);
      current.connection.release();
      current.unwatch();
    },
  };
}
