/**
 * The RxJS side of the history: batches records in time and writes each batch
 * to the `HistoryStore` in one transaction.
 */
import { asyncScheduler, bufferTime, defer, filter, map, type Observable, type SchedulerLike } from 'rxjs';
import type { MemorySample, PressureChange } from '../model.js';
import type { HistoryStore, RetentionResult } from './historyStore.js';

/** What the sink stores: samples and pressure changes, merged into one stream. */
export type HistoryRecord = { kind: 'sample'; sample: MemorySample } | { kind: 'pressure'; change: PressureChange };

export interface HistorySinkConfig {
  /** Records are written in one transaction per interval; a crash loses at most this much. Default 5000. */
  flushIntervalMs: number;
  /** Minimum time between two `applyRetention` runs. Default 1 h. */
  retentionIntervalMs: number;
}

export const DEFAULT_HISTORY_SINK_CONFIG: Readonly<HistorySinkConfig> = Object.freeze({
  flushIntervalMs: 5_000,
  retentionIntervalMs: 60 * 60 * 1000,
});

/** One written batch. */
export interface FlushResult {
  /** Scheduler time of the flush. */
  atMs: number;
  /** Samples written in this transaction. */
  samples: number;
  /** Pressure changes written in this transaction. */
  pressureEvents: number;
  /** Present when retention ran after this flush. */
  retention?: RetentionResult;
}

/** The part of `HistoryStore` the sink uses (a fake with these shapes is enough in tests). */
export type HistoryWriter = Pick<HistoryStore, 'append' | 'applyRetention'>;

interface Batch {
  samples: MemorySample[];
  pressure: PressureChange[];
}

function splitRecords(records: readonly HistoryRecord[]): Batch {
  const batch: Batch = { samples: [], pressure: [] };
  for (const record of records) {
    if (record.kind === 'sample') batch.samples.push(record.sample);
    else batch.pressure.push(record.change);
  }
  return batch;
}

/**
 * Decides when retention is due: on the first flush, then at most once per
 * `intervalMs` of scheduler time. One instance per subscription.
 */
function retentionClock(intervalMs: number): (nowMs: number) => boolean {
  let lastRunMs: number | undefined;
  return (nowMs) => {
    if (lastRunMs !== undefined && nowMs - lastRunMs < intervalMs) return false;
    lastRunMs = nowMs;
    return true;
  };
}

/**
 * Writes history records to `store`, one transaction per `flushIntervalMs`,
 * and emits what each flush wrote.
 *
 * Records are collected with `bufferTime(flushIntervalMs, scheduler)`, so at
 * most one interval of data is ever unwritten: **a crash loses at most one
 * flush interval**. Intervals without records write (and emit) nothing.
 * Retention (`applyRetention(scheduler.now())`) runs on the first flush and
 * then at most once per `retentionIntervalMs`, after the batch is written.
 *
 * Completion of the source flushes the pending buffer (then completes), so an
 * orderly shutdown should *complete* the source (e.g. `takeUntil(stop$)`);
 * unsubscribing drops the pending buffer.
 *
 * A failing write is not swallowed: the store's error (a `HistoryError`) is
 * the error notification of the output, and the app layer decides (log,
 * disable history, restart). The failed batch is lost with it.
 *
 * ```
 * one frame = 1 s; flushIntervalMs: 5 s, retentionIntervalMs: 12 s
 *
 * source: -a--p-------b--------------c-----|     a, b, c samples; p a pressure change
 * output: -----x---------y--------------z--|
 *
 * x = { atMs: 5000,  samples: 1, pressureEvents: 1, retention: {...} }  first flush runs retention
 *                                                  (10 s: empty buffer, nothing written or emitted)
 * y = { atMs: 15000, samples: 1, pressureEvents: 0 }                    15 - 5 < 12: no retention
 * z = { atMs: 30000, samples: 1, pressureEvents: 0, retention: {...} }  30 - 5 >= 12: retention
 *                                                  (33 s: completion flushes an empty buffer: nothing)
 * ```
 *
 * @param store where batches go (`HistoryStore`, or any object with `append`/`applyRetention`).
 * @param config flush and retention intervals; missing fields take the defaults.
 * @param scheduler drives `bufferTime` and `now()`; pass a `TestScheduler` for virtual time.
 */
export function historySink(
  store: HistoryWriter,
  config: Partial<HistorySinkConfig> = {},
  scheduler: SchedulerLike = asyncScheduler,
): (source: Observable<HistoryRecord>) => Observable<FlushResult> {
  const { flushIntervalMs, retentionIntervalMs } = { ...DEFAULT_HISTORY_SINK_CONFIG, ...config };
  return (source) =>
    defer(() => {
      const retentionDue = retentionClock(retentionIntervalMs);
      const flush = (records: readonly HistoryRecord[]): FlushResult => {
        const { samples, pressure } = splitRecords(records);
        // Throws on failure; `map` turns that into the output's error notification.
        // TODO(history retry): a later issue adds a bounded retry buffer here
        // (keep failed batches, retry on the next flush, drop oldest beyond a cap)
        // so a transient SQLITE_BUSY/disk-full does not end history writing.
        store.append(samples, pressure);
        const atMs = scheduler.now();
        const result: FlushResult = { atMs, samples: samples.length, pressureEvents: pressure.length };
        if (retentionDue(atMs)) result.retention = store.applyRetention(atMs);
        return result;
      };
      return source.pipe(
        bufferTime(flushIntervalMs, scheduler),
        filter((records) => records.length > 0),
        map(flush),
      );
    });
}
