// Wakes waiting projections when the ledger grows (LISTEN connect_ledger); a timer is the fallback
// for a lost notification or a dropped listening connection.
import { LEDGER_CHANNEL } from '@connect/ledger';
import type pg from 'pg';

export interface Wakeup {
  /** Resolves at the next append, or after `ms` at the latest. */
  wait(ms: number): Promise<void>;
  close(): Promise<void>;
}

export function ledgerWakeup(pool: pg.Pool, retryMs = 1000): Wakeup {
  const waiting = new Set<() => void>();
  let listener: pg.PoolClient | undefined;
  let closed = false;

  const wakeAll = () => {
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
    wait: (ms) =>
      new Promise((resolve) => {
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
