// End to end, as a user runs it: `connect start` on the embedded PostgreSQL, over real HTTP.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { openCheckpoint, parseVerifierKey } from '@connect/crypto';
import { LISTEN_BACKLOG } from '@connect/http';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { postgresRunningIn, runOnTakenPort, runToExit, withDataDir } from './failed-start.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = path.join(ROOT, 'cli/bin/connect.js');
let dataDir: string;

interface Running {
  child: ChildProcess;
  url: string;
}

async function startConnect(env: Record<string, string> = {}): Promise<Running> {
  const child = spawn(process.execPath, [BIN, 'start'], {
    env: {
      ...process.env,
      DATABASE_URL: '',
      CONNECT_DATA_DIR: dataDir,
      PORT: '0',
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('connect start did not come up in 60 s')), 60_000);
    child.once('exit', (code) => reject(new Error(`connect start exited with ${code}`)));
    lines.on('line', (line) => {
      const log = JSON.parse(line) as { msg?: string; address?: string };
      if (log.msg === 'Connect is running' && log.address) {
        clearTimeout(timer);
        resolve(log.address);
      }
    });
  });
  return { child, url };
}

async function stop({ child }: Running, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  child.kill(signal);
  return exited;
}

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'connect-e2e-'));
  await chmod(dataDir, 0o711);
});
afterAll(() => rm(dataDir, { recursive: true, force: true }));

