/**
 * The engine: sources -> operators -> sinks, wired once. Everything the app
 * layer and the embedding API expose comes from here, so the CLI, the daemon
 * and `createMemtide()` run exactly the same pipeline.
 */
import { Subject, Subscription, asyncScheduler, map, merge, type Observable, type SchedulerLike } from 'rxjs';
import type { MemtideConfig } from '../app/configSchema.js';
import type { Alert, LeakEvent, LoadedModel, MemorySample, PressureChange } from '../model.js';
import type { LeakReset } from '../operators/leakTrend.js';
import type { AlertSink } from '../sinks/alertSink.js';
import { historySink, type FlushResult, type HistoryRecord } from '../sinks/historySink.js';
import type { HistoryStore } from '../sinks/historyStore.js';
import { silentLogger, type Logger } from '../sinks/logger.js';
import type { Sampler } from '../sources/memorySampler.js';
import { connectAlertSinks } from './alerts.js';
import { memoryAnalysis } from './analysis.js';
import { memorySamples } from './memorySamples.js';

export interface EngineOptions {
  config$: Observable<MemtideConfig>;
  sampler: Sampler;
  /** Open history store; omitted when history is disabled. */
  history?: HistoryStore | undefined;
  /** History flush settings, read once (changing them needs a restart). */
  historyConfig?: MemtideConfig['history'];
  /** Where alert notifications go (log, JSON lines, SQLite, webhook). */
  alertSinks?: readonly AlertSink[];
  /** Known model loads/unloads, to restart leak windows. */
  resets$?: Observable<LeakReset>;
  /** Loaded models, for alert recommendations. */
  models$?: Observable<readonly LoadedModel[]>;
  logger?: Logger;
  scheduler?: SchedulerLike;
}

/** A problem the engine survived (and went on); reported, never thrown. */
export interface EngineProblem {
  source: 'sampling' | 'history' | 'analysis' | 'alerts';
  error: unknown;
}

export interface Engine {
  readonly samples$: Observable<MemorySample>;
  readonly pressure$: Observable<PressureChange>;
  readonly leaks$: Observable<LeakEvent>;
  readonly alerts$: Observable<Alert>;
  readonly flushes$: Observable<FlushResult>;
  readonly problems$: Observable<EngineProblem>;
  /** Starts sampling (and history, alerts); idempotent. */
  start(): void;
  /** Stops every timer and subscription; pending history is flushed first. */
  stop(): void;
}

export function createEngine(options: EngineOptions): Engine {
  const scheduler = options.scheduler ?? asyncScheduler;
  const logger = options.logger ?? silentLogger;
  const problems = new Subject<EngineProblem>();
  const report = (source: EngineProblem['source']) => (error: unknown) => problems.next({ source, error });

  // Completing the streams (instead of unsubscribing) ends every subscriber's feed, host's included,
  // and makes bufferTime hand over its last batch to history.
  const stopping = new Subject<void>();
  const samples$ = memorySamples(options.config$, options.sampler, report('sampling'), stopping, scheduler);
  const { pressure$, leaks$, alerts$ } = memoryAnalysis({
    samples$,
    config$: options.config$,
    ...(options.resets$ ? { resets$: options.resets$ } : {}),
    ...(options.models$ ? { models$: options.models$ } : {}),
    scheduler,
  });
  const flushes = new Subject<FlushResult>();

  let running: Subscription | undefined;
  return {
    samples$,
    pressure$,
    leaks$,
    alerts$,
    flushes$: flushes.asObservable(),
    problems$: problems.asObservable(),
    start() {
      if (running) return;
      running = new Subscription();
      // Keep the shared streams hot while the engine runs, whoever else listens.
      running.add(samples$.subscribe({ error: report('sampling') }));
      running.add(pressure$.subscribe({ error: report('analysis') }));
      running.add(leaks$.subscribe({ error: report('analysis') }));
      running.add(connectAlertSinks(alerts$, options.alertSinks ?? [], logger));
      if (options.history && options.historyConfig) {
        const records$: Observable<HistoryRecord> = merge(
          samples$.pipe(map((sample): HistoryRecord => ({ kind: 'sample', sample }))),
          pressure$.pipe(map((change): HistoryRecord => ({ kind: 'pressure', change }))),
        );
        running.add(
          records$.pipe(historySink(options.history, options.historyConfig, scheduler)).subscribe({
            next: (flush) => flushes.next(flush),
            error: report('history'),
          }),
        );
      }
    },
    stop() {
      stopping.next();
      stopping.complete();
      running?.unsubscribe();
      running = undefined;
      problems.complete();
      flushes.complete();
    },
  };
}
