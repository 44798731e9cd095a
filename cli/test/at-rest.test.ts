// Encryption at rest as someone holding a copy would see it: `connect start` on the embedded
// PostgreSQL, archiving its WAL, is given commitments, documents, users, invitations and
// notifications that carry unique marker strings; then a dump of every table, every file of the
// data directory (the database's files, its WAL, the documents) and the WAL archive are searched
// for each marker. None may be there in plain text, while the API still reads every one back.
// (The dump is every row of every table as text, which is what pg_dump writes for data: this
// machine's pg_dump is older than the embedded server and refuses to dump it. The same search in
// a real pg_dump is at-rest-pg-dump.test.ts, on a server of that version.)
import { spawnSync } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { embeddedPaths, MASTER_KEY_FILE } from '@connect/db';
import pg from 'pg';
import { afterAll, beforeAll, expect, test } from 'vitest';
import {
  type Account,
  foundInFiles,
  markersIn,
  newControl,
  newMarkers,
  writeMarkers,
} from './at-rest-markers.ts';
import { call, startEmbeddedConnect } from './running-connect.ts';

const BIN = fileURLToPath(new URL('../bin/connect.js', import.meta.url));
const MARKERS = newMarkers();
const CONTROL = newControl();

let work: string;
let dataDir: string;
let archive: string;
let running: Awaited<ReturnType<typeof startEmbeddedConnect>> | undefined;
/** Every table's rows as text, by table. */
let dump = new Map<string, string>();
/** Ana, and her commitment that carries the markers. */
let ana: Account;
let commitmentId: string;

/** Every row of every table of the database, as text (bytea as hex), by table. */
async function dumpDatabase(url: string): Promise<Map<string, string>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows: tables } = await client.query<{ schema: string; name: string }>(
      `select table_schema as schema, table_name as name from information_schema.tables
        where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema')`,
    );
    const out = new Map<string, string>();
    for (const { schema, name } of tables) {
      const table = `${client.escapeIdentifier(schema)}.${client.escapeIdentifier(name)}`;
      const { rows } = await client.query<{ row: string }>(`select t::text as row from ${table} t`);
      out.set(`${schema}.${name}`, rows.map((r) => r.row).join('\n'));
    }
    return out;
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'connect-at-rest-'));
  await chmod(work, 0o711);
  dataDir = path.join(work, 'data');
  archive = path.join(work, 'wal-archive');
  running = await startEmbeddedConnect(dataDir, { CONNECT_WAL_ARCHIVE: archive });
  ({ ana, commitmentId } = await writeMarkers(running, MARKERS, CONTROL));

  const { socketDir } = embeddedPaths(dataDir);
  const url = `postgresql://postgres@localhost:5432/postgres?host=${socketDir}`;
  dump = await dumpDatabase(url);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query('select pg_switch_wal()').finally(() => client.end());
  running.child.kill('SIGTERM');
  expect(await running.exited).toBe(0);
}, 240_000);

afterAll(async () => {
  await running?.close();
  await rm(work, { recursive: true, force: true });
});

test('a dump of every table holds no marker, neither as text nor as bytes', () => {
  const tablesWith = (needle: string) =>
    [...dump].filter(([, rows]) => markersIn(rows, { needle }).length > 0);
  expect(tablesWith(CONTROL).map(([table]) => table)).toContain('public.profiles');
  const leaked = [...dump].flatMap(([table, rows]) =>
    markersIn(rows, MARKERS).map((leak) => `${table}: ${leak}`),
  );
  expect(leaked).toEqual([]);
});

test('no file of the data directory or the WAL archive holds a marker', async () => {
  const found = await foundInFiles([dataDir, archive], { ...MARKERS, CONTROL }, work);
  expect(found.CONTROL?.length ?? 0).toBeGreaterThan(0);
  const { CONTROL: _control, ...leaked } = found;
  expect(leaked).toEqual({});
});

test('the sealed ledger still verifies offline', () => {
  const verified = spawnSync(process.execPath, [BIN, 'verify', 'ledger'], {
    env: { ...process.env, DATABASE_URL: '', CONNECT_DATA_DIR: dataDir },
    encoding: 'utf8',
  });
  expect(verified.stderr).toBe('');
  expect(verified.status).toBe(0);
}, 60_000);

test('after a master key rotation, and a restart with only the new key, reads, receipts and the audit work', async () => {
  const env = { ...process.env, DATABASE_URL: '', CONNECT_DATA_DIR: dataDir };
  const keyFile = path.join(dataDir, MASTER_KEY_FILE);
  const before = (await readFile(keyFile, 'utf8')).trim();
  const rotated = spawnSync(process.execPath, [BIN, 'keys', 'rotate-master'], { env, encoding: 'utf8' });
  expect(rotated.stderr).toBe('');
  expect(rotated.status).toBe(0);
  const after = (await readFile(keyFile, 'utf8')).trim().split('\n');
  expect(after).toHaveLength(1);
  expect(after[0]).not.toBe(before);

  running = await startEmbeddedConnect(dataDir);
  const read = await call(running, 'GET', `/v1/commitments/${commitmentId}`, { token: ana.token });
  expect(read.body).toMatchObject({ title: MARKERS.title, terms: `Pay to ${MARKERS.terms}` });
  const receipt = await fetch(`${running.url}/v1/commitments/${commitmentId}/receipt`, {
    headers: { authorization: `Bearer ${ana.token}` },
  });
  expect(receipt.status).toBe(200);
  const receiptFile = path.join(work, 'receipt.json');
  await writeFile(receiptFile, await receipt.text());
  const { verifierKey } = (await (await fetch(`${running.url}/v1/ledger/key`)).json()) as {
    verifierKey: string;
  };
  running.child.kill('SIGTERM');
  expect(await running.exited).toBe(0);

  const verified = spawnSync(
    process.execPath,
    [BIN, 'verify', 'receipt', receiptFile, '--key', verifierKey],
    {
      env,
      encoding: 'utf8',
    },
  );
  expect(verified.status, verified.stderr).toBe(0);
  const audited = spawnSync(process.execPath, [BIN, 'verify', 'ledger'], { env, encoding: 'utf8' });
  expect(audited.status, audited.stderr).toBe(0);
}, 180_000);
