// The dual run: after the first pass, the source is read again every interval for the rows written
// since the last look (by the timestamps the app keeps), and each user and commitment found is
// imported or brought to the source's state (import.ts). The time looked up to is kept in
// import_follow, so a follower stopped and started again goes on from there.
import { setTimeout as sleep } from 'node:timers/promises';
import { createImporter, type ImportDeps, type ImportOptions, importAll } from './import.ts';
import type { RowReport } from './report.ts';
import type { Source } from './source.ts';

/**
 * How far back each look reaches before the last one: a transaction that stamped its rows before
 * the last look but committed after it is still found, if it took less than this.
 */
export const OVERLAP_MS = 10_000;

export interface FollowPass {
  /** The source's clock when the pass began. */
  at: Date;
  users: number;
  commitments: number;
  /** Events appended to the ledger. */
  events: number;
  /** Source write → appended here, for each commitment changed since the last look. */
  lagsMs: number[];
  /** What the pass did with rows that have something to say (failed, or imported with remarks). */
  reports: RowReport[];
}

export interface FollowOptions extends ImportOptions {
  /** Milliseconds between looks (default 1000). */
  intervalMs?: number;
  signal: AbortSignal;
  /** After the first pass, with what it did. */
  onFirstPass?(reports: RowReport[]): void | Promise<void>;
  onPass?(pass: FollowPass): void;
}

/** host:port/database of a source URL: its name in import_follow, without credentials. */
export function sourceKey(url: string): string {
  const parsed = new URL(url);
  return `${parsed.hostname}:${parsed.port || '5432'}${parsed.pathname}`;
}

export async function followSupabase(
  source: Source,
  deps: ImportDeps,
  key: string,
  options: FollowOptions,
): Promise<void> {
  const { db } = deps;
  const { signal } = options;
  const saved = await db
    .selectFrom('import_follow')
    .select('watermark')
    .where('source', '=', key)
    .executeTakeFirst();
  const firstLook = await source.refresh();
  const importer = await createImporter(deps, options);
  const firstPass = await importAll(importer, source, options);
  await options.onFirstPass?.(firstPass);
  let watermark = saved?.watermark ?? firstLook;
  await save(deps, key, watermark, null);

  while (!signal.aborted) {
    await sleep(options.intervalMs ?? 1000, undefined, { signal }).catch(() => undefined);
    if (signal.aborted) break;
    const at = await source.refresh();
    const clock = performance.now();
    const changes = await source.changedSince(new Date(watermark.getTime() - OVERLAP_MS));
    importer.reports.splice(0);
    if (changes.users.size > 0) await importer.users(source, [...changes.users.keys()]);
    if (changes.types.size > 0) await importer.types(await source.types(), true);
    const ids = [...changes.commitments.keys()];
    const lagsMs: number[] = [];
    let events = 0;
    const batchSize = options.batchSize ?? 50;
    for (let start = 0; start < ids.length; start += batchSize) {
      for (const applied of await importer.commitments(
        await source.commitments(ids.slice(start, start + batchSize)),
      )) {
        events += applied.events;
        const written = changes.commitments.get(applied.id);
        if (applied.events > 0 && written && written >= watermark)
          lagsMs.push(at.getTime() - written.getTime() + (performance.now() - clock));
      }
    }
    watermark = at;
    await save(deps, key, watermark, lagsMs.length > 0 ? Math.max(...lagsMs) / 1000 : null);
    options.onPass?.({
      at,
      users: changes.users.size,
      commitments: ids.length,
      events,
      lagsMs,
      reports: importer.reports.filter((r) => r.reasons.length > 0),
    });
  }
}

async function save(deps: ImportDeps, key: string, watermark: Date, lagSeconds: number | null) {
  const now = new Date();
  const applied = lagSeconds === null ? {} : { lag_seconds: lagSeconds, applied_at: now };
  await deps.db
    .insertInto('import_follow')
    .values({ source: key, watermark, polled_at: now, ...applied })
    .onConflict((oc) => oc.column('source').doUpdateSet({ watermark, polled_at: now, ...applied }))
    .execute();
}
