import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ReceiptBundle, type SigningKey, signCheckpoint } from '@connect/crypto';
import { checkpointAt, consistencyProof, latestCheckpoint } from '@connect/ledger';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type Stack, testStack } from '../../../test/support/stack.ts';
import { buildApp } from '../src/app.ts';
import { CHECKS, type RefusedCase, refusedReceipts, type Served, servedReceipt } from './receipt-cases.ts';

const BIN = fileURLToPath(new URL('../../../cli/bin/connect.js', import.meta.url));
// Each CLI run starts tsx and loads the sources: slow on a busy machine.
const CLI_TIMEOUT = 300_000;
let s: Stack;
let served: Served;
let receipt: ReceiptBundle;
let key: SigningKey;
let refused: Record<RefusedCase, ReceiptBundle>;

beforeAll(async () => {
  s = await testStack();
  served = await servedReceipt(s);
  receipt = served.receipt;
  key = s.command.ledger.key;
  refused = refusedReceipts(receipt, key);
});
afterAll(() => s.close());

const verify = (payload: unknown) =>
  s.app.inject({ method: 'POST', url: '/v1/ledger/verify', payload: payload as object });
const failedNames = (result: { checks: { name: string; ok: boolean }[] }) =>
  result.checks.filter((c) => !c.ok).map((c) => c.name);

