// `connect start` as a child process on a database of its own, for tests that signal it or pull
// its database away: its address, its log lines, and a client that signs up and sends commands.
import { type ChildProcess, spawn } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createScratchDatabase, type DatabaseHandle } from '@connect/db';
import { inject } from 'vitest';

const BIN = fileURLToPath(new URL('../bin/connect.js', import.meta.url));

export interface RunningConnect {
  child: ChildProcess;
  url: string;
  /** Every log line so far, parsed. */
  logs: Record<string, unknown>[];
  exited: Promise<number | null>;
  database: DatabaseHandle;
  /** Its CONNECT_DATA_DIR (ledger, master and token keys, documents). */
  dataDir: string;
  /** Stops the process if it still runs, drops its database, removes its data directory. */
  close(): Promise<void>;
}

export async function startConnect(env: Record<string, string> = {}): Promise<RunningConnect> {
  const database = await createScratchDatabase(inject('adminUrl'), 'connect_running', 3);
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'connect-running-'));
  await chmod(dataDir, 0o711);
  const running = await spawnConnect(
    { DATABASE_URL: database.url, CONNECT_DATA_DIR: dataDir, ...env },
    async () => {
      await database.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  );
  return { ...running, database, dataDir };
}

/**
 * Another `connect start` beside `running`: the same database and data directory (keys,
 * documents), with `env` on top (SERVICE=command…). Its close stops it and leaves both to `running`.
 */
export function startConnectBeside(
  running: RunningConnect,
  env: Record<string, string> = {},
): Promise<Omit<RunningConnect, 'database' | 'dataDir'>> {
  return spawnConnect(
    { DATABASE_URL: running.database.url, CONNECT_DATA_DIR: running.dataDir, ...env },
    async () => undefined,
  );
}

/**
 * `connect start` on a PostgreSQL the caller runs (`databaseUrl`) with the data directory `dataDir`;
 * both are the caller's to remove.
 */
export function startConnectOn(
  databaseUrl: string,
  dataDir: string,
  env: Record<string, string> = {},
): Promise<Omit<RunningConnect, 'database' | 'dataDir'>> {
  return spawnConnect(
    { DATABASE_URL: databaseUrl, CONNECT_DATA_DIR: dataDir, ...env },
    async () => undefined,
  );
}

/**
 * `connect start` on the embedded PostgreSQL of `dataDir` (made by the caller, kept on close: the
 * caller may look at its files after the service stops).
 */
export function startEmbeddedConnect(
  dataDir: string,
  env: Record<string, string> = {},
): Promise<Omit<RunningConnect, 'database' | 'dataDir'>> {
  return spawnConnect({ DATABASE_URL: '', CONNECT_DATA_DIR: dataDir, ...env }, async () => undefined);
}

async function spawnConnect(
  env: Record<string, string>,
  cleanUp: () => Promise<void>,
): Promise<Omit<RunningConnect, 'database' | 'dataDir'>> {
  const child = spawn(process.execPath, [BIN, 'start'], {
    env: { ...process.env, PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const logs: Record<string, unknown>[] = [];
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const close = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
    await cleanUp();
  };
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('connect start did not come up in 90 s')), 90_000);
      void exited.then((code) => reject(new Error(`connect start exited with ${code}`)));
      lines.on('line', (line) => {
        const log = JSON.parse(line) as { msg?: string; address?: string };
        logs.push(log);
        if (log.msg === 'Connect is running' && log.address) {
          clearTimeout(timer);
          resolve(log.address);
        }
      });
    });
    return { child, url, logs, exited, close };
  } catch (error) {
    await close();
    throw error;
  }
}

export interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

/** A JSON request to the running service. */
export async function call(
  running: Pick<RunningConnect, 'url'>,
  method: string,
  url: string,
  options: { body?: unknown; token?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const response = await fetch(`${running.url}${url}`, {
    method,
    headers: {
      ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      ...options.headers,
    },
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : {} };
}

/** Signs up and returns the access token and user id. */
export async function signUp(
  running: Pick<RunningConnect, 'url'>,
  name: string,
): Promise<{ token: string; userId: string }> {
  const answer = await call(running, 'POST', '/v1/auth/signup', {
    body: { email: `${name}@running.test`, password: 'a long password', displayName: name },
  });
  if (answer.status !== 201) throw new Error(`signup: ${answer.status} ${JSON.stringify(answer.body)}`);
  const { access_token: token, user } = answer.body as { access_token: string; user: { id: string } };
  return { token, userId: user.id };
}
