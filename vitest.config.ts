import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['{libs,services,cli}/*/test/**/*.test.ts', 'cli/test/**/*.test.ts'],
    globalSetup: ['./test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
