import { createHistogram, performance, type RecordableHistogram } from 'node:perf_hooks';
import {
  AggregatorRegistry,
  Counter,
  Gauge,
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

/**
 * How busy this thread's event loop is, labelled with `thread` so that the threads of one process
 * (`connect start`'s main and projector threads) show side by side:
 * connect_event_loop_busy_seconds_total (its rate is the share of time the loop ran callbacks, 1
 * when the thread is the bottleneck) and connect_event_loop_delay_seconds, the p99 and the
 * largest delay of a timer since the last scrape.
 */
export function eventLoopMetrics(registry: Registry, thread: string): void {
  const delays = threadLoopDelays();
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
  new Gauge({
    name: 'connect_event_loop_delay_seconds',
    help: 'Delay of the thread’s event loop since the last scrape: its p99 and its largest',
    labelNames: ['thread', 'stat'],
    registers: [registry],
    collect() {
      // A period without a sample (a scrape right after another) has no delay: 0, not the sentinels.
      const seen = delays.count > 0;
      this.set({ thread, stat: 'p99' }, seen ? delays.percentile(99) / 1e9 : 0);
      this.set({ thread, stat: 'max' }, seen ? delays.max / 1e9 : 0);
      delays.reset();
    },
  });
}

const DELAY_RESOLUTION_MS = 10;
let loopDelays: RecordableHistogram | undefined;

/**
 * The delays of a timer due every 10 ms, one recorder per thread however many registries read it
 * (a test makes many servers). Not monitorEventLoopDelay: on Node 20, after its reset() the first
 * late timer is taken as its start and not recorded, so a scrape right before a long block hides it.
 */
function threadLoopDelays(): RecordableHistogram {
  if (!loopDelays) {
    const recorded = createHistogram();
    let last = performance.now();
    setInterval(() => {
      const now = performance.now();
      recorded.record(Math.max(1, Math.round((now - last - DELAY_RESOLUTION_MS) * 1e6)));
      last = now;
    }, DELAY_RESOLUTION_MS).unref();
    loopDelays = recorded;
  }
  return loopDelays;
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
