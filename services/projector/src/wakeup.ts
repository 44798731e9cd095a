// Wakes waiting projections when the ledger grows (LISTEN connect_ledger); a timer is the fallback
// for a lost notification or a dropped listening connection.
import { LEDGER_CHANNEL } from '@connect/ledger';
import type pg from 'pg';

export interface Wakeup {
  /** How many appends have been announced so far. */
  seen(): number;
  /**
   * Resolves at the next append after the `since`-th (at once if one came already: an append
   * announced while the caller was busy is not missed), or after `ms` at the latest.
   */
  wait(ms: number, since?: number): Promise<void>;
  close(): Promise<void>;
}

export function ledgerWakeup(pool: pg.Pool, retryMs = 1000): Wakeup {
  const waiting = new Set<() => void>();
  let listener: pg.PoolClient | undefined;
  let closed = false;

  let announced = 0;
  const wakeAll = () => {
    announced++;
    for (const wake of waiting) wake();
    waiting.clear();
  };

  async function listen(): Promise<void> {
    try {
      const client = await pool.connect();
      if (closed) return client.release();
      client.on('notification', wakeAll);
      client.on('error', () => {
        if (listener !== client) return;
        listener = undefined;
        client.release(true);
        if (!closed) setTimeout(listen, retryMs).unref();
      });
      await client.query(`listen ${LEDGER_CHANNEL}`);
      listener = client;
      if (closed) await release();
    } catch {
      if (!closed) setTimeout(listen, retryMs).unref();
    }
  }

  async function release(): Promise<void> {
    const client = listener;
    listener = undefined;
    if (!client) return;
    await client.query(`unlisten ${LEDGER_CHANNEL}`).catch(() => undefined);
    client.release();
  }

  void listen();
  return {
    seen: () => announced,
    wait: (ms, since) =>
      new Promise((resolve) => {
        if (since !== undefined && announced > since) {
          resolve();
          return;
        }
        const timer = setTimeout(done, ms);
        function done() {
          clearTimeout(timer);
          waiting.delete(done);
          resolve();
        }
        waiting.add(done);
      }),
    async close() {
      closed = true;
      wakeAll();
      await release();
    },
  };
}
