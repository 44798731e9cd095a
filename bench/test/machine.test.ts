import { existsSync, readFileSync } from 'node:fs';
import { expect, test } from 'vitest';
import { describeMachine, kernelThreadsCpuMs, watchMachine } from '../support.ts';

const linux = existsSync('/proc/self/task');
/** Whether this /proc shows the kernel's threads (not so inside a container's own pid namespace). */
const seesKernel =
  linux && existsSync('/proc/2/comm') && readFileSync('/proc/2/comm', 'utf8') === 'kthreadd\n';

function burnCpu(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) Math.sqrt(Math.random());
}

test.runIf(seesKernel)(
  "the kernel's threads are told apart by their flag, each with its CPU so far",
  async () => {
    const threads = await kernelThreadsCpuMs();
    expect(threads?.get(2)?.name).toBe('kthreadd');
    expect(threads?.has(process.pid)).toBe(false);
    expect(threads?.has(process.ppid)).toBe(false);
    for (const { name, ms } of threads?.values() ?? []) {
      expect(name).not.toBe('');
      expect(ms).toBeGreaterThanOrEqual(0);
    }
  },
);

test.runIf(linux)(
  'a main thread kept busy is on a CPU, or waiting for one, most of the time it is watched',
  async () => {
    const watching = await watchMachine(process.pid);
    burnCpu(500);
    const reading = await watching.stop();
    const main = reading.serverMainThread;
    expect(reading.seconds).toBeGreaterThanOrEqual(0.5);
    // Runnable all along: on a CPU or waiting for one, whatever else the machine is doing.
    expect((main?.onCpu ?? 0) + (main?.waiting ?? 0)).toBeGreaterThan(0.6);
    expect(main?.onCpu).toBeLessThanOrEqual(1.05);
    expect(reading.kernel?.ms).toBeGreaterThanOrEqual(0);
    expect(describeMachine(reading)).toMatch(
      /^kernel threads \d+ ms of CPU in [\d.]+ s.*, server main thread waiting for a CPU [\d.]+ %$/,
    );
  },
);

test('without a pid, only the kernel is watched', async () => {
  const reading = await (await watchMachine()).stop();
  expect(reading.serverMainThread).toBeUndefined();
  expect(describeMachine(reading)).not.toContain('server');
});
