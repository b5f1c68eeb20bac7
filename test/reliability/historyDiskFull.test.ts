/**
 * Reliability: the history disk fills up while memtide runs.
 *
 * A real SQLITE_FULL, from the real HistoryStore: the test lowers SQLite's
 * `max_page_count` on the store's own connection to the pages the file has
 * ("the disk is full"), then raises it again ("space was freed"). memtide must
 * raise a problem and the `engine:history` alert, keep sampling, keep a
 * bounded backlog (dropping the oldest, counted), and write the backlog once
 * writes work again. A property test then checks the sink's bookkeeping over
 * arbitrary failure patterns in virtual time.
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { Subject, VirtualTimeScheduler } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { createMemtide } from '../../src/app/memtide.js';
import type { Alert, MemorySample } from '../../src/model.js';
import { HistorySinkError, historySink, type FlushResult, type HistoryRecord, type HistoryWriter } from '../../src/sinks/historySink.js';
import { HistoryError, HistoryStore } from '../../src/sinks/historyStore.js';
import type { Logger } from '../../src/sinks/logger.js';
import { createPlatformReaders } from '../../src/sources/readers.js';
import type { EngineProblem } from '../../src/streams/engine.js';
import { stopAfterEach, tempDir } from '../support/lifecycle.js';
import { sleep, waitFor } from '../support/wait.js';

const FIXTURES = path.resolve(import.meta.dirname, '../fixtures');
const tmp = tempDir('memtide-diskfull-');
const { subscriptions, engines } = stopAfterEach();
const WAIT = { timeoutMs: 8_000 };

/** The store's own connection: `max_page_count` is per connection, so "the disk" must be filled there. */
function diskOf(store: HistoryStore) {
  const db = Reflect.get(store, 'db') as unknown;
  if (!(db instanceof Database)) throw new Error('HistoryStore no longer keeps its connection in `db`: update this test');
  const unlimited = Number(db.pragma('max_page_count', { simple: true }));
  return {
    /** No page can be added from now on: the next write that needs one fails with SQLITE_FULL. */
    fill: () => db.pragma(`max_page_count = ${Number(db.pragma('page_count', { simple: true }))}`),
    free: () => db.pragma(`max_page_count = ${unlimited}`),
  };
}

const collectingLogger = (lines: string[]): Logger => ({
  debug: () => undefined,
  info: (m) => lines.push(`info ${m}`),
  warn: (m) => lines.push(`warn ${m}`),
  error: (m) => lines.push(`error ${m}`),
});

