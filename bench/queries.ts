// npm run bench -- queries: the read side over a ledger of BENCH_QUERY_COMMITMENTS commitments
// (default 100,000) of 10 events each (1,000,000 entries):
//   projector.events_per_s   every projection catching up from nothing to the head
//   projector.replay_1m_s    `connect replay` of every projection from the whole ledger
//   queries.get / list       REST reads over real HTTP (`connect start`), 64 connections
//   queries.*.ratio_to_bare  the same reads ÷ bare routes running the same lookup as the owner
//                            without authentication, in one query service process (query-server.ts)
//   projector.lag            receipt → visible through the query API, under command load
import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTokenIssuer } from '@connect/auth';
import { signingKeyFromSeed, toBase64 } from '@connect/crypto';
import { commitmentStream, DEFAULT_TYPES, profileStream } from '@connect/domain';
import { type Ledger, type NewEvent, openLedger, withNativeSigner } from '@connect/ledger';
import { PROJECTIONS, replayProjection, startProjector } from '@connect/projector';
import autocannon from 'autocannon';
import type { FastifyBaseLogger } from 'fastify';
import pg from 'pg';
import {
  benchDatabase,
  describeTrials,
  type Metrics,
  machineKeys,
  openLoopTrials,
  percentile,
  round,
  settle,
  startConnect,
  startServer,
  stopConnect,
} from './support.ts';

const COMMITMENTS = Number(process.env.BENCH_QUERY_COMMITMENTS ?? 100_000);
const USERS = Math.max(10, Math.round(COMMITMENTS / 100));
const CONNECTIONS = 64;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const ORIGIN = 'bench.connect.local/ledger';
const SEED = new Uint8Array(32).fill(43);
const quiet = { info() {}, warn() {}, error() {} } as unknown as FastifyBaseLogger;
const QUERY_SERVER = fileURLToPath(new URL('./query-server.ts', import.meta.url));

interface Seeded {
  users: { id: string; token: string }[];
  /** Each commitment with the index of a user who is party to it. */
  commitments: { id: string; party: number }[];
}

/** Ten events a commitment goes through: drafted, edited, two invitations, proposed, accepted. */
function lifecycle(creator: string, participant: string, witness: string, i: number): NewEvent[] {
  return [
    {
      type: 'CommitmentDrafted',
      schema: 2,
      data: {
        type: 'personal',
        creatorId: creator,
        title: `Promise ${i}`,
        description: '',
        terms: 'Pay back by the end of the month',
        amount: null,
        dueAt: null,
      },
    },
    { type: 'CommitmentUpdated', data: { changes: { description: 'first draft' } } },
    { type: 'CommitmentUpdated', data: { changes: { terms: `Terms ${i}` } } },
    { type: 'CommitmentUpdated', data: { changes: { dueAt: '2027-06-01T00:00:00.000Z' } } },
    { type: 'PartyInvited', data: { userId: participant, role: 'participant' } },
    { type: 'PartyInvited', data: { userId: witness, role: 'witness' } },
    { type: 'CommitmentProposed', data: {} },
    { type: 'InvitationAccepted', data: { userId: participant } },
    { type: 'InvitationAccepted', data: { userId: witness } },
    { type: 'CommitmentActivated', data: {} },
  ];
}

/**
 * Connections the database has accepted so far, by its statistics (a backend reports its own within
 * about a second), read through one connection of the bench's own, opened once: a difference is
 * the server's.
 */
async function sessionsOpened(stats: pg.Client): Promise<number> {
  const { rows } = await stats.query<{ sessions: number }>(
    'select sessions from pg_stat_database where datname = current_database()',
  );
  return Number(rows[0]?.sessions);
}

