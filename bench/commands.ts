// npm run bench -- commands: `connect start` on the embedded database, over real HTTP, 64
// connections, each running create → invite → propose → accept for its own pair of users.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { signingKeyFromSeed } from '@connect/crypto';
import { openLedger, withNativeSigner } from '@connect/ledger';
import autocannon from 'autocannon';
import { appendRate } from './ledger.ts';
import { benchDatabase, type Metrics, percentile, round, startConnect } from './support.ts';

const CONNECTIONS = 64;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const WARM_UP_SECONDS = 3;

export async function json(
  url: string,
  init: RequestInit & { body?: string },
): Promise<Record<string, unknown>> {
  const response = await fetch(url, {
    ...init,
    headers: { 'content-type': 'application/json', ...init.headers },
  });
  if (!response.ok) throw new Error(`${init.method} ${url}: ${response.status} ${await response.text()}`);
  return (await response.json()) as Record<string, unknown>;
}

export interface BenchUser {
  token: string;
  id: string;
  email: string;
}

/** Signs up `count` users (user0@bench.test, …), eight at a time. */
export async function signUpUsers(url: string, count: number, prefix = 'user'): Promise<BenchUser[]> {
  const users: BenchUser[] = [];
  for (let i = 0; i < count; i += 8) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(8, count - i) }, (_, k) =>
        json(`${url}/v1/auth/signup`, {
          method: 'POST',
          body: JSON.stringify({
            email: `${prefix}${i + k}@bench.test`,
            password: 'bench password 1',
            displayName: `User ${i + k}`,
          }),
        }),
      ),
    );
    for (const body of batch) {
      const user = body.user as { id: string; email: string };
      users.push({ token: body.access_token as string, id: user.id, email: user.email });
    }
  }
  return users;
}

/**
 * The commands mix: `connections` connections, each running create → invite → propose → accept for
 * its own pair of users (users[2k] creates and invites users[2k+1]), for `seconds`.
 */
export function commandsMix(
  url: string,
  users: readonly BenchUser[],
  connections: number,
  seconds: number,
): Promise<autocannon.Result> {
  return autocannon(commandsMixOptions(url, users, connections, seconds));
}

export interface MixFigures {
  /** Answered 2xx after the warm-up. */
  ok: number;
  perSecond: number;
  p50: number;
  p99: number;
  non2xx: number;
  /** Requests that got no answer (connection errors, timeouts), the warm-up's included. */
  errors: number;
}

/**
 * The commands mix for `warmUpSeconds` and then `seconds` as one run, counting only what is
 * answered after the warm-up. A warm-up run of its own followed by the measured one would have the
 * measured one's connections start together while the warm-up's last commands are still being
 * answered: its first second then held latencies of 400–600 ms that the steady load never shows.
 */
export function measureCommandsMix(
  url: string,
  users: readonly BenchUser[],
  connections: number,
  warmUpSeconds: number,
  seconds: number,
): Promise<MixFigures> {
  const latencies: number[] = [];
  let non2xx = 0;
  const countFrom = performance.now() + warmUpSeconds * 1000;
  return new Promise((resolve, reject) => {
    const run = autocannon(
      commandsMixOptions(url, users, connections, warmUpSeconds + seconds),
      (error: unknown, result: autocannon.Result) => {
        if (error) return reject(error);
        const counted = (performance.now() - countFrom) / 1000;
        latencies.sort((a, b) => a - b);
        resolve({
          ok: latencies.length - non2xx,
          perSecond: (latencies.length - non2xx) / counted,
          p50: round(percentile(latencies, 50)),
          p99: round(percentile(latencies, 99)),
          non2xx,
          errors: result.errors,
        });
      },
    );
    run.on('response', (_client, status, _bytes, milliseconds) => {
      if (performance.now() < countFrom) return;
      latencies.push(milliseconds);
      if (status < 200 || status >= 300) non2xx++;
    });
  });
}

