import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatVerifierKey, signingKeyFromSeed, toBase64 } from '@connect/crypto';
import {
  auditLedger,
  buildReceipt,
  clearBodies,
  latestCheckpoint,
  openLedger,
  readHead,
} from '@connect/ledger';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { activeCommitment, registerProfile } from '../../services/projector/test/support.ts';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.ts';

const READ_MODELS: Record<string, string> = {
  profiles: 'user_id',
  commitment_types: 'key',
  commitments: 'id',
  commitment_parties: 'commitment_id, user_id',
  commitment_history: 'index',
  projection_checkpoints: 'projection',
};
const BIN = fileURLToPath(new URL('../bin/connect.js', import.meta.url));
const SEED = new Uint8Array(32).fill(8);
const KEY = signingKeyFromSeed('export.test/ledger', SEED);
let source: TestDatabase;
let dir: string;

beforeAll(async () => {
  source = await createTestDatabase();
  dir = await mkdtemp(path.join(os.tmpdir(), 'connect-export-'));
  const ledger = await openLedger({ pool: source.pool, db: source.db, origin: KEY.name, key: KEY });
  for (let i = 0; i < 50; i++) {
    await ledger.append({
      stream: `commitment-${i % 4}`,
      expectedVersion: 'any',
      actor: 'ana',
      events: [{ type: 'Noted', data: { i, note: `n${i}` } }],
    });
  }
  // Two real commitments among them, so the read models have something to rebuild.
  const ana = await registerProfile(ledger, 'Ana');
  const ben = await registerProfile(ledger, 'Ben');
  await activeCommitment(ledger, ana, ben, 'Exported promise');
  await activeCommitment(ledger, ben, ana, 'Another one');
  await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      ledger.append({
        stream: `burst-${i}`,
        expectedVersion: 'no_stream',
        actor: null,
        events: [{ type: 'Burst', data: { i } }],
      }),
    ),
  );
});
afterAll(async () => {
  await source.close();
  await rm(dir, { recursive: true, force: true });
});

/** The CLI as the exporting ledger's operator runs it: its origin, its key, a data dir of its own. */
const cli = (args: string[], url: string, env: Record<string, string | undefined> = {}) =>
  spawnSync(process.execPath, [BIN, ...args], {
    env: {
      ...process.env,
      DATABASE_URL: url,
      CONNECT_LEDGER_ORIGIN: KEY.name,
      CONNECT_LEDGER_KEY: toBase64(SEED),
      CONNECT_DATA_DIR: path.join(dir, 'data'),
      // Bodies in the clear, as the source has them (export-sealed.test.ts covers sealed ones).
      CONNECT_ENCRYPTION: 'off',
      ...env,
    },
    encoding: 'utf8',
  });

const entryCount = async (db: TestDatabase) =>
  (await db.pool.query<{ n: number }>('select count(*)::int as n from ledger_entries')).rows[0]?.n;

test('export → import round-trips: same root, same checkpoints, same receipts; the copy passes the audit', async () => {
  const file = path.join(dir, 'ledger.jsonl');
  const exported = cli(['export', file], source.url);
  expect(exported.status).toBe(0);
  expect(exported.stdout).toMatch(/exported 82 entries/);
  const header = JSON.parse((await readFile(file, 'utf8')).split('\n')[0] ?? '');
  expect(header).toMatchObject({
    kind: 'ledger',
    format: 'connect-ledger-export/1',
    origin: KEY.name,
    verifierKey: formatVerifierKey(KEY),
    treeSize: 82,
  });
  expect(Date.parse(header.exportedAt)).toBeGreaterThan(Date.now() - 60_000);
  const target = await createTestDatabase();
  try {
    const imported = cli(['import', file], target.url);
    expect(imported.stderr).toBe('');
    expect(imported.status).toBe(0);
    const [a, b] = await Promise.all([readHead(source.db), readHead(target.db)]);
    expect(b).toEqual(a);
    expect((await latestCheckpoint(target.db))?.note).toBe((await latestCheckpoint(source.db))?.note);
    const receipt = (db: TestDatabase) =>
      buildReceipt(
        {
          db: db.db,
          pool: db.pool,
          origin: KEY.name,
          cipher: clearBodies,
          verifierKey: a?.verifierKey ?? '',
          key: KEY,
        },
        'commitment-2',
      );
    expect(await receipt(target)).toEqual(await receipt(source));
    expect(await auditLedger(target.db, KEY)).toMatchObject({ ok: true, treeSize: 82 });
    // Projections rebuilt on each side give the same read models.
    expect(cli(['replay'], source.url).status).toBe(0);
    expect(cli(['replay'], target.url).status).toBe(0);
    const readModels = async (db: TestDatabase) => {
      const rows: Record<string, unknown[]> = {};
      for (const [table, key] of Object.entries(READ_MODELS)) {
        const all = (await db.pool.query(`select * from ${table} order by ${key}`)).rows;
        rows[table] = all.map(({ updated_at: _when, ...row }) => row); // when it was written differs, not what
      }
      return rows;
    };
    const copied = await readModels(target);
    expect(copied.commitments).toHaveLength(2);
    expect(copied).toEqual(await readModels(source));
    // And only into an empty database.
    const again = cli(['import', file], target.url);
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/not empty/);
  } finally {
    await target.close();
  }
});