async function seed(ledger: Ledger, database: Awaited<ReturnType<typeof benchDatabase>>, dataDir: string) {
  const tokens = await loadTokenIssuer(dataDir);
  await ledger.append({
    stream: 'commitment-types',
    expectedVersion: 'no_stream',
    actor: null,
    events: DEFAULT_TYPES.map((type) => ({ type: 'CommitmentTypeDefined', data: { ...type } })),
  });
  const users: Seeded['users'] = [];
  for (let i = 0; i < USERS; i++) {
    const id = randomUUID();
    const sessionId = randomUUID();
    // Accounts straight into the tables (no scrypt for thousands of users); tokens as login issues them.
    await database.pool.query(
      `insert into users (id, email, password_hash, display_name) values ($1, $2, 'bench:no-login', $3)`,
      [id, `user${i}@bench.test`, `User ${i}`],
    );
    await database.pool.query('insert into sessions (id, user_id) values ($1, $2)', [sessionId, id]);
    await ledger.append({
      stream: profileStream(id),
      expectedVersion: 'no_stream',
      actor: id,
      events: [{ type: 'ProfileRegistered', data: { userId: id, displayName: `User ${i}` } }],
    });
    users.push({ id, token: await tokens.issueAccessToken({ userId: id, sessionId }) });
  }
  const commitments: Seeded['commitments'] = [];
  const started = performance.now();
  const inFlight = 64;
  for (let i = 0; i < COMMITMENTS; i += inFlight) {
    await Promise.all(
      Array.from({ length: Math.min(inFlight, COMMITMENTS - i) }, async (_, k) => {
        const n = i + k;
        const id = randomUUID();
        const creator = n % USERS;
        const participant = (n * 7 + 1) % USERS;
        const witness = (n * 13 + 2) % USERS;
        const result = await ledger.append({
          stream: commitmentStream(id),
          expectedVersion: 'no_stream',
          actor: users[creator]?.id as string,
          events: lifecycle(
            users[creator]?.id as string,
            users[participant === creator ? (creator + 1) % USERS : participant]?.id as string,
            users[witness === creator ? (creator + 2) % USERS : witness]?.id as string,
            n,
          ),
        });
        if (result.outcome !== 'appended') throw new Error(`seed: ${result.outcome}`);
        commitments.push({ id, party: creator });
      }),
    );
    if ((i / inFlight) % 200 === 0) {
      const rate = (i * 10) / ((performance.now() - started) / 1000);
      process.stdout.write(`  seeded ${i} commitments (${Math.round(rate)} events/s)\n`);
    }
  }
  return { users, commitments };
}

async function headIndex(pool: import('pg').Pool): Promise<number> {
  const { rows } = await pool.query<{ tree_size: number }>('select tree_size from ledger_head');
  return (rows[0]?.tree_size ?? 0) - 1;
}

async function projectedIndex(pool: import('pg').Pool): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(
    'select min(last_index)::bigint as n from projection_checkpoints',
  );
  return rows[0]?.n ?? -1;
}

