// npm run bench -- load: `connect start` (its embedded PostgreSQL, in a data dir of its own) under
// simulated users, at the seed's scale. Each user holds a graphql-ws `myCommitments` subscription
// and, after an exponential think time (5 s on average), makes one request: 70 % reads (a
// commitment of theirs, a page of their commitments, their notifications, now and then a receipt),
// 30 % commands (create, invite their partner, update, propose; the partner accepts). Users come in
// pairs, so every command after a create changes the partner's myCommitments too.
//   BENCH_LOAD_USERS users for BENCH_LOAD_SECONDS give the figures; then the user count steps up by
//   BENCH_LOAD_STEP_USERS for BENCH_LOAD_STEP_SECONDS a step, until p99 reaches 200 ms, errors
//   appear or BENCH_LOAD_MAX_USERS is passed: load.max_users_at_200ms is the last count that held.
//   push: from sending a command to the subscription message about that commitment (at its
//   version or newer) reaching the socket it changes: the creator's for create, else the partner's.
// Sign-up (one scrypt per user on the server) and token refreshes happen between steps, untimed.
import { chmod, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { type Client, createClient } from 'graphql-ws';
import WebSocket from 'ws';
import {
  describeKernelThreads,
  type MachineReading,
  type Metrics,
  machineTicks,
  percentile,
  processCpu,
  round,
  startConnect,
  stopConnect,
  watchMachine,
} from './support.ts';

const USERS = evenCount(Number(process.env.BENCH_LOAD_USERS ?? 2000));
const SECONDS = Number(process.env.BENCH_LOAD_SECONDS ?? 60);
/** 0: no step-up. */
const STEP_USERS = Math.max(0, Math.ceil(Number(process.env.BENCH_LOAD_STEP_USERS ?? 1000) / 2) * 2);
const STEP_SECONDS = Number(process.env.BENCH_LOAD_STEP_SECONDS ?? 30);
const MAX_USERS = Number(process.env.BENCH_LOAD_MAX_USERS ?? 8000);
const THINK_MS = 5000;
const WARM_UP_SECONDS = 5;
const P99_LIMIT_MS = 200;
const READ_SHARE = 0.7;
/** Sign-ups in flight: the server hashes each password with scrypt on libuv's 4 threads. */
const SIGN_UP_CONCURRENCY = 4;
/** Access tokens live 15 minutes; older than this, they are refreshed before a step. */
const REFRESH_AFTER_MS = 10 * 60_000;
/** How long, after a step's last response, pushes still on their way are waited for. */
const PUSH_GRACE_MS = 5000;
const PASSWORD = 'load bench password 1';
/** Kept between runs when set: its server data and its users' sessions (USERS_FILE), so a second run skips the sign-ups. */
const KEPT_DATA_DIR = process.env.BENCH_LOAD_DATA_DIR;
const USERS_FILE = 'bench-load-users.json';

function evenCount(n: number): number {
  return Math.max(2, Math.ceil(n / 2) * 2);
}

type Step = 'invite' | 'update' | 'propose';
type Action = 'create' | Step | 'accept';

interface LoadUser {
  index: number;
  id: string;
  token: string;
  refreshToken: string;
  tokenAt: number;
  partner?: LoadUser;
  /** Commitments this user is party to (newest last, bounded). */
  known: string[];
  /** The draft this user is taking through invite → update → propose. */
  draft?: { id: string; next: Step };
  /** Commitments the partner proposed, waiting for this user's accept. */
  toAccept: string[];
  /** The highest ledger index of this user's own receipts: reads wait for it (read-your-writes). */
  minIndex: number;
  subscription?: Client;
  /** The user's own keep-alive connection, opened with the subscription, as an app holds its own. */
  agent?: http.Agent;
}

// ---------------------------------------------------------------- HTTP: a connection per user, a pool for the rest

interface Answer {
  status: number;
  body: string;
}

function httpClient(baseUrl: string) {
  const { hostname, port } = new URL(baseUrl);
  // Sign-ups and refreshes share this pool; the load's requests go over each user's own
  // connection (LoadUser.agent). No cap on sockets: a slow answer never queues another request.
  const agent = new http.Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });
  return {
    request(
      method: string,
      pathname: string,
      options: {
        token?: string;
        body?: unknown;
        minIndex?: number;
        keepBody?: boolean;
        /** Whose connection: a user's own; by default the pool's. */
        agent?: http.Agent;
      } = {},
    ): Promise<Answer> {
      const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
      const headers: Record<string, string> = {};
      if (options.token) headers.authorization = `Bearer ${options.token}`;
      if (payload !== undefined) headers['content-type'] = 'application/json';
      if (options.minIndex) headers['connect-min-index'] = String(options.minIndex);
      return new Promise((resolve, reject) => {
        const request = http.request(
          { host: hostname, port, method, path: pathname, headers, agent: options.agent ?? agent },
          (response) => {
            const chunks: Buffer[] = [];
            const failed = (response.statusCode ?? 0) >= 300;
            response.on('data', (chunk: Buffer) => {
              if (options.keepBody || failed) chunks.push(chunk);
            });
            response.on('end', () =>
              resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString() }),
            );
            response.on('error', reject);
          },
        );
        request.on('error', reject);
        request.end(payload);
      });
    },
    close: () => agent.destroy(),
  };
}

