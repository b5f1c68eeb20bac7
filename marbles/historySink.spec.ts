import type { SchedulerLike } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import type { MemorySample, PressureChange, PressureLevel } from '../src/model.js';
import { HistorySinkError, historySink, isTransientWriteError, type FlushResult, type HistoryRecord, type HistoryWriter } from '../src/sinks/historySink.js';
import { HistoryError, type RetentionResult } from '../src/sinks/historyStore.js';

/** Records what the sink asked of the store, and when (virtual time). */
class FakeStore implements HistoryWriter {
  readonly calls: string[] = [];
  readonly appends: { atMs: number; samples: number[]; pressure: PressureLevel[] }[] = [];
  readonly retentions: number[] = [];
  /** Processes of every sample written (to see what the backlog kept). */
  readonly processCounts: number[] = [];
  failAppendWith: Error | undefined;
  failRetentionWith: Error | undefined;

  constructor(private readonly scheduler: SchedulerLike) {}

  append(samples: readonly MemorySample[], pressure: readonly PressureChange[] = []): void {
    if (this.failAppendWith) throw this.failAppendWith;
    this.processCounts.push(...samples.map((s) => s.processes.length));
    this.calls.push(`append@${this.scheduler.now()}`);
    this.appends.push({
      atMs: this.scheduler.now(),
      samples: samples.map((s) => s.timestampMs),
      pressure: pressure.map((p) => p.level),
    });
  }

  applyRetention(nowMs: number): RetentionResult {
    if (this.failRetentionWith) throw this.failRetentionWith;
    this.calls.push(`retention@${nowMs}`);
    this.retentions.push(nowMs);
    return { rawDeleted: 10 * this.retentions.length, aggregatesDeleted: 0, pressureDeleted: 0 };
  }
}

function sampleRecord(timestampMs: number): HistoryRecord {
  return {
    kind: 'sample',
    sample: {
      timestampMs,
      system: {
        totalBytes: 8,
        availableBytes: 4,
        usedBytes: 4,
        swapTotalBytes: 0,
        swapUsedBytes: 0,
        psi: null,
        physicalTotalBytes: 8,
        cgroupLimitBytes: null,
      },
      components: { ollama: { rssBytes: 1, pssBytes: null, pssAnonBytes: null, processCount: 1 } },
      processes: [],
      self: { pid: 1, rssBytes: 1, heapUsedBytes: 1, heapTotalBytes: 1, externalBytes: 0, arrayBuffersBytes: 0, sampleCpuMs: 0 },
    },
  };
}

/** A sample with a process list (the store does not write it; the backlog drops it). */
function sampleWithProcesses(timestampMs: number): HistoryRecord {
  const record = sampleRecord(timestampMs) as Extract<HistoryRecord, { kind: 'sample' }>;
  return { kind: 'sample', sample: { ...record.sample, processes: [{ pid: 7, ppid: 1, name: 'ollama', component: 'ollama', rssBytes: 1, pssBytes: null, pssAnonBytes: null }] } };
}

/** What HistoryStore throws when SQLite answers SQLITE_FULL: a HistoryError whose cause carries the SQLite code. */
function diskFull(): HistoryError {
  const sqlite = Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
  return new HistoryError('MEMTIDE_ERR_HISTORY_WRITE', 'history append on x.db failed: database or disk is full', { cause: sqlite });
}

function pressureRecord(atMs: number, level: PressureLevel): HistoryRecord {
  return { kind: 'pressure', change: { atMs, level, previous: null, reasons: [] } };
}

function flush(atMs: number, samples: number, pressureEvents: number, rawDeleted?: number): FlushResult {
  const result: FlushResult = { atMs, samples, pressureEvents };
  if (rawDeleted !== undefined) result.retention = { rawDeleted, aggregatesDeleted: 0, pressureDeleted: 0 };
  return result;
}

