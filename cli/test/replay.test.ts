import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { activeCommitment, projectorLedger, registerProfile } from '../../services/projector/test/support.ts';
import type { TestDatabase } from '../../test/support/database.ts';

const BIN = fileURLToPath(new URL('../bin/connect.js', import.meta.url));
let database: TestDatabase;
let dataDir: string;

beforeAll(async () => {
  const setup = await projectorLedger();
  database = setup.database;
  dataDir = setup.dataDir;
  const ana = await registerProfile(setup.ledger, 'Ana');
  const ben = await registerProfile(setup.ledger, 'Ben');
  for (let i = 0; i < 5; i++) await activeCommitment(setup.ledger, ana, ben, `Promise ${i}`);
  await setup.ledger.drain();
});
afterAll(() => database.close());

const replay = (...args: string[]) =>
  spawnSync(process.execPath, [BIN, 'replay', ...args], {
    env: { ...process.env, DATABASE_URL: database.url, CONNECT_DATA_DIR: dataDir },
    encoding: 'utf8',
  });

test('connect replay rebuilds the read models from the ledger, with progress', async () => {
  const result = replay();
  expect(result.status).toBe(0);
  expect(result.stdout).toMatch(/commitments: rebuilt from 30 events/);
  expect(result.stderr).toMatch(/commitments \[#+\] 30\/30 events/);
  const { rows } = await database.pool.query(
    'select status, count(*)::int as n from commitments group by status',
  );
  expect(rows).toEqual([{ status: 'active', n: 5 }]);
  const checkpoints = await database.pool.query(
    'select min(last_index)::int as n from projection_checkpoints',
  );
  expect(checkpoints.rows[0].n).toBe(29);
});

test('connect replay --projection names the projections when given an unknown one', () => {
  const result = replay('--projection', 'nope');
  expect(result.status).toBe(2);
  expect(result.stderr).toMatch(/profiles, commitment_types, commitments/);
  expect(replay('--projection', 'profiles').stdout).toMatch(/profiles: rebuilt from 30 events/);
});

test('connect replay with a malformed master key file says so and exits, leaving no connection open', async () => {
  const emptyDir = await mkdtemp(path.join(os.tmpdir(), 'connect-replay-badkey-'));
  await writeFile(path.join(emptyDir, 'master-key'), 'not a key\n', { mode: 0o600 });
  try {
    const startedAt = performance.now();
    const result = spawnSync(process.execPath, [BIN, 'replay'], {
      env: { ...process.env, DATABASE_URL: database.url, CONNECT_DATA_DIR: emptyDir },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/master-key must hold base64 keys/);
    // The pool's connection is closed on the way out, not left to idle out (a minute).
    expect(performance.now() - startedAt).toBeLessThan(15_000);
  } finally {
    await rm(emptyDir, { recursive: true, force: true });
  }
});
