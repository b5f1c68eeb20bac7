/**
 * `createMemtide()`: the embedding API, and the core the runner builds on.
 * No global state: every engine owns its readers, timers, config watcher and
 * database handle, and `stop()` releases all of them.
 */
import { BehaviorSubject, Subscription, asyncScheduler, map, type Observable, type SchedulerLike } from 'rxjs';
import type { Alert, LeakEvent, MemorySample, PressureChange } from '../model.js';
import type { BatchHold } from '../operators/yieldBatch.js';
import type { AlertsConfig } from './schema/alerts.js';
import { createAlertSinks } from '../streams/alerts.js';
import { createSampler, type Sampler } from '../sources/memorySampler.js';
import { createPlatformReaders, type PlatformReaders } from '../sources/readers.js';
import { HistoryStore } from '../sinks/historyStore.js';
import type { FlushResult } from '../sinks/historySink.js';
import { silentLogger, type Logger } from '../sinks/logger.js';
import { createEngine, type EngineProblem } from '../streams/engine.js';
import type { ConfigError, LoadConfigOptions, MemtideConfig, MemtideConfigInput } from './config.js';
import { deepMerge } from './config.js';
import { createLiveConfig, type RuntimeOverrides } from './liveConfig.js';

/**
 * Options of {@link createMemtide}. Every one is optional: `createMemtide()`
 * alone samples this machine every second with the default pressure preset,
 * without writing a file or opening a port.
 */
export interface CreateMemtideOptions {
  /** Settings in code; the file, MEMTIDE_* variables and flags override them. */
  config?: MemtideConfigInput;
  /** A JSON config file, watched for edits. */
  configFile?: string;
  /** Environment to read MEMTIDE_* from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** `--set` style assignments (`"sampling.intervalMs=500ms"`), as the CLI's `--set` flag. */
  set?: readonly string[];
  /** Named CLI flags mapped to config keys (`{ 'history.path': '/tmp/x.db' }`); `undefined` values are ignored. */
  flags?: LoadConfigOptions['flags'];
  /** Where the engine reports rejected config edits and sink failures (default: silent). */
  logger?: Logger;
  /** Platform readers (tests inject fixtures). */
  readers?: PlatformReaders;
  /** RxJS scheduler of every timer (sampling, flushes, alert waits); tests pass a virtual-time scheduler. */
  scheduler?: SchedulerLike;
  /**
   * `embedded` (default): history and server off unless configured, since a
   * library should not write files into its host's working directory.
   * `runner`: the schema defaults (history on, server on).
   */
  mode?: 'embedded' | 'runner';
}

/**
 * A running memtide engine, as returned by {@link createMemtide}. Streams are
 * hot and shared by every subscriber; sampling runs from creation until
 * {@link Memtide.stop} whether anyone subscribes or not.
 */
export interface Memtide {
  /** Every sample, shared (late subscribers get the latest). */
  readonly samples$: Observable<MemorySample>;
  /** Pressure level changes (the first emission is the current level). */
  readonly pressure$: Observable<PressureChange>;
  /** The config in force, replayed; changes when the file is edited. */
  readonly config$: Observable<MemtideConfig>;
  /** Rejected config edits (the last good config stays in force). */
  readonly configErrors$: Observable<ConfigError>;
  /** Leak and clear events per component (events: not replayed). */
  readonly leaks$: Observable<LeakEvent>;
  /** Alert notifications: firing, repeats, resolved (events: not replayed). */
  readonly alerts$: Observable<Alert>;
  /** History flushes (one transaction each). */
  readonly flushes$: Observable<FlushResult>;
  /** Problems the engine survived: a failed sample, a failed history write. */
  readonly problems$: Observable<EngineProblem>;
  /**
   * Whether batch transcription (file imports, re-transcription; never live
   * meetings) should wait now, because the summary model is busy or resident
   * (`optimization.batchYield`, docs/coordinator.md). Replays the latest to
   * every subscriber; `{ hold: false }` until a coordinator started with
   * `coordinatorForMemtide(memtide, { governor })` decides otherwise, and
   * again after it stops. A host pauses its imports while `hold` is true.
   */
  readonly batchHold$: Observable<BatchHold>;
  /**
   * Where a coordinator publishes its batch hold (`coordinatorForMemtide`
   * calls it; a host seldom needs to). Replaces the previous source;
   * unsubscribing the result detaches it (the last value stays).
   */
  attachBatchHold(source: Observable<BatchHold>): Subscription;
  /** The config in force now. */
  config(): MemtideConfig;
  /** Applies a JSON merge patch on top of file/env/flags (until restart); throws ConfigError naming each bad path. */
  patchConfig(partial: unknown, origin?: string): MemtideConfig;
  /** What runtime patches changed, and who changed each key. */
  configOverrides(): RuntimeOverrides;
  /** One sample now, outside the schedule (CLI `sample`). */
  sampleOnce(): Promise<MemorySample>;
  /** The open history store, when history is enabled. */
  readonly history: HistoryStore | undefined;
  /** Flushes history, closes the database, stops every timer and watcher. Idempotent. */
  stop(): void;
}

/** The alert settings read once at start (sinks are created then). */
const sinkSettings = (alerts: AlertsConfig) => ({ jsonl: alerts.jsonl, webhook: alerts.webhook, log: alerts.log, history: alerts.history });

const EMBEDDED_BASE: MemtideConfigInput = { history: { enabled: false }, server: { enabled: false } };

