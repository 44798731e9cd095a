import { parseArgs } from 'node:util';
import { loadConfig, migrate, openDatabase } from '@connect/db';
import { takeBackup } from '../backup/base-backup.ts';

export const EXTERNAL_DATABASE_REFUSAL =
  'handles the embedded PostgreSQL only; with DATABASE_URL, back up that server with its own tools ' +
  '(pg_basebackup -Xs, archive_command, recovery_target_*): see "Backups and point-in-time recovery" in README.md';

/**
 * connect backup DIR: a consistent base backup of the embedded PostgreSQL (low-level API), the
 * documents and the key files, with a manifest; recorded for connect_backup_last_success_timestamp_seconds.
 */
export async function backupCommand(args: string[]): Promise<number> {
  const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
  const dir = positionals[0];
  if (!dir || positionals.length > 1) throw new Error('usage: connect backup DIR');
  const config = loadConfig(process.env);
  if (config.databaseUrl) {
    console.error(`connect: connect backup ${EXTERNAL_DATABASE_REFUSAL}`);
    return 2;
  }
  const database = await openDatabase(config, { create: false });
  try {
    await migrate(database.pool);
    const { rows } = await database.pool.query<{ archiving: boolean }>(
      `select current_setting('archive_mode') <> 'off' as archiving`,
    );
    const result = await takeBackup({
      dataDir: config.dataDir,
      url: database.url,
      dir,
      trigger: 'command',
      walArchive: config.walArchive,
    });
    const { checkpoint } = result.manifest;
    console.log(
      `backed up ${config.dataDir} to ${result.dir}: ${result.manifest.files.length} files, ` +
        `${(result.bytes / 1048576).toFixed(1)} MB, ledger at tree size ${checkpoint?.treeSize ?? 0}`,
    );
    if (!rows[0]?.archiving)
      console.log(
        'the database archives no WAL (CONNECT_WAL_ARCHIVE unset when it started): this backup restores to the moment it was taken, not later',
      );
    return 0;
  } finally {
    await database.close();
  }
}
