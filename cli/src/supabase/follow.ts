// The dual run: after the first pass, each user and commitment the source changes is imported or
// brought to the source's state (import.ts). The changes come by logical replication where the
// source allows it (replication.ts), or else by reading the source again every interval for the
// rows written since the last look (by the timestamps the app keeps). How far it got is kept in
// import_follow (and, replicating, in the source's slot), so a follower stopped and started again
// goes on from there.
import { setTimeout as sleep } from 'node:timers/promises';
import { createImporter, type ImportDeps, type ImportOptions, importAll } from './import.ts';
import { openChangeStream, prepareReplication, replicationRefusal, slotName } from './replication.ts';
import type { RowReport } from './report.ts';
import type { Source, SourceChanges } from './source.ts';

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

/** How to learn of the source's changes: `auto` replicates where the source allows it, else polls. */
export type ChangesMode = 'poll' | 'replication' | 'auto';

/** How a follower learns of the source's changes, and why it polls when it could be asked to replicate. */
export type ChangeFeed = { by: 'replication'; slot: string } | { by: 'polling'; reason?: string };

/** `replication` was asked for and the source does not allow it. */
export class ReplicationUnavailable extends Error {}

export interface FollowOptions extends ImportOptions {
  /** Milliseconds between the starts of looks (default 1000); replicating, between reports to the source when idle. */
  intervalMs?: number;
  signal: AbortSignal;
  /** Default `poll`; the others need `sourceUrl`. */
  changes?: ChangesMode;
  /** The source, for the replication connection (the `source` reader holds a snapshot open). */
  sourceUrl?: string;
  /** After the first pass, with what it did and how the changes will come. */
  onFirstPass?(reports: RowReport[], feed: ChangeFeed): void | Promise<void>;
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
  // The slot, if any, before the first pass's snapshot: what commits after that snapshot is streamed.
  const feed = await chooseFeed(deps.ledger.origin, options);
  const firstLook = await source.refresh();
  const importer = await createImporter(deps, options);
  const firstPass = await importAll(importer, source, options);
  await options.onFirstPass?.(firstPass, feed.by === 'replication' ? { by: feed.by, slot: feed.slot } : feed);
  let watermark = saved?.watermark ?? firstLook;
  await save(deps, key, watermark, null);

  /**
   * The one step of either way of following: what changed, brought over. `at` is the source's clock
   * when its snapshot began (at `clock` here); lags are measured for changes at or after `since`.
   */
  async function applyChanges(changes: SourceChanges, look: { at: Date; clock: number; since: Date }) {
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
        if (applied.events > 0 && written && written >= look.since)
          lagsMs.push(look.at.getTime() - written.getTime() + (performance.now() - look.clock));
      }
    }
    return {
      at: look.at,
      users: changes.users.size,
      commitments: ids.length,
      events,
      lagsMs,
      reports: importer.reports.filter((r) => r.reasons.length > 0),
    };
  }
  const lagSeconds = (pass: FollowPass) => (pass.lagsMs.length > 0 ? Math.max(...pass.lagsMs) / 1000 : null);

  if (feed.by === 'replication') {
    const stream = await openChangeStream(feed.url, feed.slot, feed.confirmed);
    try {
      while (!signal.aborted) {
        const streamed = await stream.next(options.intervalMs ?? 1000, signal);
        if (!streamed) {
          stream.acknowledge();
          await save(deps, key, watermark, null);
          continue;
        }
        const at = await source.refresh(streamed.xids);
        const pass = await applyChanges(streamed.changes, {
          at,
          clock: performance.now(),
          since: new Date(0),
        });
        // Only now is it written: a follower stopped before this gets these transactions again.
        stream.acknowledge(streamed.endLsn);
        watermark = streamed.committedAt;
        await save(deps, key, watermark, lagSeconds(pass));
        options.onPass?.(pass);
      }
    } finally {
      await stream.close();
    }
    return;
  }

  // Looks begin an interval apart (a look that took longer is followed at once): a change waits
  // at most the interval and one look, not the interval and two.
  let lookedAt = performance.now();
  while (!signal.aborted) {
    const wait = lookedAt + (options.intervalMs ?? 1000) - performance.now();
    await sleep(Math.max(0, wait), undefined, { signal }).catch(() => undefined);
    if (signal.aborted) break;
    lookedAt = performance.now();
    const at = await source.refresh();
    const clock = performance.now();
    const changes = await source.changedSince(new Date(watermark.getTime() - OVERLAP_MS));
    const pass = await applyChanges(changes, { at, clock, since: watermark });
    watermark = at;
    await save(deps, key, watermark, lagSeconds(pass));
    options.onPass?.(pass);
  }
}

type ChosenFeed =
  | { by: 'replication'; slot: string; url: string; confirmed: string }
  | { by: 'polling'; reason?: string };

/** Replication where asked for and the source allows it (publication and slot made ready), else polling. */
async function chooseFeed(origin: string, options: FollowOptions): Promise<ChosenFeed> {
  const mode = options.changes ?? 'poll';
  if (mode === 'poll') return { by: 'polling' };
  const url = options.sourceUrl;
  if (!url) throw new Error('following the source by replication needs its URL (sourceUrl)');
  let refusal = await replicationRefusal(url);
  if (refusal === undefined) {
    const slot = slotName(origin);
    try {
      const { confirmed } = await prepareReplication(url, slot);
      return { by: 'replication', slot, url, confirmed };
    } catch (error) {
      refusal = (error as Error).message;
    }
  }
  if (mode === 'replication')
    throw new ReplicationUnavailable(`the source cannot be followed by logical replication: ${refusal}`);
  return { by: 'polling', reason: refusal };
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
