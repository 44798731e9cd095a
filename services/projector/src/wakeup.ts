// Wakes waiting projections when the ledger grows (LISTEN connect_ledger); a timer is the fallback
// for a lost notification or a dropped listening connection.
import { LEDGER_CHANNEL, listen } from '@connect/db';
import type pg from 'pg';

export interface Wakeup {
  /** How many appends have been announced so far. */
  seen(): number;
  /** Whether announcements are heard now (LISTEN in force); while not, only the timer wakes. */
  isListening(): boolean;
  /**
   * Resolves at the next append after the `since`-th (at once if one came already: an append
   * announced while the caller was busy is not missed), or after `ms` at the latest.
   */
  wait(ms: number, since?: number): Promise<void>;
  close(): Promise<void>;
}

export function ledgerWakeup(pool: pg.Pool, retryMs = 1000): Wakeup {
  const waiting = new Set<() => void>();

  let announced = 0;
  const wakeAll = () => {
    announced++;
    for (const wake of waiting) wake();
    waiting.clear();
  };

  // Each time LISTEN takes effect, waiters look again: an append may have come while it was not.
  const listener = listen(pool, [LEDGER_CHANNEL], wakeAll, { onListening: wakeAll, retryMs });
  return {
    seen: () => announced,
    isListening: () => listener.isListening(),
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
      wakeAll();
      await listener.close();
    },
  };
}
