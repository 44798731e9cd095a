// Fault drill: a read replica. A PostgreSQL primary and a hot standby made from it with
// `pg_basebackup -R` (the machine's PostgreSQL tools, a cluster of the test's own), `connect start`
// on the primary with READ_DATABASE_URL on the standby. Reads come from the standby, and
// Connect-Index / Connect-Min-Index stay exact across its lag: with its replay paused, a read that
// asks for a newer index waits and answers 503, and once replay resumes it is served.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { runAs } from '@connect/db';
import pg from 'pg';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { call, type RunningConnect, signUp, startConnectOn } from './running-connect.ts';

const BIN_DIR = ['17', '16', '15']
  .map((version) => `/usr/lib/postgresql/${version}/bin`)
  .find((dir) => existsSync(path.join(dir, 'pg_basebackup')));
const owner = runAs();

let root: string;
let primary: Cluster;
let standby: Cluster;
let connect: Omit<RunningConnect, 'database' | 'dataDir'> | undefined;

interface Cluster {
  dir: string;
  port: number;
  url(database?: string): string;
}

const tool = (name: string, args: string[]) =>
  execFileSync(path.join(BIN_DIR as string, name), args, { ...owner, stdio: 'pipe', encoding: 'utf8' });

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function startCluster(dir: string): Promise<Cluster> {
  const port = await freePort();
  tool('pg_ctl', [
    '-D',
    dir,
    '-l',
    `${dir}.log`,
    '-w',
    '-o',
    `-p ${port} -k ${root} -c listen_addresses=127.0.0.1`,
    'start',
  ]);
  return { dir, port, url: (database = 'postgres') => `postgresql://postgres@127.0.0.1:${port}/${database}` };
}

async function ownedDir(dir: string): Promise<string> {
  await mkdir(dir, { mode: 0o700 });
  if (owner.uid !== undefined && owner.gid !== undefined) await chown(dir, owner.uid, owner.gid);
  return dir;
}

async function query<T extends pg.QueryResultRow>(url: string, text: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(text)).rows;
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  if (!BIN_DIR)
    throw new Error(
      'this drill needs the PostgreSQL server tools (pg_basebackup) in /usr/lib/postgresql/*/bin',
    );
  root = await mkdtemp(path.join(os.tmpdir(), 'connect-replica-'));
  await chmod(root, 0o777);
  const primaryDir = await ownedDir(path.join(root, 'primary'));
  tool('initdb', ['-D', primaryDir, '-U', 'postgres', '--auth=trust', '--no-sync']);
  primary = await startCluster(primaryDir);
  await query(primary.url(), 'create database connect');
  const standbyDir = path.join(root, 'standby');
  tool('pg_basebackup', [
    '-h',
    '127.0.0.1',
    '-p',
    String(primary.port),
    '-U',
    'postgres',
    '-D',
    standbyDir,
    '-R',
    '-X',
    'stream',
  ]);
  standby = await startCluster(standbyDir);
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'connect-replica-data-'));
  await chmod(dataDir, 0o711);
  connect = await startConnectOn(primary.url('connect'), dataDir, {
    READ_DATABASE_URL: standby.url('connect'),
  });
}, 180_000);

afterAll(async () => {
  await connect?.close();
  for (const cluster of [standby, primary]) {
    if (cluster) tool('pg_ctl', ['-D', cluster.dir, '-m', 'immediate', '-w', 'stop']);
  }
  await rm(root, { recursive: true, force: true });
});

test('reads come from the replica, and Connect-Min-Index keeps read-your-writes exact across its lag', async () => {
  const running = connect as NonNullable<typeof connect>;
  const [inRecovery] = await query<{ standby: boolean }>(
    standby.url(),
    'select pg_is_in_recovery() as standby',
  );
  expect(inRecovery?.standby).toBe(true);

  const ana = await signUp(running, 'ana');
  const create = (title: string) =>
    call(running, 'POST', '/v1/commitments', { token: ana.token, body: { type: 'personal', title } });
  const read = (id: string, index: number) =>
    call(running, 'GET', `/v1/commitments/${id}`, {
      token: ana.token,
      headers: { 'connect-min-index': String(index) },
    });
  const lastIndex = (answer: { body: Record<string, unknown> }) =>
    Math.max(...(answer.body.events as { index: number }[]).map((event) => event.index));

  const first = await create('Read from the replica');
  expect(first.status).toBe(201);
  const seen = await read(first.body.commitmentId as string, lastIndex(first));
  expect(seen.status).toBe(200);
  expect(seen.body.title).toBe('Read from the replica');
  expect(Number(seen.headers.get('connect-index'))).toBeGreaterThanOrEqual(lastIndex(first));
  // The reads are sessions of connect_reader on the standby.
  const readers = await query<{ n: number }>(
    standby.url(),
    "select count(*)::int as n from pg_stat_activity where usename = 'connect_reader'",
  );
  expect(readers[0]?.n).toBeGreaterThan(0);

  // The replica stops replaying: what is written now is on the primary only.
  await query(standby.url(), 'select pg_wal_replay_pause()');
  const second = await create('Written while the replica lags');
  expect(second.status).toBe(201);
  const secondId = second.body.commitmentId as string;
  const started = Date.now();
  const waited = await read(secondId, lastIndex(second));
  expect(waited.status).toBe(503);
  expect(Date.now() - started).toBeGreaterThanOrEqual(4000);
  expect(waited.headers.get('retry-after')).toBe('1');
  expect(Number(waited.headers.get('connect-index'))).toBeLessThan(lastIndex(second));
  // Without Connect-Min-Index the list answers at once, from the replica: as it was, and says so.
  const list = await call(running, 'GET', '/v1/commitments', { token: ana.token });
  expect(list.status).toBe(200);
  expect((list.body.items as { id: string }[]).map((item) => item.id)).not.toContain(secondId);
  expect(Number(list.headers.get('connect-index'))).toBeLessThan(lastIndex(second));

  // Replay resumes: the same read, held by Connect-Min-Index, is served as soon as the replica has it.
  const resumed = read(secondId, lastIndex(second));
  await new Promise((resolve) => setTimeout(resolve, 300));
  await query(standby.url(), 'select pg_wal_replay_resume()');
  const answer = await resumed;
  expect(answer.status).toBe(200);
  expect(answer.body.title).toBe('Written while the replica lags');

  // GraphQL reads go the same way.
  const graphql = await call(running, 'POST', '/graphql', {
    token: ana.token,
    headers: { 'connect-min-index': String(lastIndex(second)) },
    body: { query: `{ commitment(id: "${secondId}") { title } }` },
  });
  expect(graphql.status).toBe(200);
  expect(graphql.body).toEqual({ data: { commitment: { title: 'Written while the replica lags' } } });
});
