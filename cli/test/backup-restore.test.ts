// Backups and point-in-time recovery, as an operator runs them: `connect start` on the embedded
// PostgreSQL archiving its WAL, `connect backup` beside it, more writes, then `connect restore` to
// a ledger entry, a time and the latest, each into a new data directory that `connect start` serves.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { fromBase64, openCheckpoint, parseVerifierKey, verifyConsistency } from '@connect/crypto';
import { embeddedPaths } from '@connect/db';
import pg from 'pg';
import { afterAll, beforeAll, expect, test } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = path.join(ROOT, 'cli/bin/connect.js');
const PASSWORD = 'a long password';

let work: string;
let dataDir: string;
let archive: string;
let source: Running | undefined;

interface Running {
  child: ChildProcess;
  url: string;
  /** Every log line from the start on. */
  logs: { msg?: string; [field: string]: unknown }[];
}

async function startConnect(env: Record<string, string>): Promise<Running> {
  const child = spawn(process.execPath, [BIN, 'start'], {
    env: { ...process.env, DATABASE_URL: '', PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const logs: Running['logs'] = [];
  lines.on('line', (line) => logs.push(JSON.parse(line)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('connect start did not come up in 90 s')), 90_000);
    child.once('exit', (code) => reject(new Error(`connect start exited with ${code}`)));
    lines.on('line', (line) => {
      const log = JSON.parse(line) as { msg?: string; address?: string };
      if (log.msg === 'Connect is running' && log.address) {
        clearTimeout(timer);
        resolve(log.address);
      }
    });
  });
  return { child, url, logs };
}

async function stop(running: Running): Promise<number | null> {
  if (running.child.exitCode !== null) return running.child.exitCode;
  const exited = new Promise<number | null>((resolve) => running.child.once('exit', resolve));
  running.child.kill('SIGTERM');
  return exited;
}

const cli = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [BIN, ...args], {
    env: {
      ...process.env,
      DATABASE_URL: '',
      CONNECT_DATA_DIR: dataDir,
      CONNECT_WAL_ARCHIVE: archive,
      ...env,
    },
    encoding: 'utf8',
  });

type Json = Record<string, unknown>;

