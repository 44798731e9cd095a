import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { signingKeyFromSeed } from '@connect/crypto';
import { openLedger } from '@connect/ledger';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.ts';

const BIN = fileURLToPath(new URL('../bin/connect.js', import.meta.url));
let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
  const key = signingKeyFromSeed('verify.test/ledger', new Uint8Array(32).fill(3));
  const ledger = await openLedger({ pool: database.pool, db: database.db, origin: key.name, key });
  for (let i = 0; i < 30; i++) {
    await ledger.append({
      stream: `s-${i % 4}`,
      expectedVersion: 'any',
      actor: 'ana',
      events: [{ type: 'Noted', data: { i } }],
    });
  }
});
afterAll(() => database.close());

function verify() {
  return spawnSync(process.execPath, [BIN, 'verify', 'ledger'], {
    env: { ...process.env, DATABASE_URL: database.url, CONNECT_LEDGER_ORIGIN: 'verify.test/ledger' },
    encoding: 'utf8',
  });
}

test('connect verify ledger passes an intact ledger and names the first tampered entry', async () => {
  const intact = verify();
  expect(intact.status).toBe(0);
  expect(intact.stdout).toMatch(/verified: 30 entries, 31 checkpoints/);

  const client = await database.pool.connect();
  try {
    await client.query('begin');
    await client.query('set local session_replication_role = replica');
    await client.query(`update ledger_entries set data = '{"i": 99}' where index = 17`);
    await client.query('commit');
  } finally {
    client.release();
  }
  const tampered = verify();
  expect(tampered.status).toBe(1);
  expect(tampered.stderr).toMatch(/FAILED verification at entry 17: dataHash does not match/);
});
