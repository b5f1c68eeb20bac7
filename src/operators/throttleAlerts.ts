import {
  Subject,
  asyncScheduler,
  defer,
  filter,
  isObservable,
  map,
  merge,
  mergeMap,
  of,
  switchMap,
  takeUntil,
  tap,
  timer,
  EMPTY,
  type Observable,
  type OperatorFunction,
  type SchedulerLike,
} from 'rxjs';
import type { AlertsConfig } from '../app/schema/alerts.js';
import { ALERT_SEVERITIES, type Alert, type AlertSeverity } from '../model.js';
import type { AlertCondition } from './alertConditions.js';

/** Options of {@link throttleAlerts}: the timing part of the `alerts` section. */
export type ThrottleAlertsConfig = Pick<
  AlertsConfig,
  'groupWaitMs' | 'repeatIntervalMs' | 'recoveryDelayMs' | 'flapMultiplier' | 'maxRecoveryDelayMs'
>;

export class ThrottleAlertsError extends Error {
  readonly code = 'MEMTIDE_ERR_ALERT_CONDITION';
  constructor(message: string) {
    super(message);
    this.name = 'ThrottleAlertsError';
  }
}

function rank(severity: AlertSeverity): number {
  return ALERT_SEVERITIES.indexOf(severity);
}

/**
 * One condition key. `pending`: active, waiting out group_wait. `firing`:
 * notified, active. `recovering`: notified, inactive, waiting out the
 * (flap-multiplied) recovery delay before the resolved notice.
 */
interface Track {
  phase: 'pending' | 'firing' | 'recovering';
  condition: AlertCondition;
  /** When the condition became active (the `sinceMs` of its notifications). */
  sinceMs: number;
  /** Last notification (firing phases). */
  notifiedAtMs: number;
  repeat: number;
  /** Highest severity notified since the last scheduled notification: only a rise above it notifies at once. */
  notifiedMax: AlertSeverity;
  /** Highest severity notified in this episode: the severity of its recovery notice (so sinks filtering by severity see both ends). */
  episodeMax: AlertSeverity;
  /** When it went inactive (recovering). */
  inactiveSinceMs: number;
  /** When it last came back while its recovery was delayed (a flap). */
  flapAtMs: number | null;
  flaps: number;
}

/** The recovery delay after `flaps` flaps: `recoveryDelayMs × flapMultiplier^flaps`, capped, whole ms. */
export function recoveryDelayFor(config: ThrottleAlertsConfig, flaps: number): number {
  const cap = Math.max(config.maxRecoveryDelayMs, config.recoveryDelayMs);
  return Math.round(Math.min(cap, config.recoveryDelayMs * config.flapMultiplier ** flaps));
}

function validate(condition: AlertCondition): void {
  if (typeof condition?.key !== 'string' || condition.key.length === 0) {
    throw new ThrottleAlertsError(`an alert condition needs a non-empty key, got ${JSON.stringify(condition?.key)}`);
  }
  if (!(ALERT_SEVERITIES as readonly string[]).includes(condition.severity)) {
    throw new ThrottleAlertsError(`alert condition ${condition.key}: unknown severity ${JSON.stringify(condition.severity)}`);
  }
}

/**
 * Turns alert conditions into notifications with Alertmanager / Netdata
 * hygiene, one state machine per condition key:
 *
 * - **group_wait** (`groupWaitMs`, Alertmanager 30 s): the first
 *   notification goes out once the condition has held that long; one that
 *   clears sooner never notifies (this doubles as Prometheus's `for:`).
 * - **repeat** (`repeatIntervalMs`, Alertmanager 4 h): while firing, the
 *   condition is notified again (`repeat` 1, 2, ...) with its latest text.
 * - **escalation**: a severity above every severity notified since the last
 *   scheduled notification goes out at once (warning → critical); falls wait
 *   for the next repeat or the recovery.
 * - **recovery** (`recoveryDelayMs`, Netdata 15 min): `status: 'resolved'`
 *   goes out once the condition has stayed clear that long.
 * - **flap damping** (Netdata ×1.5, max 1 h): a condition that comes back
 *   while its recovery is delayed is a flap; it does not notify again (unless
 *   its severity rose) and multiplies the next recovery delay by
 *   `flapMultiplier`, up to `maxRecoveryDelayMs`. The count resets when the
 *   recovery goes out, or when the condition stays back longer than the
 *   current delay.
 *
 * Deadlines are kept as times and recomputed from the latest config, so a
 * hot-reloaded timing applies to running waits at once (a wait already
 * longer than the new setting fires immediately). At one instant, deadlines
 * due then fire before a condition arriving then is applied. Completion
 * completes at once: pending waits are dropped, nothing is flushed (a
 * shutdown is not a recovery).
 *
 * ```
 * groupWait 3, repeat 6, recoveryDelay 2 (frames); A/a: condition active/inactive
 * source: -A-a-A-------------a-----|
 * result: --------F-----R------r---|    F: firing (5 + 3), R: repeat 1 (8 + 6), r: resolved (19 + 2)
 * ```
 * (the first A clears before group_wait: nothing; the second holds.)
 *
 * @param config timings, or an Observable of them (hot reload).
 * @param scheduler clock and timers.
 */
