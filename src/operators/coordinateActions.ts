import { asyncScheduler, isObservable, Observable, of, type OperatorFunction, type SchedulerLike, type Subscription } from 'rxjs';
import type { OptimizationLevel } from '../app/schema/optimization.js';
import { formatDuration } from '../app/units.js';
import { levelRank, type PressureChange, type PressureLevel } from '../model.js';

/** What the coordinator can do about pressure, across components. */
export const COORDINATED_ACTIONS = ['unload-idle-models', 'lower-transcription-concurrency', 'shrink-caches', 'disable-live-summaries'] as const;
export type CoordinatedAction = (typeof COORDINATED_ACTIONS)[number];

/** Actions that happen once and are not undone (an unloaded model reloads by itself on the next request). */
export const ONE_SHOT_ACTIONS: ReadonlySet<CoordinatedAction> = new Set(['unload-idle-models']);

/** For each action the lowest pressure level at which it is in force; an action absent from a plan is never taken. */
export type ActionPlan = Readonly<Partial<Record<CoordinatedAction, PressureLevel>>>;

/**
 * The plan per optimization level (`optimization.level`; `lowMemory` takes
 * the maximum plan). Reasons: docs/coordinator.md.
 *
 * | level      | unload idle models | lower transcription concurrency | shrink caches | disable live summaries |
 * |------------|--------------------|---------------------------------|---------------|------------------------|
 * | basic      | high               | critical                        | critical      | never                  |
 * | aggressive | high               | high                            | high          | critical               |
 * | maximum    | medium             | medium                          | medium        | medium                 |
 */
export const ACTION_PLANS: Readonly<Record<OptimizationLevel, ActionPlan>> = Object.freeze({
  basic: { 'unload-idle-models': 'high', 'lower-transcription-concurrency': 'critical', 'shrink-caches': 'critical' },
  aggressive: { 'unload-idle-models': 'high', 'lower-transcription-concurrency': 'high', 'shrink-caches': 'high', 'disable-live-summaries': 'critical' },
  maximum: { 'unload-idle-models': 'medium', 'lower-transcription-concurrency': 'medium', 'shrink-caches': 'medium', 'disable-live-summaries': 'medium' },
});

/** Options of {@link coordinateActions}: the `optimization` config keys it reads. */
export interface CoordinateActionsConfig {
  level: OptimizationLevel;
  /** Low-memory mode: the maximum plan whatever the level. */
  lowMemory: boolean;
  /** Hysteresis: an action is undone once pressure has stayed below its level for this long. */
  undoAfterMs: number;
}

/** Take (`apply`) or give back (`undo`) one planned action. */
export interface CoordinatorDecision {
  atMs: number;
  op: 'apply' | 'undo';
  action: CoordinatedAction;
  /** The pressure level when the decision was made. */
  level: PressureLevel;
  /** The level from which the plan takes this action (for an undo after a plan change: the old one). */
  trigger: PressureLevel;
  /** One-shot actions are never undone. */
  oneShot: boolean;
  reason: string;
}

export class CoordinateActionsError extends Error {
  readonly code = 'MEMTIDE_ERR_COORDINATE_CONFIG';
  constructor(message: string) {
    super(message);
    this.name = 'CoordinateActionsError';
  }
}

/** The plan in force for a config. */
export function planFor(config: Pick<CoordinateActionsConfig, 'level' | 'lowMemory'>): ActionPlan {
  return ACTION_PLANS[config.lowMemory ? 'maximum' : config.level];
}

function validate(config: CoordinateActionsConfig): void {
  if (!(config.level in ACTION_PLANS)) throw new CoordinateActionsError(`level: expected basic, aggressive or maximum, got ${String(config.level)}`);
  if (!(Number.isFinite(config.undoAfterMs) && config.undoAfterMs >= 0)) {
    throw new CoordinateActionsError(`undoAfterMs: expected a duration >= 0 ms, got ${String(config.undoAfterMs)}`);
  }
}

const planName = (config: CoordinateActionsConfig) => (config.lowMemory ? 'low-memory mode (maximum plan)' : `optimization level ${config.level}`);

interface Held {
  trigger: PressureLevel;
  undo: Subscription | null;
}