describe('POST /v1/ledger/verify', () => {
  test('checks a served receipt, stream head and replayed state included', async () => {
    const good = await verify({ receipt });
    expect(good.statusCode).toBe(200);
    expect(failedNames(good.json())).toEqual([]);
    expect(good.json().valid).toBe(true);
    expect(good.json().checks.map((c: { name: string }) => c.name)).toEqual(
      expect.arrayContaining(Object.values(CHECKS)),
    );
  });

  test('names what fails in a doctored entry', async () => {
    const doctored = structuredClone(receipt);
    (doctored.entries[1] as unknown as { data: { role: string } }).data.role = 'witness';
    const bad = (await verify({ receipt: doctored })).json();
    expect(bad.valid).toBe(false);
    expect(failedNames(bad)).toEqual([
      `entry ${doctored.entries[1]?.index} (version 2): dataHash matches salt and data`,
      CHECKS.editedState,
    ]);
  });

  test.each(Object.keys(CHECKS) as RefusedCase[])(
    'refuses a receipt with %s, naming the check',
    async (name) => {
      const response = await verify({ receipt: refused[name] });
      expect(response.statusCode).toBe(200);
      expect(response.json().valid).toBe(false);
      expect(failedNames(response.json())).toContain(CHECKS[name]);
    },
  );

  test('it checks an entry with its proof and checkpoint, and two checkpoints with a consistency proof', async () => {
    const { proof, ...entry } = receipt.entries[0] as ReceiptBundle['entries'][number];
    const single = (await verify({ entry, proof, checkpoint: receipt.checkpoint })).json();
    expect(single.valid).toBe(true);
    const older = await checkpointAt(s.database.db, 5);
    const newer = await latestCheckpoint(s.database.db);
    const consistency = await consistencyProof(s.database.pool, 5, newer?.treeSize ?? 0);
    expect((await verify({ from: older?.note, to: newer?.note, proof: consistency })).json().valid).toBe(
      true,
    );
  });

  test('nothing to verify is a 400 naming the body', async () => {
    const response = await verify({ hello: 1 });
    expect(response.statusCode).toBe(400);
    expect(response.json().errors[0].path).toBe('body');
  });

  test('a body of the wrong shape is a 400 naming the field, never a 500', async () => {
    for (const [payload, path] of [
      [{ receipt: { entries: [null] } }, 'body.receipt.entries.0'],
      [{ receipt: null }, 'body.receipt'],
      [{ receipt: { entries: [], streamHead: 7 } }, 'body.receipt.streamHead'],
      [{ receipt: { entries: [], profiles: 'x' } }, 'body.receipt.profiles'],
      [{ entry: null, proof: { index: 0, treeSize: 1, hashes: [] }, checkpoint: 'x' }, 'body.entry'],
      [{ entry: {}, proof: null, checkpoint: 'x' }, 'body.proof'],
      [{ from: 'a', to: 'b', proof: { from: 1, to: 2, hashes: [null] } }, 'body.proof.hashes.0'],
    ] as const) {
      const response = await verify(payload);
      expect(response.statusCode, JSON.stringify(payload)).toBe(400);
      expect(response.json().errors.map((e: { path: string }) => e.path)).toContain(path);
    }
  });

  test('a body of a great many bad items is a short 400, never a 500', async () => {
    // 500,000 strings with a NUL: every one a problem, and too many to spread into one call.
    const nuls = await verify({ receipt: { entries: Array.from({ length: 500_000 }, () => '\u0000') } });
    expect(nuls.statusCode).toBe(400);
    expect(nuls.json().errors).toHaveLength(100);
    expect(nuls.json().errors[0]).toMatchObject({ path: 'body.receipt.entries.0' });
    expect(nuls.json().detail).toMatch(/Only the first 100 are named/);
    // 20,000 entries of nothing: refused for their number, not item by item.
    const empty = await verify({ receipt: { entries: Array.from({ length: 20_000 }, () => ({})) } });
    expect(empty.statusCode).toBe(400);
    expect(empty.json().errors).toEqual([
      { path: 'body.receipt.entries', message: 'Too big: expected array to have <=10000 items' },
    ]);
    expect(empty.body.length).toBeLessThan(2_000);
  });

  test('counts each client address: past its limit a minute, 429 before the body is read', async () => {
    let clock = new Date();
    const limited = buildApp({ ...s.query, verifiesPerMinute: 3, now: () => clock }, { logLevel: 'silent' });
    await limited.ready();
    try {
      const from = (remoteAddress: string, payload: string | object = { receipt }) =>
        limited.inject({
          method: 'POST',
          url: '/v1/ledger/verify',
          remoteAddress,
          headers: { 'content-type': 'application/json' },
          payload,
        });
      for (let i = 0; i < 3; i++) expect((await from('203.0.113.7')).statusCode).toBe(200);
      // Not JSON at all: a request it would parse gets 400, one past the limit 429.
      const refused = await from('203.0.113.7', '{ not json');
      expect(refused.statusCode).toBe(429);
      expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(refused.json()).toMatchObject({ status: 429, type: expect.stringMatching(/rate-limited$/) });
      expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
      expect((await from('203.0.113.8', '{ not json')).statusCode).toBe(400);
      clock = new Date(clock.getTime() + 61_000);
      expect((await from('203.0.113.7')).statusCode).toBe(200);
    } finally {
      await limited.close();
    }
  });

  test('behind a trusted proxy, counts the forwarded client address; from anyone else, the header is not believed', async () => {
    const clock = new Date();
    const limited = buildApp(
      { ...s.query, verifiesPerMinute: 1, now: () => clock },
      { logLevel: 'silent', trustedProxies: ['10.0.0.0/8'] },
    );
    await limited.ready();
    try {
      const from = (remoteAddress: string, forwardedFor: string) =>
        limited
          .inject({
            method: 'POST',
            url: '/v1/ledger/verify',
            remoteAddress,
            headers: { 'x-forwarded-for': forwardedFor },
            payload: { receipt },
          })
          .then((response) => response.statusCode);
      expect(await from('10.1.2.3', '198.51.100.1')).toBe(200);
      expect(await from('10.9.9.9', '198.51.100.1')).toBe(429);
      expect(await from('10.1.2.3', '198.51.100.2')).toBe(200);
      // A client naming someone else's address: the proxy adds the one it saw, and that is counted.
      expect(await from('10.1.2.3', '198.51.100.2, 198.51.100.3')).toBe(200);
      // Not from a listed proxy: the connecting address is counted, whatever the header says.
      expect(await from('198.51.100.50', '198.51.100.4')).toBe(200);
      expect(await from('198.51.100.50', '198.51.100.5')).toBe(429);
    } finally {
      await limited.close();
    }
  });
});

