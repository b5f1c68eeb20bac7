/**
 * The RxJS side of the history: batches records in time and writes each batch
 * to the `HistoryStore` in one transaction. While writes fail for a reason
 * that can pass (disk full, database locked, I/O error), unwritten records are
 * kept in a bounded backlog and written with the next batch that succeeds.
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
  /**
   * Unwritten records (samples and pressure changes) kept while writes fail
   * transiently, retried at every flush; beyond it the oldest are dropped and
   * counted. 0 keeps nothing (a failed batch is dropped). Default 3600.
   */
  maxPendingRecords: number;
}

export const DEFAULT_HISTORY_SINK_CONFIG: Readonly<HistorySinkConfig> = Object.freeze({
  flushIntervalMs: 5_000,
  retentionIntervalMs: 60 * 60 * 1000,
  maxPendingRecords: 3_600,
});

/** What the sink tells its owner besides the flushes (it never throws these at it). */
export interface HistorySinkHooks {
  /**
   * A write or a retention run failed transiently (see {@link isTransientWriteError}) and the sink
   * goes on: the records are kept for the next flush (or dropped beyond `maxPendingRecords`).
   * Called synchronously at the flush; a throwing hook is the output's error.
   */
  onWriteError?: (error: HistorySinkError) => void;
}

/** One written batch. */
export interface FlushResult {
  /** Scheduler time of the flush. */
  atMs: number;
  /** Samples written in this transaction (backlog included). */
  samples: number;
  /** Pressure changes written in this transaction (backlog included). */
  pressureEvents: number;
  /** Present when retention ran after this flush. */
  retention?: RetentionResult;
  /** Records of earlier failed flushes written in this transaction; present only when there were some. */
  retried?: number;
  /** Records dropped (backlog over `maxPendingRecords`) since the previous successful write; present only when some were. */
  dropped?: number;
}

export type HistorySinkErrorCode =
  /** A batch could not be written; its records are kept (bounded) and retried at the next flush. */
  | 'MEMTIDE_ERR_HISTORY_PENDING'
  /** Retention could not run; the batch was written, retention is tried again at the next flush. */
  | 'MEMTIDE_ERR_HISTORY_RETENTION';

/** A transient history failure the sink survived (given to `onWriteError`, never thrown at the subscriber). */
export class HistorySinkError extends Error {
  override readonly name = 'HistorySinkError';
  constructor(
    readonly code: HistorySinkErrorCode,
    message: string,
    /** Scheduler time of the failed flush. */
    readonly atMs: number,
    /** Records kept for the next flush (after dropping). */
    readonly pendingRecords: number,
    /** Records dropped since the last successful write (this failure's included). */
    readonly droppedRecords: number,
    /** Records dropped by this failure. */
    readonly newlyDropped: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
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
 * SQLite result codes (and errnos) of failures that can pass on their own or
 * once someone frees space: retrying the same records later may succeed.
 * Prefixes: `SQLITE_IOERR_WRITE`, `SQLITE_BUSY_SNAPSHOT`, ... are included.
 */
const TRANSIENT_CODE = /^(SQLITE_(FULL|BUSY|LOCKED|IOERR|READONLY|CANTOPEN|NOMEM|PROTOCOL)|ENOSPC|EDQUOT|EIO)/;

/**
 * Whether a failed write is worth retrying with the same records: a transient
 * SQLite or OS condition anywhere in the `cause` chain (HistoryStore wraps the
 * SQLite error), or better-sqlite3's "busy executing a query" (a query
 * iterator still open on the connection, which ends). Anything else (a
 * constraint violation, a closed or corrupt database) would fail again with
 * the same records.
 */
export function isTransientWriteError(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth += 1) {
    const { code, message, cause } = current as { code?: unknown; message?: unknown; cause?: unknown };
    if (typeof code === 'string' && TRANSIENT_CODE.test(code)) return true;
    if (typeof message === 'string' && message.includes('busy executing')) return true;
    current = cause;
  }
  return false;
}

/** `code: message` of the innermost error with a code, for one-line reports. */
function reasonOf(error: unknown): string {
  let reason = error instanceof Error ? error.message : String(error);
  let current: unknown = error;
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth += 1) {
    const { code, message } = current as { code?: unknown; message?: unknown };
    if (typeof code === 'string' && code.startsWith('SQLITE_')) reason = `${code}: ${typeof message === 'string' ? message : ''}`;
    current = (current as { cause?: unknown }).cause;
  }
  return reason;
}

/**
 * The store writes neither the process list nor the engine's own figures of
 * a sample (only components and system memory), so a kept sample drops its
 * process list: the backlog then costs ~1 KB a sample instead of ~100 entries.
 */
function slim(record: HistoryRecord): HistoryRecord {
  return record.kind === 'sample' && record.sample.processes.length > 0 ? { kind: 'sample', sample: { ...record.sample, processes: [] } } : record;
}

/**
 * Decides when retention is due: on the first flush, then at most once per
 * `intervalMs` of scheduler time after the last successful run. One instance
 * per subscription.
 */
function retentionClock(intervalMs: number): { due(nowMs: number): boolean; ran(nowMs: number): void } {
  let lastRunMs: number | undefined;
  return {
    due: (nowMs) => lastRunMs === undefined || nowMs - lastRunMs >= intervalMs,
    ran: (nowMs) => {
      lastRunMs = nowMs;
    },
  };
}