/**
 * Turns pressure changes into the coordinator's decisions: at each level the
 * plan's actions are applied (see {@link ACTION_PLANS}); when pressure falls
 * below an action's level, it is undone only after pressure has stayed
 * below for `undoAfterMs` (a re-rise in the meantime cancels the undo), so a
 * level that flaps does not flap the actions. One-shot actions (unload idle
 * models) are never undone; they happen again on every rise of the level
 * while in force (more models may be idle by then).
 *
 * Config may be an Observable (hot): a plan change applies what the new plan
 * wants at the current level at once, and undoes (with the same hysteresis)
 * what it no longer wants. Pressure before the first config waits for it.
 * On completion pending undos are dropped (the caller restores what it
 * changed); errors of either input are passed on.
 *
 * ```
 * pressure: -m--h----l------h--|   basic
 * result:   ----U-----------U--|   U: unload idle models (one-shot: again on a re-rise)
 * pressure: -h-m-l-------|         aggressive, undoAfterMs 5
 * result:   -(ULS)--(ls)-|         L: lower transcription concurrency, S: shrink caches;
 *                                  lower case: undone 5 after pressure fell below high (at m)
 * ```
 *
 * @param config level, low-memory mode and hysteresis, or an Observable of them.
 * @param scheduler clock for `atMs` and the undo timers.
 */
export function coordinateActions(
  config: CoordinateActionsConfig | Observable<CoordinateActionsConfig>,
  scheduler: SchedulerLike = asyncScheduler,
): OperatorFunction<PressureChange, CoordinatorDecision> {
  return (source) =>
    new Observable<CoordinatorDecision>((subscriber) => {
      let current: CoordinateActionsConfig | null = null;
      let pressure: PressureChange | null = null;
      /** Reversible actions in force, with their pending undo. */
      const held = new Map<CoordinatedAction, Held>();
      /** One-shot actions already taken since they last came in force. */
      const fired = new Set<CoordinatedAction>();

      const emit = (op: CoordinatorDecision['op'], action: CoordinatedAction, trigger: PressureLevel, reason: string) =>
        subscriber.next({ atMs: scheduler.now(), op, action, level: pressure?.level ?? 'low', trigger, oneShot: ONE_SHOT_ACTIONS.has(action), reason });

      const undo = (action: CoordinatedAction) => {
        const h = held.get(action);
        if (!h || !current) return;
        held.delete(action);
        const now = pressure?.level ?? 'low';
        emit('undo', action, h.trigger, `pressure below ${h.trigger} for ${formatDuration(current.undoAfterMs)} (now ${now})`);
      };

      const evaluate = (rose: boolean) => {
        if (!current || !pressure) return;
        const plan = planFor(current);
        const rank = levelRank(pressure.level);
        const why = `pressure ${pressure.level}${pressure.reasons.length ? ` (${pressure.reasons.join('; ')})` : ''}`;
        for (const action of COORDINATED_ACTIONS) {
          const trigger = plan[action];
          const inForce = trigger !== undefined && rank >= levelRank(trigger);
          if (ONE_SHOT_ACTIONS.has(action)) {
            if (!inForce) fired.delete(action);
            else if (!fired.has(action) || rose) {
              fired.add(action);
              emit('apply', action, trigger, `${why}: ${planName(current)} acts from ${trigger}`);
            }
            continue;
          }
          const h = held.get(action);
          if (inForce) {
            if (h) {
              // A re-rise cancels the pending undo: the hysteresis starts again when pressure next falls.
              h.undo?.unsubscribe();
              h.undo = null;
              h.trigger = trigger;
            } else {
              held.set(action, { trigger, undo: null });
              emit('apply', action, trigger, `${why}: ${planName(current)} acts from ${trigger}`);
            }
          } else if (h && !h.undo) {
            if (current.undoAfterMs === 0) undo(action);
            else h.undo = scheduler.schedule(() => undo(action), current.undoAfterMs);
          }
        }
      };

      const configSubscription: Subscription = (isObservable(config) ? config : of(config)).subscribe({
        next: (value) => {
          try {
            validate(value);
          } catch (error) {
            subscriber.error(error);
            return;
          }
          current = value;
          evaluate(false);
        },
        error: (error: unknown) => subscriber.error(error),
      });
      if (subscriber.closed) return () => configSubscription.unsubscribe();
      const sourceSubscription = source.subscribe({
        next: (change) => {
          const previous = pressure;
          pressure = change;
          evaluate(previous === null || levelRank(change.level) > levelRank(previous.level));
        },
        error: (error: unknown) => subscriber.error(error),
        complete: () => subscriber.complete(),
      });
      return () => {
        sourceSubscription.unsubscribe();
        configSubscription.unsubscribe();
        for (const h of held.values()) h.undo?.unsubscribe();
        held.clear();
      };
    });
}