export async function benchQueries(): Promise<Metrics> {
  const database = await benchDatabase(CONNECTIONS + 8);
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'connect-bench-queries-'));
  await chmod(dataDir, 0o711);
  const key = withNativeSigner(signingKeyFromSeed(ORIGIN, SEED));
  const ledger = await openLedger({ pool: database.pool, db: database.db, origin: ORIGIN, key });
  let server: Awaited<ReturnType<typeof startConnect>> | undefined;
  let queryServer: Awaited<ReturnType<typeof startServer>> | undefined;
  try {
    console.log(`seeding ${COMMITMENTS} commitments × 10 events among ${USERS} users…`);
    const seeded = await seed(ledger, database, dataDir);
    await ledger.drain();
    const head = await headIndex(database.pool);
    console.log(`ledger holds ${head + 1} entries`);

    console.log('projector: catching up from nothing…');
    const catchUpStarted = performance.now();
    const projector = startProjector(
      { pool: database.pool, origin: ORIGIN, cipher: ledger.cipher, log: quiet },
      { batchSize: 2000 },
    );
    while ((await projectedIndex(database.pool)) < head)
      await new Promise((resolve) => setTimeout(resolve, 200));
    const catchUpSeconds = (performance.now() - catchUpStarted) / 1000;
    await projector.close();
    console.log(`  ${head + 1} entries in ${catchUpSeconds.toFixed(1)} s`);

    console.log('projector: replaying every projection beside the live tables…');
    const replayStarted = performance.now();
    for (const projection of PROJECTIONS) {
      const result = await replayProjection(
        { pool: database.pool, origin: ORIGIN, cipher: ledger.cipher },
        projection,
      );
      console.log(`  ${projection.name}: ${result.events} events in ${result.seconds.toFixed(1)} s`);
    }
    const replaySeconds = (performance.now() - replayStarted) / 1000;
    await settle(database.pool);

    const serverEnv = {
      DATABASE_URL: database.url,
      CONNECT_DATA_DIR: dataDir,
      CONNECT_LEDGER_ORIGIN: ORIGIN,
      CONNECT_LEDGER_KEY: toBase64(SEED),
    };
    server = await startConnect(serverEnv);
    const url = server.url;
    const serverPid = server.child.pid;
    const pick = () =>
      seeded.commitments[Math.floor(Math.random() * seeded.commitments.length)] as Seeded['commitments'][0];
    const tokenOf = (user: number) => `Bearer ${seeded.users[user]?.token}`;

    const read = (
      label: string,
      request: () => { path: string; headers: Record<string, string> },
      base = url,
    ) =>
      autocannon({
        url: base,
        connections: CONNECTIONS,
        duration: SECONDS,
        requests: [{ method: 'GET', setupRequest: (base) => ({ ...base, ...request() }) }],
      } as autocannon.Options).then((result) => {
        console.log(
          `  ${label}: ${result['2xx']} 2xx, ${result.non2xx} not, p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms`,
        );
        return result;
      });
    const getOne = () => {
      const c = pick();
      return { path: `/v1/commitments/${c.id}`, headers: { authorization: tokenOf(c.party) } };
    };
    const listMine = () => {
      const user = Math.floor(Math.random() * seeded.users.length);
      return { path: '/v1/commitments?limit=20&status=active', headers: { authorization: tokenOf(user) } };
    };
    console.log(`queries over HTTP: ${CONNECTIONS} connections, ${SECONDS}s each (after a 3 s warm-up)`);
    await autocannon({
      url,
      connections: CONNECTIONS,
      duration: 3,
      requests: [{ method: 'GET', setupRequest: (b) => ({ ...b, ...getOne() }) }],
    } as autocannon.Options);
    const gets = await read('get', getOne);
    const lists = await read('list', listMine);
    // Open loop at 70 % of the rate just measured: the latency a steady load sees, whatever this
    // machine's saturation point.
    const at70 = async (label: string, result: autocannon.Result, request: typeof getOne) => {
      const rate = (0.7 * result['2xx']) / SECONDS;
      const sessionsBefore = await sessionsOpened(stats);
      const run = await openLoopTrials(url, rate, SECONDS, request, serverPid);
      const connectionsOpened = (await sessionsOpened(stats)) - sessionsBefore;
      console.log(
        `  ${label} at 70 % (open loop, ${round(rate, 0)}/s): ${run.non2xx} not 2xx, ` +
          `${connectionsOpened} database connections opened meanwhile, ${describeTrials(run)}`,
      );
      return { ...run, connectionsOpened };
    };
    const stats = new pg.Client({ connectionString: database.url });
    await stats.connect();
    let getsAt70: Awaited<ReturnType<typeof at70>>;
    let listsAt70: Awaited<ReturnType<typeof at70>>;
    try {
      getsAt70 = await at70('get', gets, getOne);
      listsAt70 = await at70('list', lists, listMine);
    } finally {
      await stats.end();
    }

    console.log('lag: receipt → visible through the query API, under command load…');
    let loading = true;
    const load = Array.from({ length: 16 }, async (_, worker) => {
      for (let i = 0; loading; i++) {
        const c = seeded.commitments[
          (worker * 1000 + i) % seeded.commitments.length
        ] as Seeded['commitments'][0];
        await fetch(`${url}/v1/commitments`, {
          method: 'POST',
          headers: { authorization: tokenOf(c.party), 'content-type': 'application/json' },
          body: JSON.stringify({ type: 'personal', title: `Load ${worker}-${i}` }),
        }).then((r) => r.arrayBuffer());
      }
    });
    const lags: number[] = [];
    const probeStarted = performance.now();
    while (performance.now() - probeStarted < SECONDS * 1000) {
      const user = Math.floor(Math.random() * seeded.users.length);
      const response = await fetch(`${url}/v1/commitments`, {
        method: 'POST',
        headers: { authorization: tokenOf(user), 'content-type': 'application/json' },
        body: JSON.stringify({ type: 'personal', title: 'Probe' }),
      });
      const receipt = (await response.json()) as { commitmentId: string; events: { index: number }[] };
      const receivedAt = performance.now();
      const index = receipt.events.at(-1)?.index as number;
      const visible = await fetch(`${url}/v1/commitments/${receipt.commitmentId}`, {
        headers: { authorization: tokenOf(user), 'connect-min-index': String(index) },
      });
      await visible.arrayBuffer();
      if (visible.status !== 200) throw new Error(`probe read: ${visible.status}`);
      lags.push(performance.now() - receivedAt);
    }
    loading = false;
    await Promise.all(load);
    lags.sort((a, b) => a - b);
    console.log(
      `  ${lags.length} probes, lag p50 ${round(percentile(lags, 50), 1)} ms, p99 ${round(percentile(lags, 99), 1)} ms`,
    );
    await stopConnect(server.child);
    server = undefined;

    // The whole stack against the lookup alone, in one process with one pool size: the query
    // service's routes (auth, row-level security, Connect-Index, JSON) and bare routes that run
    // the same statements as the owner without authentication.
    console.log('ratio to bare: the query service beside bare routes of the same lookups…');
    queryServer = await startServer(['--import', 'tsx', QUERY_SERVER], serverEnv);
    const base = queryServer.url;
    const bareGet = () => {
      const { path: full } = getOne();
      return { path: full.replace('/v1/', '/bench/bare/'), headers: {} };
    };
    const bareList = () => ({
      path: `/bench/bare/commitments?status=active&user=${seeded.users[Math.floor(Math.random() * seeded.users.length)]?.id}`,
      headers: {},
    });
    for (const warm of [getOne, bareGet, listMine, bareList]) {
      await autocannon({
        url: base,
        connections: CONNECTIONS,
        duration: 2,
        requests: [{ method: 'GET', setupRequest: (b) => ({ ...b, ...warm() }) }],
      } as autocannon.Options);
    }
    const stackGets = await read('get (whole stack)', getOne, base);
    const bareGets = await read('get (bare)', bareGet, base);
    const stackLists = await read('list (whole stack)', listMine, base);
    const bareLists = await read('list (bare)', bareList, base);
    const ratio = (a: autocannon.Result, b: autocannon.Result) => round(a['2xx'] / Math.max(1, b['2xx']), 2);

    return {
      'projector.entries': { value: head + 1, unit: 'entries' },
      'projector.events_per_s': { value: round((head + 1) / catchUpSeconds, 0), unit: 'events/s' },
      'projector.replay_1m_s': {
        value: round(replaySeconds * (1_000_000 / (head + 1)), 1),
        unit: 's (scaled to 1M)',
      },
      'projector.replay_s': { value: round(replaySeconds, 1), unit: 's' },
      'queries.commitments': { value: COMMITMENTS, unit: 'commitments' },
      'queries.get.per_s': { value: round(gets['2xx'] / SECONDS, 0), unit: 'requests/s' },
      'queries.get.p50_ms': { value: gets.latency.p50, unit: 'ms' },
      'queries.get.p99_ms': { value: gets.latency.p99, unit: 'ms' },
      'queries.get.non_2xx': { value: gets.non2xx, unit: 'responses' },
      'queries.list.per_s': { value: round(lists['2xx'] / SECONDS, 0), unit: 'requests/s' },
      'queries.list.p50_ms': { value: lists.latency.p50, unit: 'ms' },
      'queries.list.p99_ms': { value: lists.latency.p99, unit: 'ms' },
      'queries.list.non_2xx': { value: lists.non2xx, unit: 'responses' },
      'projector.lag.p50_ms': { value: round(percentile(lags, 50), 1), unit: 'ms' },
      'projector.lag.p99_ms': { value: round(percentile(lags, 99), 1), unit: 'ms' },
      'queries.get.p99_ms_at_70pct': { value: getsAt70.p99, unit: 'ms' },
      'queries.get.floor_p99_ms_at_70pct': { value: getsAt70.floor, unit: 'ms' },
      'queries.list.p99_ms_at_70pct': { value: listsAt70.p99, unit: 'ms' },
      'queries.list.floor_p99_ms_at_70pct': { value: listsAt70.floor, unit: 'ms' },
      ...machineKeys('queries.get', getsAt70),
      ...machineKeys('queries.list', listsAt70),
      'queries.get.connections_opened_at_70pct': { value: getsAt70.connectionsOpened, unit: 'connections' },
      'queries.list.connections_opened_at_70pct': { value: listsAt70.connectionsOpened, unit: 'connections' },
      'queries.get.ratio_to_bare': { value: ratio(stackGets, bareGets), unit: '× bare requests/s' },
      'queries.get.bare_per_s': { value: round(bareGets['2xx'] / SECONDS, 0), unit: 'requests/s' },
      'queries.get.stack_per_s': { value: round(stackGets['2xx'] / SECONDS, 0), unit: 'requests/s' },
      'queries.list.ratio_to_bare': { value: ratio(stackLists, bareLists), unit: '× bare requests/s' },
      'queries.list.bare_per_s': { value: round(bareLists['2xx'] / SECONDS, 0), unit: 'requests/s' },
      'queries.list.stack_per_s': { value: round(stackLists['2xx'] / SECONDS, 0), unit: 'requests/s' },
    };
  } finally {
    if (server) await stopConnect(server.child);
    if (queryServer) await stopConnect(queryServer.child);
    await ledger.drain();
    await database.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}
