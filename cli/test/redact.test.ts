import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ORIGIN, projectorLedger, registerProfile } from '../../services/projector/test/support.ts';
import type { TestDatabase } from '../../test/support/database.ts';

const BIN = fileURLToPath(new URL('../bin/connect.js', import.meta.url));
let database: TestDatabase;
let dataDir: string;
let userId: string;

beforeAll(async () => {
  const setup = await projectorLedger();
  database = setup.database;
  userId = await registerProfile(setup.ledger, 'Zoe');
  await setup.ledger.drain();
  dataDir = setup.dataDir;
  const adminId = randomUUID();
  await database.pool.query(
    `insert into users (id, email, password_hash, display_name) values
       ($1, 'admin@redact.test', 'x', 'Admin'), ($2, 'user@redact.test', 'x', 'User')`,
    [adminId, randomUUID()],
  );
  // The role row only: a RoleGranted entry would move the indexes this test names.
  await database.pool.query(`insert into user_roles (user_id, role) values ($1, 'admin')`, [adminId]);
});
afterAll(async () => {
  await database.close();
  await rm(dataDir, { recursive: true, force: true });
});

const redact = (...args: string[]) =>
  spawnSync(process.execPath, [BIN, 'redact', ...args], {
    env: {
      ...process.env,
      DATABASE_URL: database.url,
      CONNECT_DATA_DIR: dataDir,
      CONNECT_LEDGER_ORIGIN: ORIGIN,
      CONNECT_LEDGER_KEY: Buffer.alloc(32, 9).toString('base64'),
    },
    encoding: 'utf8',
  });

test('connect redact erases a user’s profile for an admin, records why, and refuses others', () => {
  expect(redact('--user', userId, '--reason', 'erasure request').status).toBe(2);
  const refused = redact('--user', userId, '--reason', 'erasure request', '--admin', 'user@redact.test');
  expect(refused.status).toBe(1);
  expect(refused.stderr).toMatch(/is not an admin/);
  const done = redact('--user', userId, '--reason', 'erasure request', '--admin', 'admin@redact.test');
  expect(done.stderr).toBe('');
  expect(done.status).toBe(0);
  expect(done.stdout).toMatch(/entry 3 \(profile-.*\): redacted/);
  expect(redact('--index', '3', '--reason', 'again', '--admin', 'admin@redact.test').stdout).toMatch(
    /already redacted/,
  );
});

test('the redacted ledger still passes the audit', () => {
  const audit = spawnSync(process.execPath, [BIN, 'verify', 'ledger'], {
    env: {
      ...process.env,
      DATABASE_URL: database.url,
      CONNECT_DATA_DIR: dataDir,
      CONNECT_LEDGER_ORIGIN: ORIGIN,
    },
    encoding: 'utf8',
  });
  expect(audit.status).toBe(0);
});