describe('historySink (marbles)', () => {
  let testScheduler: TestScheduler;
  let store: FakeStore;

  beforeEach(() => {
    testScheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
    store = new FakeStore(testScheduler);
  });

  it('writes one batch per flush interval (default 5 s), retention on the first flush', () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const source = hot('-a-b-p 6000ms c 1000ms |', {
        a: sampleRecord(1),
        b: sampleRecord(3),
        p: pressureRecord(5, 'high'),
        c: sampleRecord(6006),
      });
      const expected = '  5000ms x 2006ms (y|)';
      expectObservable(source.pipe(historySink(store, {}, testScheduler))).toBe(expected, {
        x: flush(5000, 2, 1, 10),
        y: flush(7007, 1, 0),
      });
      expectSubscriptions(source.subscriptions).toBe('^ 7006ms !');
    });
    expect(store.appends).toEqual([
      { atMs: 5000, samples: [1, 3], pressure: ['high'] },
      { atMs: 7007, samples: [6006], pressure: [] },
    ]);
  });

  it('emits and writes nothing for intervals without records', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('- 12000ms a 2999ms |', { a: sampleRecord(12001) });
      expectObservable(source.pipe(historySink(store, { flushIntervalMs: 5000 }, testScheduler))).toBe('15000ms x |', {
        x: flush(15000, 1, 0, 10),
      });
      expectSubscriptions(source.subscriptions).toBe('^ 15000ms !');
    });
    // No empty transactions at 5 s and 10 s, and none for the empty buffer at completion.
    expect(store.appends.map((a) => a.atMs)).toEqual([15000]);
  });

  it('flushes the pending buffer when the source completes', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('-a-b 100ms |', { a: sampleRecord(1), b: sampleRecord(3) });
      expectObservable(source.pipe(historySink(store, { flushIntervalMs: 5000 }, testScheduler))).toBe('104ms (x|)', {
        x: flush(104, 2, 0, 10),
      });
    });
    expect(store.appends).toEqual([{ atMs: 104, samples: [1, 3], pressure: [] }]);
  });

  it('turns a store write error into an error notification (and unsubscribes the source)', () => {
    const failure = new HistoryError('MEMTIDE_ERR_HISTORY_WRITE', 'history append on x.db failed: disk I/O error');
    store.failAppendWith = failure;
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const source = hot('-a 6000ms b', { a: sampleRecord(1), b: sampleRecord(6002) });
      expectObservable(source.pipe(historySink(store, { flushIntervalMs: 5000 }, testScheduler))).toBe(
        '5000ms #',
        undefined,
        failure,
      );
      expectSubscriptions(source.subscriptions).toBe('^ 4999ms !');
    });
    expect(store.retentions).toEqual([]);
  });

  it('stops flushing on unsubscribe (the pending buffer is dropped, not written)', () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const source = hot('-a 5999ms b 5999ms c', { a: sampleRecord(1), b: sampleRecord(6001), c: sampleRecord(12001) });
      const unsubscribe = '^ 7000ms !';
      expectObservable(source.pipe(historySink(store, { flushIntervalMs: 5000 }, testScheduler)), unsubscribe).toBe(
        '5000ms x',
        { x: flush(5000, 1, 0, 10) },
      );
      expectSubscriptions(source.subscriptions).toBe('^ 7000ms !');
    });
    expect(store.appends.map((a) => a.samples)).toEqual([[1]]);
  });

  it('runs retention at most once per retentionIntervalMs, after the batch is written', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('-a 4999ms b 4999ms c 4999ms d 4999ms e 4999ms |', {
        a: sampleRecord(1),
        b: sampleRecord(5001),
        c: sampleRecord(10001),
        d: sampleRecord(15001),
        e: sampleRecord(20001),
      });
      const config = { flushIntervalMs: 5000, retentionIntervalMs: 12_000 };
      expectObservable(source.pipe(historySink(store, config, testScheduler))).toBe(
        '5000ms v 4999ms w 4999ms x 4999ms y 4999ms z |',
        {
          v: flush(5000, 1, 0, 10), // first flush
          w: flush(10000, 1, 0), // 5 s since the last run
          x: flush(15000, 1, 0), // 10 s
          y: flush(20000, 1, 0, 20), // 15 s >= 12 s
          z: flush(25000, 1, 0), // 5 s
        },
      );
    });
    expect(store.retentions).toEqual([5000, 20000]);
    expect(store.calls.slice(0, 2)).toEqual(['append@5000', 'retention@5000']);
  });

  it('keeps a separate retention clock per subscription', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('-a 100ms |', { a: sampleRecord(1) });
      const sink = source.pipe(historySink(store, { flushIntervalMs: 5000, retentionIntervalMs: 60_000 }, testScheduler));
      expectObservable(sink).toBe('102ms (x|)', { x: flush(102, 1, 0, 10) });
      expectObservable(sink).toBe('102ms (x|)', { x: flush(102, 1, 0, 20) });
    });
    expect(store.retentions).toEqual([102, 102]);
  });
});