type HttpClient = ReturnType<typeof httpClient>;

// ---------------------------------------------------------------- users: sign-up, refresh, subscription

interface TokenBody {
  access_token: string;
  refresh_token: string;
  user: { id: string };
}

async function tokenOrThrow(answer: Promise<Answer>, what: string): Promise<TokenBody> {
  const { status, body } = await answer;
  if (status >= 300) throw new Error(`${what}: ${status} ${body}`);
  return JSON.parse(body) as TokenBody;
}

/**
 * Signs up users `from`…`to - 1` (load<i>@bench.test), SIGN_UP_CONCURRENCY at a time, handing each
 * to `signedUp` as it is.
 */
async function signUp(
  client: HttpClient,
  from: number,
  to: number,
  signedUp: (user: LoadUser) => void,
): Promise<void> {
  let next = from;
  const started = performance.now();
  const worker = async () => {
    while (next < to) {
      const index = next++;
      const body = await tokenOrThrow(
        client.request('POST', '/v1/auth/signup', {
          keepBody: true,
          body: { email: `load${index}@bench.test`, password: PASSWORD, displayName: `Load user ${index}` },
        }),
        'sign-up',
      );
      signedUp({
        index,
        id: body.user.id,
        token: body.access_token,
        refreshToken: body.refresh_token,
        tokenAt: Date.now(),
        known: [],
        toAccept: [],
        minIndex: 0,
      });
      const done = index - from + 1;
      if (done % 250 === 0) console.log(`  ${done}/${to - from} signed up`);
    }
  };
  await Promise.all(Array.from({ length: SIGN_UP_CONCURRENCY }, worker));
  console.log(`  ${to - from} users signed up in ${round((performance.now() - started) / 1000, 1)} s`);
}

/**
 * New access tokens for users whose token is older than REFRESH_AFTER_MS (the session stays), 16
 * at a time; `refreshed` runs after each 16, so rotated refresh tokens can be kept at once.
 */
async function refreshStaleTokens(
  client: HttpClient,
  users: readonly LoadUser[],
  refreshed: () => Promise<void> = async () => {},
): Promise<void> {
  const stale = users.filter((user) => Date.now() - user.tokenAt > REFRESH_AFTER_MS);
  for (let i = 0; i < stale.length; i += 16) {
    const outcomes = await Promise.allSettled(
      stale.slice(i, i + 16).map(async (user) => {
        const body = await tokenOrThrow(
          client.request('POST', '/v1/auth/token', {
            keepBody: true,
            body: { grant_type: 'refresh_token', refresh_token: user.refreshToken },
          }),
          'token refresh',
        );
        user.token = body.access_token;
        user.refreshToken = body.refresh_token;
        user.tokenAt = Date.now();
      }),
    );
    await refreshed();
    const failed = outcomes.find((outcome) => outcome.status === 'rejected');
    if (failed) throw failed.reason;
  }
  if (stale.length > 0) console.log(`  refreshed ${stale.length} access tokens`);
}

interface SavedUser {
  index: number;
  id: string;
  refreshToken: string;
}

/** The users of an earlier run in a kept data dir, their access tokens stale (refreshed before use). */
async function loadSavedUsers(dataDir: string): Promise<LoadUser[]> {
  const text = await readFile(path.join(dataDir, USERS_FILE), 'utf8').catch(
    (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return '[]';
      throw error;
    },
  );
  return (JSON.parse(text) as SavedUser[]).map((saved) => ({
    ...saved,
    token: '',
    tokenAt: 0,
    known: [],
    toAccept: [],
    minIndex: 0,
  }));
}

