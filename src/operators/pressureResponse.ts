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
import { levelRank, type PressureChange, type PressureLevel } from '../model.js';

/** Options of {@link pressureResponse}. */
export interface PressureResponseConfig {
  /** At critical, unload idle pinned models too. */
  unloadPinnedAtCritical: boolean;
}

/** What the governor does about models at the current pressure. */
export interface PressureDirective {
  atMs: number;
  level: PressureLevel;
  /** Which idle models go: none, idle unpinned ones (high), every idle one (critical). */
  evict: 'none' | 'idle-unpinned' | 'idle-all';
  /** New loads wait (or get 503) while true: from critical until the level is back to medium or lower. */
  holdLoads: boolean;
  reasons: string[];
}

/**
 * Turns pressure changes into what to do about models:
 * - low, medium: nothing;
 * - high: unload idle unpinned models;
 * - critical: unload every idle model (pinned included unless
 *   `unloadPinnedAtCritical` is false: a pinned model costs a reload of a
 *   few seconds, the OOM killer costs the meeting) and hold new loads;
 * - the hold lasts until the level is back to medium or lower, so critical ->
 *   high keeps holding (and unloads idle unpinned models).
 *
 * Emits the first directive and then only changes of `evict`/`holdLoads`.
 * Config may be an Observable (hot: applies from the next pressure change;
 * changes before the first config value are dropped). Requests in flight are
 * never touched: that is the governor's rule, not a directive.
 *
 * ```
 * pressure: -l--h--c--h--m--|
 * result:   -n--u--a--U--n--|   n: none, u: idle-unpinned, a: idle-all + hold, U: idle-unpinned + hold
 * ```
 *
 * @param config whether pinned models go at critical, or an Observable of it.
 * @param scheduler clock for the directives' `atMs`.
 */
export function pressureResponse(
  config: PressureResponseConfig | Observable<PressureResponseConfig>,
  scheduler: SchedulerLike = asyncScheduler,
): OperatorFunction<PressureChange, PressureDirective> {
  return (source) =>
    defer(() => {
      let last: PressureDirective | null = null;
      const step = (change: PressureChange, current: PressureResponseConfig): PressureDirective | null => {
        const rank = levelRank(change.level);
        const holding = last?.holdLoads ?? false;
        const holdLoads = change.level === 'critical' || (holding && rank > levelRank('medium'));
        const evict: PressureDirective['evict'] =
          change.level === 'critical' ? (current.unloadPinnedAtCritical ? 'idle-all' : 'idle-unpinned') : change.level === 'high' ? 'idle-unpinned' : 'none';
        if (last && last.evict === evict && last.holdLoads === holdLoads) return null;
        const reasons = [`pressure ${change.level}${change.reasons.length ? `: ${change.reasons.join('; ')}` : ''}`];
        if (holdLoads && change.level !== 'critical') reasons.push('loads stay held until pressure is back to medium');
        last = { atMs: scheduler.now(), level: change.level, evict, holdLoads, reasons };
        return last;
      };
      return source.pipe(
        withLatestFrom(isObservable(config) ? config : of(config)),
        map(([change, current]) => step(change, current)),
        filter((directive): directive is PressureDirective => directive !== null),
      );
    });
}