test('a doctored export is refused before anything is written', async () => {
  const file = path.join(dir, 'doctored.jsonl');
  const original = (await readFile(path.join(dir, 'ledger.jsonl'), 'utf8')).split('\n');
  const at = original.findIndex((line) => line.includes('"n33"'));
  await writeFile(
    file,
    original.map((line, i) => (i === at ? line.replace('"n33"', '"n34"') : line)).join('\n'),
  );
  const target = await createTestDatabase();
  try {
    const result = cli(['import', file], target.url);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(new RegExp(`line ${at + 1}: entry \\d+: dataHash does not match`));
    expect(await entryCount(target)).toBe(0);
  } finally {
    await target.close();
  }
});

test('an import that would sign with another key is refused before anything is written', async () => {
  const file = path.join(dir, 'ledger.jsonl');
  const target = await createTestDatabase();
  const elsewhere = await mkdtemp(path.join(os.tmpdir(), 'connect-import-'));
  try {
    const head = async () => (await target.pool.query('select * from ledger_head')).rows;
    const before = await head();
    const otherKey = cli(['import', file], target.url, {
      CONNECT_LEDGER_KEY: toBase64(new Uint8Array(32).fill(9)),
    });
    expect(otherKey.status).toBe(1);
    expect(otherKey.stderr).toMatch(`the export is signed with ${formatVerifierKey(KEY)}`);
    expect(otherKey.stderr).toMatch(/set CONNECT_LEDGER_KEY to the exporting ledger's key \(base64 seed\)/);
    expect(otherKey.stderr).toMatch(/CONNECT_DATA_DIR\/ledger-key/);

    // No key at all: refused without generating one into the data dir.
    const noKey = cli(['import', file], target.url, {
      CONNECT_LEDGER_KEY: undefined,
      CONNECT_DATA_DIR: elsewhere,
    });
    expect(noKey.status).toBe(1);
    expect(noKey.stderr).toMatch(/there is no ledger key here yet/);
    expect(await readdir(elsewhere)).toEqual([]);

    const otherOrigin = cli(['import', file], target.url, { CONNECT_LEDGER_ORIGIN: 'elsewhere.test/ledger' });
    expect(otherOrigin.status).toBe(1);
    expect(otherOrigin.stderr).toMatch(/set CONNECT_LEDGER_ORIGIN to "export.test\/ledger"/);

    expect(await entryCount(target)).toBe(0);
    expect(await head()).toEqual(before);

    // The exporting ledger's key file copied into the data dir is the key too.
    await mkdir(elsewhere, { recursive: true });
    await writeFile(path.join(elsewhere, 'ledger-key'), `${toBase64(SEED)}\n`, { mode: 0o600 });
    const copied = cli(['import', file], target.url, {
      CONNECT_LEDGER_KEY: undefined,
      CONNECT_DATA_DIR: elsewhere,
    });
    expect(copied.stderr).toBe('');
    expect(copied.status).toBe(0);
    expect(await entryCount(target)).toBe(82);
  } finally {
    await target.close();
    await rm(elsewhere, { recursive: true, force: true });
  }
});
