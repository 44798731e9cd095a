import { execFile, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTokenIssuer } from '@connect/auth';
import { type ReceiptBundle, signCheckpoint, signingKeyFromSeed } from '@connect/crypto';
import {
  buildReceipt,
  checkpointAt,
  consistencyProof,
  type Ledger,
  latestCheckpoint,
  openLedger,
} from '@connect/ledger';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.ts';
import { buildApp } from '../src/app.ts';

const KEY = signingKeyFromSeed('query.test/ledger', new Uint8Array(32).fill(6));
let database: TestDatabase;
let ledger: Ledger;
let app: FastifyInstance;
let receipt: ReceiptBundle;

beforeAll(async () => {
  database = await createTestDatabase();
  ledger = await openLedger({ pool: database.pool, db: database.db, origin: KEY.name, key: KEY });
  for (let i = 0; i < 12; i++) {
    await ledger.append({
      stream: i % 2 ? 'commitment-q' : 'x',
      expectedVersion: 'any',
      actor: 'ana',
      events: [{ type: 'Noted', data: { i } }],
    });
  }
  app = buildApp(
    {
      pool: database.pool,
      db: database.db,
      databaseUrl: database.url,
      origin: KEY.name,
      verifierKey: ledger.verifierKey,
      key: KEY,
      tokens: await loadTokenIssuer(await mkdtemp(path.join(os.tmpdir(), 'connect-query-'))),
    },
    { logLevel: 'silent' },
  );
  await app.ready();
  receipt = await buildReceipt(
    { db: database.db, pool: database.pool, origin: KEY.name, verifierKey: ledger.verifierKey },
    'commitment-q',
  );
});
afterAll(async () => {
  await app.close();
  await database.close();
});

const verify = (payload: unknown) =>
  app.inject({ method: 'POST', url: '/v1/ledger/verify', payload: payload as object });

test('POST /v1/ledger/verify checks a receipt and names what fails in a doctored one', async () => {
  const good = await verify({ receipt });
  expect(good.statusCode).toBe(200);
  expect(good.json().valid).toBe(true);
  const doctored = JSON.parse(JSON.stringify(receipt)) as ReceiptBundle;
  (doctored.entries[1] as unknown as { data: { i: number } }).data.i = 1000;
  const bad = (await verify({ receipt: doctored })).json();
  expect(bad.valid).toBe(false);
  expect(bad.checks.filter((c: { ok: boolean }) => !c.ok).map((c: { name: string }) => c.name)).toEqual([
    `entry ${doctored.entries[1]?.index} (version 2): dataHash matches salt and data`,
  ]);
});

test('it checks an entry with its proof and checkpoint, and two checkpoints with a consistency proof', async () => {
  const { proof, checkpoint, ...entry } = receipt.entries[0] as ReceiptBundle['entries'][number] & {
    checkpoint?: string;
  };
  const single = (await verify({ entry, proof, checkpoint: receipt.checkpoint })).json();
  expect(single.valid).toBe(true);
  const older = await checkpointAt(database.db, 5);
  const newer = await latestCheckpoint(database.db);
  const consistency = await consistencyProof(database.pool, 5, newer?.treeSize ?? 0);
  expect((await verify({ from: older?.note, to: newer?.note, proof: consistency })).json().valid).toBe(true);
  expect(checkpoint).toBeUndefined();
});

test('nothing to verify is a 400 naming the body', async () => {
  const response = await verify({ hello: 1 });
  expect(response.statusCode).toBe(400);
  expect(response.json().errors[0].path).toBe('body');
});

test('a body of the wrong shape is a 400 naming the field, never a 500', async () => {
  for (const [payload, path] of [
    [{ receipt: { entries: [null] } }, 'body.receipt.entries.0'],
    [{ receipt: null }, 'body.receipt'],
    [{ entry: null, proof: { index: 0, treeSize: 1, hashes: [] }, checkpoint: 'x' }, 'body.entry'],
    [{ entry: {}, proof: null, checkpoint: 'x' }, 'body.proof'],
    [{ from: 'a', to: 'b', proof: { from: 1, to: 2, hashes: [null] } }, 'body.proof.hashes.0'],
  ] as const) {
    const response = await verify(payload);
    expect(response.statusCode, JSON.stringify(payload)).toBe(400);
    expect(response.json().errors.map((e: { path: string }) => e.path)).toContain(path);
  }
});

test('connect verify receipt FILE --key works offline and fails a doctored receipt', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'connect-receipt-'));
  try {
    const bin = fileURLToPath(new URL('../../../cli/bin/connect.js', import.meta.url));
    const good = path.join(dir, 'good.json');
    const bad = path.join(dir, 'bad.json');
    await writeFile(good, JSON.stringify(receipt));
    const doctored = JSON.parse(JSON.stringify(receipt)) as ReceiptBundle;
    doctored.entries.splice(2, 1);
    await writeFile(bad, JSON.stringify(doctored));
    const run = (file: string) =>
      spawnSync(process.execPath, [bin, 'verify', 'receipt', file, '--key', ledger.verifierKey], {
        encoding: 'utf8',
        env: { ...process.env, DATABASE_URL: 'postgresql://nowhere.invalid/x' },
      });
    const ok = run(good);
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(/receipt verified/);
    const failed = run(bad);
    expect(failed.status).toBe(1);
    expect(failed.stdout).toMatch(/FAIL entries are one stream, versions 1..k in order/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('connect verify remote pins the key, accepts growth, and catches a rollback or a fork', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'connect-remote-'));
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  try {
    const bin = fileURLToPath(new URL('../../../cli/bin/connect.js', import.meta.url));
    const stateFile = path.join(dir, 'state.json');
    // Asynchronous: the server answering the CLI runs in this very process.
    const run = () =>
      new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = execFile(
          process.execPath,
          [bin, 'verify', 'remote', '--url', address, '--state', stateFile],
          { encoding: 'utf8' },
          (_error, stdout, stderr) => resolve({ status: child.exitCode, stdout, stderr }),
        );
      });
    const first = await run();
    expect(first.status).toBe(0);
    expect(first.stdout).toMatch(/pinned the ledger key/);
    await ledger.append({
      stream: 'later',
      expectedVersion: 'any',
      actor: null,
      events: [{ type: 'Grown', data: {} }],
    });
    const second = await run();
    expect(second.status).toBe(0);
    expect(second.stdout).toMatch(/grew from 12 to 13 entries/);

    const state = JSON.parse(await readFile(stateFile, 'utf8'));
    // A server that rewrote history: the checkpoint we kept for size 13 has another root.
    state[address].checkpoint = signCheckpoint(
      { origin: KEY.name, treeSize: 13, rootHash: new Uint8Array(32).fill(7) },
      KEY,
    );
    await writeFile(stateFile, JSON.stringify(state));
    await ledger.append({
      stream: 'later',
      expectedVersion: 'any',
      actor: null,
      events: [{ type: 'Grown', data: {} }],
    });
    const forked = await run();
    expect(forked.status).toBe(1);
    expect(forked.stderr).toMatch(/forked or rewritten/);

    // A server that rolled back: we have seen a bigger tree than it now shows.
    state[address].checkpoint = signCheckpoint(
      { origin: KEY.name, treeSize: 99, rootHash: new Uint8Array(32) },
      KEY,
    );
    await writeFile(stateFile, JSON.stringify(state));
    const rolledBack = await run();
    expect(rolledBack.status).toBe(1);
    expect(rolledBack.stderr).toMatch(/rolled back from 99 to 14 entries/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
