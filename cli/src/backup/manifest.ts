// What a backup folder holds: `data/` shaped like CONNECT_DATA_DIR (the database files as
// pg_backup_start/stop copied them, with backup_label and the WAL the copy needs; documents; key
// files) and `manifest.json`, written last, so a folder without one is no backup.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { CopiedFile } from './copy-files.ts';
import { hashFile } from './copy-files.ts';

export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_FORMAT = 'connect-backup/1';

export interface BackupManifest {
  format: typeof MANIFEST_FORMAT;
  /** When pg_backup_start was called, and when the backup was complete (ISO 8601). */
  startedAt: string;
  finishedAt: string;
  origin: string;
  verifierKey: string;
  /** The newest signed checkpoint when the copy was finished: every restore of this backup extends it. */
  checkpoint: { treeSize: number; rootHash: string; note: string } | null;
  postgres: { version: string; startLsn: string; stopLsn: string; timeline: number };
  /** CONNECT_WAL_ARCHIVE when the backup was taken: where a restore finds the WAL after it. */
  walArchive: string | null;
  files: CopiedFile[];
}

export async function readManifest(dir: string): Promise<BackupManifest> {
  const text = await readFile(path.join(dir, MANIFEST_FILE), 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT')
      throw new Error(`${dir} is no complete Connect backup: it has no ${MANIFEST_FILE}`);
    throw error;
  });
  const manifest = JSON.parse(text) as BackupManifest;
  if (manifest.format !== MANIFEST_FORMAT)
    throw new Error(`${dir}: unknown backup format ${JSON.stringify(manifest.format)}`);
  return manifest;
}

/** Every file of the manifest has its size and SHA-256; throws naming the first that does not. */
export async function checkFiles(dir: string, manifest: BackupManifest): Promise<void> {
  for (const file of manifest.files) {
    const actual = await hashFile(path.join(dir, file.path)).catch(() => undefined);
    if (!actual) throw new Error(`backup ${dir} is damaged: ${file.path} is missing`);
    if (actual.size !== file.size || actual.sha256 !== file.sha256)
      throw new Error(`backup ${dir} is damaged: ${file.path} does not match its SHA-256 in the manifest`);
  }
}
