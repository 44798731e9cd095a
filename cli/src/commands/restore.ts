import { existsSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { documentDigest } from '@connect/command';
import {
  createKysely,
  createPool,
  type DatabaseHandle,
  type KeyRing,
  loadConfig,
  MASTER_KEY_FILE,
} from '@connect/db';
import { openBodyCipher } from '@connect/ledger';
import { finishRestore, type RestoreReport } from '../backup/after-restore.ts';
import { copyFile } from '../backup/copy-files.ts';
import { archivedDocumentsDir } from '../backup/document-archive.ts';
import { type BackupManifest, checkFiles, readManifest } from '../backup/manifest.ts';
import { copyBackup, recover } from '../backup/recovery.ts';
import { describeTarget, parseRestoreTarget, type RestoreTarget } from '../backup/restore-target.ts';
import { EXTERNAL_DATABASE_REFUSAL } from './backup.ts';

const USAGE =
  'usage: connect restore DIR --to <ISO time | ledger index | latest> --data-dir NEW [--wal-archive DIR] [--documents DIR]';

/**
 * connect restore DIR --to TARGET --data-dir NEW: the backup in DIR, replayed from the WAL archive
 * to TARGET, as a complete data directory NEW that `connect start` serves: accounts (every session
 * ended), documents, keys, read models rebuilt; then the audit and the consistency proof.
 */
export async function restoreCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      to: { type: 'string' },
      'data-dir': { type: 'string' },
      'wal-archive': { type: 'string' },
      documents: { type: 'string' },
    },
  });
  const backupDir = positionals[0];
  const target = values.to === undefined ? undefined : parseRestoreTarget(values.to);
  if (!backupDir || positionals.length > 1 || !values['data-dir'] || !target) throw new Error(USAGE);
  const config = loadConfig(process.env);
  if (config.databaseUrl) {
    console.error(`connect: connect restore ${EXTERNAL_DATABASE_REFUSAL}`);
    return 2;
  }
  const dataDir = path.resolve(values['data-dir']);
  if (existsSync(dataDir) && (await readdir(dataDir)).length > 0)
    throw new Error(`${dataDir} is not empty: restore into a new data directory`);
  const manifest = await readManifest(backupDir);
  const archiveGiven = values['wal-archive'] ?? config.walArchive ?? manifest.walArchive;
  const walArchive = archiveGiven ? path.resolve(archiveGiven) : undefined;
  if (walArchive && !/^[^'%\n]+$/.test(walArchive))
    throw new Error(
      'the WAL archive path must not hold quotes, % or newlines (it goes into restore_command)',
    );
  refuseTargetBeforeBackup(target, manifest);
  if (target.kind !== 'latest' && !walArchive)
    throw new Error(
      'a restore to a time or an entry needs the WAL archive: give --wal-archive or CONNECT_WAL_ARCHIVE',
    );
  await checkFiles(backupDir, manifest);
  // Backups never hold the master key: it comes from CONNECT_MASTER_KEY or this CONNECT_DATA_DIR.
  const masterKeyFile = path.join(path.resolve(config.dataDir), MASTER_KEY_FILE);
  if (!config.masterKeys && !existsSync(masterKeyFile))
    throw new Error(
      `the backup's data opens only with its master key, which no backup holds: set CONNECT_MASTER_KEY, or put the ${MASTER_KEY_FILE} file into ${path.resolve(config.dataDir)} (CONNECT_DATA_DIR)`,
    );

  const xid =
    target.kind === 'index'
      ? await transactionOfEntry(backupDir, `${dataDir}.probe`, walArchive, target.index)
      : undefined;
  await mkdir(dataDir, { recursive: true, mode: 0o711 });
  await copyBackup(backupDir, dataDir);
  if (!config.masterKeys) await copyFile(masterKeyFile, path.join(dataDir, MASTER_KEY_FILE));
  const server = await recover(dataDir, {
    walArchive,
    target:
      target.kind === 'time' ? { time: postgresTime(target.time) } : xid === undefined ? undefined : { xid },
  });
  let report: RestoreReport;
  const database = handleOn(server.url);
  try {
    report = await finishRestore(database, dataDir, manifest);
    // The documents the rebuilt read models name and the backup lacks, from the archive or --documents.
    const sources = [values.documents, walArchive && archivedDocumentsDir(walArchive)].filter(
      (from): from is string => Boolean(from),
    );
    if (sources.length > 0 && report.missingDocuments.length > 0) {
      // The restored data directory's master key (or CONNECT_MASTER_KEY) opens the sealed documents.
      const { keys } = await openBodyCipher(
        database.pool,
        { ...config, dataDir },
        { listen: false, create: false },
      );
      try {
        for (const from of sources)
          report.missingDocuments = await copyMissingDocuments(keys, dataDir, from, report.missingDocuments);
      } finally {
        await keys.close();
      }
    }
  } finally {
    await database.close();
    await server.stop();
  }
  console.log(
    `restored ${backupDir} (taken ${manifest.finishedAt}) to ${describeTarget(target)} into ${dataDir}`,
  );
  console.log(`ledger: ${report.treeSize} entries`);
  console.log(`sessions ended: ${report.sessionsRevoked} (everyone signs in again with their password)`);
  for (const p of report.projections) console.log(`read model ${p.name}: rebuilt from ${p.events} events`);
  console.log(report.audit.ok ? 'audit: passed' : `audit: FAILED: ${report.audit.problem}`);
  console.log(`consistency: ${report.consistency.detail}`);
  if (report.missingDocuments.length > 0)
    console.log(
      `documents missing (uploaded after the backup and not archived; copy them with --documents from the old data directory): ${report.missingDocuments.join(', ')}`,
    );
  if (!report.audit.ok || !report.consistency.ok) return 1;
  console.log(`start it with CONNECT_DATA_DIR=${dataDir} connect start`);
  return 0;
}

/** recovery_target_time wants PostgreSQL's timestamp syntax ("2026-11-30 14:05:00.000+00"), not ISO 8601's. */
function postgresTime(time: Date): string {
  return time.toISOString().replace('T', ' ').replace('Z', '+00');
}

function handleOn(url: string): DatabaseHandle {
  const pool = createPool(url, 4);
  const db = createKysely(pool);
  return { url, pool, db, close: () => db.destroy() };
}

/** A point before the backup's end is not in it: the recovery could only fail there. */
function refuseTargetBeforeBackup(target: RestoreTarget, manifest: BackupManifest): void {
  const held = manifest.checkpoint?.treeSize ?? 0;
  if (target.kind === 'index' && target.index < held)
    throw new Error(
      `entry ${target.index} is inside this backup already (it holds ${held} entries): restore an older backup to stop at it`,
    );
  if (target.kind === 'time' && target.time.getTime() < Date.parse(manifest.finishedAt))
    throw new Error(
      `${target.time.toISOString()} is before this backup finished (${manifest.finishedAt}): restore an older backup`,
    );
}

/**
 * The transaction that appended entry `index`: the xmin of the checkpoint that append signed (an
 * append writes its entries, tree hashes, head and one checkpoint in one transaction; checkpoints
 * are never updated). It is found in a throwaway copy recovered to the end of the archive; the
 * real recovery then stops right after that transaction's commit (recovery_target_xid,
 * inclusive), so the ledger ends exactly with that append. Appends commit in index order, since
 * each holds the ledger head's row lock until it commits.
 */
async function transactionOfEntry(
  backupDir: string,
  probeDir: string,
  walArchive: string | undefined,
  index: number,
): Promise<string> {
  await rm(probeDir, { recursive: true, force: true });
  try {
    await copyBackup(backupDir, probeDir);
    const server = await recover(probeDir, { walArchive });
    const database = handleOn(server.url);
    try {
      const { rows } = await database.pool.query<{ xid: string }>(
        'select xmin::text as xid from ledger_checkpoints where tree_size > $1 order by tree_size limit 1',
        [index],
      );
      const found = rows[0]?.xid;
      if (found) return found;
      const { rows: head } = await database.pool.query<{ tree_size: number }>(
        'select tree_size from ledger_head',
      );
      throw new Error(
        `entry ${index} is not in the backup and the WAL archive: they reach ${head[0]?.tree_size ?? 0} entries`,
      );
    } finally {
      await database.close();
      await server.stop();
    }
  } finally {
    await rm(probeDir, { recursive: true, force: true });
  }
}

/**
 * Copies the `missing` documents found in another documents folder (the archive's, the old data
 * directory's) into the restored copy, each as stored and kept only if its plaintext is the bytes
 * the ledger names; returns those still missing.
 */
async function copyMissingDocuments(
  keys: KeyRing,
  dataDir: string,
  from: string,
  missing: readonly string[],
): Promise<string[]> {
  const still: string[] = [];
  for (const sha256 of missing) {
    const relative = path.join(sha256.slice(0, 2), sha256);
    const target = path.join(dataDir, 'documents', relative);
    if (/^[0-9a-f]{64}$/.test(sha256) && !existsSync(target) && existsSync(path.join(from, relative))) {
      await mkdir(path.dirname(target), { recursive: true });
      const copied = await copyFile(path.join(from, relative), target);
      const digest = copied && (await documentDigest(target, sha256, keys).catch(() => undefined));
      if (digest?.sha256 === sha256) continue;
      await rm(target, { force: true });
    }
    if (!existsSync(target)) still.push(sha256);
  }
  return still;
}
