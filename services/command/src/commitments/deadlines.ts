// The system's own command: when an active commitment's due date passes, it is marked overdue
// (DeadlineMissed). A sweep finds them in the read models and decides each like any command, so
// a commitment fulfilled or changed meanwhile is simply refused. One process sweeps at a time.

import { Refusal } from '@connect/domain';
import type { FastifyBaseLogger } from 'fastify';
import type pg from 'pg';
import { type ExecuteDeps, executeCommand } from './execute.ts';

const SWEEP_LOCK = 0x64756521; // "due!"
const BATCH = 200;

/** Marks every active commitment past its due date as overdue; returns how many it marked. */
export async function sweepDeadlines(
  deps: ExecuteDeps & { pool: pg.Pool },
  now = new Date(),
): Promise<number> {
  const client = await deps.pool.connect();
  try {
    const { rows: lock } = await client.query<{ locked: boolean }>(
      'select pg_try_advisory_lock($1) as locked',
      [SWEEP_LOCK],
    );
    if (!lock[0]?.locked) return 0;
    try {
      const { rows } = await client.query<{ id: string }>(
        `select id from commitments where status = 'active' and not overdue and due_at <= $1 order by due_at limit $2`,
        [now, BATCH],
      );
      let marked = 0;
      for (const { id } of rows) {
        try {
          await executeCommand(
            { ...deps, now: () => now },
            {
              commitmentId: id,
              command: { action: 'miss-deadline' },
              actor: { userId: null, isAdmin: true },
              correlationId: `deadline-sweep-${now.toISOString()}`,
            },
          );
          marked++;
        } catch (error) {
          // Refused (no longer active, due date moved): the read model was behind; nothing to do.
          if (!(error instanceof Refusal)) throw error;
        }
      }
      return marked;
    } finally {
      await client.query('select pg_advisory_unlock($1)', [SWEEP_LOCK]);
    }
  } finally {
    client.release();
  }
}

export function startDeadlineSweeps(
  deps: ExecuteDeps & { pool: pg.Pool; log: FastifyBaseLogger },
  intervalMs = 30_000,
): { close(): void } {
  const timer = setInterval(() => {
    sweepDeadlines(deps).then(
      (marked) => marked > 0 && deps.log.info({ marked }, 'marked commitments overdue'),
      (error) => deps.log.warn({ err: error }, 'deadline sweep failed; the next one retries'),
    );
  }, intervalMs);
  timer.unref();
  return { close: () => clearInterval(timer) };
}
