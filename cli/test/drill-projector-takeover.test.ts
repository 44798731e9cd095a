// Fault drill: two command, two query, two projector and two notifier processes on one PostgreSQL.
// Under a steady load of commands (both command processes in turn) and reads (both query
// processes), the projector holding the projections' advisory locks is killed with SIGKILL: the
// other must take the locks and move the read models on within 5 s, no acknowledged command may be
// lost, and once the load stops the read models must equal what `connect replay` rebuilds from the
// ledger. The processes are told apart in PostgreSQL by their application_name (PGAPPNAME).
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createScratchDatabase, type DatabaseHandle } from '@connect/db';
import { afterAll, beforeAll, expect, inject, test, vi } from 'vitest';
import { runConnect } from './drill-support.ts';
import { call, signUp } from './running-connect.ts';
import { type ServiceName, type ServiceProcess, startService } from './service-process.ts';

const TAKEOVER_BUDGET_MS = 5000;
/** The projector's projections (the notifiers run `notifications`, a lock of its own). */
const PROJECTIONS = ['profiles', 'commitment_types', 'commitments'];
/** First key of the projections' advisory locks ("conn"), as runner.ts takes them. */
const LOCK_CLASS = 0x636f6e6e;
const PAIRS = 4;

interface User {
  name: string;
  token: string;
  userId: string;
}

let database: DatabaseHandle;
let dataDir: string;
const processes: ServiceProcess[] = [];
let commands: ServiceProcess[] = [];
let queries: ServiceProcess[] = [];
let projectors: ServiceProcess[] = [];

async function start(service: ServiceName, name: string): Promise<ServiceProcess> {
  const started = await startService(service, name, {
    DATABASE_URL: database.url,
    CONNECT_DATA_DIR: dataDir,
  });
  processes.push(started);
  return started;
}

async function get<T>(service: ServiceProcess, url: string, token?: string): Promise<T> {
  const answer = await call(service, 'GET', url, { token });
  if (answer.status !== 200) throw new Error(`GET ${url} on ${service.name}: ${answer.status}`);
  return answer.body as T;
}

/** What a projector process says of its runners: projection → active, standby… */
async function runnerStates(
  projector: ServiceProcess,
): Promise<Map<string, { state: string; lastIndex: number }>> {
  const { projections } = await get<{
    projections: { projection: string; state: string; lastIndex: number }[];
  }>(projector, '/v1/projections');
  return new Map(projections.map((p) => [p.projection, { state: p.state, lastIndex: p.lastIndex }]));
}

interface ProjectionRow {
  /** The application_name of the session holding its advisory lock, if one does. */
  holder: string | null;
  checkpoint: number;
}

/** Each projection's checkpoint, and which process holds its advisory lock (pg_locks). */
async function projectionRows(): Promise<Map<string, ProjectionRow>> {
  const { rows } = await database.pool.query<{ projection: string } & ProjectionRow>(
    `select c.projection, c.last_index as checkpoint, a.application_name as holder
       from projection_checkpoints c
       left join pg_locks l on l.locktype = 'advisory' and l.granted and l.classid = $1 and l.objsubid = 2
                           and l.objid::bigint = hashtext(c.projection)::bigint & 4294967295
                           and l.database = (select oid from pg_database where datname = current_database())
       left join pg_stat_activity a on a.pid = l.pid`,
    [LOCK_CLASS],
  );
  return new Map(rows.map(({ projection, holder, checkpoint }) => [projection, { holder, checkpoint }]));
}

/**
 * From the kill until `survivor` holds every projector lock and every checkpoint has moved past
 * where `victim` left it: when its locks were gone, when the survivor had them all, and when the
 * read models moved, in ms after `killedAt`. Read from the database alone, so the survivor's own
 * answering speed does not count.
 */