async function call(base: string, method: string, url: string, body?: unknown, token?: string) {
  const response = await fetch(`${base}${url}`, {
    method,
    headers: {
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json().catch(() => ({}))) as Json };
}

interface Account {
  id: string;
  token: string;
  refreshToken: string;
}

async function signUp(base: string, name: string): Promise<Account> {
  const { status, body } = await call(base, 'POST', '/v1/auth/signup', {
    email: `${name}@backup.test`,
    password: PASSWORD,
    displayName: name,
  });
  expect(status).toBe(201);
  return {
    id: (body.user as { id: string }).id,
    token: body.access_token as string,
    refreshToken: body.refresh_token as string,
  };
}

/** A commitment; its receipt's last ledger index. */
async function create(base: string, who: Account, title: string): Promise<{ id: string; lastIndex: number }> {
  const { status, body } = await call(
    base,
    'POST',
    '/v1/commitments',
    { type: 'personal', title },
    who.token,
  );
  expect(status).toBe(201);
  const events = body.events as { index: number }[];
  return { id: body.commitmentId as string, lastIndex: events.at(-1)?.index as number };
}

async function treeSizeOf(base: string): Promise<{ treeSize: number; note: string }> {
  const note = await (await fetch(`${base}/v1/ledger/checkpoint`)).text();
  const key = (await (await fetch(`${base}/v1/ledger/key`)).json()) as { verifierKey: string };
  return { treeSize: openCheckpoint(note, [parseVerifierKey(key.verifierKey)]).treeSize, note };
}

/** Every finished WAL segment is in the archive: what a restore to the latest moment can reach. */
async function archiveCurrentWal(): Promise<void> {
  const { socketDir } = embeddedPaths(dataDir);
  const client = new pg.Client({
    connectionString: `postgresql://postgres@localhost:5432/postgres?host=${socketDir}`,
  });
  await client.connect();
  try {
    const { rows } = await client.query<{ name: string }>('select pg_walfile_name(pg_switch_wal()) as name');
    const wanted = rows[0]?.name ?? '';
    for (let tries = 0; tries < 300; tries++) {
      const { rows: archived } = await client.query<{ last: string | null }>(
        'select last_archived_wal as last from pg_stat_archiver',
      );
      if ((archived[0]?.last ?? '') >= wanted) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`WAL segment ${wanted} was not archived in 30 s`);
  } finally {
    await client.end();
  }
}

const DOCUMENT = Buffer.from(`%PDF-1.4 the signed contract ${'x'.repeat(5000)}`);
const ANNEX = Buffer.from(`%PDF-1.4 an annex ${'y'.repeat(3000)}`);
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** Uploads a document; its id. */
async function upload(base: string, commitmentId: string, name: string, bytes: Buffer): Promise<string> {
  const form = new FormData();
  form.append('name', name);
  form.append('file', new Blob([new Uint8Array(bytes)], { type: 'application/pdf' }), name);
  const uploaded = await fetch(`${base}/v1/commitments/${commitmentId}/documents`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ana.token}` },
    body: form,
  });
  expect(uploaded.status).toBe(201);
  const receipt = (await uploaded.json()) as { events: { index: number }[] };
  const read = await fetch(`${base}/v1/commitments/${commitmentId}`, {
    headers: {
      authorization: `Bearer ${ana.token}`,
      'connect-min-index': String(receipt.events.at(-1)?.index),
    },
  });
  const documents = ((await read.json()) as { documents: { documentId: string; name: string }[] }).documents;
  return documents.find((d) => d.name === name)?.documentId as string;
}

let ana: Account;
let ben: Account;
let contract: { id: string; documentId: string; annexId: string };
let backupDir: string;
let backupTreeSize: number;
/** After the backup: written before the restore point … */
const before: { id: string; lastIndex: number }[] = [];
let pointCheckpoint: { treeSize: number; note: string };
let pointTime: string;
/** … and after it. */
const after: { id: string; lastIndex: number }[] = [];
let finalTreeSize: number;

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'connect-pitr-'));
  await chmod(work, 0o711);
  dataDir = path.join(work, 'data');
  archive = path.join(work, 'wal');
  source = await startConnect({ CONNECT_DATA_DIR: dataDir, CONNECT_WAL_ARCHIVE: archive });
  const base = source.url;
  ana = await signUp(base, 'ana');
  ben = await signUp(base, 'ben');
  const signed = await create(base, ana, 'The contract');
  await upload(base, signed.id, 'contract.pdf', DOCUMENT);
  const invited = await call(
    base,
    'POST',
    `/v1/commitments/${signed.id}/invite`,
    { userId: ben.id, role: 'participant' },
    ana.token,
  );
  expect(invited.status).toBe(200);
  const read = await fetch(`${base}/v1/commitments/${signed.id}`, {
    headers: {
      authorization: `Bearer ${ana.token}`,
      'connect-min-index': String((invited.body.events as { index: number }[]).at(-1)?.index),
    },
  });
  const documents = ((await read.json()) as { documents: { documentId: string; sha256: string }[] })
    .documents;
  expect(documents[0]?.sha256).toBe(sha256(DOCUMENT));
  contract = { id: signed.id, documentId: documents[0]?.documentId as string, annexId: '' };

  // The backup, taken beside the running service.
  backupDir = path.join(work, 'backup-1');
  const backup = cli(['backup', backupDir]);
  expect(backup.stderr).toBe('');
  expect(backup.status).toBe(0);
  expect(backup.stdout).toMatch(/backed up .* ledger at tree size \d+/);
  const manifest = JSON.parse(await readFile(path.join(backupDir, 'manifest.json'), 'utf8'));
  backupTreeSize = manifest.checkpoint.treeSize;

  // A document uploaded after the backup is restored from the archive `connect start` keeps beside the WAL.
  contract.annexId = await upload(base, contract.id, 'annex.pdf', ANNEX);
  const archived = path.join(archive, 'documents', sha256(ANNEX).slice(0, 2), sha256(ANNEX));
  for (let tries = 0; tries < 300 && !existsSync(archived); tries++)
    await new Promise((resolve) => setTimeout(resolve, 100));
  expect(existsSync(archived)).toBe(true);
  for (const title of ['After the backup 1', 'After the backup 2'])
    before.push(await create(base, ben, title));
  pointCheckpoint = await treeSizeOf(base);
  expect(pointCheckpoint.treeSize).toBe((before.at(-1)?.lastIndex as number) + 1);
  await new Promise((resolve) => setTimeout(resolve, 1500));
  pointTime = new Date().toISOString();
  await new Promise((resolve) => setTimeout(resolve, 1500));
  for (const title of ['Too late 1', 'Too late 2']) after.push(await create(base, ana, title));
  finalTreeSize = (await treeSizeOf(base)).treeSize;
  await archiveCurrentWal();
});

afterAll(async () => {
  if (source) await stop(source);
  await rm(work, { recursive: true, force: true });
});

/** What a restored data directory serves, checked through `connect start` on it. */
async function checkRestored(restored: string, expectedTreeSize: number) {
  const running = await startConnect({ CONNECT_DATA_DIR: restored });
  try {
    const base = running.url;
    const { treeSize, note } = await treeSizeOf(base);
    expect(treeSize).toBe(expectedTreeSize);
    // The source ledger extends the restored one: the source proves it, the restored checkpoint's root checks it.
    const key = parseVerifierKey(
      ((await (await fetch(`${base}/v1/ledger/key`)).json()) as { verifierKey: string }).verifierKey,
    );
    const restoredRoot = openCheckpoint(note, [key]).rootHash;
    const sourceCheckpoint = openCheckpoint((await treeSizeOf(source?.url ?? '')).note, [key]);
    const proof = await call(
      source?.url ?? '',
      'GET',
      `/v1/ledger/proofs/consistency?from=${treeSize}&to=${sourceCheckpoint.treeSize}`,
    );
    expect(
      verifyConsistency(
        {
          from: treeSize,
          to: sourceCheckpoint.treeSize,
          hashes: (proof.body.hashes as string[]).map(fromBase64),
        },
        restoredRoot,
        sourceCheckpoint.rootHash,
      ),
    ).toBe(true);

    // Old tokens are refused; the password still signs in.
    const refreshed = await call(base, 'POST', '/v1/auth/token', {
      grant_type: 'refresh_token',
      refresh_token: ana.refreshToken,
    });
    expect(refreshed.status).toBeGreaterThanOrEqual(400);
    expect((await call(base, 'GET', '/v1/auth/me', undefined, ana.token)).status).toBe(401);
    const login = await call(base, 'POST', '/v1/auth/token', {
      grant_type: 'password',
      email: 'ana@backup.test',
      password: PASSWORD,
    });
    expect(login.status).toBe(200);
    const token = login.body.access_token as string;
    const benLogin = await call(base, 'POST', '/v1/auth/token', {
      grant_type: 'password',
      email: 'ben@backup.test',
      password: PASSWORD,
    });
    expect(benLogin.status).toBe(200);

    // The documents download with the bytes the ledger describes: one from the backup, one from the archive.
    for (const [documentId, bytes] of [
      [contract.documentId, DOCUMENT],
      [contract.annexId, ANNEX],
    ] as const) {
      const content = await fetch(`${base}/v1/commitments/${contract.id}/documents/${documentId}/content`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(content.status).toBe(200);
      expect(sha256(Buffer.from(await content.arrayBuffer()))).toBe(sha256(bytes));
    }

    // The read models were rebuilt from the restored ledger.
    const listed = async (who: string) => {
      const response = await fetch(`${base}/v1/commitments`, {
        headers: { authorization: `Bearer ${who}`, 'connect-min-index': String(treeSize - 1) },
      });
      expect(response.status).toBe(200);
      return ((await response.json()) as { items: { id: string }[] }).items.map((c) => c.id);
    };
    return { mine: await listed(token), bens: await listed(benLogin.body.access_token as string) };
  } finally {
    expect(await stop(running)).toBe(0);
  }
}

test('a restore to a ledger entry holds exactly the entries up to it, passes the audit and extends the backup’s checkpoint', async () => {
  const restored = path.join(work, 'at-entry');
  const point = before.at(-1)?.lastIndex as number;
  const result = cli(['restore', backupDir, '--to', String(point), '--data-dir', restored]);
  expect(result.stderr).toBe('');
  expect(result.status).toBe(0);
  expect(result.stdout).toContain(`ledger: ${point + 1} entries`);
  expect(result.stdout).toContain('audit: passed');
  expect(result.stdout).toContain(
    `the restored checkpoint (tree size ${point + 1}) extends the backup's (tree size ${backupTreeSize}): consistency proof verified`,
  );
  expect(cli(['verify', 'ledger'], { CONNECT_DATA_DIR: restored, CONNECT_WAL_ARCHIVE: '' }).status).toBe(0);
  const { mine, bens } = await checkRestored(restored, pointCheckpoint.treeSize);
  expect(mine).toEqual([contract.id]);
  expect(new Set(bens)).toEqual(new Set([contract.id, ...before.map((c) => c.id)]));
});

