// New entries, in index order, as they commit: LISTEN/NOTIFY wakes the reader at once, and a
// poll every `pollMs` catches up whatever a lost notification or a dropped connection missed.
import type { Database } from '@connect/db';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import { LEDGER_CHANNEL } from './append.ts';
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
  deps: { pool: pg.Pool; db: Kysely<Database>; origin: string },
  options: SubscribeOptions,
): Subscription {
  const { pollMs = 1000, pageSize = 1000 } = options;
  let next = options.from;
  let closed = false;
  let listener: pg.PoolClient | undefined;
  let reading: Promise<void> | undefined;
  let again = false;

  const report = (error: unknown) => options.onError?.(error);

  async function readNew(): Promise<void> {
    do {
      again = false;
      for (;;) {
        if (closed) return;
        const entries = await readEntries(deps.db, deps.origin, next, pageSize);
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

  async function listen(): Promise<void> {
    try {
      const client = await deps.pool.connect();
      if (closed) {
        client.release();
        return;
      }
      listener = client;
      client.on('notification', wake);
      client.on('error', (error) => {
        if (listener !== client) return; // a dying connection can report more than once
        listener = undefined;
        report(error);
        client.release(true);
        if (!closed) setTimeout(listen, pollMs);
      });
      await client.query(`listen ${LEDGER_CHANNEL}`);
      wake();
    } catch (error) {
      report(error);
      if (!closed) setTimeout(listen, pollMs);
    }
  }

  const timer = setInterval(wake, pollMs);
  timer.unref();
  void listen();
  wake();

  return {
    close: async () => {
      closed = true;
      clearInterval(timer);
      await reading;
      if (listener) {
        const client = listener;
        listener = undefined;
        await client.query(`unlisten ${LEDGER_CHANNEL}`).catch(() => undefined);
        client.release();
      }
    },
  };
}
