// Encryption at rest as someone holding a copy would see it: `connect start` on the embedded
// PostgreSQL, archiving its WAL, is given commitments, documents, users, invitations and
// notifications that carry unique marker strings; then a dump of every table, every file of the
// data directory (the database's files, its WAL, the documents) and the WAL archive are searched
// for each marker. None may be there in plain text, while the API still reads every one back.
// (The dump is every row of every table as text, which is what pg_dump writes for data; this
// machine's pg_dump is older than the embedded server and refuses to dump it.)
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { embeddedPaths, MASTER_KEY_FILE } from '@connect/db';
import pg from 'pg';
import { afterAll, beforeAll, expect, test, vi } from 'vitest';
import { type Answer, call, startEmbeddedConnect } from './running-connect.ts';

const BIN = fileURLToPath(new URL('../bin/connect.js', import.meta.url));
const PASSWORD = 'a long password';

/** A string found nowhere unless written there. */
const marker = (what: string) => `${what}${randomBytes(9).toString('hex')}`;
const MARKERS = {
  anaEmail: marker('anamail'),
  benEmail: marker('benmail'),
  inviteeEmail: marker('invitee'),
  title: marker('title'),
  description: marker('description'),
  terms: marker('iban'),
  documentName: marker('docname'),
  documentBytes: marker('docbytes'),
  reason: marker('reason'),
};
/** Display names are not sealed (every party sees them): the control that the search finds plain text. */
const CONTROL = marker('displayname');

let work: string;
let dataDir: string;
let archive: string;
let running: Awaited<ReturnType<typeof startEmbeddedConnect>> | undefined;
/** Every table's rows as text, by table. */
let dump = new Map<string, string>();
/** Ana, and her commitment that carries the markers. */
let ana: Account;
let commitmentId: string;

interface Account {
  id: string;
  token: string;
}

async function signUp(base: { url: string }, email: string, displayName: string): Promise<Account> {
  const answer = await call(base, 'POST', '/v1/auth/signup', {
    body: { email: `${email}@at-rest.test`, password: PASSWORD, displayName },
  });
  expect(answer.status).toBe(201);
  return { id: (answer.body.user as { id: string }).id, token: answer.body.access_token as string };
}

const lastIndex = (answer: Answer) =>
  (answer.body.events as { index: number }[] | undefined)?.at(-1)?.index ?? 0;

/** A JSON command; the ledger index it ended at. */
async function command(who: Account, url: string, body: unknown = {}): Promise<number> {
  const answer = await call(running as { url: string }, 'POST', url, { body, token: who.token });
  expect(answer.status, `${url}: ${JSON.stringify(answer.body)}`).toBeLessThan(300);
  return lastIndex(answer);
}

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

/** Every file under `dir`, recursively. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

/** Which of `needles` appear in which file under `dirs`. */
async function foundIn(dirs: string[], needles: Record<string, string>): Promise<Record<string, string[]>> {
  const found: Record<string, string[]> = {};
  for (const dir of dirs) {
    for (const file of await filesUnder(dir)) {
      const bytes = await readFile(file).catch(() => undefined); // a file the server removed meanwhile
      if (!bytes) continue;
      for (const [name, needle] of Object.entries(needles)) {
        if (bytes.includes(needle)) found[name] = [...(found[name] ?? []), path.relative(work, file)];
      }
    }
  }
  return found;
}

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'connect-at-rest-'));
  await chmod(work, 0o711);
  dataDir = path.join(work, 'data');
  archive = path.join(work, 'wal-archive');
  running = await startEmbeddedConnect(dataDir, { CONNECT_WAL_ARCHIVE: archive });
  ana = await signUp(running, MARKERS.anaEmail, `Ana ${CONTROL}`);
  const ben = await signUp(running, MARKERS.benEmail, 'Ben');

  const created = await call(running, 'POST', '/v1/commitments', {
    token: ana.token,
    body: {
      type: 'personal',
      title: MARKERS.title,
      description: MARKERS.description,
      terms: `Pay to ${MARKERS.terms}`,
    },
  });
  expect(created.status).toBe(201);
  const id = created.body.commitmentId as string;
  commitmentId = id;
  const form = new FormData();
  form.append('name', `${MARKERS.documentName}.txt`);
  form.append('file', new Blob([`the agreement: ${MARKERS.documentBytes}`], { type: 'text/plain' }), 'a.txt');
  const uploaded = await fetch(`${running.url}/v1/commitments/${id}/documents`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ana.token}` },
    body: form,
  });
  expect(uploaded.status).toBe(201);
  await command(ana, `/v1/commitments/${id}/invite`, { userId: ben.id, role: 'participant' });
  await command(ana, `/v1/commitments/${id}/invite`, {
    email: `${MARKERS.inviteeEmail}@at-rest.test`,
    role: 'witness',
  });
  await command(ana, `/v1/commitments/${id}/propose`);
  const declined = await command(ben, `/v1/commitments/${id}/decline`, { reason: MARKERS.reason });

  // Everything is read back through the API: it is there, only sealed.
  const read = await fetch(`${running.url}/v1/commitments/${id}`, {
    headers: { authorization: `Bearer ${ana.token}`, 'connect-min-index': String(declined) },
  });
  const commitment = (await read.json()) as Record<string, unknown>;
  expect(commitment).toMatchObject({
    title: MARKERS.title,
    description: MARKERS.description,
    terms: `Pay to ${MARKERS.terms}`,
    documents: [expect.objectContaining({ name: `${MARKERS.documentName}.txt` })],
  });
  const history = await call(running, 'GET', `/v1/commitments/${id}/history`, { token: ana.token });
  expect(JSON.stringify(history.body)).toContain(MARKERS.reason);
  const documentId = (commitment.documents as { documentId: string }[])[0]?.documentId;
  const content = await fetch(`${running.url}/v1/commitments/${id}/documents/${documentId}/content`, {
    headers: { authorization: `Bearer ${ana.token}` },
  });
  expect(await content.text()).toContain(MARKERS.documentBytes);
  await vi.waitFor(
    async () => {
      const notifications = await call(running as { url: string }, 'GET', '/v1/notifications', {
        token: ben.token,
      });
      expect(JSON.stringify(notifications.body)).toContain(MARKERS.title);
    },
    { timeout: 20_000, interval: 200 },
  );
  const me = await call(running, 'GET', '/v1/auth/me', { token: ben.token });
  expect(JSON.stringify(me.body)).toContain(MARKERS.benEmail);

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
  const hex = (text: string) => Buffer.from(text).toString('hex');
  const tablesWith = (needle: string) =>
    [...dump].filter(([, rows]) => rows.includes(needle) || rows.includes(hex(needle))).map(([t]) => t);
  expect(tablesWith(CONTROL)).toContain('public.profiles');
  // Each leak with the text around it, to tell where it comes from.
  const around = (rows: string, needle: string) => {
    const at = rows.indexOf(needle);
    return at < 0 ? 'as bytes' : rows.slice(Math.max(0, at - 120), at + needle.length + 40);
  };
  const leaked = Object.entries(MARKERS).flatMap(([name, needle]) =>
    tablesWith(needle).map((table) => `${name} in ${table}: ${around(dump.get(table) ?? '', needle)}`),
  );
  expect(leaked).toEqual([]);
});

test('no file of the data directory or the WAL archive holds a marker', async () => {
  const found = await foundIn([dataDir, archive], { ...MARKERS, CONTROL });
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
