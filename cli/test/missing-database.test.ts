// Only start, migrate and import create a database: the other commands, pointed at the wrong
// place, say where they looked instead of answering from a new, empty one.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, expect, inject, test } from 'vitest';

const BIN = fileURLToPath(new URL('../bin/connect.js', import.meta.url));
let dataDir: string;

const connect = (args: string[], env: Record<string, string>) =>
  spawnSync(process.execPath, [BIN, ...args], {
    env: { ...process.env, DATABASE_URL: '', CONNECT_DATA_DIR: dataDir, ...env },
    encoding: 'utf8',
  });

const commands = [
  ['users', 'grant-admin', 'ana@example.test'],
  ['replay'],
  ['verify', 'ledger'],
  ['redact', '--index', '0', '--reason', 'asked', '--admin', 'ana@example.test'],
];

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'connect-missing-'));
});
afterAll(() => rm(dataDir, { recursive: true, force: true }));

test.each(commands)('connect %s … refuses an empty CONNECT_DATA_DIR, naming it', (...args) => {
  const result = connect(args, {});
  expect(result.status).not.toBe(0);
  expect(result.stderr).toContain(dataDir);
  expect(result.stderr).toMatch(/no Connect database/);
  expect(existsSync(path.join(dataDir, 'postgres'))).toBe(false);
});

test('connect users grant-admin refuses a database Connect never migrated, naming it', async () => {
  const adminUrl = inject('adminUrl');
  const name = `connect_empty_${process.pid}`;
  const server = new pg.Client({ connectionString: adminUrl });
  await server.connect();
  try {
    await server.query(`create database ${name}`);
    const url = new URL(adminUrl);
    url.pathname = `/${name}`;
    const result = connect(['users', 'grant-admin', 'ana@example.test'], { DATABASE_URL: url.toString() });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain(name);
    expect(result.stderr).toMatch(/never migrated/);
    const check = new pg.Client({ connectionString: url.toString() });
    await check.connect();
    const { rows } = await check.query(`select to_regclass('schema_migrations') as t`);
    await check.end();
    expect(rows).toEqual([{ t: null }]);
  } finally {
    await server.query(`drop database if exists ${name} with (force)`);
    await server.end();
  }
});
