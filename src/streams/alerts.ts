/**
 * Alerts, composed: the engine's state streams → `alertConditions` →
 * `throttleAlerts` → sinks (log, JSON lines, SQLite, webhook).
 */
import {
  EMPTY,
  Subscription,
  asyncScheduler,
  defer,
  distinctUntilChanged,
  map,
  merge,
  scan,
  share,
  shareReplay,
  switchMap,
  type Observable,
  type SchedulerLike,
} from 'rxjs';
import type { MemtideConfig } from '../app/configSchema.js';
import type { AlertsConfig } from '../app/schema/alerts.js';
import type { Alert, LeakEvent, LoadedModel, MemorySample, PressureChange } from '../model.js';
import { alertConditions, type AlertConditionsConfig, type AlertInput } from '../operators/alertConditions.js';
import type { Tunables } from '../operators/recommend.js';
import { throttleAlerts } from '../operators/throttleAlerts.js';
import { alertHistory } from '../sinks/alertHistory.js';
import { alertJsonl } from '../sinks/alertJsonl.js';
import { alertLog } from '../sinks/alertLog.js';
import type { AlertSink } from '../sinks/alertSink.js';
import { alertWebhook, type WebhookEvent, type WebhookTransport } from '../sinks/alertWebhook.js';
import type { HistoryStore } from '../sinks/historyStore.js';
import type { Logger } from '../sinks/logger.js';

/** The engine's streams alerts are computed from. Leaks and models are optional (features that may be off). */
export interface AlertInputs {
  samples$: Observable<MemorySample>;
  pressure$: Observable<PressureChange>;
  leaks$?: Observable<LeakEvent>;
  /** The models the governor knows about, as a whole list on every change. */
  models$?: Observable<readonly LoadedModel[]>;
}

/** Merges the inputs into the tagged stream `alertConditions` reads. */
export function alertInputs(inputs: AlertInputs): Observable<AlertInput> {
  return merge(
    inputs.samples$.pipe(map((sample): AlertInput => ({ kind: 'sample', sample }))),
    inputs.pressure$.pipe(map((change): AlertInput => ({ kind: 'pressure', change }))),
    ...(inputs.leaks$ ? [inputs.leaks$.pipe(map((event): AlertInput => ({ kind: 'leak', event })))] : []),
    ...(inputs.models$ ? [inputs.models$.pipe(map((models): AlertInput => ({ kind: 'models', models })))] : []),
  );
}

/**
 * The settings of other features that recommendations may change:
 * `transcription.maxConcurrent` (its memory is attributed to the `audio` component).
 */
export function tunablesOf(config: MemtideConfig): Tunables {
  return { modelComponent: 'ollama', transcription: { concurrency: config.transcription.maxConcurrent, component: 'audio' }, kvCacheType: config.models.kvCacheType, numBatch: config.models.numBatch };
}

/** `alertConditions`' options from the whole config. */
export function alertConditionsConfigOf(config: MemtideConfig): AlertConditionsConfig {
  return {
    alerts: config.alerts,
    sampling: config.sampling,
    pressure: config.pressure,
    components: config.components,
    tunables: tunablesOf(config),
  };
}

/**
 * Alert notifications from the engine's streams, following the live config
 * (thresholds and timings hot-reload; `alerts.enabled: false` stops
 * evaluating, and turning it on again starts from a clean state).
 *
 * Shared with `share()` and deliberately not `shareReplay`: a notification
 * is an event, not a state. Replaying the latest one would hand a late
 * subscriber an alert that may have resolved hours ago, and hand a sink
 * that reconnects a duplicate. Every subscriber sees the notifications
 * from its subscription on; all of them share one dedupe state machine (so
 * two sinks never disagree about what was sent). The current state is
 * {@link firingAlerts}, which is replayed.
 */
