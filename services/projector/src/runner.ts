// Runs projections over the ledger: one active runner per projection across every process (a
// session advisory lock), the others on standby, taking over within `standbyMs` when it dies.
// An entry a projection cannot apply sets its stream aside (quarantine.ts) and the rest flows on;
// only a fault of the system itself (not of an entry) stops a projection, named in status().
import { setTimeout as sleep } from 'node:timers/promises';
import type { LedgerSource } from '@connect/ledger';
import type { FastifyBaseLogger } from 'fastify';
import type pg from 'pg';
import { type BatchResult, projectBatch } from './batch.ts';
import { liveTables, type Projection, type Tables } from './projection.ts';
import { PROJECTIONS } from './projections/index.ts';
import { skipsTogether } from './skips-together.ts';
import { connectFrom, isTransient } from './transient.ts';
import { ledgerWakeup } from './wakeup.ts';

/** First key of the advisory locks; the second is hashtext(projection name). */
const LOCK_CLASS = 0x636f6e6e; // "conn"

/** Longest wait between retries while the database cannot be reached. */
const MAX_RETRY_MS = 30_000;

export type RunnerState = 'standby' | 'active' | 'failed' | 'stopped';

export interface ProjectionStatus {
  projection: string;
  state: RunnerState;
  /** The last index this runner projected or found checkpointed; -1 before any. */
  lastIndex: number;
  failure?: { index: number; error: string };
}

export interface QuarantinedStream {
  projection: string;
  stream: string;
  index: number;
  error: string;
  since: string;
}

export interface ProjectorOptions {
  projections?: readonly Projection[];
  batchSize?: number;
  /** Longest wait for new entries without a notification. */
  pollMs?: number;
  /** How often a standby tries to take over. */
  standbyMs?: number;
  /** An active projection that has not advanced for this long while entries wait is stuck (/readyz). */
  stuckAfterMs?: number;
  /**
   * Least time from one batch's start to the next's while the ledger keeps growing (default 10 ms):
   * under a stream of appends, fewer and fuller batches, each a transaction fewer. An append after a
   * quiet spell is projected at once; under a stream, an entry waits at most this long for its batch.
   * A projection may ask for a longer spacing of its own (Projection.batchSpacingMs).
   */
  batchSpacingMs?: number;
}

export interface Projector {
  status(): Promise<ProjectionStatus[]>;
  /** Throws naming the projection when one has stopped or is stuck; else the streams set aside. */
  readiness(): Promise<{ quarantined: QuarantinedStream[] }>;
  close(): Promise<void>;
}

