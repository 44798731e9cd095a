// Fault drill: a read replica. A PostgreSQL primary and a hot standby made from it with
// `pg_basebackup -R` (the machine's PostgreSQL tools, a cluster of the test's own), `connect start`
// on the primary with READ_DATABASE_URL on the standby. Reads come from the standby, and
// Connect-Index / Connect-Min-Index stay exact across its lag: with its replay paused, a read that
// asks for a newer index waits and answers 503, and once replay resumes it is served.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import {
  clusterRoot,
  clusterTool,
  newCluster,
  type OwnCluster,
  query,
  removeRoot,
  startCluster,
} from './own-cluster.ts';
import { call, type RunningConnect, signUp, startConnectOn } from './running-connect.ts';

let root: string;
let primary: OwnCluster | undefined;
let standby: OwnCluster | undefined;
let connect: Omit<RunningConnect, 'database' | 'dataDir'> | undefined;

beforeAll(async () => {
  root = await clusterRoot('connect-replica-');
  primary = await newCluster(root);
  await query(primary.url(), 'create database connect');
  const standbyDir = path.join(root, 'standby');
  clusterTool('pg_basebackup', [
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
  standby = await startCluster(standbyDir, root);
  const dataDir = path.join(root, 'connect');
  await mkdir(dataDir, { mode: 0o711 });
  connect = await startConnectOn(primary.url('connect'), dataDir, {
    READ_DATABASE_URL: standby.url('connect'),
  });
}, 180_000);

afterAll(async () => {
  await connect?.close();
  await removeRoot(root, [standby, primary]);
});

test('reads come from the replica, and Connect-Min-Index keeps read-your-writes exact across its lag', async () => {
  const running = connect as NonNullable<typeof connect>;
  const replica = standby as OwnCluster;
  const [inRecovery] = await query<{ standby: boolean }>(
    replica.url(),
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
    replica.url(),
    "select count(*)::int as n from pg_stat_activity where usename = 'connect_reader'",
  );
  expect(readers[0]?.n).toBeGreaterThan(0);

  // The replica stops replaying: what is written now is on the primary only.
  await query(replica.url(), 'select pg_wal_replay_pause()');
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
  await query(replica.url(), 'select pg_wal_replay_resume()');
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
