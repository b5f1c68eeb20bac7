import { Observable, asyncScheduler, isObservable, type OperatorFunction, type SchedulerLike, type Subscription } from 'rxjs';
import type { PressureConfig } from '../app/configSchema.js';
import { levelRank, type PressureChange, type PressureLevel } from '../model.js';
import { formatDuration } from '../app/units.js';
import { levelOf, resolveThresholds, signalValues, type PressureSignals } from './pressureThresholds.js';

/** Options of {@link classifyPressure}: the `pressure` section of the config. */
export type ClassifyPressureConfig = PressureConfig;

export class PressureError extends Error {
  readonly code = 'MEMTIDE_ERR_PRESSURE_INPUT';
  constructor(message: string) {
    super(message);
    this.name = 'PressureError';
  }
}

function validate(signals: PressureSignals): void {
  if (!(Number.isFinite(signals.totalBytes) && signals.totalBytes > 0)) {
    throw new PressureError(`totalBytes must be a positive number, got ${signals.totalBytes}`);
  }
  if (!(Number.isFinite(signals.availableBytes) && signals.availableBytes >= 0)) {
    throw new PressureError(`availableBytes must be a non-negative number, got ${signals.availableBytes}`);
  }
}

/**
 * Classifies memory signals into `low | medium | high | critical` and emits
 * only changes (plus the first level).
 *
 * - Rises are immediate: acting before the OS does is the point.
 * - Falls need hysteresis and dwell: a level is left only when every signal
 *   has recovered past its line by `marginPercent`, continuously for
 *   `dwellMs` (time from `scheduler`, so virtual time works). Noise smaller
 *   than the margin therefore never makes the level flap.
 * - `config` may be an Observable (hot reload): the latest value applies from
 *   the next sample on.
 *
 * ```
 * available%: -80--25--8--30--60--60--60-|     (8gb preset, dwell 2 frames)
 * result:     -l---m---c------------l----|
 * ```
 *
 * @param config thresholds, preset, margin and dwell, or an Observable of them.
 * @param scheduler clock for the dwell time.
 */
export function classifyPressure(
  config: ClassifyPressureConfig | Observable<ClassifyPressureConfig>,
  scheduler: SchedulerLike = asyncScheduler,
): OperatorFunction<PressureSignals, PressureChange> {
  return (source) =>
    new Observable<PressureChange>((subscriber) => {
      let current: ClassifyPressureConfig | undefined = isObservable(config) ? undefined : config;
      let level: PressureLevel | null = null;
      // When the signals first allowed a fall from `level`; null while they do not.
      let recoveringSince: number | null = null;

      let configSubscription: Subscription | undefined;
      if (isObservable(config)) {
        configSubscription = config.subscribe({
          next: (value) => (current = value),
          error: (error: unknown) => subscriber.error(error),
        });
      }

      const emit = (next: PressureLevel, reasons: string[]) => {
        const change: PressureChange = { atMs: scheduler.now(), level: next, previous: level, reasons };
        level = next;
        recoveringSince = null;
        subscriber.next(change);
      };

      const onSignals = (signals: PressureSignals) => {
        if (!current) return; // no config yet: nothing to classify against
        validate(signals);
        const { thresholds } = resolveThresholds(current, signals.totalBytes);
        const values = signalValues(signals);
        const raw = levelOf(values, thresholds);
        if (level === null || levelRank(raw.level) > levelRank(level)) {
          emit(raw.level, raw.reasons);
          return;
        }
        const held = levelOf(values, thresholds, current.marginPercent, level);
        if (held.level === level) {
          recoveringSince = null;
          return;
        }
        const now = scheduler.now();
        recoveringSince ??= now;
        if (now - recoveringSince >= current.dwellMs) {
          const recovered = `recovered for ${formatDuration(now - recoveringSince)} past the ${level} line by ${current.marginPercent} points`;
          emit(held.level, held.reasons.length ? [...held.reasons, recovered] : [recovered]);
        }
      };

      const subscription = source.subscribe({
        next: (signals) => {
          try {
            onSignals(signals);
          } catch (error) {
            subscriber.error(error);
          }
        },
        error: (error: unknown) => subscriber.error(error),
        complete: () => subscriber.complete(),
      });
      return () => {
        subscription.unsubscribe();
        configSubscription?.unsubscribe();
      };
    });
}