test('a restore to a time between the writes holds the entries before it, not those after', async () => {
  const restored = path.join(work, 'at-time');
  const result = cli(['restore', backupDir, '--to', pointTime, '--data-dir', restored]);
  expect(result.stderr).toBe('');
  expect(result.status).toBe(0);
  expect(result.stdout).toContain(`ledger: ${pointCheckpoint.treeSize} entries`);
  const { mine } = await checkRestored(restored, pointCheckpoint.treeSize);
  expect(mine).not.toContain(after[0]?.id);
});

test('a restore to the latest archived moment holds every entry', async () => {
  const restored = path.join(work, 'latest');
  const result = cli(['restore', backupDir, '--to', 'latest', '--data-dir', restored]);
  expect(result.stderr).toBe('');
  expect(result.status).toBe(0);
  expect(result.stdout).toContain(`ledger: ${finalTreeSize} entries`);
  const { mine } = await checkRestored(restored, finalTreeSize);
  expect(new Set(mine)).toEqual(new Set([contract.id, ...after.map((c) => c.id)]));
});

test('a backup restores on its own, without the archive, to the moment it was taken', async () => {
  const restored = path.join(work, 'backup-only');
  const empty = path.join(work, 'no-wal');
  const result = cli([
    'restore',
    backupDir,
    '--to',
    'latest',
    '--data-dir',
    restored,
    '--wal-archive',
    empty,
  ]);
  expect(result.stderr).toBe('');
  expect(result.status).toBe(0);
  expect(result.stdout).toContain(`ledger: ${backupTreeSize} entries`);
  expect(result.stdout).toContain('audit: passed');
  const verified = cli(['verify', 'ledger'], { CONNECT_DATA_DIR: restored, CONNECT_WAL_ARCHIVE: '' });
  expect(verified.stdout).toContain(`${backupTreeSize} entries`);
  expect(verified.status).toBe(0);
});