async function watchTakeover(
  victim: ServiceProcess,
  survivor: ServiceProcess,
  atKill: Map<string, ProjectionRow>,
  killedAt: number,
) {
  let releasedMs: number | undefined;
  let lockedMs: number | undefined;
  for (;;) {
    const rows = await projectionRows();
    const elapsed = performance.now() - killedAt;
    const ours = PROJECTIONS.map((p) => rows.get(p) as ProjectionRow);
    if (ours.every((row) => row.holder !== victim.name)) releasedMs ??= elapsed;
    if (ours.every((row) => row.holder === survivor.name)) {
      lockedMs ??= elapsed;
      const moved = PROJECTIONS.every(
        (p) => (rows.get(p)?.checkpoint ?? -1) > (atKill.get(p)?.checkpoint ?? Number.POSITIVE_INFINITY),
      );
      if (moved) return { releasedMs: releasedMs ?? elapsed, lockedMs, movingMs: elapsed };
    }
    if (elapsed > 60_000) throw new Error(`no takeover in 60 s: ${JSON.stringify([...rows])}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Every projection's checkpoint, the notifications' too, is at the ledger head. */
async function assertProjectedToHead(): Promise<void> {
  const { rows } = await database.pool.query<{ projection: string; behind: number }>(
    `select c.projection, (h.tree_size - 1 - c.last_index)::int as behind
       from projection_checkpoints c cross join ledger_head h`,
  );
  expect(rows.length).toBe(PROJECTIONS.length + 1);
  expect(rows.filter((row) => row.behind !== 0)).toEqual([]);
}

/**
 * The load: each pair's creator makes commitments and takes them to active with the other
 * (create → invite → propose → accept), sending each command to the next command process, and
 * reads its list through the next query process. The last acknowledged version of every
 * commitment is kept, to find each of them in the read models at the end.
 */
function startLoad(pairs: readonly [User, User][]) {
  const acknowledged = new Map<string, { version: number; parties: User[] }>();
  const failures: string[] = [];
  let turn = 0;
  let stopped = false;
  let completed = 0;

  const send = async (user: User, url: string, body: unknown, parties: User[]) => {
    const via = commands[turn++ % commands.length] as ServiceProcess;
    const answer = await call(via, 'POST', url, { token: user.token, body });
    if (answer.status >= 300) {
      failures.push(`POST ${url} on ${via.name}: ${answer.status} ${JSON.stringify(answer.body)}`);
      return undefined;
    }
    const receipt = answer.body as { commitmentId: string; version: number };
    acknowledged.set(receipt.commitmentId, { version: receipt.version, parties });
    return receipt;
  };

  const read = async (user: User) => {
    const via = queries[turn++ % queries.length] as ServiceProcess;
    const answer = await call(via, 'GET', '/v1/commitments', { token: user.token });
    if (answer.status !== 200) failures.push(`GET /v1/commitments on ${via.name}: ${answer.status}`);
  };

  const lifecycle = async ([creator, other]: [User, User], round: number): Promise<boolean> => {
    const created = await send(creator, '/v1/commitments', { type: 'personal', title: `Round ${round}` }, [
      creator,
    ]);
    if (!created) return false;
    const at = `/v1/commitments/${created.commitmentId}`;
    const both = [creator, other];
    const steps: [User, string, unknown][] = [
      [creator, `${at}/invite`, { userId: other.userId, role: 'participant' }],
      [creator, `${at}/propose`, {}],
      [other, `${at}/accept`, {}],
    ];
    for (const [user, url, body] of steps) {
      if (!(await send(user, url, body, both))) return false;
      await read(user);
    }
    return true;
  };

  const workers = pairs.map(async (pair) => {
    for (let round = 0; !stopped; round++) {
      // A failure is kept for the assertions; the worker stops rather than spin on it.
      if (!(await lifecycle(pair, round))) return;
      completed++;
    }
  });

  return {
    acknowledged,
    failures,
    send,
    completed: () => completed,
    /** Waits until `count` more lifecycles completed; throws at the first failed request. */
    async more(count: number) {
      const target = completed + count;
      const deadline = performance.now() + 60_000;
      while (completed < target) {
        if (failures.length > 0) throw new Error(`the load failed:\n${failures.join('\n')}`);
        if (performance.now() > deadline) throw new Error(`${completed} of ${target} lifecycles in 60 s`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    async stop() {
      stopped = true;
      await Promise.all(workers);
    },
  };
}

/**
 * Writes a commitment as `creator` (after the kill) and reads it through the query processes in
 * turn until one serves it: how long after `killedAt` that was.
 */
async function readableAfter(
  load: ReturnType<typeof startLoad>,
  creator: User,
  killedAt: number,
): Promise<number> {
  const body = { type: 'personal', title: 'Written after the kill' };
  const receipt = await load.send(creator, '/v1/commitments', body, [creator]);
  if (!receipt) throw new Error(`the commitment was refused: ${load.failures.at(-1)}`);
  for (let turn = 0; ; turn++) {
    const via = queries[turn % queries.length] as ServiceProcess;
    const answer = await call(via, 'GET', `/v1/commitments/${receipt.commitmentId}`, {
      token: creator.token,
    });
    if (answer.status === 200) return performance.now() - killedAt;
    if (answer.status !== 404) throw new Error(`GET on ${via.name}: ${answer.status}`);
    if (performance.now() - killedAt > 60_000) throw new Error('not readable 60 s after the kill');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

type Snapshot = Record<string, unknown>;

interface Page {
  items: { id: string }[];
  nextCursor: string | null;
}

/** Every commitment `user` sees in the list, page after page. */
async function listAll(query: ServiceProcess, user: User): Promise<Page['items']> {
  const items: Page['items'] = [];
  let cursor: string | null = null;
  do {
    const after: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
    const page: Page = await get(query, `/v1/commitments?limit=100${after}`, user.token);
    items.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return items;
}

/** Every commitment each user sees through `query`: the list (every page), each one, its history. */
async function snapshot(query: ServiceProcess, users: readonly User[]): Promise<Snapshot> {
  const seen: Snapshot = {};
  for (const user of users) {
    const list = await listAll(query, user);
    const details: Record<string, unknown> = {};
    for (const { id } of list) {
      details[id] = {
        commitment: await get(query, `/v1/commitments/${id}`, user.token),
        history: await get(query, `/v1/commitments/${id}/history`, user.token),
      };
    }
    seen[user.name] = { list, details };
  }
  return seen;
}

beforeAll(async () => {
  database = await createScratchDatabase(inject('adminUrl'), 'connect_drill', 3);
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'connect-drill-'));
  await chmod(dataDir, 0o711);
  // The first process makes the keys of the data directory; the others start on them together.
  const firstCommand = await start('command', 'drill-command-1');
  const [secondCommand, firstQuery, secondQuery] = await Promise.all([
    start('command', 'drill-command-2'),
    start('query', 'drill-query-1'),
    start('query', 'drill-query-2'),
    start('notifier', 'drill-notifier-1'),
    start('notifier', 'drill-notifier-2'),
  ]);
  commands = [firstCommand, secondCommand as ServiceProcess];
  queries = [firstQuery as ServiceProcess, secondQuery as ServiceProcess];
  // One projector is active on every projection before the second, on standby, joins.
  const active = await start('projector', 'drill-projector-1');
  await vi.waitFor(
    async () => {
      const states = await runnerStates(active);
      expect(PROJECTIONS.map((p) => states.get(p)?.state)).toEqual(PROJECTIONS.map(() => 'active'));
    },
    { timeout: 30_000, interval: 100 },
  );
  projectors = [active, await start('projector', 'drill-projector-2')];
}, 240_000);

afterAll(async () => {
  await Promise.all(processes.map((p) => p.stop()));
  await database?.close();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

test('kill -9 of the active projector under load: the standby takes over within 5 s, nothing is lost, the read models equal a fresh replay', async () => {
  const users: User[] = [];
  for (let i = 0; i < PAIRS * 2; i++) {
    const name = `drill${i}`;
    users.push({ name, ...(await signUp(commands[i % 2] as ServiceProcess, name)) });
  }
  const pairs = Array.from({ length: PAIRS }, (_, i) => [users[2 * i], users[2 * i + 1]] as [User, User]);
  const load = startLoad(pairs);
  try {
    await load.more(2 * PAIRS);

    // Which projector holds the locks: pg_locks and the processes' own account agree.
    const [victim, survivor] = projectors as [ServiceProcess, ServiceProcess];
    const before = await projectionRows();
    expect(PROJECTIONS.map((p) => before.get(p)?.holder)).toEqual(PROJECTIONS.map(() => victim.name));
    expect(before.get('notifications')?.holder).toMatch(/^drill-notifier-/);
    const standby = await runnerStates(survivor);
    expect(PROJECTIONS.map((p) => standby.get(p)?.state)).toEqual(PROJECTIONS.map(() => 'standby'));

    const killedAt = performance.now();
    victim.child.kill('SIGKILL');
    await victim.exited;
    const atKill = await projectionRows();

    const readable = readableAfter(load, pairs[0]?.[0] as User, killedAt);
    const { releasedMs, lockedMs, movingMs } = await watchTakeover(victim, survivor, atKill, killedAt);
    const readableMs = await readable;
    const ms = (n: number) => `${Math.round(n)} ms`;
    console.log(
      `projector takeover after kill -9: locks released in ${ms(releasedMs)}, taken in ${ms(lockedMs)}, ` +
        `read models moving again in ${ms(movingMs)}; a commitment written after the kill readable in ${ms(readableMs)}`,
    );
    expect(movingMs).toBeLessThan(TAKEOVER_BUDGET_MS);
    expect(readableMs).toBeLessThan(TAKEOVER_BUDGET_MS);
    // The survivor says the same of itself.
    const states = await runnerStates(survivor);
    for (const projection of PROJECTIONS) {
      expect(states.get(projection)?.state).toBe('active');
      expect(states.get(projection)?.lastIndex).toBeGreaterThan(atKill.get(projection)?.checkpoint as number);
    }

    // Some more load under the new projector.
    await load.more(2 * PAIRS);
  } finally {
    await load.stop();
  }
  expect(load.failures).toEqual([]);
  await vi.waitFor(assertProjectedToHead, { timeout: 60_000, interval: 100 });

  const served = await snapshot(queries[0] as ServiceProcess, users);
  expect(await snapshot(queries[1] as ServiceProcess, users)).toEqual(served);

  // Nothing acknowledged was lost: every party sees every commitment at its last acknowledged version.
  for (const [id, { version, parties }] of load.acknowledged) {
    for (const party of parties) {
      const { details } = served[party.name] as {
        details: Record<string, { commitment: { version: number } }>;
      };
      expect(details[id]?.commitment.version, `${id} as ${party.name}`).toBe(version);
    }
  }
  console.log(`${load.acknowledged.size} commitments, ${load.completed()} taken to active`);

  const replayed = await runConnect(['replay'], { DATABASE_URL: database.url, CONNECT_DATA_DIR: dataDir });
  expect(replayed.code, replayed.output).toBe(0);
  expect(replayed.output).toMatch(/commitments: rebuilt from \d+ events/);
  await assertProjectedToHead();
  expect(await snapshot(queries[0] as ServiceProcess, users)).toEqual(served);
});
