import type { SchedulerLike } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import type { MemorySample, PressureChange, PressureLevel } from '../src/model.js';
import { historySink, type FlushResult, type HistoryRecord, type HistoryWriter } from '../src/sinks/historySink.js';
import { HistoryError, type RetentionResult } from '../src/sinks/historyStore.js';

/** Records what the sink asked of the store, and when (virtual time). */
class FakeStore implements HistoryWriter {
  readonly calls: string[] = [];
  readonly appends: { atMs: number; samples: number[]; pressure: PressureLevel[] }[] = [];
  readonly retentions: number[] = [];
  failAppendWith: Error | undefined;

  constructor(private readonly scheduler: SchedulerLike) {}

  append(samples: readonly MemorySample[], pressure: readonly PressureChange[] = []): void {
    if (this.failAppendWith) throw this.failAppendWith;
    this.calls.push(`append@${this.scheduler.now()}`);
    this.appends.push({
      atMs: this.scheduler.now(),
      samples: samples.map((s) => s.timestampMs),
      pressure: pressure.map((p) => p.level),
    });
  }

  applyRetention(nowMs: number): RetentionResult {
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
