import { performance } from 'node:perf_hooks';
import {
  AggregatorRegistry,
  Counter,
  Gauge,
  Histogram,
  type MetricObjectWithValues,
  type MetricValue,
  type Registry,
} from 'prom-client';

/** The counter `name` of `registry`, made on first use (so a plugin registered twice shares it). */
export function sharedCounter<L extends string>(
  registry: Registry,
  options: { name: string; help: string; labelNames: readonly L[] },
): Counter<L> {
  return (
    (registry.getSingleMetric(options.name) as Counter<L> | undefined) ??
    new Counter({ ...options, registers: [registry] })
  );
}

/** What a database pool's gauge reads (a pg.Pool has these). */
export interface PoolCounts {
  readonly totalCount: number;
  readonly idleCount: number;
  readonly waitingCount: number;
}

/**
 * Puts the gauge connect_db_pool_connections on `registry`; the function returned adds a pool to
 * it under `name`.
 */
export function poolGauge(registry: Registry): (name: string, pool: PoolCounts) => void {
  const pools = new Map<string, PoolCounts>();
  new Gauge({
    name: 'connect_db_pool_connections',
    help: 'Connections of each database pool: total open, idle, and requests waiting for one',
    labelNames: ['pool', 'state'],
    registers: [registry],
    collect() {
      for (const [pool, counts] of pools) {
        this.set({ pool, state: 'total' }, counts.totalCount);
        this.set({ pool, state: 'idle' }, counts.idleCount);
        this.set({ pool, state: 'waiting' }, counts.waitingCount);
      }
    },
  });
  return (name, pool) => {
    pools.set(name, pool);
  };
}

/** Seconds: a loop held up past 10 ms to 10 s (a request waits at least that long). */
const DELAY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const DELAY_RESOLUTION_MS = 10;

/**
 * How busy this thread's event loop is, labelled with `thread` so that the threads of one process
 * (`connect start`'s main and projector threads) show side by side:
 * connect_event_loop_busy_seconds_total (its rate is the share of time the loop ran callbacks, 1
 * when the thread is the bottleneck) and the histogram connect_event_loop_delay_seconds, how late
 * a timer due every 10 ms fired. Returns the function that stops observing (when the server closes).
 */
export function eventLoopMetrics(registry: Registry, thread: string): () => void {
  new Counter({
    name: 'connect_event_loop_busy_seconds_total',
    help: 'Time the thread’s event loop spent running callbacks (its rate: the share of time busy)',
    labelNames: ['thread'],
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ thread }, performance.eventLoopUtilization().active / 1000);
    },
  });
  const delays = new Histogram({
    name: 'connect_event_loop_delay_seconds',
    help: 'How late a timer due every 10 ms fired on the thread’s event loop',
    labelNames: ['thread'],
    buckets: DELAY_BUCKETS,
    registers: [registry],
  });
  // Its series from the first scrape on, before the timer first fires.
  delays.zero({ thread });
  return watchLoopDelays((seconds) => delays.observe({ thread }, seconds));
}

const delayObservers = new Set<(seconds: number) => void>();
let delayTimer: NodeJS.Timeout | undefined;

/**
 * One timer per thread, however many registries observe it (a test makes many servers). Not
 * monitorEventLoopDelay: on Node 20, the first late timer after its reset() is not recorded.
 */
function watchLoopDelays(observe: (seconds: number) => void): () => void {
  delayObservers.add(observe);
  if (!delayTimer) {
    let last = performance.now();
    delayTimer = setInterval(() => {
      const now = performance.now();
      const late = Math.max(0, now - last - DELAY_RESOLUTION_MS) / 1000;
      last = now;
      for (const each of delayObservers) each(late);
    }, DELAY_RESOLUTION_MS).unref();
  }
  return () => {
    delayObservers.delete(observe);
    if (delayObservers.size === 0) {
      clearInterval(delayTimer);
      delayTimer = undefined;
    }
  };
}

export type Metrics = MetricObjectWithValues<MetricValue<string>>[];

/** Metrics another thread collects (its registry's getMetricsAsJSON()). */
export type MetricsSource = () => Promise<Metrics>;

/**
 * The exposition of `own` and of each source (one that fails is left out, and `onFailure` told).
 * A metric that several of them have (a pool gauge, each with pools of its own) is merged by its
 * aggregator, summing by default; one that only one has is shown as it is, whatever its
 * aggregator (process_start_time_seconds' would omit it).
 */
export async function combinedMetrics(
  own: Registry,
  sources: readonly MetricsSource[],
  onFailure: (error: unknown) => void = () => {},
): Promise<string> {
  if (sources.length === 0) return own.metrics();
  // A source that cannot answer (its thread stopped or stuck) leaves out its own series only.
  const answered = await Promise.allSettled(sources.map((source) => source()));
  const theirs = answered.flatMap((answer) => {
    if (answer.status === 'fulfilled') return [answer.value];
    onFailure(answer.reason);
    return [];
  });
  const all = [await own.getMetricsAsJSON(), ...theirs];
  const holders = new Map<string, number>();
  for (const metrics of all) {
    for (const { name } of metrics) holders.set(name, (holders.get(name) ?? 0) + 1);
  }
  const asIs = (metric: Metrics[number]) =>
    holders.get(metric.name) === 1 ? { ...metric, aggregator: 'first' as const } : metric;
  return AggregatorRegistry.aggregate(all.map((metrics) => metrics.map(asIs))).metrics();
}
