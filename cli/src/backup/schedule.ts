// Scheduled backups of `connect start`: at each time CONNECT_BACKUP_SCHEDULE names, a backup into
// a timestamped folder of CONNECT_BACKUP_DIR; after one succeeds, only the newest
// CONNECT_BACKUP_KEEP complete backups stay, and the WAL archive keeps only what they need.
import { existsSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { BackupScheduleConfig } from '@connect/db';
import { Cron } from 'croner';
import { type BackupResult, takeBackup } from './base-backup.ts';
import { MANIFEST_FILE, readManifest } from './manifest.ts';
import { firstWalSegment, pruneWalArchive } from './wal-prune.ts';

const FOLDER = /^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$/;

/** A backup's folder name: its start time, sortable as text (`2026-11-30T03-00-00-000Z`). */
export function backupFolderName(at: Date): string {
  return at.toISOString().replace(/[:.]/g, '-');
}

/**
 * Which folders to delete so that the newest `keep` backups stay. Only folders named by
 * backupFolderName are considered; `complete` says which hold a manifest (a backup that failed
 * midway is never counted among those kept, and is deleted once older than a kept one).
 */
export function backupsToRemove(
  names: string[],
  keep: number,
  complete: (name: string) => boolean,
): string[] {
  const ours = names.filter((name) => FOLDER.test(name)).sort();
  const kept = ours.filter(complete).slice(-keep);
  const newest = kept.at(-1);
  if (newest === undefined) return [];
  return ours.filter((name) => !kept.includes(name) && name < newest);
}

/** Prunes the WAL archive to what the oldest complete backup left in `dir` needs; 0 when none. */
async function pruneArchive(dir: string, archive: string): Promise<number> {
  const oldest = (await readdir(dir))
    .filter((name) => FOLDER.test(name) && existsSync(path.join(dir, name, MANIFEST_FILE)))
    .sort()[0];
  if (!oldest) return 0;
  const first = firstWalSegment(await readManifest(path.join(dir, oldest)));
  return first ? pruneWalArchive(archive, first) : 0;
}

/** The next `count` times the schedule names after `after`. */
export function nextBackupTimes(schedule: string, after: Date, count: number): Date[] {
  const cron = new Cron(schedule, { paused: true });
  try {
    return cron.nextRuns(count, after);
  } finally {
    cron.stop();
  }
}

export interface BackupLog {
  info(details: object, message: string): void;
  error(details: object, message: string): void;
}

export interface ScheduledBackups {
  stop(): Promise<void>;
}

/**
 * Runs backups on the schedule until stopped; a backup still running when the next is due is not
 * doubled, and one running when the service stops is abandoned (its partial folder deleted).
 */
export function scheduleBackups(
  backups: BackupScheduleConfig,
  source: { dataDir: string; url: string; walArchive: string | undefined },
  log: BackupLog,
): ScheduledBackups {
  let running: Promise<unknown> | undefined;
  const stopping = new AbortController();
  const run = async (): Promise<BackupResult> => {
    const dir = path.join(backups.dir, backupFolderName(new Date()));
    const result = await takeBackup({ ...source, dir, trigger: 'schedule', signal: stopping.signal });
    const names = await readdir(backups.dir);
    const removed = backupsToRemove(names, backups.keep, (name) =>
      existsSync(path.join(backups.dir, name, MANIFEST_FILE)),
    );
    for (const name of removed) await rm(path.join(backups.dir, name), { recursive: true, force: true });
    const walPruned = source.walArchive ? await pruneArchive(backups.dir, source.walArchive) : 0;
    log.info(
      {
        dir: result.dir,
        bytes: result.bytes,
        treeSize: result.manifest.checkpoint?.treeSize ?? 0,
        removed,
        walPruned,
      },
      'backup taken',
    );
    return result;
  };
  const cron = new Cron(backups.schedule, { protect: true }, async () => {
    running = run().catch((error: Error) => {
      if (!stopping.signal.aborted) log.error({ err: error.message }, 'scheduled backup failed');
    });
    await running;
  });
  return {
    stop: async () => {
      cron.stop();
      stopping.abort(new Error('the service is stopping'));
      await running;
    },
  };
}