describe('history: disk full while running (real SQLITE_FULL)', () => {
  it('alerts, keeps sampling, keeps a bounded backlog dropping the oldest, and writes it once there is room again', async () => {
    const dbFile = path.join(tmp, 'full.db');
    const logs: string[] = [];
    const memtide = createMemtide({
      config: {
        sampling: { intervalMs: 50 },
        history: { enabled: true, path: dbFile, flushIntervalMs: 100, maxPendingRecords: 8 },
        // No group wait / recovery delay here, so the test sees the whole episode in a second (defaults: 30 s, 2 min).
        alerts: { groupWaitMs: 0, recoveryDelayMs: 0 },
      },
      readers: createPlatformReaders({ platform: 'linux', procRoot: path.join(FIXTURES, 'proc-tree'), sysRoot: path.join(FIXTURES, 'sys-v1') }),
      logger: collectingLogger(logs),
    });
    engines.push(memtide);
    const store = memtide.history!;
    const disk = diskOf(store);
    const samples: MemorySample[] = [];
    const problems: EngineProblem[] = [];
    const flushes: FlushResult[] = [];
    const alerts: Alert[] = [];
    subscriptions.push(
      memtide.samples$.subscribe({ next: (s) => samples.push(s), error: (e: unknown) => problems.push({ source: 'sampling', error: e }) }),
      memtide.problems$.subscribe({ next: (p) => problems.push(p), error: () => undefined }),
      memtide.flushes$.subscribe({ next: (f) => flushes.push(f), error: () => undefined }),
      memtide.alerts$.subscribe({ next: (a) => alerts.push(a), error: () => undefined }),
    );
    await waitFor('a first successful flush', () => flushes.length > 0, WAIT);

    disk.fill();
    const first = await waitFor('the first history problem', () => problems.find((p) => p.source === 'history'), WAIT);
    const samplesAtFailure = samples.length;
    // The problem names what happened, and carries SQLite's own error underneath the store's.
    expect(first.error).toBeInstanceOf(HistorySinkError);
    const failure = first.error as HistorySinkError;
    expect(failure.code).toBe('MEMTIDE_ERR_HISTORY_PENDING');
    expect(failure.message).toMatch(/SQLITE_FULL/);
    expect(failure.cause).toBeInstanceOf(HistoryError);
    expect(((failure.cause as HistoryError).cause as { code?: string }).code).toBe('SQLITE_FULL');

    // Past the bound (8 records, 2 samples a flush) the oldest go, and that is counted.
    await waitFor('records dropped from the backlog', () =>
      problems.some((p) => p.error instanceof HistorySinkError && p.error.droppedRecords > 0),
      WAIT,
    );
    const pendingSeen = problems.flatMap((p) => (p.error instanceof HistorySinkError ? [p.error.pendingRecords] : []));
    expect(Math.max(...pendingSeen)).toBeLessThanOrEqual(8);
    expect(samples.length, 'sampling goes on while history cannot be written').toBeGreaterThan(samplesAtFailure + 4);

    const flushesBeforeFree = flushes.length;
    disk.free();
    const recovery = await waitFor('the flush that writes the backlog', () => flushes.slice(flushesBeforeFree).find((f) => f.retried !== undefined), WAIT);
    expect(recovery.retried).toBeGreaterThan(0);
    expect(recovery.dropped).toBeGreaterThan(0);
    expect(logs.some((l) => /^info history writes resumed: \d+ kept record\(s\) written, \d+ dropped/.test(l))).toBe(true);

    // One firing notification for the outage, escalated once records were dropped, resolved by the recovery.
    const history = alerts.filter((a) => a.key === 'engine:history');
    expect(history.map((a) => [a.status, a.severity])).toEqual([
      ['firing', 'warning'],
      ['firing', 'critical'],
      ['resolved', 'critical'],
    ]);
    expect(history[1]!.sinceMs, 'the escalation belongs to the same episode').toBe(history[0]!.sinceMs);
    expect(history[0]!.kind).toBe('engine');
    expect(history[0]!.message).toContain(dbFile);
    expect(history[0]!.recommendations[0]?.action).toMatch(/Free disk space/);
    expect(history[2]!.message).toMatch(new RegExp(`${recovery.dropped} were dropped`));

    await sleep(150);
    memtide.stop();
    const totalDropped = flushes.reduce((sum, f) => sum + (f.dropped ?? 0), 0);
    const emitted = samples.map((s) => s.timestampMs);
    const sqlite = new Database(dbFile, { readonly: true });
    try {
      expect(sqlite.pragma('integrity_check', { simple: true })).toBe('ok');
      const stored = new Set((sqlite.prepare('SELECT timestamp_ms AS t FROM system_samples').all() as { t: number }[]).map((r) => r.t));
      const missing = emitted.filter((t) => !stored.has(t));
      // Exactly the dropped records are missing (the only pressure change came before the outage)...
      expect(missing).toHaveLength(totalDropped);
      expect((sqlite.prepare('SELECT count(*) AS n FROM pressure_events').get() as { n: number }).n).toBe(1);
      // ...and they are the oldest of the outage: every sample after them was written.
      const lastMissing = Math.max(...missing);
      expect(emitted.filter((t) => t > Math.min(...missing) && t < lastMissing && stored.has(t))).toEqual([]);
    } finally {
      sqlite.close();
    }
    expect(problems.filter((p) => p.source !== 'history')).toEqual([]);
  });
});

describe('history: a failure that retrying cannot fix', () => {
  it('stops writing history with a problem and a critical alert, and sampling goes on', async () => {
    const memtide = createMemtide({
      config: {
        sampling: { intervalMs: 50 },
        history: { enabled: true, path: path.join(tmp, 'closed.db'), flushIntervalMs: 100 },
        alerts: { groupWaitMs: 0, recoveryDelayMs: 0 },
      },
      readers: createPlatformReaders({ platform: 'linux', procRoot: path.join(FIXTURES, 'proc-tree'), sysRoot: path.join(FIXTURES, 'sys-v1') }),
    });
    engines.push(memtide);
    const problems: EngineProblem[] = [];
    const alerts: Alert[] = [];
    const flushes: FlushResult[] = [];
    let samples = 0;
    subscriptions.push(
      memtide.problems$.subscribe({ next: (p) => problems.push(p), error: () => undefined }),
      memtide.alerts$.subscribe({ next: (a) => alerts.push(a), error: () => undefined }),
      memtide.flushes$.subscribe({ next: (f) => flushes.push(f), error: () => undefined }),
      memtide.samples$.subscribe({ next: () => (samples += 1), error: () => undefined }),
    );
    await waitFor('a first flush', () => flushes.length > 0, WAIT);
    memtide.history!.close(); // e.g. the file was replaced by something that is not a database
    const problem = await waitFor('the history problem', () => problems.find((p) => p.source === 'history'), WAIT);
    expect(problem.error).toMatchObject({ name: 'HistoryError', code: 'MEMTIDE_ERR_HISTORY_CLOSED' });
    const alert = await waitFor('the alert', () => alerts.find((a) => a.key === 'engine:history'), WAIT);
    expect(alert).toMatchObject({ status: 'firing', severity: 'critical', kind: 'engine', title: 'memtide stopped writing history' });
    const flushesAfter = flushes.length;
    const samplesAfter = samples;
    await sleep(300);
    expect(samples, 'sampling goes on').toBeGreaterThan(samplesAfter + 2);
    expect(flushes.length, 'no further write attempts').toBe(flushesAfter);
    expect(problems.filter((p) => p.source === 'history'), 'reported once, not every interval').toHaveLength(1);
  });
});