/** Written whole, then renamed over the last: a run stopped midway leaves one or the other. */
async function saveUsers(dataDir: string, users: readonly LoadUser[]): Promise<void> {
  const saved: SavedUser[] = users.map(({ index, id, refreshToken }) => ({ index, id, refreshToken }));
  const file = path.join(dataDir, USERS_FILE);
  await writeFile(`${file}.next`, JSON.stringify(saved), { mode: 0o600 });
  await rename(`${file}.next`, file);
}

function pairUp(users: readonly LoadUser[]): void {
  for (let i = 0; i + 1 < users.length; i += 2) {
    const [a, b] = [users[i] as LoadUser, users[i + 1] as LoadUser];
    a.partner = b;
    b.partner = a;
  }
}

function remember(user: LoadUser, commitmentId: string): void {
  if (user.known.includes(commitmentId)) return;
  user.known.push(commitmentId);
  if (user.known.length > 50) user.known.shift();
}

/** Opens each user's `myCommitments` subscription, 100 sockets at a time. */
async function subscribe(url: string, users: readonly LoadUser[], run: Run): Promise<void> {
  const wsUrl = `${url.replace(/^http/, 'ws')}/graphql`;
  const open = (user: LoadUser) =>
    new Promise<void>((resolve, reject) => {
      const client = createClient({
        url: wsUrl,
        webSocketImpl: WebSocket,
        connectionParams: { authorization: `Bearer ${user.token}` },
        lazy: false,
        retryAttempts: 0,
        onNonLazyError: (error) => {
          run.subscriptionError(error);
          reject(error);
        },
      });
      user.subscription = client;
      // The app's own HTTP connection opens beside its socket, not in the middle of the load.
      user.agent ??= new http.Agent({ keepAlive: true, maxSockets: 1 });
      client.on('connected', () => {
        http
          .get(`${url}/healthz`, { agent: user.agent }, (response) => response.resume().on('end', resolve))
          .on('error', reject);
      });
      client.on('closed', () => {
        if (!run.closing) run.subscriptionError(new Error(`user ${user.index}: socket closed`));
      });
      client.subscribe<{ myCommitments: { id: string; version: number } }>(
        { query: 'subscription { myCommitments { id version } }' },
        {
          next: ({ data, errors }) => {
            if (errors) run.subscriptionError(new Error(JSON.stringify(errors)));
            if (!data) return;
            const { id, version } = data.myCommitments;
            remember(user, id);
            run.pushes.arrived(user.id, id, version, performance.now());
          },
          error: (error) => run.subscriptionError(error),
          complete: () => {},
        },
      );
    });
  for (let i = 0; i < users.length; i += 100) await Promise.all(users.slice(i, i + 100).map(open));
}

// ---------------------------------------------------------------- push latency

/**
 * Matches commands with the subscription messages they cause, in either order (a push may reach
 * its socket before the command's response does): a message at a version at least the receipt's
 * answers it (the server coalesces waiting changes, so a newer one may stand for several).
 */
class PushTracker {
  private readonly pending = new Map<string, { version: number; sentAt: number }[]>();
  private readonly arrivals = new Map<string, { version: number; at: number }[]>();
  latencies: number[] = [];

  expect(userId: string, commitmentId: string, version: number, sentAt: number): void {
    const key = `${userId}|${commitmentId}`;
    const arrival = this.arrivals.get(key)?.find((a) => a.version >= version);
    if (arrival) {
      this.latencies.push(Math.max(0, arrival.at - sentAt));
      return;
    }
    const waiting = this.pending.get(key) ?? [];
    waiting.push({ version, sentAt });
    this.pending.set(key, waiting);
  }

  arrived(userId: string, commitmentId: string, version: number, at: number): void {
    const key = `${userId}|${commitmentId}`;
    const waiting = this.pending.get(key);
    if (waiting) {
      const left = waiting.filter((w) => {
        if (w.version > version) return true;
        this.latencies.push(at - w.sentAt);
        return false;
      });
      if (left.length > 0) this.pending.set(key, left);
      else this.pending.delete(key);
    }
    const seen = this.arrivals.get(key) ?? [];
    seen.push({ version, at });
    if (seen.length > 8) seen.shift();
    this.arrivals.set(key, seen);
  }

  waiting(): number {
    let count = 0;
    for (const list of this.pending.values()) count += list.length;
    return count;
  }

