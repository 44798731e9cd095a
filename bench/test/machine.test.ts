import { existsSync } from 'node:fs';
import { expect, test } from 'vitest';
import { describeMachine, kernelThreadsCpuMs, watchMachine } from '../support.ts';

const linux = existsSync('/proc/self/task');

function burnCpu(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) Math.sqrt(Math.random());
}

test.runIf(linux)(
  "the kernel's threads are kthreadd and its children, each with its CPU so far",
  async () => {
    const threads = await kernelThreadsCpuMs();
    expect(threads.get(2)?.name).toBe('kthreadd');
    expect(threads.has(process.pid)).toBe(false);
    for (const { name, ms } of threads.values()) {
      expect(name).not.toBe('');
      expect(ms).toBeGreaterThanOrEqual(0);
    }
  },
);

test.runIf(linux)('a main thread kept busy shows on a CPU most of the time it is watched', async () => {
  const watching = await watchMachine(process.pid);
  burnCpu(300);
  const reading = await watching.stop();
  const main = reading.serverMainThread;
  expect(main?.onCpu).toBeGreaterThan(0.3);
  expect(main?.onCpu).toBeLessThanOrEqual(1.05);
  expect(main?.waiting).toBeGreaterThanOrEqual(0);
  expect(reading.kernelMs).toBeGreaterThanOrEqual(0);
  expect(describeMachine(reading)).toMatch(
    /^kernel threads \d+ ms of CPU.*, server main thread waiting for a CPU [\d.]+ %$/,
  );
});

test('without a pid, only the kernel is watched', async () => {
  const reading = await (await watchMachine()).stop();
  expect(reading.serverMainThread).toBeUndefined();
  expect(describeMachine(reading)).not.toContain('server');
});
