// New entries, in index order, as they commit: LISTEN/NOTIFY wakes the reader at once, and a
// poll every `pollMs` catches up whatever a lost notification or a dropped connection missed.
import { type Database, LEDGER_CHANNEL, listen } from '@connect/db';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import type { LedgerSource } from './body-cipher.ts';
import { readEntries } from './entries.ts';
import type { Entry } from './types.ts';

export interface Subscription {
  close(): Promise<void>;
}

export interface SubscribeOptions {
  /** The first index to deliver. */
  from: number;
  /** Called with each page of new entries; the next page waits for it to settle. */
  onEntries(entries: Entry[]): Promise<void> | void;
  onError?(error: unknown): void;
  pollMs?: number;
  pageSize?: number;
}

export function subscribeEntries(
  deps: { pool: pg.Pool; db: Kysely<Database> } & LedgerSource,
  options: SubscribeOptions,
): Subscription {
  const { pollMs = 1000, pageSize = 1000 } = options;
  let next = options.from;
  let closed = false;
  let reading: Promise<void> | undefined;
  let again = false;

  const report = (error: unknown) => options.onError?.(error);

  async function readNew(): Promise<void> {
    do {
      again = false;
      for (;;) {
        if (closed) return;
        const entries = await readEntries(deps.db, deps, next, pageSize);
        if (entries.length === 0) break;
        await options.onEntries(entries);
        next = (entries.at(-1) as Entry).index + 1;
      }
    } while (again);
  }

  function wake(): void {
    if (closed) return;
    if (reading) {
      again = true;
      return;
    }
    reading = readNew()
      .catch(report)
      .finally(() => {
        reading = undefined;
      });
  }

  const timer = setInterval(wake, pollMs);
  timer.unref();
  // Each time LISTEN takes effect, read what committed while it was not in force.
  const listener = listen(deps.pool, [LEDGER_CHANNEL], wake, {
    onListening: wake,
    onDown: report,
    retryMs: pollMs,
  });
  wake();

  return {
    close: async () => {
      closed = true;
      clearInterval(timer);
      await reading;
      await listener.close();
    },
  };
}
