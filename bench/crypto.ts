// npm run bench -- crypto: what encryption at rest costs. `connect start` with CONNECT_ENCRYPTION
// on and off, in one run, each on a data directory of its own: the commands mix (every body
// sealed) and reads that open what is sealed (receipts from ledger bodies, commitments and lists
// from the read models, notifications), by the same clients.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { embeddedPaths } from '@connect/db';
import autocannon from 'autocannon';
import pg from 'pg';
import { type BenchUser, commandsMix, json, signUpUsers } from './commands.ts';
import { type Metrics, round, startConnect, stopConnect } from './support.ts';

const CONNECTIONS = 32;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);

interface Side {
  commandsPerS: number;
  readsPerS: number;
}

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
 * ledger, so the reads are timed with the service idle rather than against a backlog of the commands.
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
                < (select coalesce(max(index), -1) from ledger_entries) as behind`,
      );
      if (!rows[0]?.behind) return;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    throw new Error('the projections did not catch up in 5 minutes');
  } finally {
    await client.end();
  }
}

async function measure(encryption: 'on' | 'off'): Promise<Side> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), `connect-bench-crypto-${encryption}-`));
  await chmod(dataDir, 0o711);
  const server = await startConnect({
    DATABASE_URL: '',
    CONNECT_DATA_DIR: dataDir,
    CONNECT_ENCRYPTION: encryption,
  });
  try {
    const users = await signUpUsers(server.url, CONNECTIONS * 2);
    await commandsMix(server.url, users, CONNECTIONS, 3);
    const commands = await commandsMix(server.url, users, CONNECTIONS, SECONDS);
    const [reader, ...others] = users as [BenchUser, ...BenchUser[]];
    const ids: string[] = [];
    for (const other of others.slice(0, 20)) ids.push(await activeCommitment(server.url, reader, other));
    await settle(dataDir);
    await readsMix(server.url, reader, ids, 3);
    const reads = await readsMix(server.url, reader, ids, SECONDS);
    console.log(
      `  encryption ${encryption}: ${commands['2xx']} commands 2xx (${commands.non2xx} not), ${reads['2xx']} reads 2xx (${reads.non2xx} not)`,
    );
    return { commandsPerS: commands['2xx'] / SECONDS, readsPerS: reads['2xx'] / SECONDS };
  } finally {
    await stopConnect(server.child);
    await rm(dataDir, { recursive: true, force: true });
  }
}

export async function benchCrypto(): Promise<Metrics> {
  // Off, on, off, on: each side's median of two, so drift on a shared machine hits both.
  const off: Side[] = [];
  const on: Side[] = [];
  for (let round = 0; round < 2; round++) {
    off.push(await measure('off'));
    on.push(await measure('on'));
  }
  const mid = (sides: Side[], pick: (side: Side) => number) =>
    sides.map(pick).reduce((a, b) => a + b) / sides.length;
  const commandsOff = mid(off, (s) => s.commandsPerS);
  const commandsOn = mid(on, (s) => s.commandsPerS);
  const readsOff = mid(off, (s) => s.readsPerS);
  const readsOn = mid(on, (s) => s.readsPerS);
  return {
    'crypto.commands_off.per_s': { value: round(commandsOff, 0), unit: 'commands/s' },
    'crypto.commands_on.per_s': { value: round(commandsOn, 0), unit: 'commands/s' },
    'crypto.commands_ratio': { value: round(commandsOn / commandsOff, 3), unit: 'ratio' },
    'crypto.reads_off.per_s': { value: round(readsOff, 0), unit: 'reads/s' },
    'crypto.reads_on.per_s': { value: round(readsOn, 0), unit: 'reads/s' },
    'crypto.reads_ratio': { value: round(readsOn / readsOff, 3), unit: 'ratio' },
  };
}