describe('connect verify receipt', () => {
  const run = (file: string, ...args: string[]) =>
    new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = execFile(
        process.execPath,
        [BIN, 'verify', 'receipt', file, ...args],
        {
          encoding: 'utf8',
          env: {
            ...process.env,
            DATABASE_URL: 'postgresql://nowhere.invalid/x',
            XDG_CONFIG_HOME: path.join(os.tmpdir(), 'connect-no-pins'),
          },
        },
        (_error, stdout, stderr) => resolve({ status: child.exitCode, stdout, stderr }),
      );
    });

  test(
    'works offline with --key, and says what was proven in words',
    async () => {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'connect-receipt-'));
      try {
        const good = path.join(dir, 'good.json');
        await writeFile(good, JSON.stringify(receipt));
        const ok = await run(good, '--key', s.query.verifierKey);
        expect(ok.stderr).toBe('');
        expect(ok.status).toBe(0);
        expect(ok.stdout).toMatch(/^ok {3}stream head’s latest entry is the receipt’s last/m);
        expect(ok.stdout).toMatch(/^ok {3}state is what the entries replay to$/m);
        expect(ok.stdout).toMatch(/receipt verified against the key given with --key/);
        expect(ok.stdout).toMatch(/Title: +Loan for the van/);
        expect(ok.stdout).toMatch(/Amount: +€1,250\.00/);
        expect(ok.stdout).toMatch(/Status: +active/);
        expect(ok.stdout).toMatch(/Creator: +Ana \(accepted\)/);
        expect(ok.stdout).toMatch(/Participant: +Ben \(accepted\)/);
        expect(ok.stdout).toMatch(/Due: +2030-01-01 00:00 UTC/);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
    CLI_TIMEOUT,
  );

  test(
    'without a trusted key it verifies nothing, says so, and exits non-zero',
    async () => {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'connect-receipt-'));
      try {
        const good = path.join(dir, 'good.json');
        await writeFile(good, JSON.stringify(receipt));
        const unkeyed = await run(good);
        expect(unkeyed.status).toBe(2);
        expect(unkeyed.stdout).toBe('');
        expect(unkeyed.stderr).toMatch(/NOT VERIFIED: nothing was checked, because no key is trusted/);
        // A key pinned by `connect verify remote` for this ledger is a trusted key.
        const state = path.join(dir, 'pins.json');
        await writeFile(
          state,
          JSON.stringify({ 'http://ledger.test': { verifierKey: s.query.verifierKey } }),
        );
        const pinned = await run(good, '--state', state);
        expect(pinned.status).toBe(0);
        expect(pinned.stdout).toMatch(/receipt verified against the key pinned for http:\/\/ledger.test/);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
    CLI_TIMEOUT,
  );

  test(
    'refuses each doctored receipt, naming the failing check',
    async () => {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'connect-receipt-'));
      try {
        const cases = Object.entries(refused) as [RefusedCase, ReceiptBundle][];
        const runs = await Promise.all(
          cases.map(async ([name, bundle]) => {
            const file = path.join(dir, `${name}.json`);
            await writeFile(file, JSON.stringify(bundle));
            return run(file, '--key', s.query.verifierKey);
          }),
        );
        for (const [i, [name]] of cases.entries()) {
          const failed = runs[i] as Awaited<ReturnType<typeof run>>;
          expect(failed.status, name).toBe(1);
          expect(failed.stdout, name).toContain(`FAIL ${CHECKS[name]}`);
          expect(failed.stdout, name).toMatch(/receipt does NOT verify: /);
          expect(failed.stdout, name).not.toMatch(/Title:/);
        }
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
    CLI_TIMEOUT,
  );
});

test(
  'connect verify remote pins the key, accepts growth, and catches a rollback or a fork',
  async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'connect-remote-'));
    const address = await s.app.listen({ port: 0, host: '127.0.0.1' });
    const size = async () => (await latestCheckpoint(s.database.db))?.treeSize ?? 0;
    const grow = () =>
      s.command.ledger.append({
        stream: 'later',
        expectedVersion: 'any',
        actor: null,
        events: [{ type: 'Grown', data: {} }],
      });
    try {
      const stateFile = path.join(dir, 'state.json');
      // Asynchronous: the server answering the CLI runs in this very process.
      const run = () =>
        new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
          const child = execFile(
            process.execPath,
            [BIN, 'verify', 'remote', '--url', address, '--state', stateFile],
            { encoding: 'utf8' },
            (_error, stdout, stderr) => resolve({ status: child.exitCode, stdout, stderr }),
          );
        });
      const first = await run();
      expect(first.status).toBe(0);
      expect(first.stdout).toMatch(/pinned the ledger key/);
      const before = await size();
      await grow();
      const second = await run();
      expect(second.status).toBe(0);
      expect(second.stdout).toContain(`grew from ${before} to ${before + 1} entries`);

      const state = JSON.parse(await readFile(stateFile, 'utf8'));
      // A server that rewrote history: the checkpoint we kept has another root.
      state[address].checkpoint = signCheckpoint(
        { origin: key.name, treeSize: before + 1, rootHash: new Uint8Array(32).fill(7) },
        key,
      );
      await writeFile(stateFile, JSON.stringify(state));
      await grow();
      const forked = await run();
      expect(forked.status).toBe(1);
      expect(forked.stderr).toMatch(/forked or rewritten/);

      // A server that rolled back: we have seen a bigger tree than it now shows.
      state[address].checkpoint = signCheckpoint(
        { origin: key.name, treeSize: 9999, rootHash: new Uint8Array(32) },
        key,
      );
      await writeFile(stateFile, JSON.stringify(state));
      const rolledBack = await run();
      expect(rolledBack.status).toBe(1);
      expect(rolledBack.stderr).toContain(`rolled back from 9999 to ${before + 2} entries`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
  CLI_TIMEOUT,
);
