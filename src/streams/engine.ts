/**
 * The engine: sources -> operators -> sinks, wired once. Everything the app
 * layer and the embedding API expose comes from here, so the CLI, the daemon
 * and `createMemtide()` run exactly the same pipeline.
 */
import {
  Subject,
  Subscription,
  asyncScheduler,
  defer,
  filter,
  map,
  merge,
  share,
  shareReplay,
  withLatestFrom,
  type Observable,
  type SchedulerLike,
} from 'rxjs';
import type { MemtideConfig } from '../app/configSchema.js';
import { formatDuration } from '../app/units.js';
import type { Alert, LeakEvent, LoadedModel, MemorySample, PressureChange, Recommendation } from '../model.js';
import type { AlertCondition } from '../operators/alertConditions.js';
import type { LeakReset } from '../operators/leakTrend.js';
import { throttleAlerts } from '../operators/throttleAlerts.js';
import type { AlertSink } from '../sinks/alertSink.js';
import { HistorySinkError, historySink, type FlushResult, type HistoryRecord } from '../sinks/historySink.js';
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
  /** Alert notifications of the analysis, plus the engine's own `engine:history` (history writes failing), all throttled alike. */
  readonly alerts$: Observable<Alert>;
  readonly flushes$: Observable<FlushResult>;
  readonly problems$: Observable<EngineProblem>;
  /** Starts sampling (and history, alerts); idempotent. */
  start(): void;
  /** Stops every timer and subscription; pending history is flushed first. */
  stop(): void;
}

/** What happened to history writing, as the `engine:history` alert follows it. */
export type HistoryHealthEvent =
  | { kind: 'failing'; error: HistorySinkError }
  | { kind: 'written'; flush: FlushResult }
  | { kind: 'stopped'; error: unknown; atMs: number };

export const HISTORY_ALERT_KEY = 'engine:history';

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));

function hasCode(error: unknown, pattern: RegExp): boolean {
  for (let current = error, depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth += 1) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && pattern.test(code)) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

function historyRecommendations(error: unknown, path: string): Recommendation[] {
  if (hasCode(error, /^(SQLITE_FULL|ENOSPC|EDQUOT)/)) {
    return [{ action: `Free disk space on the volume holding ${path} (or move history.path): the kept records are written as soon as a write succeeds.`, command: `df -h ${path}` }];
  }
  return [{ action: `Check ${path} and its volume (permissions, locks, disk errors); writes are retried at every flush.` }];
}

/**
 * The `engine:history` alert condition: active (warning) while writes fail
 * and the backlog holds everything, critical once records are dropped or
 * writing stopped for good, inactive again after the first write that
 * succeeds. It goes through `throttleAlerts` like every other condition
 * (group wait, escalation, recovery delay), so a single SQLITE_BUSY that
 * clears at the next flush does not notify. Built here rather than in
 * `alertConditions` because it follows the history sink, not the samples.
 */
