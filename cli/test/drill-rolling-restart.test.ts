// Fault drill: a rolling restart. Two `connect start` instances on one database and data directory,
// behind a round-robin proxy written here (the drill's load balancer). Under load (commands with
// Idempotency-Key, reads with Connect-Min-Index, lists), instance 1 gets SIGTERM, exits, and starts
// again on its port; then instance 2. No client request may fail, and every command answered 2xx
// is in the ledger exactly once.
//
// The proxy does what a plain load balancer does, and no more: it sends each request to the next
// instance in turn over kept-alive connections, and tries the other instance once when
// - the connection is refused (the request never reached the instance: it is down), or
// - the instance answers 503 with `Connection: close` (it is draining: README "Operating Connect",
//   the answer to a request arriving on a kept-alive connection after SIGTERM; it ran nothing), or
// - the connection breaks before an answer (a kept-alive connection the instance closed as the
//   request went out) and the request is idempotent: GET or HEAD, or it carries an Idempotency-Key.
// Anything else, 5xx included, goes back to the client as it came.
import http from 'node:http';
import type net from 'node:net';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { draftsByActor, eventually, type Receipt, receiptsMissingFromLedger } from './drill-support.ts';
import {
  type Answer,
  call,
  type RunningConnect,
  signUp,
  startConnect,
  startConnectBeside,
} from './running-connect.ts';

type Instance = Omit<RunningConnect, 'database' | 'dataDir'>;

let first: RunningConnect;
const instances: Instance[] = [];
let proxy: Proxy | undefined;

interface Upstream {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

interface Proxy {
  url: string;
  /** Requests each port answered (its last attempt's port), and why requests were retried. */
  answeredBy: Map<number, number>;
  retries: Map<string, number>;
  /** Resolves as the next request goes out to `port`: it is under way there. */
  nextRequestTo(port: number): Promise<void>;
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'host']);

function forward(
  agent: http.Agent,
  port: number,
  request: http.IncomingMessage,
  body: Buffer,
): Promise<Upstream> {
  const headers = Object.fromEntries(
    Object.entries(request.headers).filter(([name]) => !HOP_BY_HOP.has(name)),
  );
  return new Promise((resolve, reject) => {
    const upstream = http.request(
      { host: '127.0.0.1', port, method: request.method, path: request.url, headers, agent },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            body: Buffer.concat(chunks),
          }),
        );
        response.on('error', reject);
      },
    );
    upstream.on('error', reject);
    upstream.end(body);
  });
}

/** Why the proxy tries the other instance after this outcome, or undefined to pass it on. */
function retryReason(request: http.IncomingMessage, outcome: Upstream | Error): string | undefined {
  if (!(outcome instanceof Error)) {
    return outcome.status === 503 && outcome.headers.connection === 'close' ? '503 draining' : undefined;
  }
  const code = (outcome as NodeJS.ErrnoException).code ?? outcome.message;
  if (code === 'ECONNREFUSED') return 'connection refused';
  const idempotent =
    request.method === 'GET' || request.method === 'HEAD' || request.headers['idempotency-key'] !== undefined;
  return idempotent ? `connection broken (${code})` : undefined;
}

async function startProxy(ports: [number, number]): Promise<Proxy> {
  const agent = new http.Agent({ keepAlive: true });
  const answeredBy = new Map<number, number>();
  const retries = new Map<string, number>();
  let next = 0;
  const waiters: { port: number; resolve(): void }[] = [];
  const send = (port: number, request: http.IncomingMessage, body: Buffer) => {
    const sent = forward(agent, port, request, body).catch((error: Error) => error);
    for (const waiter of waiters.filter((w) => w.port === port)) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
    return sent;
  };
  const server = http.createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const turn = next++;
    let port = ports[turn % 2] as number;
    let outcome = await send(port, request, body);
    const reason = retryReason(request, outcome);
    if (reason) {
      retries.set(reason, (retries.get(reason) ?? 0) + 1);
      port = ports[(turn + 1) % 2] as number;
      outcome = await send(port, request, body);
    }
    answeredBy.set(port, (answeredBy.get(port) ?? 0) + 1);
    if (outcome instanceof Error) {
      response.writeHead(502, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ detail: `proxy: ${outcome.message}` }));
      return;
    }
    const headers = Object.fromEntries(
      Object.entries(outcome.headers).filter(([name]) => !HOP_BY_HOP.has(name) && name !== 'content-length'),
    );
    response.writeHead(outcome.status, headers);
    response.end(outcome.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    answeredBy,
    retries,
    nextRequestTo: (port) => new Promise((resolve) => waiters.push({ port, resolve })),
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      agent.destroy();
    },
  };
}

let ports: [number, number];
const portOf = (instance: Instance) => Number(new URL(instance.url).port);

beforeAll(async () => {
  // Each instance listens on a port the OS gives it, and restarts on that one.
  first = await startConnect();
  const second = await startConnectBeside(first);
  instances.push(first, second);
  ports = [portOf(first), portOf(second)];
  proxy = await startProxy(ports);
}, 180_000);