test('the backup is on /metrics, and a restore refuses what it cannot do', async () => {
  const metrics = await (await fetch(`${source?.url}/metrics`)).text();
  const line = metrics
    .split('\n')
    .find((l) => l.startsWith('connect_backup_last_success_timestamp_seconds{trigger="command"}'));
  expect(Number(line?.split(' ')[1])).toBeGreaterThan(Date.now() / 1000 - 600);

  const early = cli(['restore', backupDir, '--to', '0', '--data-dir', path.join(work, 'early')]);
  expect(early.status).toBe(1);
  expect(early.stderr).toMatch(/entry 0 is inside this backup already/);
  const notEmpty = cli(['restore', backupDir, '--to', 'latest', '--data-dir', dataDir]);
  expect(notEmpty.stderr).toMatch(/is not empty/);
  // The master key is in no backup: a restore where it is neither set nor in the data dir is refused.
  expect(await readdir(path.join(backupDir, 'data'))).not.toContain('master-key');
  const keyless = path.join(work, 'keyless');
  const noKey = cli(['restore', backupDir, '--to', 'latest', '--data-dir', path.join(work, 'no-key')], {
    CONNECT_DATA_DIR: keyless,
  });
  expect(noKey.status).toBe(1);
  expect(noKey.stderr).toMatch(
    /opens only with its master key, which no backup holds: set CONNECT_MASTER_KEY/,
  );
  expect(existsSync(path.join(work, 'no-key'))).toBe(false);
  const external = cli(['backup', path.join(work, 'b2')], {
    DATABASE_URL: 'postgresql://postgres@127.0.0.1:1/x',
  });
  expect(external.status).toBe(2);
  expect(external.stderr).toMatch(/embedded PostgreSQL only.*pg_basebackup/);
});

