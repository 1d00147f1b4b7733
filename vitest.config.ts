import { defineConfig } from 'vitest/config';

// Integration tests start real registries and clients: give them time, and keep the
// two-core machine from being oversubscribed by running files in a small pool.
export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['test/**/*.load.test.ts', '**/node_modules/**'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    globalSetup: ['test/support/run-temp.ts'],
    pool: 'forks',
    maxWorkers: 2,
  },
});
