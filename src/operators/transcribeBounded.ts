import {
  asyncScheduler,
  defer,
  EMPTY,
  from,
  isObservable,
  Observable,
  of,
  type ObservableInput,
  type OperatorFunction,
  type SchedulerLike,
  type Subscription,
} from 'rxjs';
import type { AudioChunk, PressureChange, PressureLevel, TranscriptSegment } from '../model.js';

/** Options of {@link transcribeBounded}: the concurrency and queue keys of the `transcription` config section. */
export interface TranscribeBoundedConfig {
  /** Chunks transcribed at once at low and medium pressure (>= 1). */
  maxConcurrent: number;
  /** Chunks accepted and waiting for a transcriber (>= 1). */
  maxQueuedChunks: number;
  /** Chunks at once at high pressure; null/undefined: max(1, floor(maxConcurrent / 2)). */
  highConcurrency?: number | null;
  /** Chunks at once at critical pressure: 0 pauses, 1 keeps one going. */
  criticalConcurrency: number;
}

/** What the operator needs of a transcriber. A `Transcriber` (Promise-based) fits; marble tests pass Observables that take virtual time. */
export interface ChunkTranscriber {
  transcribe(chunk: AudioChunk, signal: AbortSignal): ObservableInput<{ text: string }>;
  /** Asked at critical pressure once nothing is in flight. */
  unload(): ObservableInput<unknown> | void;
  /** Asked whenever pressure lowers the concurrency: keep at most this many model copies. */
  shrinkTo?(copies: number): void;
}

/** One transcribed chunk: the transcript line plus where it came from. */
export interface TranscribedChunk extends TranscriptSegment {
  /** The chunk's `index` in its source. */
  chunkIndex: number;
  firstSample: number;
  sampleCount: number;
  /** The source's last chunk. */
  last: boolean;
  /** Time from the start of its transcription to its result, on the operator's scheduler. */
  transcribeMs: number;
}

/** Queue depth and buffers, in chunks and in 16 kHz samples (what memory follows). */
export interface TranscribeStats {
  /** Accepted, waiting for a transcriber. */
  queuedChunks: number;
  queuedSamples: number;
  /** Being transcribed now. */
  inFlight: number;
  inFlightSamples: number;
  /** Transcribed, waiting for an earlier chunk to finish (output keeps chunk order). */
  reorderChunks: number;
  /** Emitted so far. */
  completed: number;
  /** Chunks allowed at once now (follows pressure). */
  concurrency: number;
  level: PressureLevel;
}

export interface TranscribeBoundedHooks {
  /**
   * Demand, Reactive-Streams style: called with how many more chunks the
   * operator can take (first with maxQueuedChunks at subscription, then one per
   * chunk that leaves the queue). A pull-based source (`pullOnDemand`) reads
   * exactly that many; a source that sends more than was asked while the queue
   * is full gets a MEMTIDE_ERR_TRANSCRIBE_OVERFLOW error.
   */
  onDemand?(count: number): void;
  /** Called after every change of the counters. */
  onStats?(stats: TranscribeStats): void;
  /** An `unload()` that failed (transcription goes on). */
  onUnloadError?(error: unknown): void;
  /**
   * Batch hold (the coordinator's `batchHold$`, as booleans): while true no
   * new chunk starts and no new demand is announced (so a pull-based source
   * stops reading), chunks in flight finish, and once nothing is in flight
   * the transcriber is asked to `unload()`. False resumes in order; nothing
   * is lost or reordered. Should replay its latest value (a BehaviorSubject,
   * `batchHold$`): each subscription starts unheld until its first value.
   */
  hold$?: Observable<boolean>;
}

export type TranscribeErrorCode = 'MEMTIDE_ERR_TRANSCRIBE_OVERFLOW' | 'MEMTIDE_ERR_TRANSCRIBE_CHUNK' | 'MEMTIDE_ERR_TRANSCRIBE_CONFIG';

export class TranscribeError extends Error {
  readonly code: TranscribeErrorCode;
  constructor(code: TranscribeErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TranscribeError';
    this.code = code;
  }
}

/** Chunks allowed at once at `level`. */
export function concurrencyFor(level: PressureLevel, config: TranscribeBoundedConfig): number {
  switch (level) {
    case 'low':
    case 'medium':
      return config.maxConcurrent;
    case 'high':
      return Math.min(config.maxConcurrent, config.highConcurrency ?? Math.max(1, Math.floor(config.maxConcurrent / 2)));
    case 'critical':
      return Math.min(config.maxConcurrent, config.criticalConcurrency);
  }
}

