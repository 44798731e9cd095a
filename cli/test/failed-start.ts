// A service that cannot start (its port held by another server, a key file it cannot read), for
// the tests that it stops what it had started: its exit code and what it wrote to stderr.
import { execFileSync, spawn } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Runs `node <args>` with `env` until it exits (killed after 90 s). */
export async function runToExit(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${args.join(' ')} kept running although it could not start`));
    }, 90_000);
    child.once('exit', (exitCode) => {
      clearTimeout(timer);
      resolve(exitCode);
    });
  });
  return { code, stderr };
}

/** Runs `node <args>` with `env` on a port another server already holds. */
export async function runOnTakenPort(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stderr: string }> {
  const taken = net.createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  const { port } = taken.address() as net.AddressInfo;
  try {
    return await runToExit(args, { ...env, PORT: String(port) });
  } finally {
    taken.close();
  }
}

/** Whether an embedded PostgreSQL still runs on a data directory under `dir`. */
export function postgresRunningIn(dir: string): boolean {
  try {
    execFileSync('pgrep', ['-f', `postgres -D ${dir}`]);
    return true;
  } catch (error) {
    // pgrep exits 1 when nothing matches; anything else (no pgrep at all) is not an answer.
    if ((error as { status?: number }).status === 1) return false;
    throw error;
  }
}

/** Runs `test` with a data directory of its own (one the embedded PostgreSQL can enter), removed after. */
export async function withDataDir(prefix: string, test: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  try {
    await chmod(dir, 0o711);
    await test(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
