// The projections of a runner that expect none of their own entries (profiles and commitment
// types, while commitments change) are woken by the same append: their skips, asked for in the
// same turn of the event loop, go out as one statement (skipBatches), one round trip between them.
import type pg from 'pg';
import { type BatchResult, skipBatches } from './batch.ts';
import type { Projection } from './projection.ts';
import { connectFrom, isTransient } from './transient.ts';

export type SkipTogether = (projection: Projection) => Promise<BatchResult | undefined>;

export function skipsTogether(pool: pg.Pool, limit: number): SkipTogether {
  let waiting: { projection: Projection; settle(result: Promise<BatchResult | undefined>): void }[] = [];

  function skipWaiting(): void {
    const asked = waiting;
    waiting = [];
    const results = (async () => {
      const client = await connectFrom(pool);
      try {
        const skipped = await skipBatches(
          client,
          asked.map((a) => a.projection),
          limit,
        );
        client.release();
        return skipped;
      } catch (error) {
        client.release(isTransient(error));
        throw error;
      }
    })();
    asked.forEach((a, i) => {
      a.settle(results.then((skipped) => skipped[i]));
    });
  }

  return (projection) =>
    new Promise((resolve) => {
      if (waiting.length === 0) setImmediate(skipWaiting);
      waiting.push({ projection, settle: resolve });
    });
}
