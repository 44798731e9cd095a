// A consistent base backup of the embedded PostgreSQL through its low-level API ("Making a Base
// Backup Using the Low Level API"): pg_backup_start on one session, a copy of the data directory
// without what the server rebuilds, pg_backup_stop, and its backup_label written into the copy.
// The WAL from the start to the stop goes into the copy too, so a backup restores on its own;
// with CONNECT_WAL_ARCHIVE a restore replays on from the archive to a later moment.
import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { toBase64 } from '@connect/crypto';
import { embeddedPaths, MASTER_KEY_FILE } from '@connect/db';
import pg from 'pg';
import { type CopiedFile, copyFile, copyTree, hashFile, syncTree } from './copy-files.ts';
import { type BackupManifest, MANIFEST_FILE, MANIFEST_FORMAT } from './manifest.ts';

// What pg_basebackup leaves out: files the server writes for this run only, or rebuilds at start.
const SKIPPED_FILES = new Set([
  'postmaster.pid',
  'postmaster.opts',
  'backup_label',
  'tablespace_map',
  'backup_manifest',
  'recovery.signal',
  'standby.signal',
  'postgresql.auto.conf.tmp',
  'current_logfiles.tmp',
]);
const EMPTIED_DIRECTORIES = new Set([
  'pg_wal',
  'pg_stat_tmp',
  'pg_replslot',
  'pg_dynshmem',
  'pg_notify',
  'pg_serial',
  'pg_snapshots',
  'pg_subtrans',
]);

export function includeInBaseBackup(relative: string, isDirectory: boolean): boolean | 'empty' {
  const name = path.posix.basename(relative);
  if (name.startsWith('pgsql_tmp') || name === 'pg_internal.init') return false;
  if (isDirectory) return EMPTIED_DIRECTORIES.has(relative) ? 'empty' : true;
  return !SKIPPED_FILES.has(relative);
}

/** Secret files are written as drafts (`name.<pid>.<hex>`) and linked into place. */
const isDraft = (name: string) => /\.\d+\.[0-9a-f]{8}$/.test(name) || name.startsWith('.');

/** WAL segment names from `first` to `last` on one timeline, in order. */
export function walSegments(first: string, last: string, segmentBytes: number): string[] {
  const perId = 0x1_0000_0000 / segmentBytes;
  const timeline = first.slice(0, 8);
  const number = (name: string) =>
    Number.parseInt(name.slice(8, 16), 16) * perId + Number.parseInt(name.slice(16), 16);
  if (!Number.isSafeInteger(perId) || perId < 1 || !(number(first) <= number(last)))
    throw new Error(`cannot list the WAL from ${first} to ${last} (segments of ${segmentBytes} bytes)`);
  const names: string[] = [];
  for (let n = number(first); n <= number(last); n++) {
    const id = Math.floor(n / perId)
      .toString(16)
      .toUpperCase()
      .padStart(8, '0');
    const seg = (n % perId).toString(16).toUpperCase().padStart(8, '0');
    names.push(`${timeline}${id}${seg}`);
  }
  return names;
}

export interface BackupRequest {
  /** CONNECT_DATA_DIR of the embedded PostgreSQL. */
  dataDir: string;
  /** A superuser connection to it. */
  url: string;
  /** The folder to create; it must not exist yet. */
  dir: string;
  trigger: 'command' | 'schedule';
  walArchive: string | undefined;
  /** Abandons the backup (between two files): what it copied is deleted. */
  signal?: AbortSignal;
}

export interface BackupResult {
  dir: string;
  manifest: BackupManifest;
  bytes: number;
}

