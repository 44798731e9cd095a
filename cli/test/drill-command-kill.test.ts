// Fault drill (issue 16): kill -9 a command process under load while clients retry by
// Idempotency-Key. Two `connect start` processes share one database and data directory; 16
// clients each create commitments and invite and propose on them, every command under a key of
// its own, and a request that fails (reset, 5xx, timeout) is sent again, same body and key, to the
// other process until it gets a definite answer (a 409 "in flight" for a key the dead process held
// is asked again until the survivor takes the abandoned request over). Mid-run one process is
// killed with SIGKILL. Afterwards every command answered 2xx is in the ledger
// exactly once, each commitment's receipt verifies (with the project's verifier and with the
// independent one of test/interop, written from LEDGER.md alone), nothing was applied twice, and `connect verify ledger` passes.
import { parseVerifierKey, verifyReceipt } from '@connect/crypto';
import { replayReceipt } from '@connect/query';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { inclusionHolds, leafHash } from '../../test/interop/ledger-verifier.ts';
import { verifyLedger } from './drill-support.ts';
import { type RunningConnect, signUp, startConnect, startConnectBeside } from './running-connect.ts';

const CLIENTS = 16;
const COMMITMENTS_PER_CLIENT = 4;
const COMMANDS_PER_CLIENT = COMMITMENTS_PER_CLIENT * 3;
/** The kill comes once this share of all commands has been answered. */
const KILL_AFTER_SHARE = 1 / 3;
/** How long one attempt may take before the client gives up on it and retries. */
const ATTEMPT_TIMEOUT_MS = 20_000;
/** How long a client keeps retrying one command before the drill fails. */
const RETRY_DEADLINE_MS = 120_000;

type Process = Pick<RunningConnect, 'url' | 'child' | 'exited' | 'close'>;
let first: RunningConnect;
let second: Process | undefined;

beforeAll(async () => {
  first = await startConnect();
  second = await startConnectBeside(first);
}, 200_000);
afterAll(async () => {
  await second?.close();
  await first?.close();
});

interface Command {
  client: number;
  action: 'create' | 'invite' | 'propose';
  key: string;
  path: string;
  body: unknown;
}

interface Receipt {
  commitmentId: string;
  version: number;
  events: { index: number; id: string; type: string; leafHash: string }[];
}

/** What the drill saw of the load: answers, retries, and what was under way at the kill. */
interface LoadStats {
  answered: number;
  retried: number;
  /** Commands answered 409 in flight: held by the killed process until a retry took them over. */
  heldByTheDead: Set<string>;
  inFlightAtKill: number | undefined;
  /** Requests sent to each process and not answered yet. */
  pending: Map<Process, number>;
}

const stats: LoadStats = {
  answered: 0,
  retried: 0,
  heldByTheDead: new Set(),
  inFlightAtKill: undefined,
  pending: new Map(),
};

const inFlight = (answer: { status: number; body: { type?: unknown } }) =>
  answer.status === 409 && String(answer.body.type).endsWith('/idempotency-key-in-flight');

