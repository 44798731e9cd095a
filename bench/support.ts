import { type ChildProcess, fork, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createScratchDatabase, type DatabaseHandle, startEmbeddedPostgres } from '@connect/db';
import pg from 'pg';
import { freePort } from '../test/support/free-port.ts';
import { COUNTING, type GeneratorJob, type GeneratorResult } from './open-loop-generator.ts';

export interface Metric {
  value: number;
  unit: string;
}

export type Metrics = Record<string, Metric>;

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

export function median(values: number[]): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    50,
  );
}

export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export type BenchDatabase = DatabaseHandle;

/** A fresh database: on DATABASE_URL's server when set, else a new embedded PostgreSQL. */
export async function benchDatabase(poolSize: number): Promise<BenchDatabase> {
  let adminUrl = process.env.DATABASE_URL;
  let stopEmbedded: (() => Promise<void>) | undefined;
  let dir: string | undefined;
  if (!adminUrl) {
    dir = await mkdtemp(path.join(os.tmpdir(), 'connect-bench-'));
    await chmod(dir, 0o711);
    const embedded = await startEmbeddedPostgres(dir);
    adminUrl = embedded.url;
    stopEmbedded = embedded.stop;
  }
  const database = await createScratchDatabase(adminUrl, 'connect_bench', poolSize);
  return {
    ...database,
    close: async () => {
      await database.close();
      await stopEmbedded?.();
      if (dir) await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The event every append bench writes, the same for the ledger and its peers. */
export const benchEvent = (client: number, i: number) => ({
  type: 'BenchEventRecorded',
  data: { client, i, note: 'a commitment was made' },
});

/** Runs `clients` loops of `operation` for `seconds`, recording each operation's latency. */
export async function closedLoop(
  clients: number,
  seconds: number,
  operation: (client: number, i: number) => Promise<void>,
): Promise<{ count: number; perSecond: number; latenciesMs: number[] }> {
  const latencies: number[] = [];
  const deadline = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      for (let i = 0; performance.now() < deadline; i++) {
        const t0 = performance.now();
        await operation(client, i);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { count: latencies.length, perSecond: latencies.length / elapsed, latenciesMs: latencies };
}

const GENERATOR = fileURLToPath(new URL('./open-loop-generator.ts', import.meta.url));

/**
 * Open-loop load: `rate` GET requests a second for `seconds`, each sent at its scheduled time
 * whether or not earlier ones have been answered (over keep-alive sockets, as many as needed), and
 * each latency counted from its scheduled time, so a stall is not hidden by the requests it held
 * back (coordinated omission). The requests are built here and sent by a load generator of their
 * own (open-loop-generator.ts), a process whose pauses are not this one's. The first
 * `warmUpSeconds` at the same rate are not counted: they open the sockets, whose connections and
 * first statements are not the steady load measured; `onCounting` is called as they end.
 * Returns the counted latencies sorted, the counted answers that were not 2xx, and the
 * generator's pid (its trace's name).
 */
export async function openLoop(
  url: string,
  rate: number,
  seconds: number,
  request: () => { path: string; headers?: Record<string, string> },
  warmUpSeconds = 2,
  onCounting?: () => void,
): Promise<{ latenciesMs: number[]; non2xx: number; generatorPid: number | undefined }> {
  const target = new URL(url);
  const warmUp = Math.round(rate * warmUpSeconds);
  const requests = Array.from({ length: warmUp + Math.round(rate * seconds) }, () => {
    const { path: requestPath, headers = {} } = request();
    const fields = Object.entries(headers);
    // Sent as Latin-1, a line per header: what cannot go that way is refused, not garbled.
    if (![requestPath, ...fields.flat()].every((text) => /^[\x20-\xff]*$/.test(text)))
      throw new Error(`a request the open loop cannot send: ${requestPath} ${JSON.stringify(headers)}`);
    const lines = fields.map(([name, value]) => `${name}: ${value}\r\n`);
    return `GET ${requestPath} HTTP/1.1\r\nhost: ${target.host}\r\n${lines.join('')}\r\n`;
  });
  const job: GeneratorJob = {
    host: target.hostname,
    port: Number(target.port || 80),
    rate,
    requests,
    warmUp,
  };
  const generator = fork(GENERATOR, [], {
    execArgv: ['--no-memory-reducer', '--import', 'tsx'],
    serialization: 'advanced',
  });
  const result = await new Promise<GeneratorResult>((resolve, reject) => {
    let answer: GeneratorResult | undefined;
    generator.on('message', (message) => {
      if (message === COUNTING) onCounting?.();
      else answer = message as GeneratorResult;
    });
    generator.once('error', reject);
    // 'close' comes once the channel is drained, so after the answer when there is one.
    generator.once('close', (code, signal) =>
      answer ? resolve(answer) : reject(new Error(`the load generator exited with ${signal ?? code}`)),
    );
    generator.send(job);
  });
  return {
    latenciesMs: Array.from(result.latenciesMs).sort((a, b) => a - b),
    non2xx: result.non2xx,
    generatorPid: generator.pid,
  };
}

/**
 * The p99 the same open loop gives /healthz of the same server at the same rate: a route that does
 * nothing, so what this machine and this harness cost at that rate, the floor under any p99
 * measured with openLoop there (on a 2-core machine shared with PostgreSQL and the load itself, it
 * is far from 0).
 */
export async function openLoopFloor(url: string, rate: number, seconds: number): Promise<number> {
  const run = await openLoop(url, rate, seconds, () => ({ path: '/healthz' }));
  if (run.non2xx > 0) console.warn(`  /healthz: ${run.non2xx} answers not 2xx at ${round(rate, 0)}/s`);
  return round(percentile(run.latenciesMs, 99));
}

/** A schedstat file's first two fields: time on a CPU and time ready but waiting for one (ns). */
function parseSchedstat(text: string | undefined): { onCpuNs: number; waitingNs: number } | undefined {
  const [onCpuNs, waitingNs] = text?.split(' ').map(Number) ?? [];
  return onCpuNs === undefined || waitingNs === undefined ? undefined : { onCpuNs, waitingNs };
}

/**
 * A thread's time on a CPU and its time ready to run but waiting for one, so far, from Linux's
 * schedstat (undefined elsewhere). A process's main thread has the process's id. A loop busy all
 * the time while its thread waits for a CPU much of it is held up by the machine, not by its work.
 */
export async function threadSchedule(
  pid: number,
): Promise<{ onCpuNs: number; waitingNs: number } | undefined> {
  return parseSchedstat(await readFile(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').catch(() => undefined));
}

/**
 * The machine's CPU time so far (/proc/stat, in ticks, over all its CPUs): all of it, and that not
 * idle nor waiting for I/O; and how many CPUs it counted (the same file's per-CPU lines).
 */
export async function machineTicks(): Promise<{ all: number; busy: number; cores: number } | undefined> {
  const text = await readFile('/proc/stat', 'utf8').catch(() => undefined);
  const ticks = text?.split('\n')[0]?.split(/\s+/).slice(1, 9).map(Number);
  if (!text || !ticks || ticks.length < 8 || ticks.some(Number.isNaN)) return undefined;
  const all = ticks.reduce((sum, tick) => sum + tick, 0);
  const [, , , idle = 0, iowait = 0] = ticks;
  return { all, busy: all - idle - iowait, cores: text.match(/^cpu\d+ /gm)?.length ?? 1 };
}

/** CPU ms each kernel thread has used so far, by pid; undefined where there is no /proc to read. */
export async function kernelThreadsCpuMs(): Promise<Map<number, { name: string; ms: number }> | undefined> {
  const processes = await processCpu().catch(() => undefined);
  if (!processes) return undefined;
  const threads = new Map<number, { name: string; ms: number }>();
  for (const [pid, { name, kernelThread, cpuSeconds }] of processes)
    if (kernelThread) threads.set(pid, { name, ms: cpuSeconds * 1000 });
  return threads;
}

/** What the machine itself did while a measurement ran, beside the code measured. */
export interface MachineReading {
  /** How long it was watched. */
  seconds: number;
  /** CPU ms all kernel threads used, and the busiest of them; undefined without /proc. */
  kernel: { ms: number; busiest: { name: string; ms: number } | undefined } | undefined;
  /** Shares of the time (0–1) the server's main thread was on a CPU, and ready but waiting for one. */
  serverMainThread: { onCpu: number; waiting: number } | undefined;
}

/** The kernel threads' CPU between two readings, and the busiest thread's. */
function kernelUse(
  before: Map<number, { name: string; ms: number }>,
  after: Map<number, { name: string; ms: number }>,
): NonNullable<MachineReading['kernel']> {
  let total = 0;
  let busiest: { name: string; ms: number } | undefined;
  for (const [pid, { name, ms }] of after) {
    // A thread started meanwhile counts from 0; a pid reused by a new one is not below 0.
    const used = Math.max(0, ms - (before.get(pid)?.ms ?? 0));
    total += used;
    if (used > (busiest?.ms ?? 0)) busiest = { name, ms: used };
  }
  return { ms: total, busiest };
}

/**
 * Starts reading what the machine does meanwhile: the kernel's own threads' CPU and, given the
 * server's pid, its main thread's time on and waiting for a CPU. On a shared virtual machine a
 * kernel thread (such as DAMON's kdamond, waking every half second) takes a CPU in bursts, and a
 * server's queue behind it is the machine's, not the server's.
 */
export async function watchMachine(serverPid?: number): Promise<{ stop(): Promise<MachineReading> }> {
  const started = performance.now();
  const [kernel0, schedule0] = await Promise.all([
    kernelThreadsCpuMs(),
    serverPid === undefined ? undefined : threadSchedule(serverPid),
  ]);
  return {
    async stop() {
      const [kernel1, schedule1] = await Promise.all([
        kernelThreadsCpuMs(),
        serverPid === undefined ? undefined : threadSchedule(serverPid),
      ]);
      const elapsedNs = (performance.now() - started) * 1e6;
      return {
        seconds: elapsedNs / 1e9,
        kernel: kernel0 && kernel1 ? kernelUse(kernel0, kernel1) : undefined,
        serverMainThread:
          schedule0 && schedule1
            ? {
                onCpu: (schedule1.onCpuNs - schedule0.onCpuNs) / elapsedNs,
                waiting: (schedule1.waitingNs - schedule0.waitingNs) / elapsedNs,
              }
            : undefined,
      };
    },
  };
}

/** BENCH_OPEN_LOOP_TRACE: where the open loops' traces go (see open-loop-generator.ts), the machine's too. */
const TRACE = process.env.BENCH_OPEN_LOOP_TRACE;
const TRACE_EVERY_MS = 5;

/**
 * "<on a CPU> <waiting for one>" in µs from a schedstat file, read synchronously (a small read whose
 * time is the reading's); "- -" for a thread gone.
 */
function scheduleMicroseconds(file: string): string {
  let text: string | undefined;
  try {
    text = readFileSync(file, 'utf8');
  } catch {}
  const schedule = parseSchedstat(text);
  return schedule ? `${Math.round(schedule.onCpuNs / 1000)} ${Math.round(schedule.waitingNs / 1000)}` : '- -';
}

/**
 * Every TRACE_EVERY_MS until stopped: the server's main thread's and each kernel thread's time on
 * a CPU and time waiting for one so far (µs), for the kernel threads that ran since `kernelBefore`
 * (the warm-up: one that wakes every half second shows there). stop() writes them to `file`, a
 * line per reading that begins with its epoch ms, as the requests' trace does, so that a stall in
 * one lines up with what ran in the other. A stop without a file (the trial failed) writes nothing.
 */
async function traceMachine(
  kernelBefore: Map<number, { name: string; ms: number }> | undefined,
  serverPid: number | undefined,
): Promise<{ stop(file?: string): Promise<void> }> {
  const threads: { label: string; path: string }[] = [];
  if (serverPid !== undefined)
    threads.push({ label: 'server-main', path: `/proc/${serverPid}/task/${serverPid}/schedstat` });
  for (const [pid, { name, ms }] of (await kernelThreadsCpuMs()) ?? [])
    if (ms > (kernelBefore?.get(pid)?.ms ?? ms))
      threads.push({ label: `${name}(${pid})`, path: `/proc/${pid}/schedstat` });
  const lines = [`# epoch_ms ${threads.map(({ label }) => `${label}:on_us ${label}:waiting_us`).join(' ')}`];
  const timer = setInterval(() => {
    const readings = threads.map(({ path: file }) => scheduleMicroseconds(file));
    lines.push(`${(performance.timeOrigin + performance.now()).toFixed(1)} ${readings.join(' ')}`);
  }, TRACE_EVERY_MS);
  return {
    async stop(file) {
      clearInterval(timer);
      if (file) await writeFile(file, `${lines.join('\n')}\n`);
    },
  };
}

/** Trials of each open loop (BENCH_OPEN_LOOP_TRIALS): its key is their median. */
export const OPEN_LOOP_TRIALS = Number(process.env.BENCH_OPEN_LOOP_TRIALS ?? 3);
if (!Number.isInteger(OPEN_LOOP_TRIALS) || OPEN_LOOP_TRIALS < 1)
  throw new Error(`BENCH_OPEN_LOOP_TRIALS must be a whole number of at least 1, not ${OPEN_LOOP_TRIALS}`);

export interface OpenLoopTrials {
  /** The median of the trials' p99s. */
  p99: number;
  /** The median of the trials' p50s. */
  p50: number;
  /** The median of the floors, measured after the trials. */
  floor: number;
  /** The median of the trials' kernel threads' CPU, in ms a second; undefined without /proc. */
  kernelMsPerSecond: number | undefined;
  /** The median share of each trial the server's main thread was ready but waiting for a CPU. */
  serverWaiting: number | undefined;
  /** Each trial's p99, floor and what the machine did meanwhile, in order. */
  trials: { p99: number; floor: number; machine: MachineReading }[];
  non2xx: number;
}

/**
 * The open loop at `rate`, OPEN_LOOP_TRIALS times, then as many floors: on a shared
 * machine one stall of a few hundred milliseconds sets a 10 s trial's p99 whatever the code does,
 * so the key is the median of the trials' p99s, and every trial is printed beside it with what the
 * machine did meanwhile (watchMachine, given the server's pid).
 */
export async function openLoopTrials(
  url: string,
  rate: number,
  seconds: number,
  request: () => { path: string; headers?: Record<string, string> },
  serverPid?: number,
): Promise<OpenLoopTrials> {
  const runs: (Awaited<ReturnType<typeof openLoop>> & { machine: MachineReading })[] = [];
  for (let i = 0; i < OPEN_LOOP_TRIALS; i++) {
    const kernelBefore = TRACE ? await kernelThreadsCpuMs() : undefined;
    // Watched from the end of the warm-up until the generator has sent its answer: the stretch
    // whose latencies count, and the moments after its last request.
    let watching: ReturnType<typeof watchMachine> | undefined;
    let tracing: ReturnType<typeof traceMachine> | undefined;
    let traceFile: string | undefined;
    try {
      const run = await openLoop(url, rate, seconds, request, undefined, () => {
        watching = watchMachine(serverPid);
        if (TRACE) tracing = traceMachine(kernelBefore, serverPid);
      });
      if (!watching) throw new Error('the load generator never began counting');
      runs.push({ ...run, machine: await (await watching).stop() });
      // Beside the generator's own trace, `<prefix>-<its pid>.txt`.
      traceFile = `${TRACE}-${run.generatorPid}-machine.txt`;
    } finally {
      await (await tracing)?.stop(traceFile);
    }
  }
  // The floors after every trial, so the trials are one steady load, with no idle gap between them.
  const trials: OpenLoopTrials['trials'] = [];
  for (const run of runs)
    trials.push({
      p99: round(percentile(run.latenciesMs, 99)),
      floor: await openLoopFloor(url, rate, seconds),
      machine: run.machine,
    });
  const waiting = trials.flatMap((t) => t.machine.serverMainThread?.waiting ?? []);
  const kernel = trials.flatMap((t) => (t.machine.kernel ? t.machine.kernel.ms / t.machine.seconds : []));
  return {
    p99: round(median(trials.map((t) => t.p99))),
    p50: round(median(runs.map((run) => percentile(run.latenciesMs, 50)))),
    floor: round(median(trials.map((t) => t.floor))),
    kernelMsPerSecond: kernel.length === trials.length ? round(median(kernel), 1) : undefined,
    serverWaiting: waiting.length === trials.length ? round(median(waiting), 3) : undefined,
    trials,
    non2xx: runs.reduce((sum, run) => sum + run.non2xx, 0),
  };
}

/**
 * What the machine did during an open loop's trials, as keys beside its p99 (medians of the
 * trials, where they could be read): `<prefix>.kernel_cpu_ms_per_s_at_70pct` and
 * `<prefix>.server_waiting_share_at_70pct`.
 */
export function machineKeys(prefix: string, run: OpenLoopTrials): Metrics {
  const keys: Metrics = {};
  if (run.kernelMsPerSecond !== undefined)
    keys[`${prefix}.kernel_cpu_ms_per_s_at_70pct`] = {
      value: run.kernelMsPerSecond,
      unit: 'ms of CPU a second',
    };
  if (run.serverWaiting !== undefined)
    keys[`${prefix}.server_waiting_share_at_70pct`] = { value: run.serverWaiting, unit: 'of the time' };
  return keys;
}

/** "kernel threads 310 ms of CPU in 10.1 s (kdamond.0 290)". */
export const describeKernelThreads = (machine: MachineReading) => {
  if (!machine.kernel) return 'kernel threads not read';
  const { ms, busiest } = machine.kernel;
  return (
    `kernel threads ${round(ms, 0)} ms of CPU in ${round(machine.seconds, 1)} s` +
    (busiest ? ` (${busiest.name} ${round(busiest.ms, 0)})` : '')
  );
};

/** describeKernelThreads, then ", server main thread waiting for a CPU 8.1 %" where it was read. */
export const describeMachine = (machine: MachineReading) => {
  const waiting = machine.serverMainThread?.waiting;
  return (
    describeKernelThreads(machine) +
    (waiting === undefined ? '' : `, server main thread waiting for a CPU ${round(waiting * 100, 1)} %`)
  );
};

/**
 * "p99 41.2 ms (trials 38.1, 41.2, 97.0 ms; /healthz at that rate: 4.4, 5.1, 6.0 ms)", then what
 * the machine did during each trial.
 */
export const describeTrials = (run: OpenLoopTrials) =>
  `p99 ${run.p99} ms (trials ${run.trials.map((t) => t.p99).join(', ')} ms; ` +
  `/healthz at that rate: ${run.trials.map((t) => t.floor).join(', ')} ms)` +
  run.trials.map((t, i) => `\n    trial ${i + 1}: ${describeMachine(t.machine)}`).join('');

export async function writeResults(metrics: Metrics): Promise<void> {
  const rows = Object.entries(metrics).map(
    ([key, m]) => `${key.padEnd(36)} ${String(m.value).padStart(12)} ${m.unit}`,
  );
  console.log(`\n${'metric'.padEnd(36)} ${'value'.padStart(12)} unit\n${rows.join('\n')}`);
  const out = process.env.BENCH_OUT;
  if (!out) return;
  let previous: Metrics = {};
  try {
    previous = JSON.parse(await readFile(out, 'utf8')) as Metrics;
  } catch {}
  await writeFile(out, `${JSON.stringify({ ...previous, ...metrics }, null, 2)}\n`);
  console.log(`\nwritten to ${out}`);
}

const BIN = fileURLToPath(new URL('../cli/bin/connect.js', import.meta.url));

/** `connect start` as a child process, with these environment variables; resolves once /readyz is 200. */
export function startConnect(env: Record<string, string>): Promise<{ child: ChildProcess; url: string }> {
  return startServer([BIN, 'start'], env);
}

/** `node <args>` serving HTTP on PORT, as startConnect runs `connect start`. */
export async function startServer(
  args: string[],
  env: Record<string, string>,
): Promise<{ child: ChildProcess; url: string }> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [...(process.env.BENCH_SERVER_NODE_OPTIONS?.split(' ').filter(Boolean) ?? []), ...args],
    {
      // warn: no per-request log lines, as a production deployment would run
      env: {
        ...process.env,
        PORT: String(port),
        LOG_LEVEL: 'warn',
        CONNECT_AUTH_RATE_LIMIT: '10000',
        CONNECT_COMMAND_RATE_LIMIT: '1000000',
        CONNECT_VERIFY_RATE_LIMIT: '1000000',
        ...env,
      },
      stdio: ['ignore', 'inherit', 'inherit'],
    },
  );
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`${args.join(' ')} exited with ${child.exitCode}`);
    const ready = await fetch(`${url}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) return { child, url };
    if (i > 600) throw new Error(`${args.join(' ')} did not become ready`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * VACUUM (ANALYZE) and CHECKPOINT after a bulk load: autovacuum and the checkpointer working
 * through a million new rows would otherwise take a core and the disk from the measurement that
 * follows (the steady state a deployment runs in, not the hour after an import).
 */
export async function settle(pool: pg.Pool): Promise<void> {
  const started = performance.now();
  await pool.query('vacuum (analyze)');
  await pool.query('checkpoint');
  console.log(`vacuum and checkpoint after the load: ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

/** Stops a `connect start` child (SIGTERM) and waits for it to exit. */
export async function stopConnect(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

export interface ProcessCpu {
  name: string;
  ppid: number;
  /** A kernel thread (PF_KTHREAD), not a process of a program. */
  kernelThread: boolean;
  /** CPU seconds used so far by the process and by its children that exited (cutime, cstime). */
  cpuSeconds: number;
}

/** Linux's flag of a kernel thread in /proc/<pid>/stat. */
const PF_KTHREAD = 0x200000;

/** Every process on the machine, from /proc (Linux; USER_HZ 100). */
export async function processCpu(): Promise<Map<number, ProcessCpu>> {
  const ticks = 100;
  const processes = new Map<number, ProcessCpu>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    // Empty when the process ended between the listing and the read.
    const text = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // After the command's closing parenthesis: state, ppid, …, flags, …, utime, stime, cutime, cstime.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    if (fields.length < 15) continue;
    const [utime, stime, cutime, cstime] = fields.slice(11, 15).map(Number) as [
      number,
      number,
      number,
      number,
    ];
    processes.set(Number(entry), {
      name: text.slice(text.indexOf('(') + 1, text.lastIndexOf(')')),
      ppid: Number(fields[1]),
      kernelThread: (Number(fields[6]) & PF_KTHREAD) !== 0,
      cpuSeconds: (utime + stime + cutime + cstime) / ticks,
    });
  }
  return processes;
}

/** This process's CPU time (ms). */
export const processCpuMs = () => {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
};

/**
 * CPU time (ms) of the PostgreSQL server `pool` connects to, which must run on this machine: its
 * postmaster and the processes it started, with those that exited (the postmaster's cutime and
 * cstime: backends that ended meanwhile). Other servers on the machine are not counted.
 */
export async function postgresCpuMs(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ pid: number }>('select pg_backend_pid() as pid');
  const processes = await processCpu();
  const postmaster = processes.get(rows[0]?.pid ?? -1)?.ppid;
  if (postmaster === undefined)
    throw new Error('the PostgreSQL server is not on this machine: its CPU is read from /proc');
  let ms = 0;
  for (const [pid, process] of processes)
    if (pid === postmaster || process.ppid === postmaster) ms += process.cpuSeconds * 1000;
  return ms;
}

/** The notifier's worker slots (CONNECT_DELIVERY_CONCURRENCY's default). */
export const WORKER_CONCURRENCY = 8;

/**
 * A pool as the notifier's worker connects (services/notifier/src/queue/setup.ts): a connection
 * for each slot and two more, commits that do not wait for the disk.
 */
export function notifierWorkerPool(url: string): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: WORKER_CONCURRENCY + 2,
    options: '-c synchronous_commit=off',
  });
  pool.on('error', () => undefined);
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}
