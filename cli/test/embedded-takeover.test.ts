// kill -9 leaves the embedded PostgreSQL running. The next `connect start` takes it over and stops
// it on shutdown; a command run beside a live service only joins it.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, test } from 'vitest';

const BIN = fileURLToPath(new URL('../bin/connect.js', import.meta.url));
let dataDir: string;
const env = () => ({ ...process.env, DATABASE_URL: '', CONNECT_DATA_DIR: dataDir });

async function startConnect(): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [BIN, 'start'], {
    env: { ...env(), PORT: '0', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const url = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`connect start exited with ${code}`)));
    lines.on('line', (line) => {
      const log = JSON.parse(line) as { msg?: string; address?: string };
      if (log.msg === 'Connect is running' && log.address) resolve(log.address);
    });
  });
  expect((await fetch(`${url}/healthz`)).status).toBe(200);
  return { child, url };
}

function signal(child: ChildProcess, name: NodeJS.Signals): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  child.kill(name);
  return exited;
}

/** The pid of the PostgreSQL running in the data directory, if any. */
function postgresPid(): number | undefined {
  const pidFile = path.join(dataDir, 'postgres/data/postmaster.pid');
  if (!existsSync(pidFile)) return undefined;
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'connect-takeover-'));
  await chmod(dataDir, 0o711);
});
afterAll(async () => {
  const pid = postgresPid();
  if (pid !== undefined) process.kill(pid, 'SIGINT'); // only if the test failed
  await rm(dataDir, { recursive: true, force: true });
});

test('after kill -9, the next connect start takes the embedded PostgreSQL over and stops it', async () => {
  const first = await startConnect();
  const postgres = postgresPid();
  expect(postgres).toBeDefined();
  expect(await signal(first.child, 'SIGKILL')).toBe(null);
  expect(postgresPid()).toBe(postgres); // orphaned, still running

  const second = await startConnect();
  try {
    // A command beside the live service joins its PostgreSQL and leaves it running.
    const verified = spawnSync(process.execPath, [BIN, 'verify', 'ledger'], { env: env(), encoding: 'utf8' });
    expect(verified.status).toBe(0);
    expect(postgresPid()).toBe(postgres);
    expect((await fetch(`${second.url}/readyz`)).status).toBe(200);
  } finally {
    expect(await signal(second.child, 'SIGTERM')).toBe(0);
  }
  expect(postgresPid()).toBeUndefined();
  expect(existsSync(path.join(dataDir, 'postgres/data/postmaster.pid'))).toBe(false);
});
