// Export and import of a ledger whose bodies are sealed: the file holds ciphertext and wrapped
// keys only, an import needs the master key that wraps them, and the copy reads and audits as
// the original does, erased streams included.
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { signingKeyFromSeed, toBase64 } from '@connect/crypto';
import { dataKeyId } from '@connect/crypto/envelope';
import { eraseDataKey, keyRing, localMasterKeys } from '@connect/db';
import { auditLedger, bodyCipher, openLedger, readEntries, streamKeySubject } from '@connect/ledger';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.ts';

const BIN = fileURLToPath(new URL('../bin/connect.js', import.meta.url));
const SEED = new Uint8Array(32).fill(21);
const KEY = signingKeyFromSeed('sealed-export.test/ledger', SEED);
const MASTER = Buffer.alloc(32, 4);
const MARKER = 'SEALED-EXPORT-MARKER';
let source: TestDatabase;
let dir: string;
let file: string;

const cipherOn = async (db: TestDatabase) =>
  bodyCipher(
    keyRing(db.pool, await localMasterKeys({ keys: [toBase64(MASTER)], dataDir: dir }), { listen: false }),
    {
      sealNew: true,
    },
  );

beforeAll(async () => {
  source = await createTestDatabase();
  dir = await mkdtemp(path.join(os.tmpdir(), 'connect-sealed-export-'));
  file = path.join(dir, 'ledger.jsonl');
  const ledger = await openLedger({
    pool: source.pool,
    db: source.db,
    origin: KEY.name,
    key: KEY,
    cipher: await cipherOn(source),
  });
  for (let i = 0; i < 30; i++) {
    await ledger.append({
      stream: `commitment-${i % 3}`,
      expectedVersion: 'any',
      actor: 'ana',
      events: [{ type: 'Noted', data: { note: `${MARKER}-${i}` } }],
    });
  }
  const client = await source.pool.connect();
  try {
    await eraseDataKey(client, streamKeySubject('commitment-2'));
  } finally {
    client.release();
  }
});
afterAll(async () => {
  await source.close();
  await rm(dir, { recursive: true, force: true });
});

const cli = (args: string[], url: string, env: Record<string, string | undefined> = {}) =>
  spawnSync(process.execPath, [BIN, ...args], {
    env: {
      ...process.env,
      DATABASE_URL: url,
      CONNECT_LEDGER_ORIGIN: KEY.name,
      CONNECT_LEDGER_KEY: toBase64(SEED),
      CONNECT_DATA_DIR: path.join(dir, 'data'),
      CONNECT_MASTER_KEY: toBase64(MASTER),
      ...env,
    },
    encoding: 'utf8',
  });

const rows = async (db: TestDatabase) =>
  (await db.pool.query('select * from ledger_entries order by index')).rows;

test('the export holds ciphertext and wrapped keys, and imports where the master key is', async () => {
  const exported = cli(['export', file], source.url);
  expect(exported.stderr).toBe('');
  expect(exported.status).toBe(0);
  const text = await readFile(file, 'utf8');
  expect(text).not.toContain(MARKER);
  const lines = text
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));
  expect(lines.filter((l) => l.kind === 'key').map((l) => [l.subject, l.masterKeyId])).toEqual([
    ['ledger:commitment-0', dataKeyId(MASTER)],
    ['ledger:commitment-1', dataKeyId(MASTER)],
    ['ledger:commitment-2', null],
  ]);
  expect(lines.filter((l) => l.kind === 'entry').every((l) => l.data === null && l.sealed)).toBe(true);

  const target = await createTestDatabase();
  const elsewhere = await mkdtemp(path.join(os.tmpdir(), 'connect-sealed-import-'));
  try {
    // No master key here: refused before anything is written, naming the key it needs.
    const noKey = cli(['import', file], target.url, {
      CONNECT_MASTER_KEY: undefined,
      CONNECT_DATA_DIR: elsewhere,
    });
    expect(noKey.status).toBe(1);
    expect(noKey.stderr).toContain(`sealed under master key ${dataKeyId(MASTER)}`);
    expect(await readdir(elsewhere)).toEqual([]);
    const wrongKey = cli(['import', file], target.url, { CONNECT_MASTER_KEY: toBase64(Buffer.alloc(32, 5)) });
    expect(wrongKey.status).toBe(1);
    expect(wrongKey.stderr).toMatch(/not configured/);
    expect(await rows(target)).toEqual([]);

    const imported = cli(['import', file], target.url);
    expect(imported.stderr).toBe('');
    expect(imported.status).toBe(0);
    expect(await rows(target)).toEqual(await rows(source));
    const [fromTarget, fromSource] = await Promise.all([
      readEntries(target.db, { origin: KEY.name, cipher: await cipherOn(target) }, 0, 100),
      readEntries(source.db, { origin: KEY.name, cipher: await cipherOn(source) }, 0, 100),
    ]);
    expect(fromTarget).toEqual(fromSource);
    expect(fromTarget.filter((e) => e.stream === 'commitment-2').every((e) => e.redacted)).toBe(true);
    expect(fromTarget.find((e) => e.stream === 'commitment-0')?.data).toEqual({ note: `${MARKER}-0` });
    expect(await auditLedger(target.db, KEY, { cipher: await cipherOn(target) })).toMatchObject({ ok: true });
  } finally {
    await target.close();
    await rm(elsewhere, { recursive: true, force: true });
  }
});

test('a sealed body altered in the export is refused before anything is written', async () => {
  const doctored = path.join(dir, 'doctored.jsonl');
  const lines = (await readFile(file, 'utf8')).split('\n');
  const at = lines.findIndex((line) => line.includes('"stream":"commitment-1"'));
  const entry = JSON.parse(lines[at] as string);
  const sealed = Buffer.from(entry.sealed, 'base64');
  sealed[20] = (sealed[20] as number) ^ 1;
  lines[at] = JSON.stringify({ ...entry, sealed: sealed.toString('base64') });
  await writeFile(doctored, lines.join('\n'));
  const target = await createTestDatabase();
  try {
    const result = cli(['import', doctored], target.url);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(new RegExp(`line ${at + 1}: entry \\d+: .*does not open`));
    expect(await rows(target)).toEqual([]);
  } finally {
    await target.close();
  }
});
