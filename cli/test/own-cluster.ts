// A PostgreSQL cluster of a test's own, made with the machine's server tools (initdb, pg_ctl,
// pg_basebackup, pg_dump in /usr/lib/postgresql/<version>/bin), for tests that need what the
// embedded server does not ship: a replica, a restart from outside, pg_dump. PostgreSQL refuses
// to run as root, so as root the tools run as the postgres user (as the embedded server does).
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { runAs } from '@connect/db';
import pg from 'pg';
import { freePort } from '../../test/support/free-port.ts';

const BIN_DIR = ['17', '16', '15']
  .map((version) => `/usr/lib/postgresql/${version}/bin`)
  .find((dir) => existsSync(path.join(dir, 'pg_basebackup')));
const owner = runAs();

export interface OwnCluster {
  dir: string;
  port: number;
  url(database?: string): string;
  /**
   * `pg_ctl restart -m fast`: sessions cut, the server stops and starts again. Asynchronous, so
   * a test's own clients keep running meanwhile.
   */
  restart(): Promise<void>;
  stop(): void;
}

/** Runs one of the server tools as the cluster's owner; its output. */
export function clusterTool(name: string, args: string[]): string {
  if (!BIN_DIR) throw new Error('this test needs the PostgreSQL server tools in /usr/lib/postgresql/*/bin');
  return execFileSync(path.join(BIN_DIR, name), args, {
    ...owner,
    stdio: 'pipe',
    encoding: 'utf8',
    maxBuffer: 256 * 2 ** 20,
  });
}

/** A folder the cluster's owner can use, under a temporary root everyone can enter. */
export async function clusterRoot(prefix: string): Promise<string> {
  const root = await mkdtemp(path.join(os.tmpdir(), prefix));
  await chmod(root, 0o777);
  return root;
}

export async function ownedDir(dir: string): Promise<string> {
  await mkdir(dir, { mode: 0o700 });
  if (owner.uid !== undefined && owner.gid !== undefined) await chown(dir, owner.uid, owner.gid);
  return dir;
}

/**
 * Starts the cluster in `dir` (made by initdb or pg_basebackup) on a free port, trust auth on
 * loopback. The port was free a moment before the server binds it: if another process took it
 * meanwhile, the server is started again on another.
 */
export async function startCluster(dir: string, socketDir: string): Promise<OwnCluster> {
  let port = 0;
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      // -l: a server that inherited our output would hold it open, and the call would never return.
      clusterTool('pg_ctl', [
        '-D',
        dir,
        '-l',
        `${dir}.log`,
        '-w',
        '-o',
        `-p ${port} -k ${socketDir} -c listen_addresses=127.0.0.1`,
        'start',
      ]);
      break;
    } catch (error) {
      const log = await readFile(`${dir}.log`, 'utf8').catch(() => '');
      // PostgreSQL's hint when it could not bind: "Is another postmaster already running on port N?"
      if (attempt === 3 || !log.includes(`running on port ${port}?`)) throw error;
    }
  }
  return {
    dir,
    port,
    url: (database = 'postgres') => `postgresql://postgres@127.0.0.1:${port}/${database}`,
    restart: async () => {
      await promisify(execFile)(
        path.join(BIN_DIR as string, 'pg_ctl'),
        ['-D', dir, '-l', `${dir}.log`, '-m', 'fast', '-w', '-t', '60', 'restart'],
        owner,
      );
    },
    stop: () => clusterTool('pg_ctl', ['-D', dir, '-m', 'immediate', '-w', 'stop']),
  };
}

/** initdb into `root`/`name`, then start it. */
export async function newCluster(root: string, name = 'primary'): Promise<OwnCluster> {
  const dir = await ownedDir(path.join(root, name));
  clusterTool('initdb', ['-D', dir, '-U', 'postgres', '--auth=trust', '--no-sync']);
  return startCluster(dir, root);
}

export async function query<T extends pg.QueryResultRow>(url: string, text: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(text)).rows;
  } finally {
    await client.end();
  }
}

export async function removeRoot(
  root: string | undefined,
  clusters: (OwnCluster | undefined)[],
): Promise<void> {
  for (const cluster of clusters) {
    try {
      cluster?.stop();
    } catch {
      // already stopped
    }
  }
  if (root) await rm(root, { recursive: true, force: true });
}
