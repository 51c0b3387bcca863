import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Two at once on this 2-core machine: most tests wait on child processes, fsyncs and sockets, and
    // vitest's default here (one fewer than the cores) ran them one by one (≈ 15 minutes).
    maxWorkers: 2,
    minWorkers: 1,
  },
});
