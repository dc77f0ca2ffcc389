import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Two files at a time even on two cores (vitest's default there is one): most
    // tests wait on child processes, servers and disks, not on the CPU. Files share
    // nothing but the servers, where each takes a database, schema or prefix of its own.
    maxWorkers: Math.max(2, availableParallelism() - 1),
  },
});
