import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { rolesStream } from '@connect/domain';
import { openBodyCipher, readStream } from '@connect/ledger';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ORIGIN, projectorLedger } from '../../services/projector/test/support.ts';
import type { TestDatabase } from '../../test/support/database.ts';

const BIN = fileURLToPath(new URL('../bin/connect.js', import.meta.url));
let database: TestDatabase;
let dataDir: string;
const userId = randomUUID();

beforeAll(async () => {
  const setup = await projectorLedger();
  database = setup.database;
  await setup.ledger.drain();
  dataDir = setup.dataDir;
  await database.pool.query(
    `insert into users (id, email, password_hash, display_name) values ($1, 'zoe@users.test', 'x', 'Zoe')`,
    [userId],
  );
});
afterAll(async () => {
  await database.close();
  await rm(dataDir, { recursive: true, force: true });
});

const users = (...args: string[]) =>
  spawnSync(process.execPath, [BIN, 'users', ...args], {
    env: {
      ...process.env,
      DATABASE_URL: database.url,
      CONNECT_DATA_DIR: dataDir,
      CONNECT_LEDGER_ORIGIN: ORIGIN,
      CONNECT_LEDGER_KEY: Buffer.alloc(32, 9).toString('base64'),
    },
    encoding: 'utf8',
  });

const roles = async () =>
  (
    await database.pool.query('select role from user_roles where user_id = $1 order by role', [userId])
  ).rows.map((row) => row.role);

test('connect users grant-role and revoke-role change roles on the ledger; grant-admin is an alias', async () => {
  expect(users('grant-role', 'zoe@users.test', 'owner').status).toBe(2);
  expect(users('grant-role', 'nobody@users.test', 'auditor').status).toBe(1);

  const granted = users('grant-role', 'ZOE@users.test', 'auditor');
  expect(granted.stderr).toBe('');
  expect(granted.status).toBe(0);
  expect(granted.stdout).toMatch(/zoe@users.test is now an auditor \(ledger entry \d+\)/i);
  expect(users('grant-admin', 'zoe@users.test').status).toBe(0);
  expect(await roles()).toEqual(['admin', 'auditor']);

  // The only admin keeps the role.
  const lastAdmin = users('revoke-role', 'zoe@users.test', 'admin');
  expect(lastAdmin.status).toBe(1);
  expect(lastAdmin.stderr).toMatch(/last admin/);
  expect(users('revoke-role', 'zoe@users.test', 'auditor').status).toBe(0);
  expect(users('revoke-role', 'zoe@users.test', 'auditor').status).toBe(1);
  expect(await roles()).toEqual(['admin']);

  // The CLI sealed them with the data directory's master key.
  const { keys, cipher } = await openBodyCipher(
    database.pool,
    { dataDir, masterKeys: undefined, encryption: true },
    { listen: false },
  );
  const entries = await readStream(database.db, { origin: ORIGIN, cipher }, rolesStream(userId));
  await keys.close();
  expect(entries.map((e) => [e.type, e.actor, e.data?.role])).toEqual([
    ['RoleGranted', null, 'auditor'],
    ['RoleGranted', null, 'admin'],
    ['RoleRevoked', null, 'auditor'],
  ]);
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