test('connect start takes the scheduled backups and keeps the newest CONNECT_BACKUP_KEEP', async () => {
  if (source) await stop(source);
  const scheduled = path.join(work, 'scheduled');
  source = await startConnect({
    CONNECT_DATA_DIR: dataDir,
    CONNECT_WAL_ARCHIVE: archive,
    CONNECT_BACKUP_SCHEDULE: '*/3 * * * * *',
    CONNECT_BACKUP_DIR: scheduled,
    CONNECT_BACKUP_KEEP: '2',
  });
  const taken = () => (source?.logs ?? []).filter((log) => log.msg === 'backup taken');
  for (let tries = 0; tries < 600 && taken().length < 3; tries++)
    await new Promise((resolve) => setTimeout(resolve, 100));
  expect(await stop(source)).toBe(0);
  const backups = taken();
  expect(backups.length).toBeGreaterThanOrEqual(3);
  const folders = (await readdir(scheduled)).sort();
  expect(folders).toEqual(backups.slice(-2).map((log) => path.basename(log.dir as string)));
  for (const folder of folders) expect(existsSync(path.join(scheduled, folder, 'manifest.json'))).toBe(true);
  expect(backups.at(-1)?.removed).toEqual([path.basename(backups.at(-3)?.dir as string)]);

  // The archive keeps only the WAL from the oldest kept backup's first segment on, and that backup
  // still restores to the latest archived moment from it.
  const oldest = JSON.parse(
    await readFile(path.join(scheduled, folders[0] as string, 'manifest.json'), 'utf8'),
  );
  const needed = (oldest.files as { path: string }[])
    .map((file) => path.basename(file.path))
    .filter((name) => /^[0-9A-F]{24}$/.test(name))
    .sort()[0] as string;
  const segments = (await readdir(archive)).filter((name) => /^[0-9A-F]{24}$/.test(name));
  expect(segments.length).toBeGreaterThan(0);
  expect(segments.every((name) => name.slice(8) >= needed.slice(8))).toBe(true);
  expect(backups.some((log) => Number(log.walPruned) > 0)).toBe(true);
  const restored = path.join(work, 'from-oldest-kept');
  const result = cli([
    'restore',
    path.join(scheduled, folders[0] as string),
    '--to',
    'latest',
    '--data-dir',
    restored,
  ]);
  expect(result.stderr).toBe('');
  expect(result.status).toBe(0);
});
