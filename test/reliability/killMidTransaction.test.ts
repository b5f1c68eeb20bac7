/**
 * Reliability: `kill -9` in the middle of a history transaction, for sure.
 *
 * An external kill (killRunner.test.ts) hits a transaction only by chance;
 * here a child process running `createMemtide()` with heavy synthetic history
 * (120 components, ~2400 statements per transaction) SIGKILLs itself after
 * half of a transaction's rows were inserted, before the commit
 * (support/historyWriterChild.ts). Three runs on the same database, dying in
 * different flushes. After each: `integrity_check` ok, every committed flush
 * entirely there, nothing of the torn one, and the samples lost are only the
 * last ones, spanning at most one flush interval.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { HistoryStore } from '../../src/sinks/historyStore.js';

const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
const CHILD = path.join(import.meta.dirname, 'support/historyWriterChild.ts');
const COMPONENTS = 120;
const INTERVAL_MS = 50;
const FLUSH_INTERVAL_MS = 300;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memtide-kill-tx-'));

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface ChildLog {
  samples: number[];
  flushes: Array<{ atMs: number; samples: number }>;
  killedInFlush: number | null;
  other: string[];
}

function parseLog(text: string): ChildLog {
  const log: ChildLog = { samples: [], flushes: [], killedInFlush: null, other: [] };
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const [kind, a, b] = line.split(' ');
    if (kind === 'S') log.samples.push(Number(a));
    else if (kind === 'F') log.flushes.push({ atMs: Number(a), samples: Number(b) });
    else if (kind === 'K') log.killedInFlush = Number(a);
    else log.other.push(line);
  }
  return log;
}

async function runChild(db: string, dieInFlush: number): Promise<{ signal: NodeJS.Signals | null; log: ChildLog; stderr: string }> {
  const logFile = path.join(tmp, `child-${dieInFlush}-${Date.now()}.log`);
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, db, logFile, String(dieInFlush), String(COMPONENTS)], {
    cwd: REPO_ROOT, // where --import tsx resolves
    env: { PATH: process.env.PATH ?? '' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const signal = await new Promise<NodeJS.Signals | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (_code, sig) => resolve(sig));
  });
  return { signal, log: parseLog(fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : ''), stderr };
}

describe('kill -9 inside a history transaction', () => {
  it('loses only the torn transaction, never corrupts, and the next run goes on from the file', { timeout: 60_000 }, async () => {
    const db = path.join(tmp, 'history.db');
    let storedBefore = 0;
    for (const dieInFlush of [3, 2, 4]) {
      const { signal, log, stderr } = await runChild(db, dieInFlush);
      expect(signal, `the child died by its own SIGKILL; stderr:\n${stderr}\nlog: ${log.other.join('\n')}`).toBe('SIGKILL');
      expect(log.killedInFlush).toBe(dieInFlush);
      expect(log.flushes, 'the flushes before the torn one committed').toHaveLength(dieInFlush - 1);
      expect(log.other, 'no problem, error or timeout in the child').toEqual([]);

      HistoryStore.open(db).close(); // the next run's view: WAL recovered, schema checked
      const sqlite = new Database(db, { readonly: true });
      try {
        expect(sqlite.pragma('integrity_check', { simple: true })).toBe('ok');
        const stored = (sqlite.prepare('SELECT timestamp_ms AS t FROM system_samples ORDER BY t').all() as { t: number }[]).map((r) => r.t);
        // Everything committed is there, nothing of the torn transaction.
        const committed = log.flushes.reduce((sum, f) => sum + f.samples, 0);
        expect(stored.length - storedBefore, 'samples of this run in the file = samples of its committed flushes').toBe(committed);
        const torn = sqlite.prepare('SELECT timestamp_ms, count(*) AS n FROM component_samples GROUP BY timestamp_ms HAVING n != ?').all(COMPONENTS + 2);
        expect(torn, 'no sample with a partial set of component rows').toEqual([]);
        const aggregated = sqlite.prepare('SELECT sum(sample_count) AS n FROM system_buckets').get() as { n: number };
        expect(aggregated.n, 'aggregates count exactly the stored samples').toBe(stored.length);

        // Lost: only the newest samples of the run, within one flush interval.
        const storedSet = new Set(stored);
        const lost = log.samples.filter((t) => !storedSet.has(t));
        expect(lost.length).toBeGreaterThan(0);
        const newestStored = Math.max(...log.samples.filter((t) => storedSet.has(t)));
        expect(Math.min(...lost), 'only samples after the last committed one are lost').toBeGreaterThan(newestStored);
        expect(Math.max(...lost) - Math.min(...lost), 'the lost samples span at most one flush interval').toBeLessThanOrEqual(FLUSH_INTERVAL_MS + INTERVAL_MS);
        storedBefore = stored.length;
      } finally {
        sqlite.close();
      }
    }
  });
});
