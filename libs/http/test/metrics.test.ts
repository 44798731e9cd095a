import { Counter, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { poolGauge } from '../src/metrics.ts';
import { createServer } from '../src/server.ts';

const pool = (total: number) => ({ totalCount: total, idleCount: 1, waitingCount: 0 });

describe('/metrics with another thread’s metrics', () => {
  it('shows both: a metric both have once, with the series of each; the others as they are', async () => {
    const app = createServer({ logLevel: 'silent', checkReady: async () => undefined });
    app.watchPool('main', pool(7));
    const other = new Registry();
    poolGauge(other)('projector', pool(13));
    new Counter({
      name: 'connect_other_total',
      help: 'Only the other thread counts this',
      registers: [other],
    }).inc(3);
    app.addMetricsSource(() => other.getMetricsAsJSON());

    const text = (await app.inject('/metrics')).body;
    expect(text.match(/^# TYPE connect_db_pool_connections gauge$/gm)).toHaveLength(1);
    expect(text).toContain('connect_db_pool_connections{pool="main",state="total"} 7');
    expect(text).toContain('connect_db_pool_connections{pool="projector",state="total"} 13');
    expect(text).toContain('connect_other_total 3');
    // Only this registry has them; their aggregators would omit, average or pick among several.
    expect(text).toMatch(/^process_start_time_seconds \d+$/m);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds /m);
    await app.close();
  });

  it('a metric with the same series in both is added up', async () => {
    const app = createServer({ logLevel: 'silent', checkReady: async () => undefined });
    const counter = (registry: Registry, by: number) =>
      new Counter({ name: 'connect_both_total', help: 'Counted in both', registers: [registry] }).inc(by);
    counter(app.metrics, 2);
    const other = new Registry();
    counter(other, 5);
    app.addMetricsSource(() => other.getMetricsAsJSON());
    expect((await app.inject('/metrics')).body).toMatch(/^connect_both_total 7$/m);
    await app.close();
  });

  it('a source that fails leaves out its own series only', async () => {
    const app = createServer({ logLevel: 'silent', checkReady: async () => undefined });
    app.watchPool('main', pool(7));
    app.addMetricsSource(() => Promise.reject(new Error('projector thread exited (code 1)')));
    const response = await app.inject('/metrics');
    expect(response.statusCode).toBe(200);
    expect(response.body).toContain('connect_db_pool_connections{pool="main",state="total"} 7');
    expect(response.body).toMatch(/^process_start_time_seconds \d+$/m);
    await app.close();
  });

  it('says how busy the event loop was and how late its timers fired, to every reader', async () => {
    const apps = [1, 2].map(() => createServer({ logLevel: 'silent', checkReady: async () => undefined }));
    const scrape = async (app: (typeof apps)[number]) => {
      const text = (await app.inject('/metrics')).body;
      const read = (pattern: RegExp) => Number(pattern.exec(text)?.[1]);
      return {
        busy: read(/^connect_event_loop_busy_seconds_total\{thread="main"\} (\S+)$/m),
        // Delays of more than 0.25 s: all of them, less those up to 0.25 s.
        over250ms:
          read(/^connect_event_loop_delay_seconds_count\{thread="main"\} (\S+)$/m) -
          read(/^connect_event_loop_delay_seconds_bucket\{le="0.25",thread="main"\} (\S+)$/m),
      };
    };
    const before = await Promise.all(apps.map(scrape));
    const blockedUntil = performance.now() + 300;
    while (performance.now() < blockedUntil) {
      // the loop held for 300 ms, as a long synchronous task would
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    const after = await Promise.all(apps.map(scrape));
    // Each server's /metrics shows it, however often the other was read in between.
    for (const [i, seen] of after.entries()) {
      expect(seen.busy - (before[i]?.busy ?? 0)).toBeGreaterThanOrEqual(0.3);
      expect(seen.over250ms - (before[i]?.over250ms ?? 0)).toBe(1);
    }
    await Promise.all(apps.map((app) => app.close()));
  });
});
