// The WAL archive grows with every segment the embedded PostgreSQL finishes. Once scheduled
// backups are rotated, the segments before the oldest kept backup's first one can serve no
// restore (a restore starts from a backup and replays forward), so they go, as pg_archivecleanup
// would remove them: by position, whatever their timeline; timeline histories stay.
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { BackupManifest } from './manifest.ts';

const SEGMENT = /^[0-9A-F]{24}$/;
/** Segments, a backup's label (`<segment>.<offset>.backup`) and a timeline switch's `.partial`. */
const ARCHIVED_WAL = /^([0-9A-F]{24})(\.[0-9A-F]{8}\.backup|\.partial)?$/;

/** The first WAL segment a backup needs: the earliest it copied. */
export function firstWalSegment(manifest: Pick<BackupManifest, 'files'>): string | undefined {
  return manifest.files
    .map((file) => path.posix.basename(file.path))
    .filter((name) => SEGMENT.test(name))
    .sort((a, b) => a.slice(8).localeCompare(b.slice(8)))[0];
}

/** The archived files that lie before `oldestNeeded` (compared by log and segment number). */
export function walBefore(archived: readonly string[], oldestNeeded: string): string[] {
  const position = oldestNeeded.slice(8);
  return archived.filter((name) => {
    const segment = ARCHIVED_WAL.exec(name)?.[1];
    return segment !== undefined && segment.slice(8) < position;
  });
}

/** Deletes the archived WAL before `oldestNeeded` from `archive`; returns how many files. */
export async function pruneWalArchive(archive: string, oldestNeeded: string): Promise<number> {
  const doomed = walBefore(await readdir(archive), oldestNeeded);
  for (const name of doomed) await rm(path.join(archive, name), { force: true });
  return doomed.length;
}