describe('historySink: backlog bookkeeping (property, virtual time)', () => {
  /** A store that fails (SQLITE_FULL) while `full`, recording what it wrote. */
  class FlakyStore implements HistoryWriter {
    full = false;
    readonly written: number[] = [];
    append(samples: readonly MemorySample[]): void {
      if (this.full) throw new HistoryError('MEMTIDE_ERR_HISTORY_WRITE', 'full', { cause: Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' }) });
      this.written.push(...samples.map((s) => s.timestampMs));
    }
    applyRetention() {
      return { rawDeleted: 0, aggregatesDeleted: 0, pressureDeleted: 0 };
    }
  }

  const sample = (timestampMs: number): HistoryRecord => ({
    kind: 'sample',
    sample: {
      timestampMs,
      system: { totalBytes: 1, availableBytes: 1, usedBytes: 0, swapTotalBytes: 0, swapUsedBytes: 0, psi: null, physicalTotalBytes: 1, cgroupLimitBytes: null },
      components: {},
      processes: [],
      self: { pid: 1, rssBytes: 1, heapUsedBytes: 1, heapTotalBytes: 1, externalBytes: 0, arrayBuffersBytes: 0, sampleCpuMs: 0 },
    },
  });

  /** The rule the sink promises, applied to the same schedule: what should end up written. */
  function expectedWrites(intervals: ReadonlyArray<{ records: number; full: boolean }>, maxPendingRecords: number): { written: number[]; dropped: number } {
    let backlog: number[] = [];
    const written: number[] = [];
    let next = 0;
    let dropped = 0;
    for (const { records, full } of intervals) {
      const batch = [...backlog, ...Array.from({ length: records }, () => (next += 1))];
      if (batch.length === 0) continue;
      if (full) {
        dropped += Math.max(0, batch.length - maxPendingRecords);
        backlog = batch.slice(Math.max(0, batch.length - maxPendingRecords));
      } else {
        written.push(...batch);
        backlog = [];
      }
    }
    written.push(...backlog); // completion, with room again
    return { written, dropped };
  }

  it('writes every record once, in order, unless it was among the oldest beyond the bound; drops are counted and the backlog stays bounded', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ records: fc.nat(6), full: fc.boolean() }), { minLength: 1, maxLength: 40 }),
        fc.nat(12),
        (intervals, maxPendingRecords) => {
          const scheduler = new VirtualTimeScheduler();
          const store = new FlakyStore();
          const source = new Subject<HistoryRecord>();
          const flushes: FlushResult[] = [];
          const failures: HistorySinkError[] = [];
          const errors: unknown[] = [];
          let next = 0;
          const sub = source
            .pipe(historySink(store, { flushIntervalMs: 100, maxPendingRecords, onWriteError: (e) => failures.push(e) }, scheduler))
            .subscribe({ next: (f) => flushes.push(f), error: (e: unknown) => errors.push(e) });
          // Interval i: its records arrive in (100 i, 100 i + 100); the disk state for its flush is set just before it.
          intervals.forEach(({ records, full }, i) => {
            for (let r = 0; r < records; r += 1) scheduler.schedule(() => source.next(sample((next += 1))), i * 100 + 10 + r);
            scheduler.schedule(() => (store.full = full), i * 100 + 99);
          });
          scheduler.schedule(() => {
            store.full = false;
            source.complete();
          }, intervals.length * 100 + 50);
          scheduler.flush();
          sub.unsubscribe();

          expect(errors).toEqual([]);
          const expected = expectedWrites(intervals, maxPendingRecords);
          expect(store.written).toEqual(expected.written);
          // Every drop is counted where it happened, and by the next successful write.
          expect(failures.reduce((sum, f) => sum + f.newlyDropped, 0)).toBe(expected.dropped);
          expect(store.written.length + expected.dropped).toBe(next);
          for (const failure of failures) expect(failure.pendingRecords).toBeLessThanOrEqual(maxPendingRecords);
          let since = 0;
          for (const flush of flushes) {
            const droppedMeanwhile = failures.filter((f) => f.atMs > since && f.atMs < flush.atMs).reduce((sum, f) => sum + f.newlyDropped, 0);
            expect(flush.dropped ?? 0).toBe(droppedMeanwhile);
            since = flush.atMs;
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