function commandsMixOptions(
  url: string,
  users: readonly BenchUser[],
  connections: number,
  seconds: number,
): autocannon.Options {
  let pairs = 0;
  type Context = { creator?: BenchUser; other?: BenchUser; id?: string };
  const auth = (user: { token: string } | undefined) => ({
    authorization: `Bearer ${user?.token}`,
    'content-type': 'application/json',
  });
  return {
    url,
    connections,
    duration: seconds,
    requests: [
      {
        method: 'POST',
        path: '/v1/commitments',
        setupRequest: (request, context: Context) => {
          if (!context.creator) {
            const pair = pairs++ % Math.floor(users.length / 2);
            context.creator = users[pair * 2];
            context.other = users[pair * 2 + 1];
          }
          return {
            ...request,
            headers: auth(context.creator),
            body: JSON.stringify({ type: 'personal', title: 'Lend 20 EUR' }),
          };
        },
        onResponse: (_status, body, context: Context) => {
          context.id = (JSON.parse(body) as { commitmentId: string }).commitmentId;
        },
      },
      {
        method: 'POST',
        setupRequest: (request, context: Context) => ({
          ...request,
          path: `/v1/commitments/${context.id}/invite`,
          headers: auth(context.creator),
          body: JSON.stringify({ userId: context.other?.id, role: 'participant' }),
        }),
      },
      {
        method: 'POST',
        setupRequest: (request, context: Context) => ({
          ...request,
          path: `/v1/commitments/${context.id}/propose`,
          headers: auth(context.creator),
          body: '{}',
        }),
      },
      {
        method: 'POST',
        setupRequest: (request, context: Context) => ({
          ...request,
          path: `/v1/commitments/${context.id}/accept`,
          headers: auth(context.other),
          body: '{}',
        }),
      },
    ],
  } as autocannon.Options;
}

export async function benchCommands(): Promise<Metrics> {
  // The ledger alone, on the same machine in the same run: the ceiling the HTTP path is held to.
  const database = await benchDatabase(CONNECTIONS + 8);
  const key = withNativeSigner(signingKeyFromSeed('bench.connect.local/ledger', new Uint8Array(32).fill(42)));
  const ledger = await openLedger({ pool: database.pool, db: database.db, origin: key.name, key });
  const ledgerOnly = await appendRate(ledger, SECONDS);
  await database.close();

  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'connect-bench-http-'));
  await chmod(dataDir, 0o711);
  const server = await startConnect({ DATABASE_URL: '', CONNECT_DATA_DIR: dataDir });
  try {
    console.log(`signing up ${CONNECTIONS * 2} users…`);
    const users = await signUpUsers(server.url, CONNECTIONS * 2);
    console.log(
      `commands over HTTP: ${CONNECTIONS} connections, ${WARM_UP_SECONDS}s warm-up, then ${SECONDS}s`,
    );
    const result = await measureCommandsMix(server.url, users, CONNECTIONS, WARM_UP_SECONDS, SECONDS);
    console.log(
      `  ${result.ok} commands answered 2xx after the warm-up, ${result.non2xx} not, ${result.errors} errors`,
    );
    return {
      'commands.http.per_s': { value: round(result.perSecond, 0), unit: 'commands/s' },
      'commands.http.p50_ms': { value: result.p50, unit: 'ms' },
      'commands.http.p99_ms': { value: result.p99, unit: 'ms' },
      'commands.http.non_2xx': { value: result.non2xx, unit: 'responses' },
      'commands.ledger_append.per_s': { value: round(ledgerOnly.perSecond, 0), unit: 'appends/s' },
      'commands.http.ratio_to_ledger_append': {
        value: round(result.perSecond / ledgerOnly.perSecond, 3),
        unit: 'ratio',
      },
    };
  } finally {
    const exited = new Promise((resolve) => server.child.once('exit', resolve));
    server.child.kill('SIGTERM');
    await exited;
    await rm(dataDir, { recursive: true, force: true });
  }
}
