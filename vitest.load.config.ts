import { defineConfig } from 'vitest/config';

// The load test saturates both cores for a minute: it runs alone, after the other tests, so it
// neither disturbs them nor is disturbed by them.
export default defineConfig({
  test: {
    include: ['test/**/*.load.test.ts'],
    testTimeout: 180_000,
    hookTimeout: 120_000,
    globalSetup: ['test/support/run-temp.ts'],
    pool: 'forks',
    maxWorkers: 1,
  },
});