function validate(config: TranscribeBoundedConfig): void {
  const whole = (name: string, value: unknown, min: number) => {
    if (!(Number.isInteger(value) && (value as number) >= min)) {
      throw new TranscribeError('MEMTIDE_ERR_TRANSCRIBE_CONFIG', `${name} must be an integer >= ${min}, got ${String(value)}`);
    }
  };
  whole('maxConcurrent', config.maxConcurrent, 1);
  whole('maxQueuedChunks', config.maxQueuedChunks, 1);
  whole('criticalConcurrency', config.criticalConcurrency, 0);
  if (config.highConcurrency != null) whole('highConcurrency', config.highConcurrency, 1);
}

const span = (chunk: AudioChunk) => `${chunk.source} chunk ${chunk.index} (${chunk.startMs}-${chunk.endMs} ms)`;

interface Running {
  chunk: AudioChunk;
  controller: AbortController;
  subscription: Subscription | null;
  startedAtMs: number;
}

/**
 * Transcribes chunks with bounded concurrency and a bounded queue, following
 * memory pressure, and emits the results in chunk order.
 *
 * **Backpressure.** An Observable cannot pause a producer that pushes, so the
 * bound is enforced in two parts:
 * 1. Pull: the operator announces demand through `hooks.onDemand(n)`:
 *    `maxQueuedChunks` at subscription, then one per chunk that leaves the
 *    queue. `transcribeFile` feeds it to `pullOnDemand` over the decoder's
 *    AsyncIterable, so a chunk is decoded (and the file read) only when there
 *    is room for it: with a slow transcriber the file read pauses.
 * 2. Guard: the operator never holds more than `maxQueuedChunks` waiting
 *    chunks. A chunk that arrives unasked while the queue is full is an error
 *    (`MEMTIDE_ERR_TRANSCRIBE_OVERFLOW`), never an unbounded buffer.
 * Chunks held at any time: queue + in flight + reorder buffer
 * <= maxQueuedChunks + maxConcurrent.
 *
 * **Pressure.** `pressure$` sets the concurrency: low/medium → maxConcurrent,
 * high → highConcurrency (default half, at least 1), critical →
 * criticalConcurrency (0 pauses, 1 keeps one going). A change applies at once
 * to new work (in-flight chunks finish); lowering it calls
 * `transcriber.shrinkTo(n)`; at critical, once nothing is in flight, the
 * transcriber is asked to `unload()`. Before the first pressure value the
 * level is `low`.
 *
 * **Batch hold.** `hooks.hold$` (the coordinator's batch hold, see
 * `yieldBatch`): while true, nothing new starts and no demand is announced
 * (demand announced before still delivers, into the bounded queue), chunks in
 * flight finish and are emitted, and once nothing is in flight the
 * transcriber is asked to `unload()` (the critical-pressure path). False
 * resumes where it stopped: nothing is lost or reordered.
 *
 * ```
 * chunks:   (ab|)                 (maxConcurrent 1, each takes 3 frames)
 * hold$:    f-t-------f---
 * result:   ---A-------(B|)       (a finishes at 3, the model is unloaded; b runs 10-13)
 * ```
 *
 * **Order.** Results are emitted in arrival order; a result that finishes
 * early waits in a reorder buffer and keeps its concurrency slot until it is
 * emitted, so that buffer never exceeds the concurrency.
 *
 * **Errors.** A chunk whose transcription fails stops new work, the chunks
 * after it are cancelled, the earlier ones are still emitted, then the stream
 * errors with `MEMTIDE_ERR_TRANSCRIBE_CHUNK` (the transcriber's error as
 * `cause`): no silent gaps in a transcript. An upstream error (a corrupt
 * file) is treated like completion followed by the error: chunks already
 * accepted are transcribed and emitted first. Unsubscribing aborts every
 * in-flight transcription (its AbortSignal) and drops the queue.
 *
 * `config` may be an Observable (hot reload); the source is subscribed once
 * it has a first value.
 *
 * ```
 * chunks:   -a-b-c-d-|            (maxConcurrent 2, maxQueuedChunks 2, each takes 4 frames)
 * result:   -----A-B---C-D|
 * pressure: -----------c---       (critical, criticalConcurrency 0: in flight finish, the rest waits)
 * ```
 *
 * @param transcriber the engine (a `Transcriber`).
 * @param config concurrency and queue bounds, or an Observable of them.
 * @param pressure$ pressure level changes (default: none, i.e. low).
 * @param hooks demand, stats and unload-error callbacks, and the batch hold (`hold$`).
 * @param scheduler clock for `transcribeMs`.
 */