/**
 * Writes history records to `store`, one transaction per `flushIntervalMs`,
 * and emits what each flush wrote.
 *
 * Records are collected with `bufferTime(flushIntervalMs, scheduler)`, so at
 * most one interval of data is ever unwritten: **a crash loses at most one
 * flush interval**. Intervals without records (and without a backlog) write
 * and emit nothing. Retention (`applyRetention(scheduler.now())`) runs on the
 * first flush and then at most once per `retentionIntervalMs`, after the
 * batch is written.
 *
 * **Transient failures** ({@link isTransientWriteError}: disk full, database
 * busy or locked, I/O error) do not end the stream: the batch's records join
 * a backlog that is written, oldest first, in the same transaction as the
 * next batch, at every flush interval (even one without new records) until a
 * write succeeds. The backlog holds at most `maxPendingRecords`; beyond it the
 * oldest records are dropped. Every such failure is handed to
 * `hooks.onWriteError` as a {@link HistorySinkError} (`MEMTIDE_ERR_HISTORY_PENDING`,
 * with the counts kept and dropped), and the flush that succeeds again says
 * how many backlog records it wrote (`retried`) and how many were dropped
 * (`dropped`). A transient retention failure is reported the same way
 * (`MEMTIDE_ERR_HISTORY_RETENTION`) and retention is tried again at the next
 * flush.
 *
 * Any other failure is the output's error notification (the store's
 * `HistoryError`, and the app layer decides): writing the same records again
 * would fail the same way. The failed batch and the backlog are lost with it.
 *
 * Completion of the source flushes the pending buffer and the backlog (then
 * completes), so an orderly shutdown should *complete* the source (e.g.
 * `takeUntil(stop$)`); unsubscribing drops both.
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
 *
 * disk full from 4 s to 12 s (F: onWriteError, backlog kept):
 * source: -a-------b-------|
 * output: -----F----F----y-|      y = { atMs: 15000, samples: 2, retried: 2, ... } (a and b, at the first write that works)
 * ```
 *
 * @param store where batches go (`HistoryStore`, or any object with `append`/`applyRetention`).
 * @param config flush and retention intervals, backlog bound, and the failure hook; missing fields take the defaults.
 * @param scheduler drives `bufferTime` and `now()`; pass a `TestScheduler` for virtual time.
 */
export function historySink(
  store: HistoryWriter,
  config: Partial<HistorySinkConfig> & HistorySinkHooks = {},
  scheduler: SchedulerLike = asyncScheduler,
): (source: Observable<HistoryRecord>) => Observable<FlushResult> {
  const { flushIntervalMs, retentionIntervalMs, maxPendingRecords } = {
    ...DEFAULT_HISTORY_SINK_CONFIG,
    ...definedOnly({ flushIntervalMs: config.flushIntervalMs, retentionIntervalMs: config.retentionIntervalMs, maxPendingRecords: config.maxPendingRecords }),
  };
  const onWriteError = config.onWriteError;
  return (source) =>
    defer(() => {
      const retention = retentionClock(retentionIntervalMs);
      /** Records of failed flushes, oldest first; never longer than maxPendingRecords. */
      let backlog: HistoryRecord[] = [];
      /** Records dropped since the last successful write. */
      let dropped = 0;

      /** Keeps what could not be written (bounded) and reports it; rethrows what retrying cannot fix. */
      const keep = (records: readonly HistoryRecord[], error: unknown, atMs: number): void => {
        if (!isTransientWriteError(error)) throw error;
        const kept = records.map(slim);
        const over = Math.max(0, kept.length - maxPendingRecords);
        backlog = over > 0 ? kept.slice(over) : kept;
        dropped += over;
        onWriteError?.(
          new HistorySinkError(
            'MEMTIDE_ERR_HISTORY_PENDING',
            `history write failed (${reasonOf(error)}); ${backlog.length} unwritten record(s) kept for the next flush` +
              ` (history.maxPendingRecords ${maxPendingRecords}), ${dropped} dropped since the last successful write`,
            atMs,
            backlog.length,
            dropped,
            over,
            { cause: error },
          ),
        );
      };

      const flush = (records: readonly HistoryRecord[]): FlushResult | null => {
        const retried = backlog.length;
        const all = retried > 0 ? [...backlog, ...records] : records;
        const { samples, pressure } = splitRecords(all);
        const atMs = scheduler.now();
        try {
          store.append(samples, pressure);
        } catch (error) {
          keep(all, error, atMs);
          return null;
        }
        const result: FlushResult = { atMs, samples: samples.length, pressureEvents: pressure.length };
        if (retried > 0) result.retried = retried;
        if (dropped > 0) result.dropped = dropped;
        backlog = [];
        dropped = 0;
        if (retention.due(atMs)) {
          try {
            result.retention = store.applyRetention(atMs);
            retention.ran(atMs);
          } catch (error) {
            // Deleting needs room in the WAL too: on a full disk retention waits for the next flush.
            if (!isTransientWriteError(error)) throw error;
            onWriteError?.(
              new HistorySinkError('MEMTIDE_ERR_HISTORY_RETENTION', `history retention failed (${reasonOf(error)}); tried again at the next flush`, atMs, 0, 0, 0, {
                cause: error,
              }),
            );
          }
        }
        return result;
      };

      return source.pipe(
        bufferTime(flushIntervalMs, scheduler),
        // An interval without new records still retries the backlog: the disk may have been freed meanwhile.
        filter((records) => records.length > 0 || backlog.length > 0),
        map(flush),
        filter((result): result is FlushResult => result !== null),
      );
    });
}

/** Drops undefined values, so `{ ...defaults, ...definedOnly(partial) }` keeps the defaults for them. */
function definedOnly<T extends object>(values: T): Partial<T> {
  return Object.fromEntries(Object.entries(values).filter(([, value]) => value !== undefined)) as Partial<T>;
}
