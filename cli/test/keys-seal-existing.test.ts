// connect keys seal-existing: values a migration left in the clear (as JSON), or written with
// encryption off, are sealed in place and read the same; a second run finds nothing to seal.
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  fieldCipher,
  idempotentBodyField,
  keyRing,
  localMasterKeys,
  notificationField,
  phoneField,
  webhookPayloadField,
  webhookSecretField,
} from '@connect/db';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.ts';

const BIN = fileURLToPath(new URL('../bin/connect.js', import.meta.url));
let database: TestDatabase;
let dataDir: string;
const user = randomUUID();
const endpoint = randomUUID();
const delivery = randomUUID();
const clear = (value: unknown) => Buffer.from(JSON.stringify(value));

/** Each sealed column's stored value, with the field it is sealed for. */
async function stored() {
  const one = async (sql: string) => (await database.pool.query<{ v: Buffer }>(sql)).rows[0]?.v as Buffer;
  return [
    {
      ...notificationField({ id: 'n1', recipientId: user }),
      stored: await one('select sealed as v from notifications'),
    },
    { ...phoneField(user), stored: await one('select phone as v from phone_numbers') },
    { ...idempotentBodyField(user, 'k1'), stored: await one('select body as v from http_idempotency') },
    { ...webhookSecretField(endpoint), stored: await one('select secret as v from webhook_endpoints') },
    { ...webhookPayloadField(delivery), stored: await one('select payload as v from webhook_deliveries') },
  ];
}

const VALUES = [
  { title: 'Ana invited you to “Lend a bike”', body: 'Open it' },
  '+14155552671',
  { commitmentId: 'c1', status: 'draft' },
  'whsec_c2VjcmV0',
  { commitmentId: 'c1', index: 3 },
];

beforeAll(async () => {
  database = await createTestDatabase({ poolSize: 3 });
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'connect-seal-existing-'));
  await localMasterKeys({ dataDir }); // the service made it when it first started
  const q = (sql: string, params: unknown[]) => database.pool.query(sql, params);
  await q(`insert into users (id, password_hash, display_name) values ($1, 'x', 'Zoe')`, [user]);
  await q(
    `insert into notifications (id, recipient_id, kind, sealed, link, commitment_id, ledger_index, created_at)
     values ('n1', $1, 'invitation', $2, 'https://app/c/1', $3, 1, now())`,
    [user, clear(VALUES[0]), randomUUID()],
  );
  await q('insert into phone_numbers (user_id, phone) values ($1, $2)', [user, clear(VALUES[1])]);
  await q(
    `insert into http_idempotency (user_id, key, request_hash, status, body, headers)
     values ($1, 'k1', '\\x00', 201, $2, '{}')`,
    [user, clear(VALUES[2])],
  );
  await q(`insert into webhook_endpoints (id, url, secret) values ($1, 'https://hooks.example/in', $2)`, [
    endpoint,
    clear(VALUES[3]),
  ]);
  await q(
    `insert into webhook_deliveries (id, endpoint_id, webhook_id, event_type, payload)
     values ($1, $2, 'evt_3', 'commitment.drafted', $3)`,
    [delivery, endpoint, clear(VALUES[4])],
  );
});
afterAll(async () => {
  await database.close();
  await rm(dataDir, { recursive: true, force: true });
});

const sealExisting = (env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [BIN, 'keys', 'seal-existing'], {
    env: { ...process.env, DATABASE_URL: database.url, CONNECT_DATA_DIR: dataDir, ...env },
    encoding: 'utf8',
  });

test('seals every clear value in place; they read the same; a rerun seals nothing', async () => {
  expect(sealExisting({ CONNECT_ENCRYPTION: 'off' }).status).toBe(1);
  const run = sealExisting();
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  for (const table of [
    'notifications',
    'phone_numbers',
    'http_idempotency',
    'webhook_endpoints',
    'webhook_deliveries',
  ])
    expect(run.stdout).toContain(`${table}: 1 sealed`);

  const after = await stored();
  for (const field of after) {
    expect(field.stored[0], field.place).toBe(1);
    expect(field.stored.includes('Lend a bike') || field.stored.includes('4155552671')).toBe(false);
  }
  const keys = keyRing(database.pool, await localMasterKeys({ dataDir }), { listen: false });
  try {
    expect(await fieldCipher(keys, { sealNew: true }).open(after)).toEqual(VALUES);
  } finally {
    await keys.close();
  }
  expect(sealExisting().stdout).not.toMatch(/: [1-9]\d* sealed/);
});