/**
 * Creates and starts a memtide engine: it samples system memory and every
 * process (attributed to components), classifies memory pressure, detects
 * leaks, raises alerts and, when `history.enabled`, writes history to SQLite.
 * Nothing is shared between two engines; {@link Memtide.stop} releases every
 * timer, watcher and handle.
 *
 * @example
 * ```ts
 * import { createMemtide } from 'memtide';
 *
 * const memtide = createMemtide({ config: { sampling: { intervalMs: 2000 } } });
 * memtide.pressure$.subscribe({
 *   next: (change) => console.log(`memory pressure ${change.level}: ${change.reasons.join('; ')}`),
 *   error: (error) => console.error(error),
 * });
 * // ... on shutdown:
 * memtide.stop();
 * ```
 *
 * @param options - Settings in code, a config file to watch, and test hooks.
 * @returns The running engine.
 * @throws {@link ConfigError} when the configuration (code, file, environment
 *   or flags) is invalid; the message names every bad key and where it came from.
 * @throws {@link HistoryError} when history is enabled and its database cannot
 *   be opened (`MEMTIDE_ERR_HISTORY_OPEN`), was written by a newer memtide
 *   (`MEMTIDE_ERR_HISTORY_VERSION`) or cannot be migrated.
 */
export function createMemtide(options: CreateMemtideOptions = {}): Memtide {
  const logger = options.logger ?? silentLogger;
  const base = options.mode === 'runner' ? (options.config ?? {}) : deepMerge(EMBEDDED_BASE as never, (options.config ?? {}) as never);
  const live = createLiveConfig({
    base: base as MemtideConfigInput,
    file: options.configFile,
    ...(options.env ? { env: options.env } : {}),
    ...(options.set ? { set: options.set } : {}),
    ...(options.flags ? { flags: options.flags } : {}),
  });
  const initial = live.current();
  const readers = options.readers ?? createPlatformReaders();
  // Samples are stamped with the scheduler's clock, so a virtual-time engine's samples, history and timers agree.
  const clock = options.scheduler ?? asyncScheduler;
  const sampler: Sampler = createSampler({ readers, now: () => clock.now() });
  const history = initial.history.enabled
    ? HistoryStore.open(initial.history.path, {
        rawRetentionMs: initial.history.rawRetentionMs,
        aggregateBucketMs: initial.history.aggregateBucketMs,
        aggregateRetentionMs: initial.history.aggregateRetentionMs,
      })
    : undefined;

  const alertSinks = createAlertSinks(initial.alerts, {
    logger,
    ...(history ? { history } : {}),
    ...(options.scheduler ? { scheduler: options.scheduler } : {}),
  });
  const engine = createEngine({
    config$: live.config$,
    sampler,
    history,
    historyConfig: initial.history,
    alertSinks,
    logger,
    ...(options.scheduler ? { scheduler: options.scheduler } : {}),
  });

  const housekeeping = new Subscription();
  housekeeping.add(
    live.errors$.subscribe({
      next: (error) => logger.error(`config edit rejected, keeping the last good config\n${error.message}`),
      error: (error: unknown) => logger.error(`config watcher failed: ${String(error)}`),
    }),
  );
  housekeeping.add(
    live.config$.pipe(map((c) => sinkSettings(c.alerts))).subscribe({
      next: (sinks) => {
        if (JSON.stringify(sinks) !== JSON.stringify(sinkSettings(initial.alerts))) {
          logger.warn('alert sink settings (jsonl, webhook) changed: they take effect after a restart; thresholds apply now');
        }
      },
      error: () => undefined,
    }),
  );
  housekeeping.add(
    live.config$.pipe(map((c) => c.history)).subscribe({
      next: (h) => {
        if (JSON.stringify(h) !== JSON.stringify(initial.history)) {
          logger.warn('history settings changed: they take effect after a restart');
        }
      },
      error: () => undefined,
    }),
  );
  engine.start();

  const batchHold = new BehaviorSubject<BatchHold>({ atMs: clock.now(), hold: false, reason: 'no coordinator: batch transcription is never held' });
  let batchSource: Subscription | null = null;
  const attachBatchHold = (source: Observable<BatchHold>): Subscription => {
    batchSource?.unsubscribe();
    const release = (reason: string) => {
      if (batchHold.getValue().hold) batchHold.next({ atMs: clock.now(), hold: false, reason });
    };
    const subscription = source.subscribe({
      // Changes only: a new source starting released is no news to a host that was never held.
      next: (value) => {
        if (value.hold !== batchHold.getValue().hold) batchHold.next(value);
      },
      error: (error: unknown) => {
        logger.error(`batch hold feed failed (batch transcription runs): ${String(error)}`);
        release(`batch hold feed failed: ${String(error)}`);
      },
      // A source that ends (a stopped coordinator) must not leave imports held.
      complete: () => release('batch hold source ended: batch transcription runs'),
    });
    batchSource = subscription;
    return subscription;
  };

  let stopped = false;
  return {
    samples$: engine.samples$,
    pressure$: engine.pressure$,
    leaks$: engine.leaks$,
    alerts$: engine.alerts$,
    config$: live.config$,
    configErrors$: live.errors$,
    flushes$: engine.flushes$,
    problems$: engine.problems$,
    batchHold$: batchHold.asObservable(),
    attachBatchHold,
    history,
    config: () => live.current(),
    patchConfig: (partial, origin) => live.patch(partial, origin),
    configOverrides: () => live.overrides(),
    sampleOnce: () => sampler.sample(live.current()),
    stop() {
      if (stopped) return;
      stopped = true;
      engine.stop();
      housekeeping.unsubscribe();
      batchSource?.unsubscribe();
      batchHold.complete();
      live.stop();
      history?.close();
    },
  };
}