export function historyHealthAlerts(
  events$: Observable<HistoryHealthEvent>,
  config$: Observable<MemtideConfig>,
  store: { path: string },
  scheduler: SchedulerLike = asyncScheduler,
): Observable<Alert> {
  return defer(() => {
    let failing = false;
    const condition = (
      config: MemtideConfig,
      atMs: number,
      fields: Pick<AlertCondition, 'active' | 'severity' | 'title' | 'message' | 'recommendations'>,
    ): AlertCondition => ({ key: HISTORY_ALERT_KEY, kind: 'engine', component: config.components.engine, atMs, ...fields });
    const next = (event: HistoryHealthEvent, config: MemtideConfig): AlertCondition | null => {
      const { maxPendingRecords, flushIntervalMs } = config.history;
      switch (event.kind) {
        case 'failing': {
          const { error } = event;
          if (error.code !== 'MEMTIDE_ERR_HISTORY_PENDING') return null; // a skipped retention run loses nothing
          failing = true;
          const dropping = error.droppedRecords > 0;
          return condition(config, error.atMs, {
            active: true,
            severity: dropping ? 'critical' : 'warning',
            title: dropping ? 'memtide is dropping history' : 'memtide cannot write history',
            message:
              `History writes to ${store.path} fail: ${messageOf(error.cause)}. ` +
              `${error.pendingRecords} record(s) are kept in memory and retried every ${formatDuration(flushIntervalMs)}` +
              (dropping
                ? `; ${error.droppedRecords} oldest dropped so far (history.maxPendingRecords ${maxPendingRecords}).`
                : ` (up to history.maxPendingRecords ${maxPendingRecords}).`),
            recommendations: historyRecommendations(error, store.path),
          });
        }
        case 'written': {
          if (!failing) return null;
          failing = false;
          const { flush } = event;
          return condition(config, flush.atMs, {
            active: false,
            severity: 'warning',
            title: 'memtide writes history again',
            message: `${flush.retried ?? 0} kept record(s) written to ${store.path}` + (flush.dropped ? `; ${flush.dropped} were dropped during the outage.` : '; none was lost.'),
            recommendations: [],
          });
        }
        case 'stopped':
          failing = true;
          return condition(config, event.atMs, {
            active: true,
            severity: 'critical',
            title: 'memtide stopped writing history',
            message: `History writing to ${store.path} stopped: ${messageOf(event.error)}. Sampling and alerts go on; history resumes after a restart.`,
            recommendations: historyRecommendations(event.error, store.path),
          });
      }
    };
    const current$ = config$.pipe(shareReplay({ bufferSize: 1, refCount: true }));
    return events$.pipe(
      withLatestFrom(current$),
      // alerts.enabled: false silences this one too.
      filter(([, config]) => config.alerts.enabled),
      map(([event, config]) => next(event, config)),
      filter((value): value is AlertCondition => value !== null),
      throttleAlerts(current$.pipe(map((config) => config.alerts)), scheduler),
    );
  });
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
  const analysis = memoryAnalysis({
    samples$,
    config$: options.config$,
    ...(options.resets$ ? { resets$: options.resets$ } : {}),
    ...(options.models$ ? { models$: options.models$ } : {}),
    scheduler,
  });
  const { pressure$, leaks$ } = analysis;
  const flushes = new Subject<FlushResult>();
  const historyHealth = new Subject<HistoryHealthEvent>();
  const alerts$ = options.history
    ? merge(analysis.alerts$, historyHealthAlerts(historyHealth, options.config$, options.history, scheduler)).pipe(share())
    : analysis.alerts$;

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
        const { flushIntervalMs, retentionIntervalMs, maxPendingRecords } = options.historyConfig;
        const records$: Observable<HistoryRecord> = merge(
          samples$.pipe(map((sample): HistoryRecord => ({ kind: 'sample', sample }))),
          pressure$.pipe(map((change): HistoryRecord => ({ kind: 'pressure', change }))),
        );
        // A full disk or a locked database is survived: the sink keeps a bounded backlog, we report it.
        const onWriteError = (error: HistorySinkError) => {
          report('history')(error);
          historyHealth.next({ kind: 'failing', error });
        };
        running.add(
          records$.pipe(historySink(options.history, { flushIntervalMs, retentionIntervalMs, maxPendingRecords, onWriteError }, scheduler)).subscribe({
            next: (flush) => {
              if (flush.retried !== undefined) {
                logger.info(`history writes resumed: ${flush.retried} kept record(s) written${flush.dropped ? `, ${flush.dropped} dropped during the outage` : ''}`);
              }
              historyHealth.next({ kind: 'written', flush });
              flushes.next(flush);
            },
            error: (error: unknown) => {
              report('history')(error);
              historyHealth.next({ kind: 'stopped', error, atMs: scheduler.now() });
            },
          }),
        );
      }
    },
    stop() {
      stopping.next();
      stopping.complete();
      running?.unsubscribe();
      running = undefined;
      historyHealth.complete();
      problems.complete();
      flushes.complete();
    },
  };
}
