import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['{libs,services,cli}/*/test/**/*.test.ts', 'cli/test/**/*.test.ts', 'bench/test/**/*.test.ts'],
    globalSetup: ['./test/global-setup.ts'],
    // Generous: several tests start the CLI or the service as child processes, which on a
    // loaded 2-core machine takes seconds each.
    testTimeout: 180_000,
    hookTimeout: 120_000,
  },
});