afterAll(async () => {
  await proxy?.close();
  for (const instance of instances) if (instance !== first) await instance.close();
  await first?.close();
}, 60_000);

interface User {
  name: string;
  token: string;
  userId: string;
}

/**
 * Clients through the proxy, one per user, each creating a commitment (with an Idempotency-Key),
 * reading it with Connect-Min-Index and listing theirs, until stopped; each request is sent once,
 * and every answer that is not the expected 2xx is a failure.
 */
function startLoad(url: string, users: User[]) {
  let stopped = false;
  const receipts = new Map<User, Receipt[]>(users.map((user) => [user, []]));
  const failures: string[] = [];
  let requests = 0;

  async function expectStatus(what: string, send: () => Promise<Answer>, status: number) {
    requests++;
    const answer: Answer = await send().catch((error: Error) => ({
      status: 0,
      headers: new Headers(),
      body: { detail: error.message },
    }));
    if (answer.status !== status) failures.push(`${what}: ${answer.status} ${JSON.stringify(answer.body)}`);
    return answer.status === status ? answer : undefined;
  }

  async function client(user: User) {
    const running = { url };
    for (let i = 0; !stopped; i++) {
      const title = `${user.name} #${i}`;
      const created = await expectStatus(
        `POST ${title}`,
        () =>
          call(running, 'POST', '/v1/commitments', {
            token: user.token,
            body: { type: 'personal', title },
            headers: { 'idempotency-key': `${user.name}-${i}` },
          }),
        201,
      );
      if (!created) continue;
      const receipt = created.body as unknown as Receipt;
      receipts.get(user)?.push(receipt);
      const index = Math.max(...receipt.events.map((event) => event.index));
      const read = await expectStatus(
        `GET ${title}`,
        () =>
          call(running, 'GET', `/v1/commitments/${receipt.commitmentId}`, {
            token: user.token,
            headers: { 'connect-min-index': String(index) },
          }),
        200,
      );
      if (read && read.body.title !== title) failures.push(`GET ${title}: read ${JSON.stringify(read.body)}`);
      await expectStatus(
        `GET list of ${user.name}`,
        () => call(running, 'GET', '/v1/commitments', { token: user.token }),
        200,
      );
    }
  }

  const clients = Promise.all(users.map(client));
  const answered = () => [...receipts.values()].reduce((sum, list) => sum + list.length, 0);
  return {
    receipts,
    failures,
    requests: () => requests,
    /** Waits until the clients have had `count` more commands answered. */
    async progress(count: number) {
      const target = answered() + count;
      await eventually(
        `${count} more commands answered`,
        async () => (answered() >= target ? true : undefined),
        120_000,
      );
    },
    async stop() {
      stopped = true;
      await clients;
    },
  };
}

/**
 * SIGTERM to the instance at `slot` while a request is under way there, wait for it to exit 0,
 * start it again on its port.
 */
async function restart(slot: 0 | 1): Promise<void> {
  const instance = instances[slot] as Instance;
  await (proxy as Proxy).nextRequestTo(ports[slot]);
  instance.child.kill('SIGTERM');
  expect(await instance.exited, `instance ${slot + 1} exit code`).toBe(0);
  instances[slot] = await startConnectBeside(first, { PORT: String(ports[slot]) });
}

test('a rolling restart of two instances behind a round-robin proxy: no request fails, no command is lost or doubled', async () => {
  const gateway = proxy as Proxy;
  const users: User[] = [];
  for (const name of ['ana', 'ben', 'cy']) users.push({ name, ...(await signUp(gateway, name)) });

  const load = startLoad(gateway.url, users);
  const answeredAfterRestart: number[] = [];
  try {
    await load.progress(9);
    for (const slot of [0, 1] as const) {
      await restart(slot);
      // The restarted instance takes its share again before the next one goes.
      const before = gateway.answeredBy.get(ports[slot]) ?? 0;
      await load.progress(9);
      answeredAfterRestart.push((gateway.answeredBy.get(ports[slot]) ?? 0) - before);
    }
  } finally {
    await load.stop();
  }
  console.info(
    `drill-rolling-restart: ${load.requests()} requests; proxy retries ${JSON.stringify(
      Object.fromEntries(gateway.retries),
    )}; answered by each restarted instance before the next step ${answeredAfterRestart.join(', ')}`,
  );

  expect(load.failures).toEqual([]);
  for (const answered of answeredAfterRestart) expect(answered).toBeGreaterThan(0);

  // Every command answered 2xx is in the ledger as answered, once.
  const receipts = [...load.receipts.values()].flat();
  expect(await receiptsMissingFromLedger(first.database.pool, receipts)).toEqual([]);
  const drafted = await draftsByActor(
    first.database.pool,
    users.map((user) => user.userId),
  );
  for (const user of users) expect(drafted.get(user.userId), user.name).toBe(load.receipts.get(user)?.length);

  // Both restarted instances are ready.
  for (const instance of instances) expect((await call(instance, 'GET', '/readyz')).status).toBe(200);
}, 300_000);
