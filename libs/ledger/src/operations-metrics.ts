// The Prometheus series of a process that holds the ledger: its size and checkpoint age, appends
// and batch sizes, the continuous audit and the data directory's free space (the server itself
// reports its database pools: watchPool).
// Collected at scrape time (one query for the ledger's head and newest checkpoint per scrape);
// appends only increment counters.
import { statfs } from 'node:fs/promises';
import type { Database } from '@connect/db';
import { type Kysely, sql } from 'kysely';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Appender } from './append.ts';
import type { ContinuousAudit } from './continuous-audit.ts';

export interface OperationsSources {
  db: Kysely<Database>;
  /** The appender whose appends are counted (the processes that append). */
  appender?: Pick<Appender, 'observe'>;
  audit?: ContinuousAudit;
  /** CONNECT_DATA_DIR, whose filesystem's free space is reported. */
  dataDir?: string;
}

const SCRAPE_TIMEOUT_MS = 5000;

interface LedgerSample {
  treeSize: number;
  checkpointSize: number;
  checkpointAgeSeconds: number;
}

/** Registers the series on `registry`; returns the function that stops counting appends. */
export function registerOperationsMetrics(registry: Registry, sources: OperationsSources): () => void {
  // The gauges that read the database share one query per scrape: a scrape starts every collect
  // at once, so they all find the query under way.
  let sample: Promise<LedgerSample | undefined> | undefined;
  const ledgerSample = () => {
    sample ??= readLedgerSample(sources.db).finally(() => {
      sample = undefined;
    });
    return sample;
  };

  new Gauge({
    name: 'connect_database_up',
    help: 'Whether the database answered the last scrape (1) or not (0) within 5 s',
    registers: [registry],
    async collect() {
      this.set((await ledgerSample()) ? 1 : 0);
    },
  });
  const fromSample = (name: string, help: string, pick: (s: LedgerSample) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        const value = await ledgerSample();
        if (value) this.set(pick(value));
      },
    });
  fromSample(
    'connect_ledger_entries',
    'Entries in the ledger (its tree size, as the head says)',
    (s) => s.treeSize,
  );
  fromSample(
    'connect_ledger_checkpoint_tree_size',
    'Tree size of the newest signed checkpoint',
    (s) => s.checkpointSize,
  );
  fromSample(
    'connect_ledger_checkpoint_age_seconds',
    'Seconds since the newest signed checkpoint was signed (database clock)',
    (s) => s.checkpointAgeSeconds,
  );

  registerBackupMetrics(registry, sources.db);
  registerFollowMetrics(registry, sources.db);
  if (sources.dataDir) registerDataDirMetrics(registry, sources.dataDir);
  if (sources.audit) registerAuditMetrics(registry, sources.audit);
  return sources.appender ? registerAppendMetrics(registry, sources.appender) : () => undefined;
}

async function readLedgerSample(db: Kysely<Database>): Promise<LedgerSample | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(resolve, SCRAPE_TIMEOUT_MS, undefined);
  });
  const query = sql<{ tree_size: number; checkpoint_size: number; age: number }>`
    select h.tree_size, c.tree_size as checkpoint_size,
      greatest(0, extract(epoch from now() - c.signed_at))::float8 as age
    from ledger_head h
    cross join lateral (
      select tree_size, signed_at from ledger_checkpoints order by tree_size desc limit 1
    ) c`
    .execute(db)
    .then(({ rows: [row] }) =>
      row
        ? { treeSize: row.tree_size, checkpointSize: row.checkpoint_size, checkpointAgeSeconds: row.age }
        : undefined,
    )
    .catch(() => undefined);
  try {
    return await Promise.race([query, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function registerAppendMetrics(registry: Registry, appender: Pick<Appender, 'observe'>): () => void {
  const appends = new Counter({
    name: 'connect_ledger_appends_total',
    help: 'Appends to the ledger by outcome (appended, replayed, version_conflict, …, failed: an error)',
    labelNames: ['outcome'],
    registers: [registry],
  });
  // Present at 0 from the start, so a rate over them exists before the first failure.
  appends.inc({ outcome: 'appended' }, 0);
  appends.inc({ outcome: 'failed' }, 0);
  const batches = new Histogram({
    name: 'connect_ledger_append_batch_entries',
    help: 'Entries each committed append batch (one transaction, one checkpoint) wrote',
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000],
    registers: [registry],
  });
  return appender.observe({
    appended: (outcome) => appends.inc({ outcome }),
    committed: (entries) => batches.observe(entries),
  });
}

/** The continuous audit's series, on the registry of whichever thread runs it. */
export function registerAuditMetrics(registry: Registry, audit: ContinuousAudit): void {
  new Gauge({
    name: 'connect_audit_last_success_timestamp_seconds',
    help: 'When the continuous ledger audit last completed a round with everything matching (0: not yet)',
    registers: [registry],
    collect() {
      this.set((audit.status().lastSuccessAt ?? 0) / 1000);
    },
  });
  new Counter({
    name: 'connect_audit_failures_total',
    help: 'Continuous ledger audit rounds that found the ledger not matching (the audit then stops)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(audit.status().failures);
    },
  });
  new Counter({
    name: 'connect_audit_signatures_checked_total',
    help: 'Checkpoint signatures the continuous audit checked (a note signed in this process, or checked before, is not checked again)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(audit.status().signaturesChecked);
    },
  });
  new Gauge({
    name: 'connect_audit_verified_entries',
    help: 'Tree size up to which the continuous audit has verified the ledger',
    registers: [registry],
    collect() {
      this.set(audit.status().verifiedEntries);
    },
  });
}

