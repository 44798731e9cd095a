import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { formatVerifierKey, fromBase64, signCheckpoint, signingKeyFromSeed } from '@connect/crypto';
import { afterAll, expect, test } from 'vitest';
import { KEY_FILE, loadLedgerKey, withNativeSigner } from '../src/index.ts';

const dirs: string[] = [];
afterAll(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'connect-key-'));
  dirs.push(dir);
  return dir;
}

test('a key is generated once into the data directory, private, and reused', async () => {
  const dataDir = await tempDir();
  const [a, b] = await Promise.all([
    loadLedgerKey({ origin: 'x.test/ledger', dataDir }),
    loadLedgerKey({ origin: 'x.test/ledger', dataDir }),
  ]);
  const c = await loadLedgerKey({ origin: 'x.test/ledger', dataDir });
  expect(formatVerifierKey(a)).toBe(formatVerifierKey(b));
  expect(formatVerifierKey(a)).toBe(formatVerifierKey(c));
  expect((await stat(path.join(dataDir, KEY_FILE))).mode & 0o777).toBe(0o600);
});

test('CONNECT_LEDGER_KEY wins over the file and writes nothing', async () => {
  const dataDir = await tempDir();
  const seed = Buffer.alloc(32, 3).toString('base64');
  const key = await loadLedgerKey({ origin: 'x.test/ledger', dataDir, seed });
  expect(Buffer.from(key.seed).toString('base64')).toBe(seed);
  await expect(readFile(path.join(dataDir, KEY_FILE))).rejects.toThrow();
});

test('the native signer makes exactly the signatures of the pure one (the checkpoint vector)', async () => {
  const vector = (await import('../../crypto/test/fixtures/checkpoint.json', { with: { type: 'json' } }))
    .default;
  const pure = signingKeyFromSeed(vector.origin, fromBase64(vector.ed25519Seed));
  const checkpoint = {
    origin: vector.origin,
    treeSize: vector.treeSize,
    rootHash: fromBase64(vector.rootHash),
  };
  expect(signCheckpoint(checkpoint, withNativeSigner(pure))).toBe(vector.note);
  expect(signCheckpoint(checkpoint, pure)).toBe(vector.note);
});
