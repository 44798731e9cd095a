import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createScratchDatabase, type DatabaseHandle, startEmbeddedPostgres } from '@connect/db';

export interface Metric {
  value: number;
  unit: string;
}

export type Metrics = Record<string, Metric>;

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

export function median(values: number[]): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    50,
  );
}

export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export type BenchDatabase = DatabaseHandle;

/** A fresh database: on DATABASE_URL's server when set, else a new embedded PostgreSQL. */
export async function benchDatabase(poolSize: number): Promise<BenchDatabase> {
  let adminUrl = process.env.DATABASE_URL;
  let stopEmbedded: (() => Promise<void>) | undefined;
  let dir: string | undefined;
  if (!adminUrl) {
    dir = await mkdtemp(path.join(os.tmpdir(), 'connect-bench-'));
    await chmod(dir, 0o711);
    const embedded = await startEmbeddedPostgres(dir);
    adminUrl = embedded.url;
    stopEmbedded = embedded.stop;
  }
  const database = await createScratchDatabase(adminUrl, 'connect_bench', poolSize);
  return {
    ...database,
    close: async () => {
      await database.close();
      await stopEmbedded?.();
      if (dir) await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Runs `clients` loops of `operation` for `seconds`, recording each operation's latency. */
export async function closedLoop(
  clients: number,
  seconds: number,
  operation: (client: number, i: number) => Promise<void>,
): Promise<{ count: number; perSecond: number; latenciesMs: number[] }> {
  const latencies: number[] = [];
  const deadline = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      for (let i = 0; performance.now() < deadline; i++) {
        const t0 = performance.now();
        await operation(client, i);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { count: latencies.length, perSecond: latencies.length / elapsed, latenciesMs: latencies };
}

export async function writeResults(metrics: Metrics): Promise<void> {
  const rows = Object.entries(metrics).map(
    ([key, m]) => `${key.padEnd(36)} ${String(m.value).padStart(12)} ${m.unit}`,
  );
  console.log(`\n${'metric'.padEnd(36)} ${'value'.padStart(12)} unit\n${rows.join('\n')}`);
  const out = process.env.BENCH_OUT;
  if (!out) return;
  let previous: Metrics = {};
  try {
    previous = JSON.parse(await readFile(out, 'utf8')) as Metrics;
  } catch {}
  await writeFile(out, `${JSON.stringify({ ...previous, ...metrics }, null, 2)}\n`);
  console.log(`\nwritten to ${out}`);
}
