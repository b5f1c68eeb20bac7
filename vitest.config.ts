import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'marbles/**/*.spec.ts'],
    // CLI tests spawn the built CLI and real processes; give them room on a 2-core machine.
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Build dist/ once (only when stale): the CLI tests run the built command as a user would.
    globalSetup: ['test/setup/build.ts'],
  },
});