/**
 * The newest successful backup by trigger (`command`, `schedule`), from the `backups` table that
 * every backup writes: absent until the first one, so ConnectBackupStale stays silent without backups.
 */
function registerBackupMetrics(registry: Registry, db: Kysely<Database>): void {
  new Gauge({
    name: 'connect_backup_last_success_timestamp_seconds',
    help: 'When the newest successful backup (connect backup, or the schedule of connect start) finished',
    labelNames: ['trigger'],
    registers: [registry],
    async collect() {
      const rows = await rowsWithinScrape(
        sql<{ trigger: string; at: number }>`
          select trigger, extract(epoch from max(finished_at))::float8 as at from backups group by trigger`,
        db,
      );
      for (const row of rows) this.set({ trigger: row.trigger }, row.at);
    },
  });
}

/**
 * The dual run from Supabase (connect migrate-from-supabase --follow), per source: how far behind
 * its newest change arrived, and when the follower last looked; absent without a follower.
 */
function registerFollowMetrics(registry: Registry, db: Kysely<Database>): void {
  let sample: Promise<{ source: string; lag: number | null; polled: number }[]> | undefined;
  const read = () => {
    sample ??= rowsWithinScrape(
      sql<{ source: string; lag: number | null; polled: number }>`
        select source, lag_seconds as lag, extract(epoch from polled_at)::float8 as polled from import_follow`,
      db,
    ).finally(() => {
      sample = undefined;
    });
    return sample;
  };
  new Gauge({
    name: 'connect_supabase_follow_lag_seconds',
    help: 'Source commit to written here, of the newest change the Supabase follower brought over',
    labelNames: ['source'],
    registers: [registry],
    async collect() {
      for (const row of await read()) if (row.lag !== null) this.set({ source: row.source }, row.lag);
    },
  });
  new Gauge({
    name: 'connect_supabase_follow_last_poll_timestamp_seconds',
    help: 'When the Supabase follower last read its source for changes',
    labelNames: ['source'],
    registers: [registry],
    async collect() {
      for (const row of await read()) this.set({ source: row.source }, row.polled);
    },
  });
}

/** A query's rows, or none when it fails or outlasts a scrape. */
async function rowsWithinScrape<T>(
  query: { execute(db: Kysely<Database>): Promise<{ rows: T[] }> },
  db: Kysely<Database>,
): Promise<T[]> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<T[]>((resolve) => {
    timer = setTimeout(resolve, SCRAPE_TIMEOUT_MS, []);
  });
  const rows = query
    .execute(db)
    .then((result) => result.rows)
    .catch(() => []);
  return Promise.race([rows, timeout]).finally(() => clearTimeout(timer));
}

function registerDataDirMetrics(registry: Registry, dataDir: string): void {
  let stats: Promise<{ free: number; size: number } | undefined> | undefined;
  const read = () => {
    stats ??= statfs(dataDir)
      .then((s) => ({ free: s.bavail * s.bsize, size: s.blocks * s.bsize }))
      .catch(() => undefined)
      .finally(() => {
        stats = undefined;
      });
    return stats;
  };
  new Gauge({
    name: 'connect_data_dir_free_bytes',
    help: "Bytes free to the service on CONNECT_DATA_DIR's filesystem",
    registers: [registry],
    async collect() {
      const s = await read();
      if (s) this.set(s.free);
    },
  });
  new Gauge({
    name: 'connect_data_dir_size_bytes',
    help: "Size in bytes of CONNECT_DATA_DIR's filesystem",
    registers: [registry],
    async collect() {
      const s = await read();
      if (s) this.set(s.size);
    },
  });
}