export function startProjector(
  deps: { pool: pg.Pool; log: FastifyBaseLogger } & LedgerSource,
  options: ProjectorOptions = {},
): Projector {
  const { pool, origin, cipher, log } = deps;
  const {
    batchSize = 2000,
    pollMs = 1000,
    standbyMs = 1000,
    stuckAfterMs = 60_000,
    batchSpacingMs = 10,
  } = options;
  const wakeup = ledgerWakeup(pool, pollMs);
  const skip = skipsTogether(pool, batchSize);
  const statuses = new Map<string, ProjectionStatus>();
  /** When each projection last finished a batch (or became active): how stuck detection sees it. */
  const advancedAt = new Map<string, number>();
  let closed = false;

  async function run(projection: Projection): Promise<void> {
    const status: ProjectionStatus = { projection: projection.name, state: 'standby', lastIndex: -1 };
    statuses.set(projection.name, status);
    // After an interruption (the database went away), retries wait longer each time, up to 30 s.
    let retryMs = standbyMs;
    while (!closed && status.state !== 'failed') {
      let lockClient: pg.PoolClient | undefined;
      try {
        lockClient = await pool.connect();
        const { rows } = await lockClient.query<{ locked: boolean }>(
          'select pg_try_advisory_lock($1, hashtext($2)) as locked',
          [LOCK_CLASS, projection.name],
        );
        if (!rows[0]?.locked) {
          status.state = 'standby';
          lockClient.release();
          await new Promise((resolve) => setTimeout(resolve, standbyMs));
          continue;
        }
        let lost = false;
        lockClient.on('error', () => {
          lost = true;
        });
        status.state = 'active';
        retryMs = standbyMs;
        advancedAt.set(projection.name, Date.now());
        log.info({ projection: projection.name }, 'projection active');
        await drive(projection, status, () => lost || closed);
        await lockClient.query('select pg_advisory_unlock($1, hashtext($2))', [LOCK_CLASS, projection.name]);
        lockClient.release();
      } catch (error) {
        lockClient?.release(true);
        if (!closed) {
          status.state = 'standby';
          log.warn({ projection: projection.name, err: error, retryMs }, 'projection interrupted; retrying');
          // Woken early when LISTEN takes effect again (the database is back) or on close.
          await wakeup.wait(retryMs);
          retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
        }
      }
    }
    if (status.state !== 'failed') status.state = 'stopped';
  }

  /** Projects batches while this runner holds the lock; returns when it must stop. */
  async function drive(projection: Projection, status: ProjectionStatus, mustStop: () => boolean) {
    const tables = liveTables(projection);
    const spacingMs = Math.max(projection.batchSpacingMs ?? 0, batchSpacingMs);
    // A projection whose last batch had nothing of its own (profiles, while commitments change)
    // first tries to move past the next one in a single statement.
    let expectOwnEntries = true;
    // When the last batch that found entries began: a batch that found none (a poll) spaces nothing.
    let lastFoundAt = 0;
    while (!mustStop()) {
      const seen = wakeup.seen();
      const startedAt = Date.now();
      try {
        const skipped = expectOwnEntries ? undefined : await skip(projection);
        const result: BatchResult = skipped ?? (await projectNext(projection, tables));
        expectOwnEntries = result.applied > 0;
        if (result.count > 0) lastFoundAt = startedAt;
        status.lastIndex = result.lastIndex;
        advancedAt.set(projection.name, Date.now());
        for (const q of result.quarantined) {
          log.error(
            { projection: projection.name, stream: q.stream, index: q.index, error: q.error },
            'stream set aside: this projection cannot apply its entry; the others go on',
          );
        }
        // All there was is projected unless an append was announced since the batch began. While
        // announcements go unheard, a batch that found entries is followed at once by the next.
        if (result.count === 0 || (result.count < batchSize && wakeup.isListening())) {
          await wakeup.wait(pollMs, seen);
          const spacing = lastFoundAt + spacingMs - Date.now();
          if (spacing > 0 && !mustStop()) await sleep(spacing);
        }
      } catch (error) {
        if (isTransient(error)) throw error;
        const message = (error as Error).message;
        status.state = 'failed';
        status.failure = { index: status.lastIndex + 1, error: message };
        log.error({ projection: projection.name, error: message }, 'projection stopped');
        return;
      }
    }
  }

  /** One batch of the projection's entries, on a connection of its own. */
  async function projectNext(projection: Projection, tables: Tables): Promise<BatchResult> {
    const client = await connectFrom(pool);
    try {
      const result = await projectBatch(client, projection, tables, { origin, cipher, limit: batchSize });
      client.release();
      return result;
    } catch (error) {
      client.release(isTransient(error));
      throw error;
    }
  }

  const runs = (options.projections ?? PROJECTIONS).map((projection) => run(projection));

  /** The active projections that have not advanced for stuckAfterMs while entries wait for them. */
  async function stuck(): Promise<string[]> {
    const now = Date.now();
    const idle = [...statuses.values()].filter(
      (s) => s.state === 'active' && now - (advancedAt.get(s.projection) ?? now) > stuckAfterMs,
    );
    if (idle.length === 0) return [];
    const lag = new Map((await listLag(pool)).map((l) => [l.projection, l]));
    return idle.flatMap((s) => {
      const behind = lag.get(s.projection);
      if (!behind || behind.entries <= 0) return [];
      const seconds = Math.round((now - (advancedAt.get(s.projection) ?? now)) / 1000);
      return [
        `projection ${s.projection} stuck at entry ${behind.checkpoint + 1}: no progress for ${seconds} s ` +
          `with ${behind.entries} entries waiting`,
      ];
    });
  }

  return {
    status: async () => [...statuses.values()].map((s) => ({ ...s })),
    async readiness() {
      const problems = [...statuses.values()]
        .filter((s) => s.failure)
        .map((s) => `projection ${s.projection} stopped at entry ${s.failure?.index}: ${s.failure?.error}`);
      problems.push(...(await stuck()));
      if (problems.length > 0) throw new Error(problems.join('; '));
      return { quarantined: await listQuarantined(pool) };
    },
    async close() {
      closed = true;
      await wakeup.close();
      await Promise.all(runs);
    },
  };
}

export interface ProjectionLag {
  projection: string;
  checkpoint: number;
  /** Ledger entries after its checkpoint (the head index less the checkpoint). */
  entries: number;
  /** How long ago the first of those was recorded (0 at the head). */
  seconds: number;
}

/** How far behind the ledger head each projection's checkpoint is. */
export async function listLag(pool: pg.Pool): Promise<ProjectionLag[]> {
  const { rows } = await pool.query<{
    projection: string;
    checkpoint: string;
    entries: string;
    seconds: number;
  }>(
    `select c.projection, c.last_index as checkpoint, greatest(h.tree_size - 1 - c.last_index, 0) as entries,
            coalesce(greatest(extract(epoch from now() - e.recorded_at), 0), 0)::float8 as seconds
       from projection_checkpoints c cross join ledger_head h
       left join ledger_entries e on e.index = c.last_index + 1
      order by c.projection`,
  );
  return rows.map((row) => ({
    projection: row.projection,
    checkpoint: Number(row.checkpoint),
    entries: Number(row.entries),
    seconds: row.seconds,
  }));
}

export async function listQuarantined(pool: pg.Pool): Promise<QuarantinedStream[]> {
  const { rows } = await pool.query<{
    projection: string;
    stream: string;
    index: string;
    error: string;
    since: Date;
  }>(
    'select projection, stream, index, error, quarantined_at as since from projection_quarantine order by index',
  );
  return rows.map((row) => ({ ...row, index: Number(row.index), since: row.since.toISOString() }));
}