  reset(): void {
    this.pending.clear();
    this.arrivals.clear();
    this.latencies = [];
  }
}

// ---------------------------------------------------------------- one shared scheduler

/** A binary min-heap of (due time, user): one timer for every user's next request. */
class Schedule {
  private readonly heap: { at: number; user: LoadUser }[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(private readonly fire: (user: LoadUser) => void) {}

  /** Schedules a user's next request; none while stopped (a request ending after stop()). */
  add(user: LoadUser, at: number): void {
    if (!this.running) return;
    const heap = this.heap;
    heap.push({ at, user });
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((heap[parent] as { at: number }).at <= at) break;
      [heap[i], heap[parent]] = [heap[parent] as (typeof heap)[0], heap[i] as (typeof heap)[0]];
      i = parent;
    }
    if (i === 0) this.arm();
  }

  start(users: readonly LoadUser[], delay: () => number): void {
    this.running = true;
    const now = performance.now();
    for (const user of users) this.add(user, now + delay());
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
    this.heap.length = 0;
  }

  private pop(): { at: number; user: LoadUser } | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (!top || !last || heap.length === 0) return top;
    heap[0] = last;
    for (let i = 0; ; ) {
      const [l, r] = [2 * i + 1, 2 * i + 2];
      let least = i;
      if (l < heap.length && (heap[l] as typeof last).at < (heap[least] as typeof last).at) least = l;
      if (r < heap.length && (heap[r] as typeof last).at < (heap[least] as typeof last).at) least = r;
      if (least === i) break;
      [heap[i], heap[least]] = [heap[least] as typeof last, heap[i] as typeof last];
      i = least;
    }
    return top;
  }

  private arm(): void {
    clearTimeout(this.timer);
    const next = this.heap[0];
    if (!this.running || !next) return;
    this.timer = setTimeout(() => this.tick(), Math.max(0, next.at - performance.now()));
  }

  private tick(): void {
    const now = performance.now();
    while (this.running && this.heap[0] && this.heap[0].at <= now) {
      this.fire((this.pop() as { user: LoadUser }).user);
    }
    this.arm();
  }
}

const thinkTime = () => -THINK_MS * Math.log(1 - Math.random());

// ---------------------------------------------------------------- the requests

interface Receipt {
  commitmentId: string;
  version: number;
  events: { index: number }[];
}

const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)] as T;

function commandFor(user: LoadUser): { action: Action; path: string; body: unknown } {
  const partner = user.partner as LoadUser;
  const accepting = user.toAccept.shift();
  if (accepting) return { action: 'accept', path: `/v1/commitments/${accepting}/accept`, body: {} };
  const draft = user.draft;
  if (!draft) {
    const euros = 5 + Math.floor(Math.random() * 200);
    return {
      action: 'create',
      path: '/v1/commitments',
      body: {
        type: 'personal',
        title: `Lend ${euros} EUR to user ${partner.index}`,
        description: `Money for the concert tickets, lent by user ${user.index}; paid back in two parts.`,
        terms:
          'Half by the first of the month, the rest two weeks later. No interest. Paid by bank transfer.',
        amount: { minor: euros * 100, currency: 'EUR' },
        dueAt: new Date(Date.now() + 30 * 86_400_000).toISOString(),
      },
    };
  }
  const base = `/v1/commitments/${draft.id}`;
  if (draft.next === 'invite')
    return { action: 'invite', path: `${base}/invite`, body: { userId: partner.id, role: 'participant' } };
  if (draft.next === 'update')
    return {
      action: 'update',
      path: `${base}/update`,
      body: {
        description: `Money for the concert tickets and the train, lent by user ${user.index}.`,
        dueAt: new Date(Date.now() + 45 * 86_400_000).toISOString(),
      },
    };
  return { action: 'propose', path: `${base}/propose`, body: {} };
}

/** What a successful command means for the next ones. */
function advance(user: LoadUser, action: Action, receipt: Receipt): void {
  const partner = user.partner as LoadUser;
  user.minIndex = Math.max(user.minIndex, ...receipt.events.map((e) => e.index));
  if (action === 'create') {
    remember(user, receipt.commitmentId);
    user.draft = { id: receipt.commitmentId, next: 'invite' };
  } else if (action === 'invite' && user.draft) user.draft.next = 'update';
  else if (action === 'update' && user.draft) user.draft.next = 'propose';
  else if (action === 'propose') {
    partner.toAccept.push(receipt.commitmentId);
    user.draft = undefined;
  }
}