export function throttleAlerts(
  config: ThrottleAlertsConfig | Observable<ThrottleAlertsConfig>,
  scheduler: SchedulerLike = asyncScheduler,
): OperatorFunction<AlertCondition, Alert> {
  return (source) =>
    defer(() => {
      const tracks = new Map<string, Track>();
      let current: ThrottleAlertsConfig | undefined;
      /** The next deadline; each value replaces the running timer (null: none). */
      const wake = new Subject<number | null>();
      const sourceDone = new Subject<void>();

      const notify = (track: Track, status: Alert['status'], nowMs: number): Alert => {
        const c = track.condition;
        return {
          key: c.key,
          kind: c.kind,
          severity: status === 'firing' ? c.severity : track.episodeMax,
          status,
          component: c.component,
          atMs: nowMs,
          sinceMs: track.sinceMs,
          repeat: status === 'firing' ? track.repeat : 0,
          title: c.title,
          message: c.message,
          recommendations: status === 'firing' ? c.recommendations : [],
        };
      };

      /** Records a firing notification of `track` now. */
      const fire = (track: Track, nowMs: number): Alert => {
        track.notifiedAtMs = nowMs;
        track.notifiedMax = track.condition.severity;
        if (rank(track.condition.severity) > rank(track.episodeMax)) track.episodeMax = track.condition.severity;
        return notify(track, 'firing', nowMs);
      };

      const deadlineOf = (track: Track, cfg: ThrottleAlertsConfig): number => {
        switch (track.phase) {
          case 'pending':
            return track.sinceMs + cfg.groupWaitMs;
          case 'firing':
            return track.notifiedAtMs + cfg.repeatIntervalMs;
          case 'recovering':
            return track.inactiveSinceMs + recoveryDelayFor(cfg, track.flaps);
        }
      };

      /** The deadline the running timer is armed for (null: none, or it has fired). */
      let armedFor: number | null = null;

      /** Fires every deadline due at `nowMs` (in key order), then arms the timer for the next one. */
      const pump = (): Alert[] => {
        if (!current) return [];
        const cfg = current;
        const nowMs = scheduler.now();
        const out: Alert[] = [];
        let due = false;
        for (const track of tracks.values()) {
          if (deadlineOf(track, cfg) <= nowMs) {
            due = true;
            break;
          }
        }
        if (due) {
          const keys = [...tracks.keys()].sort();
          for (const key of keys) {
            const track = tracks.get(key);
            if (!track || deadlineOf(track, cfg) > nowMs) continue;
            switch (track.phase) {
              case 'pending':
                track.phase = 'firing';
                track.repeat = 0;
                track.episodeMax = track.condition.severity;
                out.push(fire(track, nowMs));
                break;
              case 'firing':
                track.repeat += 1;
                out.push(fire(track, nowMs));
                break;
              case 'recovering':
                out.push(notify(track, 'resolved', nowMs));
                tracks.delete(key);
                break;
            }
          }
        }
        let next: number | null = null;
        for (const track of tracks.values()) {
          const deadline = deadlineOf(track, cfg);
          if (next === null || deadline < next) next = deadline;
        }
        // Most conditions change text, not timing: a timer already armed for the same deadline stays
        // (re-arming it on every condition was a timer teardown and setup per sample).
        if (next !== armedFor) {
          armedFor = next;
          wake.next(next === null ? null : Math.max(0, next - nowMs));
        }
        return out;
      };

      const apply = (condition: AlertCondition): Alert[] => {
        validate(condition);
        const due = pump();
        const nowMs = scheduler.now();
        const track = tracks.get(condition.key);
        const out: Alert[] = [];
        if (!track) {
          if (condition.active) {
            tracks.set(condition.key, {
              phase: 'pending',
              condition,
              sinceMs: nowMs,
              notifiedAtMs: nowMs,
              repeat: 0,
              notifiedMax: condition.severity,
              episodeMax: condition.severity,
              inactiveSinceMs: nowMs,
              flapAtMs: null,
              flaps: 0,
            });
          }
        } else if (track.phase === 'pending') {
          if (condition.active) track.condition = condition;
          else tracks.delete(condition.key); // cleared within group_wait: never notified
        } else {
          const wasActive = track.phase === 'firing';
          // A recovery notice keeps the text of the last active state when the clear carries none of its own.
          track.condition = condition;
          if (wasActive && !condition.active) {
            track.phase = 'recovering';
            track.inactiveSinceMs = nowMs;
            // Stayed back longer than the delay it would have had: the flapping is over.
            if (current && track.flapAtMs !== null && nowMs - track.flapAtMs >= recoveryDelayFor(current, track.flaps)) track.flaps = 0;
          } else if (!wasActive && condition.active) {
            track.phase = 'firing';
            track.flaps += 1;
            track.flapAtMs = nowMs;
          }
          if (condition.active && rank(condition.severity) > rank(track.notifiedMax)) {
            track.repeat += 1;
            out.push(fire(track, nowMs));
          }
        }
        return [...due, ...out, ...pump()];
      };

      const onConfig = (value: ThrottleAlertsConfig): Alert[] => {
        current = value;
        return pump();
      };

      // Same shape as alertConditions: timer branch first, then config, then the source, whose completion ends all.
      return merge(
        wake.pipe(
          switchMap((delayMs) => (delayMs === null ? EMPTY : timer(delayMs, scheduler))),
          map(() => {
            armedFor = null;
            return pump();
          }),
          takeUntil(sourceDone),
        ),
        (isObservable(config) ? config : of(config)).pipe(map(onConfig), takeUntil(sourceDone)),
        source.pipe(
          map(apply),
          tap({ complete: () => sourceDone.next() }),
        ),
      ).pipe(
        // Most inputs change nothing: an empty batch is dropped here, not subscribed to as an inner stream.
        filter((alerts) => alerts.length > 0),
        mergeMap((alerts) => alerts),
      );
    });
}
