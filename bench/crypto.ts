// npm run bench -- crypto: what encryption at rest costs. Two `connect start`, CONNECT_ENCRYPTION
// off and on, each on a data directory of its own, measured in turns in one run: the commands mix
// (every body sealed) and reads that open what is sealed (receipts from ledger bodies,
// commitments and lists from the read models, notifications), by the same clients.
// BENCH_CRYPTO_AA=1 runs both sides with encryption on: what the harness itself shows between two
// identical servers (its noise and bias), to read the ratios against.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { embeddedPaths } from '@connect/db';
import autocannon from 'autocannon';
import pg from 'pg';
import { type BenchUser, commandsMix, json, signUpUsers } from './commands.ts';
import { type Metrics, median, round, startConnect, stopConnect } from './support.ts';

const CONNECTIONS = 32;
/** Each side runs this many slices of each mix, BENCH_SECONDS (default 6) long. */
const SLICES = 7;
const SLICE_SECONDS = Number(process.env.BENCH_SECONDS ?? 6);
const WARM_UP_SECONDS = 3;

/** A commitment between two users, active: its receipt has something to open. */
async function activeCommitment(url: string, creator: BenchUser, other: BenchUser): Promise<string> {
  const auth = (user: BenchUser) => ({ authorization: `Bearer ${user.token}` });
  const { commitmentId } = (await json(`${url}/v1/commitments`, {
    method: 'POST',
    headers: auth(creator),
    body: JSON.stringify({
      type: 'personal',
      title: 'Repay 20 EUR',
      description: 'IBAN DE89 3704 0044 0532 0130 00',
    }),
  })) as { commitmentId: string };
  const at = (action: string, user: BenchUser, body: object = {}) =>
    json(`${url}/v1/commitments/${commitmentId}/${action}`, {
      method: 'POST',
      headers: auth(user),
      body: JSON.stringify(body),
    });
  await at('invite', creator, { userId: other.id, role: 'participant' });
  await at('propose', creator);
  await at('accept', other);
  return commitmentId;
}

/** What the reads go round: a receipt, a commitment, a list page, the notifications. */
const READS = [
  (id: string) => `/v1/commitments/${id}/receipt`,
  (id: string) => `/v1/commitments/${id}`,
  () => '/v1/commitments?limit=20',
  () => '/v1/notifications',
];

/** Reads of commitments the caller is a party to, closed-loop, going round READS. */
function readsMix(url: string, reader: BenchUser, ids: readonly string[], seconds: number) {
  let next = 0;
  const headers = { authorization: `Bearer ${reader.token}` };
  return autocannon({
    url,
    connections: CONNECTIONS,
    duration: seconds,
    requests: [
      {
        method: 'GET',
        setupRequest: (request) => {
          const turn = next++;
          const read = READS[turn % READS.length] as (id: string) => string;
          return {
            ...request,
            headers,
            path: read(ids[Math.floor(turn / READS.length) % ids.length] as string),
          };
        },
      },
    ],
  } as autocannon.Options);
}

/**
 * Waits until every projection (the read models, the notifications) has caught up with the
 * ledger and the notifier has no delivery due (account mail waits for SMTP, which is unset), so
 * a slice is timed with the service idle rather than against a backlog of the commands.
 */