function readFor(user: LoadUser): string {
  const roll = Math.random();
  if (user.known.length > 0 && roll < 0.4) return `/v1/commitments/${pick(user.known)}`;
  if (roll < 0.65) return '/v1/commitments?limit=20';
  if (user.known.length > 0 && roll > 0.9) return `/v1/commitments/${user.known[0]}/receipt`;
  return '/v1/notifications?limit=20';
}

// ---------------------------------------------------------------- a run: the users, the clock, the figures

class Run {
  readonly pushes = new PushTracker();
  latencies: number[] = [];
  /** The same latencies by kind of request, for the step lines. */
  readonly byKind = { read: [] as number[], command: [] as number[] };
  errors = 0;
  readonly errorSamples: string[] = [];
  /** Subscription errors between steps (a socket lost while users sign up): the next step's. */
  private readonly carried: string[] = [];
  inFlight = 0;
  measuring = false;
  closing = false;
  private readonly schedule: Schedule;

  constructor(private readonly client: HttpClient) {
    this.schedule = new Schedule((user) => void this.act(user));
  }

  /** An error of a request (counted while measuring: warm-up requests are not). */
  error(what: string): void {
    if (!this.measuring) return;
    this.errors++;
    if (this.errorSamples.length < 5) this.errorSamples.push(what);
  }

  subscriptionError(error: unknown): void {
    const what = `subscription: ${error instanceof Error ? error.message : JSON.stringify(error)}`;
    if (this.measuring) this.error(what);
    else if (!this.closing) this.carried.push(what);
  }

  start(users: readonly LoadUser[]): void {
    this.schedule.start(users, thinkTime);
  }

  /** Stops sending, and waits for what is in flight. */
  async stop(): Promise<void> {
    this.schedule.stop();
    while (this.inFlight > 0) await new Promise((resolve) => setTimeout(resolve, 20));
  }

  startMeasuring(): void {
    this.latencies = [];
    this.byKind.read = [];
    this.byKind.command = [];
    this.errors = 0;
    this.errorSamples.length = 0;
    this.pushes.reset();
    this.measuring = true;
    for (const what of this.carried.splice(0)) this.error(what);
  }

  private async act(user: LoadUser): Promise<void> {
    this.inFlight++;
    try {
      if (Math.random() < READ_SHARE) await this.read(user);
      else await this.command(user);
    } finally {
      this.inFlight--;
      this.schedule.add(user, performance.now() + thinkTime());
    }
  }

  private async timed(
    user: LoadUser,
    method: string,
    pathname: string,
    body?: unknown,
  ): Promise<Answer | undefined> {
    const t0 = performance.now();
    try {
      const answer = await this.client.request(method, pathname, {
        agent: user.agent,
        token: user.token,
        body,
        minIndex: method === 'GET' ? user.minIndex : undefined,
        keepBody: method !== 'GET',
      });
      if (this.measuring) {
        const ms = performance.now() - t0;
        this.latencies.push(ms);
        this.byKind[method === 'GET' ? 'read' : 'command'].push(ms);
      }
      if (answer.status >= 300) {
        this.error(`${method} ${pathname}: ${answer.status} ${answer.body.slice(0, 200)}`);
        return undefined;
      }
      return answer;
    } catch (error) {
      this.error(`${method} ${pathname}: ${(error as Error).message}`);
      return undefined;
    }
  }

  private async read(user: LoadUser): Promise<void> {
    await this.timed(user, 'GET', readFor(user));
  }

  private async command(user: LoadUser): Promise<void> {
    const { action, path: pathname, body } = commandFor(user);
    const sentAt = performance.now();
    const answer = await this.timed(user, 'POST', pathname, body);
    if (!answer) {
      if (action === 'accept') return; // a refused accept is not retried; the next command moves on
      if (action !== 'create') user.draft = undefined;
      return;
    }
    const receipt = JSON.parse(answer.body) as Receipt;
    advance(user, action, receipt);
    // Whose myCommitments the command changes, besides the actor's: the creator's own for a
    // create, else the other party's (the partner is invited by the first command after it).
    const watcher = action === 'create' ? user : (user.partner as LoadUser);
    if (this.measuring) this.pushes.expect(watcher.id, receipt.commitmentId, receipt.version, sentAt);
  }
}

// ---------------------------------------------------------------- steps