async function attempt(target: Process, token: string, command: Command) {
  stats.pending.set(target, (stats.pending.get(target) ?? 0) + 1);
  try {
    const response = await fetch(`${target.url}${command.path}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        'idempotency-key': command.key,
      },
      body: JSON.stringify(command.body),
      signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS),
    });
    const text = await response.text();
    return { status: response.status, body: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
  } catch {
    return undefined; // reset, refused or timed out: no answer
  } finally {
    stats.pending.set(target, (stats.pending.get(target) ?? 1) - 1);
  }
}

/** A client's process: its own at first, the other one after a failed attempt. */
interface Client {
  index: number;
  token: string;
  process: number;
}

/**
 * Sends `command` until it gets a definite answer: after no answer or a 5xx the client moves to
 * the other process; a 409 in flight (the key is held by the killed process) is asked again.
 */
async function send(processes: Process[], client: Client, command: Command) {
  const deadline = Date.now() + RETRY_DEADLINE_MS;
  for (let tries = 0; ; tries++) {
    const answer = await attempt(processes[client.process] as Process, client.token, command);
    if (answer && answer.status < 500 && !inFlight(answer)) {
      stats.answered++;
      return answer;
    }
    if (answer && inFlight(answer)) stats.heldByTheDead.add(command.key);
    else client.process = (client.process + 1) % processes.length;
    if (Date.now() > deadline) {
      throw new Error(
        `client ${command.client}: ${command.action} (${command.key}) got no definite answer in ${RETRY_DEADLINE_MS} ms; last: ${JSON.stringify(answer)}`,
      );
    }
    if (tries === 0) stats.retried++;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** One client: its commitments, each created, then Ben invited, then proposed; every 2xx receipt kept. */
async function runClient(processes: Process[], client: Client, benId: string) {
  const succeeded: (Command & { receipt: Receipt })[] = [];
  for (let round = 0; round < COMMITMENTS_PER_CLIENT; round++) {
    const key = (action: string) => `drill-${client.index}-${round}-${action}`;
    const create: Command = {
      client: client.index,
      action: 'create',
      key: key('create'),
      path: '/v1/commitments',
      body: {
        type: 'financial',
        title: `Drill ${client.index}.${round}`,
        amount: { minor: 100 + round, currency: 'EUR' },
        dueAt: '2030-06-01T00:00:00.000Z',
      },
    };
    const created = await send(processes, client, create);
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = (created.body as unknown as Receipt).commitmentId;
    succeeded.push({ ...create, receipt: created.body as unknown as Receipt });
    const followUps: Command[] = [
      {
        client: client.index,
        action: 'invite',
        key: key('invite'),
        path: `/v1/commitments/${id}/invite`,
        body: { userId: benId, role: 'participant' },
      },
      {
        client: client.index,
        action: 'propose',
        key: key('propose'),
        path: `/v1/commitments/${id}/propose`,
        body: {},
      },
    ];
    for (const command of followUps) {
      const answer = await send(processes, client, command);
      expect(answer.status, `${command.action}: ${JSON.stringify(answer.body)}`).toBe(200);
      succeeded.push({ ...command, receipt: answer.body as unknown as Receipt });
    }
  }
  return succeeded;
}

/** SIGKILL `victim` once a share of all commands has been answered; counts what it held then. */
async function killMidRun(victim: Process, total: number): Promise<void> {
  while (stats.answered < total * KILL_AFTER_SHARE) await new Promise((resolve) => setTimeout(resolve, 5));
  stats.inFlightAtKill = stats.pending.get(victim) ?? 0;
  victim.child.kill('SIGKILL');
  expect(await victim.exited).toBe(null);
}

/** The entry's leaf hash up its proof path to `root`, by the verifier written from LEDGER.md alone. */
const independentlyIncluded = (
  entry: Record<string, unknown>,
  proof: { index: number; treeSize: number; hashes: string[] },
  root: Buffer,
) =>
  leafHash(entry).toString('base64') === entry.leafHash &&
  inclusionHolds(proof.index, proof.treeSize, leafHash(entry), proof.hashes, root);

/** The root hash of a signed checkpoint note (its third line); the signature is checked elsewhere. */
const checkpointRoot = (note: string) => Buffer.from(note.split('\n')[2] as string, 'base64');

test('kill -9 under load: every command answered 2xx is in the ledger once, receipts verify', async () => {
  if (!second) throw new Error('no second process');
  const processes: Process[] = [first, second];
  const ben = await signUp(first, 'ben');
  const clients = await Promise.all(
    Array.from({ length: CLIENTS }, (_, client) =>
      signUp(processes[client % 2] as Process, `client${client}`),
    ),
  );

  const killed = killMidRun(first, CLIENTS * COMMANDS_PER_CLIENT);
  const started = performance.now();
  const results = await Promise.all(
    clients.map((client, index) =>
      runClient(processes, { index, token: client.token, process: index % 2 }, ben.userId),
    ),
  );
  await killed;
  console.log(
    `drill: ${CLIENTS * COMMANDS_PER_CLIENT} commands in ${Math.round(performance.now() - started)} ms; ` +
      `${stats.inFlightAtKill} in flight on the killed process at the kill; ${stats.retried} retried, ` +
      `${stats.heldByTheDead.size} of them taken over from the killed process`,
  );
  expect(stats.inFlightAtKill).toBeGreaterThan(0);
  expect(stats.retried).toBeGreaterThanOrEqual(stats.inFlightAtKill ?? 0);

  const pool = first.database.pool;
  for (const [i, succeeded] of results.entries()) {
    const { userId } = clients[i] as { userId: string };
    expect(succeeded).toHaveLength(COMMANDS_PER_CLIENT);
    // Applied once: the client's entries in the ledger are exactly those its 2xx receipts name.
    const { rows } = await pool.query<{ index: number; id: string; type: string }>(
      `select index, id, type from ledger_entries where actor = $1 and stream like 'commitment-%' order by index`,
      [userId],
    );
    const told = succeeded
      .flatMap((command) => command.receipt.events)
      .map((event) => ({ index: event.index, id: event.id, type: event.type }))
      .sort((a, b) => a.index - b.index);
    expect(rows).toEqual(told);
    const creations = rows.filter((row) => row.type === 'CommitmentDrafted');
    expect(creations).toHaveLength(succeeded.filter((command) => command.action === 'create').length);
  }

  const verifierKey = parseVerifierKey(
    (await pool.query<{ verifier_key: string }>('select verifier_key from ledger_head')).rows[0]
      ?.verifier_key as string,
  );
  for (const [i, succeeded] of results.entries()) {
    const { token } = clients[i] as { token: string };
    for (const created of succeeded.filter((command) => command.action === 'create')) {
      const id = created.receipt.commitmentId;
      const ours = succeeded.filter((command) => command.receipt.commitmentId === id);
      const lastIndex = Math.max(...ours.flatMap((command) => command.receipt.events.map((e) => e.index)));
      const response = await fetch(`${second.url}/v1/commitments/${id}/receipt`, {
        headers: { authorization: `Bearer ${token}`, 'connect-min-index': String(lastIndex) },
      });
      expect(response.status).toBe(200);
      const bundle = (await response.json()) as {
        checkpoint: string;
        entries: (Record<string, unknown> & {
          proof: { index: number; treeSize: number; hashes: string[] };
        })[];
      };
      const verdict = verifyReceipt(bundle, verifierKey, { replay: replayReceipt });
      expect(verdict.checks.filter((check) => !check.ok && !check.notMade)).toEqual([]);
      expect(verdict.valid).toBe(true);
      // The stream is exactly the three commands, each once, as their receipts said.
      expect(bundle.entries.map((entry) => [entry.type, entry.id])).toEqual(
        ours.flatMap((command) => command.receipt.events.map((event) => [event.type, event.id])),
      );
      expect(bundle.entries.map((entry) => entry.type)).toEqual([
        'CommitmentDrafted',
        'PartyInvited',
        'CommitmentProposed',
      ]);
      const root = checkpointRoot(bundle.checkpoint);
      for (const entry of bundle.entries) expect(independentlyIncluded(entry, entry.proof, root)).toBe(true);
    }
  }

  const audit = await verifyLedger({ DATABASE_URL: first.database.url, CONNECT_DATA_DIR: first.dataDir });
  expect(audit.stderr).toBe('');
  expect(audit.code).toBe(0);
  expect(audit.stdout).toMatch(/verified: \d+ entries/);
}, 600_000);
