// One Connect service (services/<name>/src/main.ts) as a child process of its own, for drills that
// run several of each on one database and kill some: its address, its log lines, its exit.
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const LISTENING = 'Server listening at ';

export type ServiceName = 'command' | 'query' | 'projector' | 'notifier';

export interface ServiceProcess {
  service: ServiceName;
  /** Also its PostgreSQL application_name (PGAPPNAME), so its sessions can be told apart. */
  name: string;
  child: ChildProcess;
  url: string;
  /** Every log line so far, parsed. */
  logs: Record<string, unknown>[];
  exited: Promise<void>;
  /** SIGKILL if it still runs, then waits for the exit. */
  stop(): Promise<void>;
}

/**
 * Starts `service` with `env` (DATABASE_URL, CONNECT_DATA_DIR…) on a free port of 127.0.0.1 and
 * resolves once it listens (the address fastify logs).
 */
export async function startService(
  service: ServiceName,
  name: string,
  env: Record<string, string>,
): Promise<ServiceProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', `services/${service}/src/main.ts`], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', PGAPPNAME: name, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  const logs: Record<string, unknown>[] = [];
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} did not listen within 90 s`)), 90_000);
      void exited.then(() => reject(new Error(`${name} exited with ${child.exitCode ?? child.signalCode}`)));
      lines.on('line', (line) => {
        const log = parseLine(line);
        logs.push(log);
        if (typeof log.msg === 'string' && log.msg.startsWith(LISTENING)) {
          clearTimeout(timer);
          resolve(log.msg.slice(LISTENING.length));
        }
      });
    });
    return { service, name, child, url, logs, exited, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

function parseLine(line: string): Record<string, unknown> {
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return { msg: line };
  }
}