interface StepResult {
  users: number;
  perSecond: number;
  p50: number;
  p99: number;
  pushP50: number;
  pushP99: number;
  /** p50/p99 of reads and of commands, in ms. */
  reads: [number, number];
  commands: [number, number];
  pushes: number;
  pushesMissed: number;
  errors: number;
  loopDelayP99: number;
  /** CPU used over the step, in cores: this process, the server's node process, its PostgreSQL. */
  cpu: { bench: number; server: number; postgres: number };
  /** The kernel's threads and the server's main thread over the step (its shares: in cores). */
  watched: MachineReading;
  /** The machine's CPUs busy over the step, in cores, and how many it has. */
  machine: { busy: number; cores: number } | undefined;
  /** The worst the server's /metrics showed over the step (see watchServer). */
  worst: ReadonlyMap<string, number>;
}

const SCRAPE_MS = 2000;

/**
 * Scrapes the server's /metrics every 2 s and keeps the worst of each pool's waiting requests and
 * each projection's lag: where a step's latency waits, when it is not the CPU. Over the step, each
 * thread's busy share (its event loop's busy time) says which one is the CPU's limit, and its loop
 * delays (from the histogram's buckets: the bound of the p99 and of the largest) how long a
 * callback waited for it.
 */
function watchServer(url: string): { stop(): Map<string, number> } {
  const worst = new Map<string, number>();
  type Sample = { at: number; busy: number; buckets: Map<number, number> };
  const samples = new Map<string, { first: Sample; last: Sample }>();
  const keep = (key: string, value: number) => worst.set(key, Math.max(worst.get(key) ?? 0, value));
  const scrape = async () => {
    const text = await fetch(`${url}/metrics`)
      .then((response) => response.text())
      .catch(() => '');
    for (const [, pool, waiting] of text.matchAll(
      /^connect_db_pool_connections\{pool="(\w+)",state="waiting"\} (\S+)$/gm,
    ))
      keep(`pool ${pool} waiting`, Number(waiting));
    for (const [, projection, seconds] of text.matchAll(
      /^connect_projection_lag_seconds\{projection="([\w-]+)"\} (\S+)$/gm,
    ))
      keep(`${projection} lag s`, Number(seconds));
    const at = performance.now() / 1000;
    for (const [, thread, busy] of text.matchAll(
      /^connect_event_loop_busy_seconds_total\{thread="(\w+)"\} (\S+)$/gm,
    )) {
      const buckets = new Map<number, number>();
      for (const [, le, count] of text.matchAll(
        new RegExp(
          `^connect_event_loop_delay_seconds_bucket\\{le="([^"]+)",thread="${thread}"\\} (\\S+)$`,
          'gm',
        ),
      ))
        buckets.set(le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), Number(count));
      const sample = { at, busy: Number(busy), buckets };
      samples.set(thread as string, { first: samples.get(thread as string)?.first ?? sample, last: sample });
    }
  };
  const timer = setInterval(scrape, SCRAPE_MS);
  return {
    stop() {
      clearInterval(timer);
      for (const [thread, { first, last }] of samples) {
        if (last.at <= first.at) continue;
        worst.set(`${thread} loop busy`, (last.busy - first.busy) / (last.at - first.at));
        const counts = [...last.buckets]
          .map(([le, count]) => [le, count - (first.buckets.get(le) ?? 0)] as const)
          .sort(([a], [b]) => a - b);
        const all = counts.at(-1)?.[1] ?? 0;
        const bound = (share: number) => counts.find(([, count]) => count >= share * all)?.[0] ?? 0;
        worst.set(`${thread} loop delay p99 ≤ s`, bound(0.99));
        worst.set(`${thread} loop delay max ≤ s`, bound(1));
      }
      return worst;
    },
  };
}