export async function takeBackup(request: BackupRequest): Promise<BackupResult> {
  const dir = path.resolve(request.dir);
  const dataDir = path.resolve(request.dataDir);
  if (`${dir}${path.sep}`.startsWith(`${dataDir}${path.sep}`))
    throw new Error(`the backup folder ${dir} is inside CONNECT_DATA_DIR; choose one outside it`);
  if (existsSync(dir) && (await readdir(dir)).length > 0)
    throw new Error(`${dir} already exists and is not empty; back up into a new folder`);
  const partial = `${dir}.partial`;
  await rm(partial, { recursive: true, force: true });
  await mkdir(partial, { recursive: true, mode: 0o700 });
  const client = new pg.Client({ connectionString: request.url, application_name: 'connect: backup' });
  client.on('error', () => undefined);
  await client.connect();
  let started = false;
  try {
    const head = (
      await client.query<{ origin: string; verifier_key: string }>(
        'select origin, verifier_key from ledger_head',
      )
    ).rows[0];
    if (!head) throw new Error('the database has no ledger yet: start Connect once before backing it up');
    const startedAt = new Date();
    const { rows: startRows } = await client.query<{ lsn: string }>(
      `select pg_backup_start($1, fast => true)::text as lsn`,
      [`connect ${request.trigger} ${startedAt.toISOString()}`],
    );
    started = true;
    const { pgData } = embeddedPaths(dataDir);
    const copyRoot = path.join(partial, 'data');
    const pgCopy = path.join(copyRoot, 'postgres', 'data');
    const files: CopiedFile[] = await copyTree({
      from: pgData,
      to: pgCopy,
      prefix: 'data/postgres/data/',
      include: includeInBaseBackup,
      signal: request.signal,
    });
    await mkdir(path.join(pgCopy, 'pg_wal', 'archive_status'), { recursive: true, mode: 0o700 });
    files.push(
      ...(await copyTree({
        from: path.join(dataDir, 'documents'),
        to: path.join(copyRoot, 'documents'),
        prefix: 'data/documents/',
        include: (relative) => !path.posix.basename(relative).startsWith('.'),
        signal: request.signal,
      })),
    );
    for (const entry of await readdir(dataDir, { withFileTypes: true })) {
      // The master key stays out: a backup holds ciphertext and wrapped keys, never what unwraps them.
      if (!entry.isFile() || isDraft(entry.name) || entry.name.startsWith(MASTER_KEY_FILE)) continue;
      const copied = await copyFile(path.join(dataDir, entry.name), path.join(copyRoot, entry.name));
      if (copied) files.push({ path: `data/${entry.name}`, ...copied });
    }
    // Read before the stop: everything committed now precedes the backup's end, so every restore
    // of this backup holds this checkpoint and extends it.
    const checkpoint = (
      await client.query<{ tree_size: number; root_hash: Buffer; note: string }>(
        'select tree_size::int8, root_hash, note from ledger_checkpoints order by tree_size desc limit 1',
      )
    ).rows[0];
    const { rows: stopRows } = await client.query<{ lsn: string; labelfile: string; spcmapfile: string }>(
      'select lsn::text, labelfile, spcmapfile from pg_backup_stop(wait_for_archive => true)',
    );
    started = false;
    const stop = stopRows[0];
    const startLsn = startRows[0]?.lsn;
    if (!stop || !startLsn) throw new Error('pg_backup_stop returned nothing');
    for (const [name, text] of [
      ['backup_label', stop.labelfile],
      ['tablespace_map', stop.spcmapfile],
    ] as const) {
      if (!text) continue;
      await writeFile(path.join(pgCopy, name), text, { mode: 0o600 });
      files.push({ path: `data/postgres/data/${name}`, ...(await hashFile(path.join(pgCopy, name))) });
    }
    const { rows: walRows } = await client.query<{
      first: string;
      last: string;
      segment: number;
      version: string;
    }>(
      `select pg_walfile_name($1::pg_lsn) as first, pg_walfile_name($2::pg_lsn) as last,
         pg_size_bytes(current_setting('wal_segment_size'))::int8 as segment, current_setting('server_version') as version`,
      [startLsn, stop.lsn],
    );
    const wal = walRows[0];
    if (!wal) throw new Error('could not name the WAL segments of the backup');
    files.push(...(await copyWal(pgData, request.walArchive, pgCopy, wal.first, wal.last, wal.segment)));
    const finishedAt = new Date();
    const manifest: BackupManifest = {
      format: MANIFEST_FORMAT,
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      origin: head.origin,
      verifierKey: head.verifier_key,
      checkpoint: checkpoint
        ? { treeSize: checkpoint.tree_size, rootHash: toBase64(checkpoint.root_hash), note: checkpoint.note }
        : null,
      postgres: {
        version: wal.version,
        startLsn,
        stopLsn: stop.lsn,
        timeline: Number.parseInt(wal.first.slice(0, 8), 16),
      },
      walArchive: request.walArchive ?? null,
      files,
    };
    await writeFile(path.join(partial, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`, {
      mode: 0o600,
    });
    await syncTree(partial);
    if (existsSync(dir)) await rm(dir, { recursive: true });
    await rename(partial, dir);
    const bytes = files.reduce((sum, file) => sum + file.size, 0);
    await client.query(
      `insert into backups (trigger, directory, started_at, finished_at, tree_size, bytes)
       values ($1, $2, $3, $4, $5, $6)`,
      [request.trigger, dir, startedAt, finishedAt, checkpoint?.tree_size ?? 0, bytes],
    );
    return { dir, manifest, bytes };
  } catch (error) {
    if (started)
      await client.query('select pg_backup_stop(wait_for_archive => false)').catch(() => undefined);
    await rm(partial, { recursive: true, force: true });
    throw error;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The WAL from the backup's start to its stop (and the timeline histories), from pg_wal or the archive. */
async function copyWal(
  pgData: string,
  walArchive: string | undefined,
  pgCopy: string,
  first: string,
  last: string,
  segmentBytes: number,
): Promise<CopiedFile[]> {
  const liveWal = path.join(pgData, 'pg_wal');
  const histories = (await readdir(liveWal)).filter((name) => name.endsWith('.history'));
  const copied: CopiedFile[] = [];
  for (const name of [...histories, ...walSegments(first, last, segmentBytes)]) {
    const target = path.join(pgCopy, 'pg_wal', name);
    const file =
      (await copyFile(path.join(liveWal, name), target)) ??
      (walArchive ? await copyFile(path.join(walArchive, name), target) : undefined);
    if (!file)
      throw new Error(`WAL segment ${name} was gone before the backup could copy it; run the backup again`);
    copied.push({ path: `data/postgres/data/pg_wal/${name}`, ...file });
  }
  return copied;
}
