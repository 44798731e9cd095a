// Point-in-time recovery of a base backup into a new data directory: the copy, recovery.signal, a
// restore_command reading the WAL archive, a recovery target, and the embedded PostgreSQL started
// with them (for that run only) until it has promoted itself at the target.
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type EmbeddedPostgres, embeddedPaths, runAs, startEmbeddedPostgres } from '@connect/db';
import pg from 'pg';
import { copyFile, copyTree } from './copy-files.ts';

const RECOVERY_TIMEOUT_MS = 6 * 3600_000;

/** Copies the backup's `data/` into `dataDir`, the database's files owned by the server's user. */
export async function copyBackup(backupDir: string, dataDir: string): Promise<void> {
  const from = path.join(backupDir, 'data');
  const owner = runAs();
  await mkdir(dataDir, { recursive: true, mode: 0o711 });
  await chmod(dataDir, 0o711);
  await mkdir(path.join(dataDir, 'postgres'), { recursive: true, mode: 0o700 });
  if (owner.uid !== undefined && owner.gid !== undefined)
    await chown(path.join(dataDir, 'postgres'), owner.uid, owner.gid);
  await copyTree({
    from: path.join(from, 'postgres'),
    to: path.join(dataDir, 'postgres'),
    prefix: '',
    owner,
  });
  await copyTree({ from: path.join(from, 'documents'), to: path.join(dataDir, 'documents'), prefix: '' });
  for (const entry of await readdir(from, { withFileTypes: true })) {
    if (entry.isFile()) await copyFile(path.join(from, entry.name), path.join(dataDir, entry.name));
  }
}

export interface RecoverySettings {
  /** CONNECT_WAL_ARCHIVE of the backed-up service; undefined → the backup's own WAL only. */
  walArchive: string | undefined;
  /** recovery_target_time / recovery_target_xid (with inclusive), none → to the end of the WAL. */
  target?: { time: string } | { xid: string };
}

/**
 * Starts the copied database in archive recovery and waits until it has reached the target and
 * promoted itself (or the WAL ran out, without a target). The server is left running.
 */
export async function recover(dataDir: string, settings: RecoverySettings): Promise<EmbeddedPostgres> {
  const { pgData, logFile } = embeddedPaths(dataDir);
  const owner = runAs();
  const signal = path.join(pgData, 'recovery.signal');
  await writeFile(signal, '', { mode: 0o600 });
  if (owner.uid !== undefined && owner.gid !== undefined) await chown(signal, owner.uid, owner.gid);
  const recoverySettings: Record<string, string> = {
    // Without an archive there is nothing to fetch ("false" fails): the copy's own pg_wal is used.
    restore_command: settings.walArchive ? `cp '${settings.walArchive}/%f' '%p'` : 'false',
    recovery_target_action: 'promote',
    recovery_target_timeline: 'latest',
  };
  if (settings.target && 'time' in settings.target)
    recoverySettings.recovery_target_time = settings.target.time;
  if (settings.target && 'xid' in settings.target) {
    recoverySettings.recovery_target_xid = settings.target.xid;
    recoverySettings.recovery_target_inclusive = 'on';
  }
  const logStart = existsSync(logFile) ? (await readFile(logFile)).length : 0;
  const failure = async (what: string) => {
    const log = existsSync(logFile) ? (await readFile(logFile)).subarray(logStart).toString('utf8') : '';
    const fatal = log.split('\n').filter((line) => /FATAL|PANIC/.test(line));
    const hint = fatal.some((line) =>
      line.includes('recovery ended before configured recovery target was reached'),
    )
      ? ': the backup and the WAL archive end before that point (WAL is archived at least once a minute; restore to latest for the newest state)'
      : fatal.length > 0
        ? `: ${fatal.join('; ')}`
        : '';
    return new Error(`${what}${hint} (see ${logFile})`);
  };
  let server: EmbeddedPostgres;
  try {
    server = await startEmbeddedPostgres(dataDir, {
      create: false,
      settings: recoverySettings,
      startTimeoutMs: RECOVERY_TIMEOUT_MS,
    });
  } catch {
    throw await failure('the recovery did not start');
  }
  const deadline = Date.now() + RECOVERY_TIMEOUT_MS;
  for (;;) {
    const client = new pg.Client({ connectionString: server.url });
    client.on('error', () => undefined);
    const inRecovery = await client
      .connect()
      .then(() => client.query<{ recovering: boolean }>('select pg_is_in_recovery() as recovering'))
      .then(({ rows }) => rows[0]?.recovering ?? true)
      .catch(() => undefined)
      .finally(() => client.end().catch(() => undefined));
    if (inRecovery === false) return server;
    if (inRecovery === undefined && !existsSync(path.join(pgData, 'postmaster.pid'))) {
      await server.stop();
      throw await failure('the recovery stopped');
    }
    if (Date.now() > deadline) {
      await server.stop();
      throw await failure('the recovery did not finish in time');
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