async function measureStep(
  run: Run,
  users: readonly LoadUser[],
  seconds: number,
  server: { pid: number; url: string },
): Promise<StepResult> {
  const serverPid = server.pid;
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  run.startMeasuring();
  loopDelay.enable();
  const cpu0 = process.cpuUsage();
  const server0 = await cpuSeconds(serverPid);
  const [watching, machine0] = await Promise.all([watchMachine(serverPid), machineTicks()]);
  const scraping = watchServer(server.url);
  const t0 = performance.now();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const worst = scraping.stop();
  await run.stop();
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const server1 = await cpuSeconds(serverPid);
  const [watched, machine1] = await Promise.all([watching.stop(), machineTicks()]);
  loopDelay.disable();
  for (let waited = 0; run.pushes.waiting() > 0 && waited < PUSH_GRACE_MS; waited += 50) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  run.measuring = false;
  const latencies = [...run.latencies].sort((a, b) => a - b);
  const pushes = [...run.pushes.latencies].sort((a, b) => a - b);
  const p50p99 = (values: number[]): [number, number] => {
    const sorted = [...values].sort((a, b) => a - b);
    return [percentile(sorted, 50), percentile(sorted, 99)];
  };
  return {
    users: users.length,
    perSecond: latencies.length / elapsed,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    pushP50: percentile(pushes, 50),
    pushP99: percentile(pushes, 99),
    reads: p50p99(run.byKind.read),
    commands: p50p99(run.byKind.command),
    pushes: pushes.length,
    pushesMissed: run.pushes.waiting(),
    errors: run.errors,
    loopDelayP99: loopDelay.percentile(99) / 1e6,
    cpu: {
      bench: (cpu.user + cpu.system) / 1e6 / elapsed,
      server: (server1.node - server0.node) / elapsed,
      postgres: (server1.postgres - server0.postgres) / elapsed,
    },
    watched,
    machine:
      machine0 && machine1
        ? {
            busy: ((machine1.busy - machine0.busy) / (machine1.all - machine0.all)) * machine1.cores,
            cores: machine1.cores,
          }
        : undefined,
    worst,
  };
}

function printStep(step: StepResult, errorSamples: readonly string[]): void {
  console.log(
    `  users ${step.users}: ${round(step.perSecond, 0)} req/s, p50 ${round(step.p50, 1)} ms, p99 ${round(step.p99, 1)} ms, ` +
      `push p50/p99 ${round(step.pushP50, 1)}/${round(step.pushP99, 1)} ms (${step.pushes} pushes, ${step.pushesMissed} missed), ${step.errors} errors\n` +
      `    reads p50/p99 ${step.reads.map((ms) => round(ms, 1)).join('/')} ms, commands ${step.commands.map((ms) => round(ms, 1)).join('/')} ms ` +
      `| CPU (cores): bench ${round(step.cpu.bench)}, server ${round(step.cpu.server)}, postgres ${round(step.cpu.postgres)}; ` +
      `bench event-loop delay p99 ${round(step.loopDelayP99, 1)} ms\n` +
      (step.watched.serverMainThread && step.machine
        ? `    server main thread (cores): on a CPU ${round(step.watched.serverMainThread.onCpu)}, ready but waiting for one ${round(step.watched.serverMainThread.waiting)}; ` +
          `machine busy ${round(step.machine.busy)} of ${step.machine.cores} cores; ${describeKernelThreads(step.watched)}\n`
        : '') +
      `    /metrics every ${SCRAPE_MS / 1000} s (loop busy and delays: over the step; the rest: the worst seen): ${[...step.worst].map(([key, value]) => `${key} ${round(value, 2)}`).join(', ')}`,
  );
  for (const sample of errorSamples) console.log(`    error: ${sample}`);
}

/** CPU seconds used so far by `pid` itself and by its descendants (the embedded PostgreSQL). */
async function cpuSeconds(pid: number): Promise<{ node: number; postgres: number }> {
  const processes = await processCpu();
  const descends = (candidate: number): boolean => {
    for (let p = processes.get(candidate)?.ppid; p !== undefined && p > 1; p = processes.get(p)?.ppid) {
      if (p === pid) return true;
    }
    return false;
  };
  let postgres = 0;
  for (const [candidate, process] of processes) if (descends(candidate)) postgres += process.cpuSeconds;
  return { node: processes.get(pid)?.cpuSeconds ?? 0, postgres };
}

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]);
  return round(kb / 1024, 0);
}

const held = (step: StepResult) => step.p99 < P99_LIMIT_MS && step.errors === 0;

