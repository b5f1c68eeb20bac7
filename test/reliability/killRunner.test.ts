/**
 * Reliability: `kill -9` of the real runner (`memtide run`, the built CLI)
 * during heavy history writes, three times in a row on the same database.
 *
 * After every kill the database must pass `PRAGMA integrity_check`, hold no
 * torn transaction (every stored sample has all its component rows, and the
 * 1-minute aggregates count exactly the stored samples: they are written in
 * the same transaction), and lose at most one flush interval: the newest
 * stored sample is at most flushIntervalMs + one sampling interval older than
 * the kill (plus a scheduling allowance below a second flush interval, for a
 * loaded 2-core machine). The next run opens the killed file and goes on.
 *
 * "Heavy": 100 extra components (rules matching nothing still get a row per
 * sample), sampled every 50 ms and flushed every 500 ms, i.e. ~2000 rows and
 * bucket upserts per transaction.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HistoryStore } from '../../src/sinks/historyStore.js';
import { CLI_PATH, ensureBuilt } from '../setup/build.js';
import { cleanEnv } from '../support/cliEnv.js';
import { sleep, waitFor } from '../support/wait.js';

const INTERVAL_MS = 50;
const FLUSH_INTERVAL_MS = 500;
/** Scheduling allowance (a loaded machine is late): keeps the bound below two flush intervals. */
const LATE_MS = 400;
const EXTRA_COMPONENTS = 100;
const ROUNDS = 3;

let tmp: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  await ensureBuilt();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memtide-kill-runner-'));
});

afterAll(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Newest stored sample, read through a separate read-only connection (WAL lets it read while the runner writes). */
function newestStored(db: string): number | null {
  if (!fs.existsSync(db)) return null;
  try {
    const sqlite = new Database(db, { readonly: true, fileMustExist: true });
    try {
      return (sqlite.prepare('SELECT max(timestamp_ms) AS t FROM system_samples').get() as { t: number | null }).t;
    } finally {
      sqlite.close();
    }
  } catch {
    return null; // not created or not migrated yet
  }
}

describe('kill -9 of memtide run during heavy history writes', () => {
  it(`leaves a consistent database missing at most one flush interval, ${ROUNDS} times in a row`, { timeout: 60_000 }, async () => {
    const db = path.join(tmp, 'history.db');
    const configFile = path.join(tmp, 'memtide.json');
    const rules = Array.from({ length: EXTRA_COMPONENTS }, (_, i) => ({ component: `c${i}`, name: `^memtide-none-${i}$` }));
    fs.writeFileSync(configFile, JSON.stringify({ components: { rules } }));
    const componentsPerSample = EXTRA_COMPONENTS + 2; // + engine + other

    let previousNewest = 0;
    for (let round = 1; round <= ROUNDS; round += 1) {
      const child = spawn(
        process.execPath,
        [CLI_PATH, 'run', '--config', configFile, '--db', db, '--interval', `${INTERVAL_MS}ms`, '--no-server', '--set', `history.flushIntervalMs=${FLUSH_INTERVAL_MS}ms`],
        { cwd: tmp, env: cleanEnv(), stdio: ['ignore', 'ignore', 'pipe'] },
      );
      children.push(child);
      let stderr = '';
      child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
      const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_code, signal) => resolve(signal)));

      // Let it write a few flushes past whatever the previous runs left, then kill at a random point of a flush cycle.
      const startedAt = Date.now();
      await waitFor(`round ${round}: three flushes`, () => (newestStored(db) ?? 0) > Math.max(previousNewest, startedAt) + 2 * FLUSH_INTERVAL_MS, { timeoutMs: 20_000, pollMs: 25, detail: () => `runner stderr:\n${stderr}` });
      await sleep(Math.random() * FLUSH_INTERVAL_MS);
      const killedAt = Date.now();
      child.kill('SIGKILL');
      expect(await exited, `round ${round}: killed by SIGKILL`).toBe('SIGKILL');

      // The store opens the killed file (recovering the WAL) like the next run will.
      HistoryStore.open(db).close();
      const sqlite = new Database(db, { readonly: true });
      try {
        expect(sqlite.pragma('integrity_check', { simple: true }), `round ${round}`).toBe('ok');
        const { newest, samples } = sqlite.prepare('SELECT max(timestamp_ms) AS newest, count(*) AS samples FROM system_samples').get() as { newest: number; samples: number };
        const lostMs = killedAt - newest;
        expect(lostMs, `round ${round}: newest stored sample ${lostMs} ms before the kill`).toBeLessThanOrEqual(FLUSH_INTERVAL_MS + INTERVAL_MS + LATE_MS);
        expect(newest).toBeGreaterThan(previousNewest);
        // No torn transaction: every stored sample has all its component rows...
        const torn = sqlite.prepare('SELECT timestamp_ms, count(*) AS n FROM component_samples GROUP BY timestamp_ms HAVING n != ?').all(componentsPerSample);
        expect(torn, `round ${round}: samples with a partial set of component rows`).toEqual([]);
        const withComponents = sqlite.prepare('SELECT count(DISTINCT timestamp_ms) AS n FROM component_samples').get() as { n: number };
        expect(withComponents.n).toBe(samples);
        // ...and the aggregates, updated in the same transaction, count exactly the stored samples.
        const aggregated = sqlite.prepare('SELECT sum(sample_count) AS n FROM system_buckets').get() as { n: number };
        expect(aggregated.n, `round ${round}: aggregates vs raw samples`).toBe(samples);
        previousNewest = newest;
      } finally {
        sqlite.close();
      }
    }
  });
});
