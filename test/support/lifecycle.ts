/**
 * Cleanup for tests that start real engines and write real files: registered
 * with vitest where called (at a test file's top level), so it runs after a
 * failing test as well and one test's timers never run into the next.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Subscription } from 'rxjs';
import { afterAll, afterEach } from 'vitest';
import type { Memtide } from '../../src/app/memtide.js';

/** A fresh directory under the OS temp dir, removed after the file's tests. */
export function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Push what a test starts here: after each test every subscription is ended, then every engine stopped. */
export function stopAfterEach(): { subscriptions: Subscription[]; engines: Memtide[] } {
  const started = { subscriptions: [] as Subscription[], engines: [] as Memtide[] };
  afterEach(() => {
    for (const s of started.subscriptions.splice(0)) s.unsubscribe();
    for (const m of started.engines.splice(0)) m.stop();
  });
  return started;
}