export async function benchLoad(): Promise<Metrics> {
  if (KEPT_DATA_DIR) await mkdir(KEPT_DATA_DIR, { recursive: true });
  const saved = KEPT_DATA_DIR ? await loadSavedUsers(KEPT_DATA_DIR) : [];
  const dataDir = KEPT_DATA_DIR ?? (await mkdtemp(path.join(os.tmpdir(), 'connect-bench-load-')));
  // The embedded PostgreSQL's own user must reach its data inside.
  if (!KEPT_DATA_DIR) await chmod(dataDir, 0o711);
  // Every sign-up comes from this one address: CONNECT_AUTH_RATE_LIMIT (per address, minute and
  // route) is raised so that none is refused. Commands stay under CONNECT_COMMAND_RATE_LIMIT's
  // default (600 a minute per user; a user here sends about 4), but support.ts raises it anyway.
  const server = await startConnect({
    DATABASE_URL: '',
    CONNECT_DATA_DIR: dataDir,
    CONNECT_AUTH_RATE_LIMIT: '1000000',
  });
  const serverPid = server.child.pid as number;
  const client = httpClient(server.url);
  const run = new Run(client);
  const users: LoadUser[] = [];
  // Every user signed up and every rotated refresh token is kept as soon as it is known: a run
  // stopped midway must not leave accounts it cannot sign in to (sign-up again is refused).
  let saving = Promise.resolve();
  const keep = () => {
    const dir = KEPT_DATA_DIR;
    if (dir) saving = saving.then(() => saveUsers(dir, [...users, ...saved.slice(users.length)]));
    return saving;
  };
  try {
    const grow = async (count: number) => {
      const reused = saved.slice(users.length, count);
      if (reused.length > 0) console.log(`reusing ${reused.length} users of an earlier run…`);
      const added = [...reused];
      users.push(...reused);
      await refreshStaleTokens(client, users, keep);
      if (users.length < count) {
        console.log(`signing up ${count - users.length} users…`);
        // After the highest index in use: a run stopped midway may have kept them out of order.
        const from = Math.max(-1, ...users.map((user) => user.index)) + 1;
        await signUp(client, from, from + count - users.length, (user) => {
          added.push(user);
          users.push(user);
          keep().catch(() => {}); // a failure shows at the next keep awaited
        });
        await keep();
      }
      pairUp(added);
      // Signing up thousands takes longer than an access token lives (15 min): the first ones'
      // tokens are refreshed before their sockets open, or the server refuses them (4403).
      await refreshStaleTokens(client, users, keep);
      await subscribe(server.url, added, run);
    };

    await grow(USERS);
    const rest0 = await cpuSeconds(serverPid);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const rest1 = await cpuSeconds(serverPid);
    console.log(
      `  at rest, before the load: server ${round((rest1.node - rest0.node) / 3)} cores, ` +
        `postgres ${round((rest1.postgres - rest0.postgres) / 3)} cores`,
    );
    console.log(`warming up for ${WARM_UP_SECONDS} s, then ${USERS} users for ${SECONDS} s…`);
    run.start(users);
    await new Promise((resolve) => setTimeout(resolve, WARM_UP_SECONDS * 1000));
    const base = await measureStep(run, users, SECONDS, { pid: serverPid, url: server.url });
    const rss = await rssMb(serverPid);
    printStep(base, run.errorSamples);

    let lastHeld = held(base) ? base.users : 0;
    let step = base;
    while (held(step) && STEP_USERS > 0 && users.length + STEP_USERS <= MAX_USERS) {
      await grow(users.length + STEP_USERS);
      run.start(users);
      step = await measureStep(run, users, STEP_SECONDS, { pid: serverPid, url: server.url });
      printStep(step, run.errorSamples);
      if (held(step)) lastHeld = step.users;
    }

    return {
      'load.users': { value: base.users, unit: 'users' },
      'load.p50_ms': { value: round(base.p50, 1), unit: 'ms' },
      'load.p99_ms': { value: round(base.p99, 1), unit: 'ms' },
      'load.errors': { value: base.errors, unit: 'errors' },
      'load.push_p99_ms': { value: round(base.pushP99, 1), unit: 'ms' },
      'load.push_missed': { value: base.pushesMissed, unit: 'pushes' },
      'load.rss_mb': { value: rss, unit: 'MB' },
      'load.requests_per_s': { value: round(base.perSecond, 0), unit: 'requests/s' },
      'load.max_users_at_200ms': { value: lastHeld, unit: 'users' },
    };
  } finally {
    await keep().catch((error: unknown) => console.error('could not keep the users:', error));
    run.closing = true;
    await run.stop();
    await Promise.all(users.map((user) => user.subscription?.dispose()));
    for (const user of users) user.agent?.destroy();
    client.close();
    await stopConnect(server.child);
    if (!KEPT_DATA_DIR) await rm(dataDir, { recursive: true, force: true });
  }
}
