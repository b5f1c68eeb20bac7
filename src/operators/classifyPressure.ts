import {
  asyncScheduler,
  defer,
  filter,
  isObservable,
  map,
  of,
  withLatestFrom,
  type Observable,
  type OperatorFunction,
  type SchedulerLike,
} from 'rxjs';
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
    defer(() => {
      let level: PressureLevel | null = null;
      // When the signals first allowed a fall from `level`; null while they do not.
      let recoveringSince: number | null = null;

      const change = (next: PressureLevel, reasons: string[]): PressureChange => {
        const result: PressureChange = { atMs: scheduler.now(), level: next, previous: level, reasons };
        level = next;
        recoveringSince = null;
        return result;
      };

      const step = (signals: PressureSignals, current: ClassifyPressureConfig): PressureChange | null => {
        validate(signals);
        const { thresholds } = resolveThresholds(current, signals.totalBytes);
        const values = signalValues(signals);
        const raw = levelOf(values, thresholds);
        if (level === null || levelRank(raw.level) > levelRank(level)) return change(raw.level, raw.reasons);
        const held = levelOf(values, thresholds, current.marginPercent, level);
        if (held.level === level) {
          recoveringSince = null;
          return null;
        }
        const now = scheduler.now();
        recoveringSince ??= now;
        if (now - recoveringSince < current.dwellMs) return null;
        const recovered = `recovered for ${formatDuration(now - recoveringSince)} past the ${level} line by ${current.marginPercent} points`;
        return change(held.level, held.reasons.length ? [...held.reasons, recovered] : [recovered]);
      };

      // Built from RxJS's own operators so errors and unsubscription also stop synchronous sources at once;
      // samples that arrive before the first config value are ignored (nothing to classify against).
      return source.pipe(
        withLatestFrom(isObservable(config) ? config : of(config)),
        map(([signals, current]) => step(signals, current)),
        filter((result): result is PressureChange => result !== null),
      );
    });
}
