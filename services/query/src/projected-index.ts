// How far the read models reach: the lowest checkpoint of their projections, kept current by the
// projector's NOTIFY (and a poll, in case a notification is lost). Reads answer with it in
// Connect-Index, and Connect-Min-Index waits on it. On a read replica it is the replica's own
// checkpoints, polled (a standby cannot LISTEN): what the reads there include, exactly.
// The notifier's in-app notifications are a read model too, but a slower one (each batch also
// queues deliveries and schedules reminders): only the reads that include notifications wait for
// it, so a commitment read or push is not held back by the notifier.
import { listen, NOTIFICATIONS_PROJECTION, PROJECTED_CHANNEL } from '@connect/db';
import type pg from 'pg';

/**
 * What a read includes: the projector's read models (profiles, commitment types, commitments), or
 * those and the in-app notifications.
 */
export type Reach = 'read-models' | 'with-notifications';

export interface ProjectedIndex {
  /** The last ledger index every read model within `reach` includes (-1: none yet). */
  current(reach?: Reach): number;
  /** Resolves true once current(reach) ≥ index, false after `ms`. */
  waitFor(index: number, ms: number, reach?: Reach): Promise<boolean>;
  /** Called with (from, to] whenever the projector's read models move on (not the notifier's). */
  onAdvance(listener: (from: number, to: number) => void): () => void;
  /** One projection's last index (-1: not known yet). */
  positionOf(projection: string): number;
  /** Called with (from, to] whenever one projection's checkpoint moves on from a known index. */
  onProjectionAdvance(projection: string, listener: (from: number, to: number) => void): () => void;
  close(): Promise<void>;
}

export interface WatchOptions {
  /** How often the checkpoints are read again (without LISTEN: how soon an advance is seen). */
  pollMs?: number;
  /** False on a standby, which cannot LISTEN: the poll alone tells. */
  listen?: boolean;
}

export async function watchProjectedIndex(
  pool: pg.Pool,
  { pollMs = 1000, listen: hear = true }: WatchOptions = {},
): Promise<ProjectedIndex> {
  const positions = new Map<string, number>();
  const listeners = new Set<(from: number, to: number) => void>();
  const projectionListeners = new Map<string, Set<(from: number, to: number) => void>>();
  const waiters = new Set<() => void>();
  let reported = -1;

  const current = (reach: Reach = 'read-models'): number => {
    let lowest = Number.POSITIVE_INFINITY;
    for (const [projection, index] of positions) {
      if (reach === 'read-models' && projection === NOTIFICATIONS_PROJECTION) continue;
      lowest = Math.min(lowest, index);
    }
    return lowest === Number.POSITIVE_INFINITY ? -1 : lowest;
  };

  /** Tells the listeners when the projector's read models have moved on since last told. */
  function moved(): void {
    const now = current();
    if (now <= reported) return;
    const from = reported;
    reported = now;
    for (const notify of listeners) notify(from, now);
  }

  function record(projection: string, index: number): void {
    const before = positions.get(projection);
    if (before !== undefined && index <= before) return;
    positions.set(projection, index);
    for (const wake of waiters) wake();
    // A projection first seen has no (from, to] to tell: its past is not a change.
    if (before === undefined) return;
    for (const notify of projectionListeners.get(projection) ?? []) notify(before, index);
  }

  async function refresh(): Promise<void> {
    const { rows } = await pool.query<{ projection: string; last_index: number }>(
      'select projection, last_index from projection_checkpoints',
    );
    for (const row of rows) record(row.projection, row.last_index);
    moved();
  }

  // LISTEN first, then read: nothing falls between. After a reconnect, read again, since
  // notifications sent while the connection was down are lost.
  let started = false;
  const listener = !hear
    ? undefined
    : listen(
        pool,
        [PROJECTED_CHANNEL],
        (message) => {
          const [projection, index] = (message.payload ?? '').split(':');
          if (projection && index) record(projection, Number(index));
          moved();
        },
        {
          onListening: () => {
            if (started) void refresh().catch(() => undefined);
          },
          retryMs: pollMs,
        },
      );
  await listener?.ready;
  started = true;
  try {
    await refresh();
  } catch (error) {
    await listener?.close();
    throw error;
  }
  const timer = setInterval(() => void refresh().catch(() => undefined), pollMs);
  timer.unref();

  return {
    current,
    waitFor(index, ms, reach = 'read-models') {
      if (current(reach) >= index) return Promise.resolve(true);
      return new Promise((resolve) => {
        const finish = () => {
          if (current(reach) < index && Date.now() < deadline) return;
          clearTimeout(timeout);
          waiters.delete(finish);
          resolve(current(reach) >= index);
        };
        const deadline = Date.now() + ms;
        const timeout = setTimeout(() => {
          waiters.delete(finish);
          resolve(current(reach) >= index);
        }, ms);
        waiters.add(finish);
      });
    },
    onAdvance(listenerFn) {
      listeners.add(listenerFn);
      return () => listeners.delete(listenerFn);
    },
    positionOf: (projection) => positions.get(projection) ?? -1,
    onProjectionAdvance(projection, listenerFn) {
      const forProjection = projectionListeners.get(projection) ?? new Set();
      projectionListeners.set(projection, forProjection.add(listenerFn));
      return () => forProjection.delete(listenerFn);
    },
    async close() {
      clearInterval(timer);
      for (const wake of waiters) wake();
      await listener?.close();
    },
  };
}