async function settle(dataDir: string): Promise<void> {
  const client = new pg.Client({
    connectionString: `postgresql://postgres@localhost:5432/postgres?host=${embeddedPaths(dataDir).socketDir}`,
  });
  await client.connect();
  try {
    for (let waited = 0; waited < 300_000; waited += 200) {
      const { rows } = await client.query<{ behind: boolean }>(
        `select (select min(last_index) from projection_checkpoints)
                  < (select coalesce(max(index), -1) from ledger_entries)
                or exists (select 1 from graphile_worker.jobs
                            where task_identifier like 'deliver-%' and attempts < max_attempts
                              and run_at <= now()) as behind`,
      );
      if (!rows[0]?.behind) return;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    throw new Error('the projections did not catch up in 5 minutes');
  } finally {
    await client.end();
  }
}

interface Side {
  encryption: 'on' | 'off';
  url: string;
  dataDir: string;
  users: BenchUser[];
  /** Active commitments of users[0], the reader. */
  ids: string[];
  stop(): Promise<void>;
}

async function startSide(encryption: 'on' | 'off'): Promise<Side> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), `connect-bench-crypto-${encryption}-`));
  await chmod(dataDir, 0o711);
  const server = await startConnect({
    DATABASE_URL: '',
    CONNECT_DATA_DIR: dataDir,
    CONNECT_ENCRYPTION: process.env.BENCH_CRYPTO_AA ? 'on' : encryption,
  });
  const users = await signUpUsers(server.url, CONNECTIONS * 2);
  await commandsMix(server.url, users, CONNECTIONS, WARM_UP_SECONDS);
  const [reader, ...others] = users as [BenchUser, ...BenchUser[]];
  const ids: string[] = [];
  for (const other of others.slice(0, 20)) ids.push(await activeCommitment(server.url, reader, other));
  return {
    encryption,
    url: server.url,
    dataDir,
    users,
    ids,
    stop: async () => {
      await stopConnect(server.child);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Runs `slice` on each side in turn, `SLICES` rounds (the order swapped every round), each after
 * both sides caught up (settle). A side's rate is its median slice; the ratio is the median of
 * the rounds' ratios, each of two slices run back to back, so a slow minute on the shared
 * machine weighs on both terms of one ratio rather than on one side.
 */
async function interleaved(
  sides: readonly [Side, Side],
  slice: (side: Side) => Promise<autocannon.Result>,
  what: string,
): Promise<{ off: number; on: number; ratio: number }> {
  const rates: [number[], number[]] = [[], []];
  for (let round = 0; round < SLICES; round++) {
    for (const which of round % 2 === 0 ? [0, 1] : [1, 0]) {
      const side = sides[which] as Side;
      // Both sides: the other's work left from its last slice would take this one's CPU.
      await Promise.all(sides.map((each) => settle(each.dataDir)));
      const result = await slice(side);
      if (result.non2xx > 0 || result.errors > 0)
        throw new Error(
          `${what} with encryption ${side.encryption}: ${result.non2xx} not 2xx, ${result.errors} errors`,
        );
      rates[which]?.push(result['2xx'] / SLICE_SECONDS);
    }
  }
  const ratios = rates[1].map((on, i) => on / (rates[0][i] as number));
  for (const [which, side] of sides.entries())
    console.log(
      `  ${what}, encryption ${side.encryption}: ${rates[which]?.map((r) => r.toFixed(0)).join(' ')} /s`,
    );
  console.log(`  ${what}, ratio by round: ${ratios.map((r) => r.toFixed(3)).join(' ')}`);
  return { off: median(rates[0]), on: median(rates[1]), ratio: median(ratios) };
}

export async function benchCrypto(): Promise<Metrics> {
  const off = await startSide('off');
  try {
    const on = await startSide('on');
    try {
      const commands = await interleaved(
        [off, on],
        (side) => commandsMix(side.url, side.users, CONNECTIONS, SLICE_SECONDS),
        'commands',
      );
      // The reads' code warmed on both sides before the first timed slice, as the commands' are.
      for (const side of [off, on])
        await readsMix(side.url, side.users[0] as BenchUser, side.ids, WARM_UP_SECONDS);
      const reads = await interleaved(
        [off, on],
        (side) => readsMix(side.url, side.users[0] as BenchUser, side.ids, SLICE_SECONDS),
        'reads',
      );
      return {
        'crypto.commands_off.per_s': { value: round(commands.off, 0), unit: 'commands/s' },
        'crypto.commands_on.per_s': { value: round(commands.on, 0), unit: 'commands/s' },
        'crypto.commands_ratio': { value: round(commands.ratio, 3), unit: 'ratio' },
        'crypto.reads_off.per_s': { value: round(reads.off, 0), unit: 'reads/s' },
        'crypto.reads_on.per_s': { value: round(reads.on, 0), unit: 'reads/s' },
        'crypto.reads_ratio': { value: round(reads.ratio, 3), unit: 'ratio' },
      };
    } finally {
      await on.stop();
    }
  } finally {
    await off.stop();
  }
}
