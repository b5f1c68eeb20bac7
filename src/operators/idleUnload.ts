import { asyncScheduler, isObservable, Observable, of, Subject, takeUntil, type OperatorFunction, type SchedulerLike, type Subscription } from 'rxjs';

/** Options of {@link idleUnload}: the idle part of the `models` config (plus runtime pins). */
export interface IdleUnloadConfig {
  idleTimeoutMs: number;
  /** Model names never unloaded for idleness. */
  pinned: readonly string[];
  perModel: Readonly<Record<string, { idleTimeoutMs?: number | undefined; pinned?: boolean | undefined }>>;
}

/**
 * What happened to a model:
 * - `start` / `end`: a request to it began / finished (counted: the model is
 *   idle when every `start` has its `end`);
 * - `loaded`: it is loaded and idle as far as the caller knows (e.g. seen in
 *   `/api/ps` without a request through us); tracked from now if not already;
 * - `unloaded`: it is gone; forget it (ignored while requests are in flight:
 *   they will load it again).
 */
export interface ModelActivity {
  kind: 'start' | 'end' | 'loaded' | 'unloaded';
  model: string;
}

/** Emitted when a model has been idle for its timeout: unload it. */
export interface IdleUnloadDecision {
  model: string;
  atMs: number;
  idleSinceMs: number;
  idleTimeoutMs: number;
}

export class IdleUnloadError extends Error {
  readonly code = 'MEMTIDE_ERR_IDLE_UNBALANCED';
  constructor(message: string) {
    super(message);
    this.name = 'IdleUnloadError';
  }
}

interface Tracked {
  inFlight: number;
  idleSinceMs: number | null;
  timer: Subscription | null;
}

/** The timeout of `model` under `config`, or null when it is pinned. */
export function idleTimeoutOf(config: IdleUnloadConfig, model: string): number | null {
  const own = config.perModel[model];
  const pinned = own?.pinned ?? config.pinned.includes(model);
  return pinned ? null : (own?.idleTimeoutMs ?? config.idleTimeoutMs);
}

/**
 * Per model: once no request is in flight, waits its idle timeout (per-model
 * override, else the default) and emits an unload decision; a new request
 * cancels the wait; pinned models never get one. After a decision the model
 * is forgotten until it is seen again (`start` or `loaded`).
 *
 * - `config` may be an Observable (hot reload): a new value re-arms every
 *   idle model's timer from the time it became idle, so a shorter timeout
 *   that has already passed fires at once and pinning cancels the timer.
 *   Until the first value, activity is counted and nothing is armed.
 * - Completes with the source; pending timers are dropped (nothing is left to
 *   unload for). An `end` without a `start` is an {@link IdleUnloadError}.
 *
 * ```
 * activity: -s-e-------      (idleTimeoutMs 5 frames)
 * result:   --------u--
 * activity: -s-e--s-e--------
 * result:   ---------------u-    (the second request reset the timer)
 * ```
 *
 * @param config timeouts and pins, or an Observable of them.
 * @param scheduler clock and timers.
 */
export function idleUnload(
  config: IdleUnloadConfig | Observable<IdleUnloadConfig>,
  scheduler: SchedulerLike = asyncScheduler,
): OperatorFunction<ModelActivity, IdleUnloadDecision> {
  return (source) =>
    new Observable<IdleUnloadDecision>((subscriber) => {
      const models = new Map<string, Tracked>();
      let current: IdleUnloadConfig | null = null;

      const disarm = (tracked: Tracked) => {
        tracked.timer?.unsubscribe();
        tracked.timer = null;
      };

      const arm = (model: string, tracked: Tracked) => {
        disarm(tracked);
        if (current === null || tracked.idleSinceMs === null) return;
        const timeout = idleTimeoutOf(current, model);
        if (timeout === null) return;
        const idleSinceMs = tracked.idleSinceMs;
        const delay = Math.max(0, idleSinceMs + timeout - scheduler.now());
        tracked.timer = scheduler.schedule(() => {
          models.delete(model);
          subscriber.next({ model, atMs: scheduler.now(), idleSinceMs, idleTimeoutMs: timeout });
        }, delay);
      };

      const onActivity = (activity: ModelActivity) => {
        const tracked = models.get(activity.model);
        switch (activity.kind) {
          case 'start': {
            const t = tracked ?? { inFlight: 0, idleSinceMs: null, timer: null };
            disarm(t);
            t.inFlight += 1;
            t.idleSinceMs = null;
            models.set(activity.model, t);
            return;
          }
          case 'end': {
            if (!tracked || tracked.inFlight === 0) {
              subscriber.error(new IdleUnloadError(`"end" of ${activity.model} without a matching "start"`));
              return;
            }
            tracked.inFlight -= 1;
            if (tracked.inFlight === 0) {
              tracked.idleSinceMs = scheduler.now();
              arm(activity.model, tracked);
            }
            return;
          }
          case 'loaded': {
            if (tracked) return;
            const t: Tracked = { inFlight: 0, idleSinceMs: scheduler.now(), timer: null };
            models.set(activity.model, t);
            arm(activity.model, t);
            return;
          }
          case 'unloaded': {
            if (!tracked || tracked.inFlight > 0) return;
            disarm(tracked);
            models.delete(activity.model);
            return;
          }
        }
      };

      // Registered first, so closing (error, unsubscribe) also stops a synchronous source at once.
      const closed = new Subject<void>();
      subscriber.add(() => {
        closed.next();
        for (const tracked of models.values()) disarm(tracked);
        models.clear();
      });
      (isObservable(config) ? config : of(config)).pipe(takeUntil(closed)).subscribe({
        next: (value) => {
          current = value;
          for (const [model, tracked] of models) arm(model, tracked);
        },
        error: (error: unknown) => subscriber.error(error),
      });
      if (subscriber.closed) return;
      source.pipe(takeUntil(closed)).subscribe({
        next: onActivity,
        error: (error: unknown) => subscriber.error(error),
        complete: () => subscriber.complete(),
      });
    });
}
