// Encryption at rest as a pg_dump shows it: `connect start` on a PostgreSQL cluster of the test's
// own (the machine's server tools, so its pg_dump can dump it) is given the same marker strings as
// at-rest.test.ts; then `pg_dump` of the whole database (plain SQL, data and schema), the
// cluster's files (tables and WAL) and the service's data directory (documents, keys) are
// searched: no marker, while the display name (not sealed) is found as the control.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { foundInFiles, markersIn, newControl, newMarkers, writeMarkers } from './at-rest-markers.ts';
import { clusterRoot, clusterTool, newCluster, type OwnCluster, query, removeRoot } from './own-cluster.ts';
import { type RunningConnect, startConnectOn } from './running-connect.ts';

const MARKERS = newMarkers();
const CONTROL = newControl();

let root: string;
let cluster: OwnCluster | undefined;
let running: Omit<RunningConnect, 'database' | 'dataDir'> | undefined;
let dataDir: string;
let dump: string;

beforeAll(async () => {
  root = await clusterRoot('connect-at-rest-dump-');
  cluster = await newCluster(root);
  await query(cluster.url(), 'create database connect');
  dataDir = path.join(root, 'connect');
  await mkdir(dataDir, { mode: 0o711 });
  running = await startConnectOn(cluster.url('connect'), dataDir);
  await writeMarkers(running, MARKERS, CONTROL);
  dump = clusterTool('pg_dump', ['--dbname', cluster.url('connect')]);
  await query(cluster.url(), 'checkpoint');
  running.child.kill('SIGTERM');
  expect(await running.exited).toBe(0);
}, 240_000);

afterAll(async () => {
  await running?.close();
  await removeRoot(root, [cluster]);
});

test('pg_dump of the whole database holds no marker, neither as text nor as bytes', () => {
  expect(dump).toContain('COPY public.ledger_entries');
  expect(markersIn(dump, { CONTROL })).toHaveLength(1);
  expect(markersIn(dump, MARKERS)).toEqual([]);
});

test('no file of the cluster (tables, WAL) or of the data directory holds a marker', async () => {
  const found = await foundInFiles([(cluster as OwnCluster).dir, dataDir], { ...MARKERS, CONTROL }, root);
  expect(found.CONTROL?.length ?? 0).toBeGreaterThan(0);
  const { CONTROL: _control, ...leaked } = found;
  expect(leaked).toEqual({});
});