describe('historySink (marbles): transient write failures', () => {
  let testScheduler: TestScheduler;
  let store: FakeStore;
  /** onWriteError calls: virtual time, code, kept, dropped in total, dropped by this failure. */
  let failures: Array<[number, string, number, number, number]>;
  const onWriteError = (error: HistorySinkError) => failures.push([error.atMs, error.code, error.pendingRecords, error.droppedRecords, error.newlyDropped]);

  beforeEach(() => {
    testScheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
    store = new FakeStore(testScheduler);
    failures = [];
  });

  it('keeps the records of a failed flush and writes them first with the next flush that succeeds', () => {
    store.failAppendWith = diskFull();
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      testScheduler.schedule(() => (store.failAppendWith = undefined), 12_000); // space freed at 12 s
      const source = hot('-a-p 6000ms b 5000ms c 4000ms |', { a: sampleRecord(1), p: pressureRecord(3, 'high'), b: sampleRecord(6004), c: sampleRecord(11005) });
      const config = { flushIntervalMs: 5000, onWriteError };
      // 5 s and 10 s fail (nothing emitted, the stream goes on); 15 s writes a, p, b and c in one transaction.
      expectObservable(source.pipe(historySink(store, config, testScheduler))).toBe('15000ms x 5ms |', {
        x: { ...flush(15_000, 3, 1, 10), retried: 3 },
      });
      expectSubscriptions(source.subscriptions).toBe('^ 15005ms !');
    });
    expect(failures).toEqual([
      [5000, 'MEMTIDE_ERR_HISTORY_PENDING', 2, 0, 0],
      [10_000, 'MEMTIDE_ERR_HISTORY_PENDING', 3, 0, 0],
    ]);
    expect(store.appends).toEqual([{ atMs: 15_000, samples: [1, 6004, 11005], pressure: ['high'] }]);
  });

  it('bounds the backlog to maxPendingRecords, dropping the oldest and counting them', () => {
    store.failAppendWith = diskFull();
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      testScheduler.schedule(() => (store.failAppendWith = undefined), 16_000);
      const source = hot('-a-b 5000ms c-d 5000ms e 5000ms f 1000ms |', {
        a: sampleRecord(1),
        b: sampleRecord(3),
        c: sampleRecord(5004),
        d: sampleRecord(5006),
        e: sampleRecord(10_007),
        f: sampleRecord(15_008),
      });
      const config = { flushIntervalMs: 5000, maxPendingRecords: 2, onWriteError };
      expectObservable(source.pipe(historySink(store, config, testScheduler))).toBe('16009ms (x|)', {
        x: { ...flush(16_009, 3, 0, 10), retried: 2, dropped: 3 },
      });
      expectSubscriptions(source.subscriptions).toBe('^ 16008ms !');
    });
    // 5 s: a, b kept. 10 s: a, b, c, d -> a, b dropped. 15 s: c, d, e -> c dropped.
    expect(failures).toEqual([
      [5000, 'MEMTIDE_ERR_HISTORY_PENDING', 2, 0, 0],
      [10_000, 'MEMTIDE_ERR_HISTORY_PENDING', 2, 2, 2],
      [15_000, 'MEMTIDE_ERR_HISTORY_PENDING', 2, 3, 1],
    ]);
    // The newest survive, oldest first; f arrived after the last failure and completion flushed it with them.
    expect(store.appends.map((a) => a.samples)).toEqual([[5006, 10_007, 15_008]]);
  });

  it('retries the backlog at an interval without new records', () => {
    store.failAppendWith = diskFull();
    testScheduler.run(({ hot, expectObservable }) => {
      testScheduler.schedule(() => (store.failAppendWith = undefined), 7000);
      const source = hot('-a', { a: sampleRecord(1) });
      expectObservable(source.pipe(historySink(store, { flushIntervalMs: 5000, onWriteError }, testScheduler)), '^ 12000ms !').toBe('10000ms x', {
        x: { ...flush(10_000, 1, 0, 10), retried: 1 },
      });
    });
    expect(failures.map(([atMs]) => atMs)).toEqual([5000]);
  });

  it('keeps samples without their process list (the store does not write it)', () => {
    store.failAppendWith = diskFull();
    testScheduler.run(({ hot, expectObservable }) => {
      testScheduler.schedule(() => (store.failAppendWith = undefined), 6000);
      const source = hot('-a 6000ms b', { a: sampleWithProcesses(1), b: sampleWithProcesses(6001) });
      expectObservable(source.pipe(historySink(store, { flushIntervalMs: 5000, onWriteError }, testScheduler)), '^ 11000ms !').toBe('10000ms x', {
        x: { ...flush(10_000, 2, 0, 10), retried: 1 },
      });
    });
    expect(store.processCounts).toEqual([0, 1]);
  });

  it('writes the backlog when the source completes, if the disk has room again', () => {
    store.failAppendWith = diskFull();
    testScheduler.run(({ cold, expectObservable }) => {
      testScheduler.schedule(() => (store.failAppendWith = undefined), 5500);
      const source = cold('-a 5998ms |', { a: sampleRecord(1) });
      expectObservable(source.pipe(historySink(store, { flushIntervalMs: 5000, onWriteError }, testScheduler))).toBe('6000ms (x|)', {
        x: { ...flush(6000, 1, 0, 10), retried: 1 },
      });
    });
  });

  it('with maxPendingRecords 0 keeps nothing, and reports every failed record as dropped', () => {
    store.failAppendWith = diskFull();
    testScheduler.run(({ hot, expectObservable }) => {
      testScheduler.schedule(() => (store.failAppendWith = undefined), 6000);
      const source = hot('-a-b 6000ms c', { a: sampleRecord(1), b: sampleRecord(3), c: sampleRecord(6004) });
      expectObservable(source.pipe(historySink(store, { flushIntervalMs: 5000, maxPendingRecords: 0, onWriteError }, testScheduler)), '^ 11000ms !').toBe('10000ms x', {
        x: { ...flush(10_000, 1, 0, 10), dropped: 2 },
      });
    });
    expect(failures).toEqual([[5000, 'MEMTIDE_ERR_HISTORY_PENDING', 0, 2, 2]]);
  });

  it('a transient retention failure is reported, the batch still counts, and retention runs at the next flush', () => {
    store.failRetentionWith = diskFull();
    testScheduler.run(({ hot, expectObservable }) => {
      testScheduler.schedule(() => (store.failRetentionWith = undefined), 6000);
      const source = hot('-a 5000ms b', { a: sampleRecord(1), b: sampleRecord(5002) });
      expectObservable(source.pipe(historySink(store, { flushIntervalMs: 5000, onWriteError }, testScheduler)), '^ 11000ms !').toBe('5000ms x 4999ms y', {
        x: flush(5000, 1, 0),
        y: flush(10_000, 1, 0, 10),
      });
    });
    expect(failures).toEqual([[5000, 'MEMTIDE_ERR_HISTORY_RETENTION', 0, 0, 0]]);
    expect(store.retentions).toEqual([10_000]);
  });

  it('an error that retrying cannot fix still ends the output, backlog and all', () => {
    store.failAppendWith = diskFull();
    const constraint = new HistoryError('MEMTIDE_ERR_HISTORY_WRITE', 'history append on x.db failed: CHECK constraint failed', {
      cause: Object.assign(new Error('CHECK constraint failed: level'), { code: 'SQLITE_CONSTRAINT_CHECK' }),
    });
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      testScheduler.schedule(() => (store.failAppendWith = constraint), 6000);
      const source = hot('-a 6000ms b', { a: sampleRecord(1), b: sampleRecord(6002) });
      expectObservable(source.pipe(historySink(store, { flushIntervalMs: 5000, onWriteError }, testScheduler))).toBe('10000ms #', undefined, constraint);
      expectSubscriptions(source.subscriptions).toBe('^ 9999ms !');
    });
    expect(failures.map(([atMs]) => atMs)).toEqual([5000]);
  });

  it('a throwing hook is the output\'s error', () => {
    store.failAppendWith = diskFull();
    const hookFailure = new Error('hook failed');
    testScheduler.run(({ hot, expectObservable }) => {
      const source = hot('-a', { a: sampleRecord(1) });
      const config = {
        flushIntervalMs: 5000,
        onWriteError: () => {
          throw hookFailure;
        },
      };
      expectObservable(source.pipe(historySink(store, config, testScheduler))).toBe('5000ms #', undefined, hookFailure);
    });
  });

  it('unsubscribing drops the backlog without another write attempt', () => {
    store.failAppendWith = diskFull();
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      testScheduler.schedule(() => (store.failAppendWith = undefined), 6000);
      const source = hot('-a 9000ms b', { a: sampleRecord(1), b: sampleRecord(9002) });
      expectObservable(source.pipe(historySink(store, { flushIntervalMs: 5000, onWriteError }, testScheduler)), '^ 7000ms !').toBe('');
      expectSubscriptions(source.subscriptions).toBe('^ 7000ms !');
    });
    expect(store.appends).toEqual([]);
    expect(failures).toHaveLength(1);
  });
});