export function transcribeBounded(
  transcriber: ChunkTranscriber,
  config: TranscribeBoundedConfig | Observable<TranscribeBoundedConfig>,
  pressure$: Observable<PressureChange> = EMPTY,
  hooks: TranscribeBoundedHooks = {},
  scheduler: SchedulerLike = asyncScheduler,
): OperatorFunction<AudioChunk, TranscribedChunk> {
  return (source) =>
    defer(
      () =>
        new Observable<TranscribedChunk>((subscriber) => {
          let current: TranscribeBoundedConfig | null = null;
          let level: PressureLevel = 'low';
          let limit = 0;
          /** Arrival sequence numbers: the output order. */
          let nextSeq = 0;
          let nextToEmit = 0;
          const queue: Array<{ seq: number; chunk: AudioChunk }> = [];
          const running = new Map<number, Running>();
          const finished = new Map<number, TranscribedChunk>();
          const failures = new Map<number, TranscribeError>();
          /** Demand announced and not yet met. */
          let outstanding = 0;
          let completed = 0;
          let sourceDone = false;
          let sourceError: { error: unknown } | null = null;
          /** Set once a chunk failed: nothing new starts. */
          let failing = false;
          let unloadAsked = false;
          /** Batch work held (hooks.hold$). */
          let held = false;
          let sourceSubscription: Subscription | null = null;
          let closed = false;

          const report = () => {
            if (!hooks.onStats) return;
            let queuedSamples = 0;
            for (const item of queue) queuedSamples += item.chunk.samples.length;
            let inFlightSamples = 0;
            for (const item of running.values()) inFlightSamples += item.chunk.samples.length;
            hooks.onStats({
              queuedChunks: queue.length,
              queuedSamples,
              inFlight: running.size,
              inFlightSamples,
              reorderChunks: finished.size,
              completed,
              concurrency: limit,
              level,
            });
          };

          const stop = (error?: { error: unknown }) => {
            if (closed) return;
            closed = true;
            teardown();
            if (error) subscriber.error(error.error);
            else subscriber.complete();
          };

          const teardown = () => {
            closed = true;
            sourceSubscription?.unsubscribe();
            for (const item of running.values()) {
              item.controller.abort();
              item.subscription?.unsubscribe();
            }
            running.clear();
            queue.length = 0;
            finished.clear();
          };

          /** Critical pressure and a batch hold both want the model gone once nothing is in flight. */
          const unloadWanted = () => level === 'critical' || held;
          const askUnload = () => {
            if (!unloadWanted() || running.size > 0 || unloadAsked) return;
            unloadAsked = true;
            try {
              const result = transcriber.unload();
              if (result) from(result).subscribe({ error: (error: unknown) => hooks.onUnloadError?.(error) });
            } catch (error) {
              hooks.onUnloadError?.(error);
            }
          };

          const start = (seq: number, chunk: AudioChunk) => {
            unloadAsked = false;
            const item: Running = { chunk, controller: new AbortController(), subscription: null, startedAtMs: scheduler.now() };
            running.set(seq, item);
            let result: { text: string } | null = null;
            const subscription = defer(() => transcriber.transcribe(chunk, item.controller.signal)).subscribe({
              next: (value) => {
                result ??= value;
              },
              error: (error: unknown) => fail(seq, error),
              complete: () => {
                if (result) succeed(seq, result);
                else fail(seq, new Error('the transcriber completed without a result'));
              },
            });
            if (running.get(seq) === item) item.subscription = subscription;
          };

          const succeed = (seq: number, result: { text: string }) => {
            const item = running.get(seq);
            if (!item || closed) return;
            running.delete(seq);
            const { chunk } = item;
            finished.set(seq, {
              file: chunk.source,
              startMs: chunk.startMs,
              endMs: chunk.endMs,
              text: result.text,
              chunkIndex: chunk.index,
              firstSample: chunk.firstSample,
              sampleCount: chunk.samples.length,
              last: chunk.last,
              transcribeMs: scheduler.now() - item.startedAtMs,
            });
            pump();
          };

          const fail = (seq: number, error: unknown) => {
            const item = running.get(seq);
            if (!item || closed) return;
            running.delete(seq);
            const message = error instanceof Error ? error.message : String(error);
            failures.set(seq, new TranscribeError('MEMTIDE_ERR_TRANSCRIBE_CHUNK', `${span(item.chunk)}: transcription failed: ${message}`, { cause: error }));
            if (!failing) {
              failing = true;
              queue.length = 0;
              // Stop reading: no chunk after a failure can be emitted.
              sourceSubscription?.unsubscribe();
              // Later chunks would be dropped anyway: stop their work now.
              for (const [other, run] of running) {
                if (other < seq) continue;
                run.controller.abort();
                run.subscription?.unsubscribe();
                running.delete(other);
              }
            }
            pump();
          };

          /** Slots in use: running, plus results waiting for an earlier chunk. */
          const active = () => running.size + finished.size;

          let pumping = false;
          let again = false;
          /** Re-evaluates everything after any change; re-entrant calls (synchronous transcribers) loop here instead of nesting. */
          const pump = () => {
            if (pumping) {
              again = true;
              return;
            }
            pumping = true;
            try {
              do {
                again = false;
                if (closed || current === null) return;
                // 1. Emit in order.
                while (!closed) {
                  const failure = failures.get(nextToEmit);
                  if (failure) {
                    stop({ error: failure });
                    return;
                  }
                  const done = finished.get(nextToEmit);
                  if (!done) break;
                  finished.delete(nextToEmit);
                  nextToEmit += 1;
                  completed += 1;
                  subscriber.next(done);
                }
                if (closed) return;
                // 2. Start what the concurrency allows (nothing while batch work is held).
                while (!failing && !held && queue.length > 0 && active() < limit) {
                  const item = queue.shift()!;
                  start(item.seq, item.chunk);
                  if (closed) return;
                }
                // 3. Done?
                if (sourceDone && queue.length === 0 && running.size === 0 && finished.size === 0) {
                  report();
                  stop(sourceError ?? undefined);
                  return;
                }
                askUnload();
                // 4. Ask for what the queue has room for (nothing more while held: the file read pauses).
                if (!sourceDone && !failing && !held) {
                  const room = current.maxQueuedChunks - queue.length - outstanding;
                  if (room > 0) {
                    outstanding += room;
                    hooks.onDemand?.(room);
                  }
                }
              } while (again && !closed);
              report();
            } finally {
              pumping = false;
            }
          };

          const setLimit = () => {
            if (current === null) return;
            const next = concurrencyFor(level, current);
            const lower = next < limit;
            limit = next;
            if (lower) transcriber.shrinkTo?.(next);
          };

          const onChunk = (chunk: AudioChunk) => {
            if (closed || current === null) return;
            if (outstanding > 0) {
              outstanding -= 1;
            } else if (queue.length >= current.maxQueuedChunks) {
              stop({
                error: new TranscribeError(
                  'MEMTIDE_ERR_TRANSCRIBE_OVERFLOW',
                  `${span(chunk)} arrived unasked while ${queue.length} chunks (maxQueuedChunks ${current.maxQueuedChunks}) wait: the source must follow the demand (pullOnDemand) instead of pushing`,
                ),
              });
              return;
            }
            if (failing) return; // accepted and dropped: the stream is about to error
            queue.push({ seq: nextSeq, chunk });
            nextSeq += 1;
            pump();
          };

          const pressureSubscription = pressure$.subscribe({
            next: (change) => {
              level = change.level;
              if (!unloadWanted()) unloadAsked = false;
              setLimit();
              pump();
            },
            error: (error: unknown) => stop({ error }),
          });
          if (closed) return () => pressureSubscription.unsubscribe();
          const holdSubscription = (hooks.hold$ ?? EMPTY).subscribe({
            next: (value) => {
              if (value === held) return;
              held = value;
              if (!unloadWanted()) unloadAsked = false;
              pump();
            },
            error: (error: unknown) => stop({ error }),
          });
          if (closed) {
            pressureSubscription.unsubscribe();
            return () => holdSubscription.unsubscribe();
          }
          const configSubscription = (isObservable(config) ? config : of(config)).subscribe({
            next: (value) => {
              if (closed) return;
              try {
                validate(value);
              } catch (error) {
                stop({ error });
                return;
              }
              const first = current === null;
              current = value;
              setLimit();
              if (first) {
                sourceSubscription = source.subscribe({
                  next: onChunk,
                  error: (error: unknown) => {
                    sourceDone = true;
                    sourceError = { error };
                    pump();
                  },
                  complete: () => {
                    sourceDone = true;
                    pump();
                  },
                });
                if (closed) sourceSubscription.unsubscribe();
              }
              pump();
            },
            error: (error: unknown) => stop({ error }),
            complete: () => {
              if (current === null) {
                stop({ error: new TranscribeError('MEMTIDE_ERR_TRANSCRIBE_CONFIG', 'the config Observable completed before its first value') });
              }
            },
          });

          return () => {
            teardown();
            pressureSubscription.unsubscribe();
            holdSubscription.unsubscribe();
            configSubscription.unsubscribe();
          };
        }),
    );
}