describe('connect start', () => {
  let firstKey: string;

  test('serves health, readiness, metrics, the key and a checkpoint that verifies under it', async () => {
    const running = await startConnect();
    try {
      expect(await (await fetch(`${running.url}/healthz`)).json()).toEqual({ status: 'ok' });
      expect((await fetch(`${running.url}/readyz`)).status).toBe(200);
      const metrics = await (await fetch(`${running.url}/metrics`)).text();
      expect(metrics).toContain('http_request_duration_seconds');
      // The projector thread's series are there too.
      expect(metrics).toContain('connect_db_pool_connections{pool="projector",state="total"}');
      expect(metrics).toMatch(/^connect_audit_failures_total 0$/m);
      // Each thread's event loop, side by side.
      for (const thread of ['main', 'projector']) {
        expect(metrics).toMatch(
          new RegExp(`^connect_event_loop_busy_seconds_total\\{thread="${thread}"\\} [0-9.e-]+$`, 'm'),
        );
        expect(metrics).toContain(`connect_event_loop_delay_seconds_count{thread="${thread}"}`);
      }

      // Room for thousands of connections waiting to be accepted (the kernel caps it).
      const somaxconn = Number(await readFile('/proc/sys/net/core/somaxconn', 'utf8'));
      const listening = execFileSync('ss', ['-ltnH', `sport = :${new URL(running.url).port}`], {
        encoding: 'utf8',
      });
      expect(listening.trim().split(/\s+/)[2]).toBe(String(Math.min(LISTEN_BACKLOG, somaxconn)));

      const key = (await (await fetch(`${running.url}/v1/ledger/key`)).json()) as Record<string, string>;
      expect(key).toMatchObject({ origin: 'connect.local/ledger', algorithm: 'Ed25519' });
      firstKey = key.verifierKey as string;
      const response = await fetch(`${running.url}/v1/ledger/checkpoint`);
      expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
      const note = await response.text();
      const checkpoint = openCheckpoint(note, [parseVerifierKey(firstKey)]);
      expect(checkpoint.origin).toBe('connect.local/ledger');

      const problem = await fetch(`${running.url}/v1/ledger/proofs/inclusion?index=0&treeSize=abc`);
      expect(problem.status).toBe(400);
      expect(problem.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(await problem.json()).toMatchObject({ errors: [{ path: 'query.treeSize' }] });

      // The ledger key is private to the process's user.
      expect((await stat(path.join(dataDir, 'ledger-key'))).mode & 0o777).toBe(0o600);
    } finally {
      expect(await stop(running)).toBe(0);
    }
    expect(postgresRunningIn(dataDir)).toBe(false);
  });

  test('keeps its key across a restart (the ledger it signed opens with it), and stops cleanly on SIGINT', async () => {
    const running = await startConnect();
    try {
      const key = (await (await fetch(`${running.url}/v1/ledger/key`)).json()) as Record<string, string>;
      expect(key.verifierKey).toBe(firstKey);
      const shown = execFileSync(process.execPath, [BIN, 'keys', 'show'], {
        env: { ...process.env, CONNECT_DATA_DIR: dataDir },
        encoding: 'utf8',
      });
      expect(shown.trim()).toBe(firstKey);
    } finally {
      expect(await stop(running, 'SIGINT')).toBe(0);
    }
    expect(postgresRunningIn(dataDir)).toBe(false);
  });

  test('an outside client signs up, logs in, creates, invites, proposes and accepts over real HTTP', async () => {
    const running = await startConnect();
    try {
      const call = async (method: string, url: string, body?: unknown, token?: string) => {
        const response = await fetch(`${running.url}${url}`, {
          method,
          headers: {
            'content-type': 'application/json',
            ...(token ? { authorization: `Bearer ${token}` } : {}),
          },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        return {
          status: response.status,
          etag: response.headers.get('etag'),
          body: (await response.json()) as Record<string, unknown>,
        };
      };
      const ana = await call('POST', '/v1/auth/signup', {
        email: 'ana@e2e.test',
        password: 'a long password',
        displayName: 'Ana',
      });
      await call('POST', '/v1/auth/signup', {
        email: 'ben@e2e.test',
        password: 'a long password',
        displayName: 'Ben',
      });
      expect(ana.status).toBe(201);
      const login = await call('POST', '/v1/auth/token', {
        grant_type: 'password',
        email: 'ben@e2e.test',
        password: 'a long password',
      });
      expect(login.status).toBe(200);
      const anaToken = ana.body.access_token as string;
      const benToken = login.body.access_token as string;
      const created = await call(
        'POST',
        '/v1/commitments',
        { type: 'personal', title: 'Water the plants' },
        anaToken,
      );
      expect(created.status).toBe(201);
      const id = created.body.commitmentId as string;
      expect(
        (
          await call(
            'POST',
            `/v1/commitments/${id}/invite`,
            { userId: (login.body.user as { id: string }).id, role: 'participant' },
            anaToken,
          )
        ).status,
      ).toBe(200);
      expect((await call('POST', `/v1/commitments/${id}/propose`, {}, anaToken)).status).toBe(200);
      const accepted = await call('POST', `/v1/commitments/${id}/accept`, {}, benToken);
      expect(accepted.status).toBe(200);
      expect(accepted.etag).toBe('"5"');
      expect((accepted.body.events as { type: string }[]).map((e) => e.type)).toEqual([
        'InvitationAccepted',
        'CommitmentActivated',
      ]);

      // Reading its own write: the read models are waited for up to the receipt's last index.
      const lastIndex = (accepted.body.events as { index: number }[]).at(-1)?.index as number;
      const read = await fetch(`${running.url}/v1/commitments/${id}`, {
        headers: { authorization: `Bearer ${benToken}`, 'connect-min-index': String(lastIndex) },
      });
      expect(read.status).toBe(200);
      expect(Number(read.headers.get('connect-index'))).toBeGreaterThanOrEqual(lastIndex);
      expect(await read.json()).toMatchObject({ id, status: 'active', version: 5 });
      const mine = await fetch(`${running.url}/v1/commitments`, {
        headers: { authorization: `Bearer ${anaToken}` },
      });
      expect(((await mine.json()) as { items: { id: string }[] }).items.map((c) => c.id)).toEqual([id]);

      // The CLI joins the running embedded PostgreSQL to make an admin.
      const granted = execFileSync(process.execPath, [BIN, 'users', 'grant-admin', 'ana@e2e.test'], {
        env: { ...process.env, CONNECT_DATA_DIR: dataDir, DATABASE_URL: '' },
        encoding: 'utf8',
      });
      expect(granted).toMatch(/is now an admin/);
      const relogin = await call('POST', '/v1/auth/token', {
        grant_type: 'password',
        email: 'ana@e2e.test',
        password: 'a long password',
      });
      expect(
        (await call('GET', '/v1/auth/me', undefined, relogin.body.access_token as string)).body.isAdmin,
      ).toBe(true);
    } finally {
      expect(await stop(running)).toBe(0);
    }
  });

  test('a port already taken stops start-up with the reason, and the embedded PostgreSQL with it', async () => {
    const { code, stderr } = await runOnTakenPort([BIN, 'start'], {
      DATABASE_URL: '',
      CONNECT_DATA_DIR: dataDir,
    });
    expect(code).toBe(1);
    expect(stderr).toMatch(/EADDRINUSE/);
    expect(postgresRunningIn(dataDir)).toBe(false);
  });

  test('a key file it cannot read stops start-up after the projector began, and releases it all', () =>
    withDataDir('connect-bad-key-', async (ownDir) => {
      // Read after the app (and its projector) are built, which start-up must then close too.
      await writeFile(path.join(ownDir, 'auth-key.json'), 'not a key', { mode: 0o600 });
      const { code, stderr } = await runToExit([BIN, 'start'], {
        DATABASE_URL: '',
        CONNECT_DATA_DIR: ownDir,
        CONNECT_SHUTDOWN_TIMEOUT_MS: '3000',
      });
      expect(code).toBe(1);
      expect(stderr).toMatch(/JSON/);
      expect(stderr).not.toMatch(/could not release/);
      expect(postgresRunningIn(ownDir)).toBe(false);
    }));

  test('a bad configuration value stops start-up naming the variable, and leaks no secret', () => {
    let output = '';
    try {
      execFileSync(process.execPath, [BIN, 'start'], {
        env: {
          ...process.env,
          CONNECT_DATA_DIR: dataDir,
          PORT: 'eighty',
          CONNECT_LEDGER_KEY: 'c2VjcmV0LXNlY3JldA==',
        },
        encoding: 'utf8',
        stdio: 'pipe',
      });
    } catch (error) {
      const failed = error as { status: number; stderr: string };
      expect(failed.status).toBe(2);
      output = failed.stderr;
    }
    expect(output).toMatch(/PORT/);
    expect(output).toMatch(/CONNECT_LEDGER_KEY/);
    expect(output).not.toContain('c2VjcmV0LXNlY3JldA==');
  });
});

// Go's golang.org/x/mod/sumdb/note is the reference for signed notes. CI installs it (Debian's
// golang-go and golang-golang-x-mod-dev); elsewhere this check runs wherever Go and x/mod are present.
const goNote = '/usr/share/gocode/src/golang.org/x/mod/sumdb/note';
const hasGoNote =
  (() => {
    try {
      execFileSync('go', ['version']);
      return true;
    } catch {
      return false;
    }
  })() &&
  (await stat(goNote)
    .then(() => true)
    .catch(() => false));

test.skipIf(!hasGoNote)(
  'the served checkpoint verifies with Go’s reference signed-note implementation',
  async () => {
    const running = await startConnect();
    try {
      const key = (await (await fetch(`${running.url}/v1/ledger/key`)).json()) as Record<string, string>;
      const note = await (await fetch(`${running.url}/v1/ledger/checkpoint`)).text();
      const out = execFileSync(
        'go',
        ['run', path.join(ROOT, 'test/interop/note_verify.go'), key.verifierKey as string],
        {
          input: note,
          encoding: 'utf8',
          env: {
            ...process.env,
            GOPATH: '/usr/share/gocode',
            GO111MODULE: 'off',
            GOFLAGS: '',
            GOCACHE: path.join(os.tmpdir(), 'connect-gocache'),
          },
        },
      );
      expect(out).toMatch(/^origin=connect\.local\/ledger size=\d+ root=/);
    } finally {
      await stop(running);
    }
  },
);