describe('isTransientWriteError', () => {
  const sqlite = (code: string) => Object.assign(new Error(code), { code });
  it.each(['SQLITE_FULL', 'SQLITE_BUSY', 'SQLITE_BUSY_SNAPSHOT', 'SQLITE_LOCKED', 'SQLITE_IOERR_WRITE', 'SQLITE_READONLY', 'ENOSPC'])('%s (wrapped in HistoryError) is transient', (code) => {
    expect(isTransientWriteError(new HistoryError('MEMTIDE_ERR_HISTORY_WRITE', 'x', { cause: sqlite(code) }))).toBe(true);
    expect(isTransientWriteError(sqlite(code))).toBe(true);
  });

  it.each(['SQLITE_CONSTRAINT_CHECK', 'SQLITE_CORRUPT', 'SQLITE_MISMATCH', 'MEMTIDE_ERR_HISTORY_CLOSED'])('%s is not', (code) => {
    expect(isTransientWriteError(new HistoryError('MEMTIDE_ERR_HISTORY_WRITE', 'x', { cause: sqlite(code) }))).toBe(false);
  });

  it('an open query iterator ("busy executing a query") is transient; plain errors and non-errors are not', () => {
    expect(isTransientWriteError(new HistoryError('MEMTIDE_ERR_HISTORY_WRITE', 'x', { cause: new TypeError('This database connection is busy executing a query') }))).toBe(true);
    expect(isTransientWriteError(new Error('disk I/O error'))).toBe(false);
    expect(isTransientWriteError(undefined)).toBe(false);
    expect(isTransientWriteError('SQLITE_FULL')).toBe(false);
  });
});
