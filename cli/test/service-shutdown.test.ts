// Each service's own main.ts (as docker-compose runs them) stops cleanly on SIGTERM: /readyz is
// green while it runs, and it exits 0 after saying it shut down. One that cannot start stops what
// it had started.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createScratchDatabase, type DatabaseHandle } from '@connect/db';
import { afterAll, beforeAll, expect, inject, test } from 'vitest';
import { postgresRunningIn, runOnTakenPort, withDataDir } from './failed-start.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
let database: DatabaseHandle;
let dataDir: string;

beforeAll(async () => {
  database = await createScratchDatabase(inject('adminUrl'), 'connect_services', 2);
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'connect-services-'));
});
afterAll(async () => {
  await database.close();
  await rm(dataDir, { recursive: true, force: true });
});

test.each(['command', 'query', 'projector', 'notifier'])(
  'services/%s: SIGTERM → drained, released, exit 0',
  async (service) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(ROOT, `services/${service}/src/main.ts`)],
      {
        cwd: ROOT,
        env: {
          ...process.env,
          DATABASE_URL: database.url,
          CONNECT_DATA_DIR: dataDir,
          PORT: '0',
          LOG_LEVEL: 'info',
          CONNECT_SHUTDOWN_TIMEOUT_MS: '3000',
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    const messages: string[] = [];
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${service} did not come up in 90 s`)), 90_000);
        void exited.then((code) => reject(new Error(`${service} exited with ${code}`)));
        createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
          const log = JSON.parse(line) as { msg?: string };
          messages.push(log.msg ?? '');
          const listening = /^Server listening at (http:\/\/127\.0\.0\.1:\d+)$/.exec(log.msg ?? '');
          if (listening?.[1]) {
            clearTimeout(timer);
            resolve(listening[1]);
          }
        });
      });
      // Ready once it has settled in (on a loaded machine a first check may time out).
      let ready = { status: 0, detail: '' };
      for (let tries = 0; tries < 40 && ready.status !== 200; tries++) {
        if (tries > 0) await new Promise((resolve) => setTimeout(resolve, 250));
        const answer = await fetch(`${url}/readyz`);
        ready = { status: answer.status, detail: await answer.text() };
      }
      expect(ready.status, ready.detail).toBe(200);
      const signalled = Date.now();
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(Date.now() - signalled).toBeLessThan(3000 + 2000);
      expect(messages).toContain('shut down');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  },
);

test.each(['query', 'notifier'])(
  'services/%s: its port already taken → exit 1 naming the reason, the embedded PostgreSQL stopped',
  (service) =>
    withDataDir(`connect-${service}-taken-`, async (ownDir) => {
      const { code, stderr } = await runOnTakenPort(['--import', 'tsx', `services/${service}/src/main.ts`], {
        DATABASE_URL: '',
        CONNECT_DATA_DIR: ownDir,
      });
      expect(code).toBe(1);
      expect(stderr).toMatch(/EADDRINUSE/);
      expect(stderr).not.toMatch(/could not release/);
      expect(postgresRunningIn(ownDir)).toBe(false);
    }),
);