export function alertStream(inputs: AlertInputs, config$: Observable<MemtideConfig>, scheduler: SchedulerLike = asyncScheduler): Observable<Alert> {
  return defer(() => {
    // The operators subscribe to the config again when alerts are switched on: they need the value in force then.
    const current$ = config$.pipe(shareReplay({ bufferSize: 1, refCount: true }));
    return current$.pipe(
      map((config) => config.alerts.enabled),
      distinctUntilChanged(),
      switchMap((enabled) =>
        enabled
          ? alertInputs(inputs).pipe(
              alertConditions(current$.pipe(map(alertConditionsConfigOf)), scheduler),
              throttleAlerts(current$.pipe(map((config) => config.alerts)), scheduler),
            )
          : EMPTY,
      ),
    );
  }).pipe(share());
}

/**
 * The alerts firing now, by key (a state: replayed to late subscribers).
 * Recomputed from the notifications: a firing one enters or replaces its
 * key, a resolved one removes it.
 */
export function firingAlerts(alerts$: Observable<Alert>): Observable<ReadonlyMap<string, Alert>> {
  return alerts$.pipe(
    scan((firing, alert) => {
      const next = new Map(firing);
      if (alert.status === 'firing') next.set(alert.key, alert);
      else next.delete(alert.key);
      return next;
    }, new Map<string, Alert>() as ReadonlyMap<string, Alert>),
    shareReplay({ bufferSize: 1, refCount: true }),
  );
}

export interface AlertSinkDependencies {
  logger: Logger;
  /** The open history store; the `history` sink is skipped without one. */
  history?: Pick<HistoryStore, 'appendAlerts'> | undefined;
  /** Webhook transport (tests); default fetch. */
  webhookTransport?: WebhookTransport;
  scheduler?: SchedulerLike;
}

/**
 * The sinks the `alerts` section asks for: log, JSON lines, history table,
 * webhook. Sink settings are read here, once (changing them needs a
 * restart); every sink reports its failures to the logger and goes on.
 */
export function createAlertSinks(config: AlertsConfig, deps: AlertSinkDependencies): AlertSink[] {
  const { logger } = deps;
  const onError = (name: string) => (error: unknown, alert: Alert | null) =>
    logger.error(`alert sink ${name} failed${alert ? ` for ${alert.key}` : ''}: ${error instanceof Error ? error.message : String(error)}`);
  const sinks: AlertSink[] = [];
  if (config.log) sinks.push(alertLog(logger));
  if (config.jsonl.path !== null) sinks.push(alertJsonl(config.jsonl.path, onError('jsonl')));
  if (config.history && deps.history) sinks.push(alertHistory(deps.history, onError('history')));
  if (config.webhook.url !== null) {
    const onEvent = (event: WebhookEvent): void => {
      if (event.type === 'failed') logger.error(`alert webhook gave up on ${event.alert.key} after ${event.attempts} attempt(s): ${event.error.message}`);
      else if (event.type === 'dropped') logger.warn(`alert webhook queue full: dropped the oldest (${event.alert.key}); ${event.dropped} dropped so far`);
      else if (event.type === 'retry') logger.debug(`alert webhook retry in ${event.delayMs} ms for ${event.alert.key}: ${event.error.message}`);
    };
    sinks.push(
      alertWebhook(
        { ...config.webhook, url: config.webhook.url },
        { onEvent, ...(deps.webhookTransport ? { transport: deps.webhookTransport } : {}) },
        deps.scheduler ?? asyncScheduler,
      ),
    );
  }
  return sinks;
}

/**
 * Sends every notification to every sink. A sink that throws anyway is
 * logged and the others still get the alert. Unsubscribing closes the sinks.
 */
export function connectAlertSinks(alerts$: Observable<Alert>, sinks: readonly AlertSink[], logger: Logger): Subscription {
  const subscription = new Subscription();
  subscription.add(
    alerts$.subscribe({
      next: (alert) => {
        for (const sink of sinks) {
          try {
            sink.write(alert);
          } catch (error) {
            logger.error(`alert sink ${sink.name} threw for ${alert.key}: ${error instanceof Error ? error.message : String(error)}`);
          }
        }
      },
      error: (error: unknown) => logger.error(`alert stream failed, no more alerts: ${error instanceof Error ? error.message : String(error)}`),
    }),
  );
  subscription.add(() => {
    for (const sink of sinks) sink.close();
  });
  return subscription;
}
