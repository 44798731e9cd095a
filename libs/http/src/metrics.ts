import { Counter, type Registry } from 'prom-client';

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
