// connect keys rotate-master: every data key rewrapped under a new master key while a service
// keeps making keys, then the old master key is gone (key file) or may go (CONNECT_MASTER_KEY).
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { dataKeyId } from '@connect/crypto/envelope';
import { dataKeysByMasterKey, type KeyRing, keyRing, localMasterKeys, MASTER_KEY_FILE } from '@connect/db';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.ts';

const BIN = fileURLToPath(new URL('../bin/connect.js', import.meta.url));

let database: TestDatabase;
let dataDir: string;
const rings: KeyRing[] = [];

beforeEach(async () => {
  database = await createTestDatabase({ poolSize: 5 });
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'connect-keys-rotate-'));
});
afterEach(async () => {
  await Promise.all(rings.splice(0).map((ring) => ring.close()));
  await database.close();
  await rm(dataDir, { recursive: true, force: true });
});

/** Runs the CLI without blocking this process, whose key ring keeps working meanwhile. */
function connect(args: string[], masterKeys?: string) {
  const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: database.url, CONNECT_DATA_DIR: dataDir };
  if (masterKeys === undefined) delete env.CONNECT_MASTER_KEY;
  else env.CONNECT_MASTER_KEY = masterKeys;
  const child = spawn(process.execPath, [BIN, ...args], { env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  return new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

async function ring(keys?: string[]) {
  const made = keyRing(database.pool, await localMasterKeys({ keys, dataDir }), { listen: false });
  rings.push(made);
  return made;
}

const subjects = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}:${i}`);
const fileKeys = async () =>
  (await readFile(path.join(dataDir, MASTER_KEY_FILE), 'utf8')).split('\n').filter((line) => line !== '');

/** Reads every subject again from the database (not from the ring's cache) and compares. */
async function expectReads(reader: KeyRing, expected: Map<string, Buffer | null>) {
  for (const subject of expected.keys()) reader.forget(subject);
  const read = await reader.keys([...expected.keys()]);
  for (const [subject, key] of expected) expect(read.get(subject)?.equals(key as Buffer), subject).toBe(true);
}

describe('with the data directory’s key file', () => {
  test('every data key is rewrapped while the service makes new ones, then only the new key remains', async () => {
    const running = await ring();
    const [oldKey] = await fileKeys();
    const oldId = await running.masterKeys.primaryId();
    const known = await running.keys(subjects('commitment:before', 30), { create: true });

    // The service keeps making keys for new subjects throughout the rotation.
    let rotating = true;
    const during = (async () => {
      for (let i = 0; rotating; i++) {
        for (const [subject, key] of await running.keys([`user:during:${i}`], { create: true }))
          known.set(subject, key);
        await sleep(10);
      }
    })();
    const rotated = await connect(['keys', 'rotate-master']);
    rotating = false;
    await during;

    expect(rotated.stderr).toBe('');
    expect(rotated.status).toBe(0);
    const keys = await fileKeys();
    expect(keys).toHaveLength(1);
    const [newKey] = keys as [string];
    const newId = dataKeyId(Buffer.from(newKey, 'base64'));
    expect(newId).not.toBe(oldId);
    expect(rotated.stdout).toContain(oldId);
    expect(rotated.stdout).toContain(newId);
    // The 30 made before, and those the service made before it saw the new key.
    expect(Number(/(\d+) data keys rewrapped/.exec(rotated.stdout)?.[1])).toBeGreaterThan(30);
    expect(rotated.stdout).not.toContain(oldKey);
    expect(rotated.stdout).not.toContain(newKey);
    expect(known.size).toBeGreaterThan(60);

    expect([...(await dataKeysByMasterKey(database.pool))]).toEqual([[newId, known.size]]);
    await expectReads(running, known);
    await expectReads(await ring([newKey]), known);
    await expect((await ring([oldKey as string])).keys(['commitment:before:0'])).rejects.toThrow(
      /not configured/,
    );

    const status = await connect(['keys', 'status']);
    expect(status.status).toBe(0);
    expect(status.stdout).toContain(`${newId}  ${known.size} data keys  (primary)`);
  });

  test('keys a slow process wraps with the old master key after the first rewrap are rewrapped too', async () => {
    await ring();
    const [oldKey] = (await fileKeys()) as [string];
    // Holds the old key in memory only, as a process that has not yet re-read the file would.
    const stale = await ring([oldKey]);
    const known = new Map<string, Buffer | null>();
    const late = (async () => {
      let added: number | undefined;
      for (let i = 0; added === undefined || Date.now() - added < 3500; i++) {
        for (const [subject, key] of await stale.keys([`user:late:${i}`], { create: true }))
          known.set(subject, key);
        if (added === undefined && (await fileKeys()).length === 2) added = Date.now();
        await sleep(20);
      }
    })();
    const rotated = await connect(['keys', 'rotate-master']);
    await late;

    expect(rotated.stderr).toBe('');
    expect(rotated.status).toBe(0);
    const [newKey] = (await fileKeys()) as [string];
    expect([...(await dataKeysByMasterKey(database.pool))]).toEqual([
      [dataKeyId(Buffer.from(newKey, 'base64')), known.size],
    ]);
    await expectReads(await ring([newKey]), known);
  });

  test('data keys under a master key the file does not hold stop the rotation before the file changes', async () => {
    const stray = Buffer.alloc(32, 7).toString('base64');
    await (await ring([stray])).keys(['commitment:stray'], { create: true });
    await ring(); // makes the key file
    const before = await fileKeys();

    const rotated = await connect(['keys', 'rotate-master']);
    expect(rotated.status).toBe(1);
    expect(rotated.stderr).toContain(dataKeyId(Buffer.from(stray, 'base64')));
    expect(await fileKeys()).toEqual(before);
  });
});

describe('with CONNECT_MASTER_KEY', () => {
  const oldKey = Buffer.alloc(32, 1).toString('base64');
  const newKey = Buffer.alloc(32, 2).toString('base64');
  const oldId = dataKeyId(Buffer.from(oldKey, 'base64'));
  const newId = dataKeyId(Buffer.from(newKey, 'base64'));

  test('every data key is rewrapped to the first key; the operator may then drop the others', async () => {
    const known = await (await ring([oldKey])).keys(subjects('commitment:env', 20), { create: true });

    const rotated = await connect(['keys', 'rotate-master'], `${newKey},${oldKey}`);
    expect(rotated.stderr).toBe('');
    expect(rotated.status).toBe(0);
    expect(rotated.stdout).toContain('20 data keys rewrapped');
    expect(rotated.stdout).toMatch(new RegExp(`remove ${oldId} from CONNECT_MASTER_KEY`));
    expect(rotated.stdout).not.toContain(oldKey);
    expect(rotated.stdout).not.toContain(newKey);

    expect([...(await dataKeysByMasterKey(database.pool))]).toEqual([[newId, 20]]);
    await expectReads(await ring([newKey]), known);
    await expect((await ring([oldKey])).keys(['commitment:env:0'])).rejects.toThrow(/not configured/);

    const status = await connect(['keys', 'status'], `${newKey},${oldKey}`);
    expect(status.status).toBe(0);
    expect(status.stdout).toContain(`${oldId}  0 data keys  (unwraps only)`);
  });

  test('a master key missing from the list is named, and nothing changes', async () => {
    await (await ring([oldKey])).keys(['commitment:missing'], { create: true });

    const rotated = await connect(['keys', 'rotate-master'], newKey);
    expect(rotated.status).toBe(1);
    expect(rotated.stderr).toMatch(new RegExp(`master key ${oldId}, not in CONNECT_MASTER_KEY`));
    expect([...(await dataKeysByMasterKey(database.pool))]).toEqual([[oldId, 1]]);

    const status = await connect(['keys', 'status'], newKey);
    expect(status.status).toBe(1);
    expect(status.stdout).toContain(`${oldId}  1 data keys  (NOT CONFIGURED`);
  });
});
