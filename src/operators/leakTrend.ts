import {
  asyncScheduler,
  concatMap,
  defer,
  EMPTY,
  filter,
  ignoreElements,
  isObservable,
  map,
  merge,
  of,
  Subject,
  takeUntil,
  tap,
  withLatestFrom,
  type Observable,
  type OperatorFunction,
  type SchedulerLike,
} from 'rxjs';
import type { LeaksConfig } from '../app/schema/leaks.js';
import type { LeakEvent } from '../model.js';
import { ComponentWindow, type WindowSettings } from './trend/componentWindow.js';
import { normalQuantileUpper } from './trend/mannKendall.js';

/** Options of {@link leakTrend}: the `leaks` section of the config. */
export type LeakTrendConfig = LeaksConfig;

/**
 * One observation for {@link leakTrend}: bytes per component (the engine
 * passes anonymous PSS where it was read, else RSS; `memtide analyze` the RSS
 * of a trace) and, when known, the system's available bytes (for the
 * projected exhaustion).
 */
export interface LeakInput {
  timestampMs: number;
  components: Record<string, number>;
  availableBytes?: number | null;
}

/** A known load or unload (from the model governor): the component's window restarts there. */
export interface LeakReset {
  component: string;
  atMs: number;
}

export class LeakTrendError extends Error {
  readonly code = 'MEMTIDE_ERR_LEAK_INPUT';
  constructor(message: string) {
    super(message);
    this.name = 'LeakTrendError';
  }
}

const HOUR = 3_600_000;
/** Internal constants of the evaluation (tuned with bench:leaks; see docs/leaks.md). */
const DECELERATION_Z = 2;
const RATE_Z = 1.28;
const NOISE_MULTIPLE = 5;
const MAX_POINTS = 40;
const FAST_SEGMENTS = 4;
const FAST_SEGMENT_FRACTION = 0.35;

function settingsFor(config: LeakTrendConfig, component: string): WindowSettings | null {
  if (!config.enabled || config.ignore.includes(component)) return null;
  const o = config.components[component] ?? {};
  return {
    bucketMs: config.bucketMs,
    evaluateEveryMs: config.evaluateEveryMs,
    persistence: o.persistence ?? config.persistence,
    resetSettleMs: config.resetSettleMs,
    gapResetMs: config.gapResetMs,
    params: {
      bucketMs: config.bucketMs,
      windowMs: config.windowMs,
      minSpanMs: config.minSpanMs,
      batchToleranceMs: config.batchToleranceMs,
      minRate: (o.minHourlyGrowthBytes ?? config.minHourlyGrowthBytes) / HOUR,
      z: normalQuantileUpper(o.pValue ?? config.pValue),
      rateZ: RATE_Z,
      decelerationRatio: config.decelerationRatio,
      decelerationZ: DECELERATION_Z,
      stepMinBytes: config.stepMinBytes,
      noiseMultiple: NOISE_MULTIPLE,
      restartHoldMs: config.restartHoldMs,
      maxPoints: MAX_POINTS,
      fast: {
        enabled: config.fast.enabled,
        windowMs: config.fast.windowMs,
        minRate: config.fast.minHourlyGrowthBytes / HOUR,
        z: normalQuantileUpper(config.fast.pValue),
        floorSpanMs: config.fast.floorSpanMs,
        segments: FAST_SEGMENTS,
        segmentFraction: FAST_SEGMENT_FRACTION,
      },
    },
  };
}

function validateSample(input: LeakInput): void {
  if (!(typeof input === 'object' && input !== null)) throw new LeakTrendError(`a sample must be an object, got ${String(input)}`);
  if (!Number.isFinite(input.timestampMs)) throw new LeakTrendError(`timestampMs must be a finite number, got ${String(input.timestampMs)}`);
  if (!(typeof input.components === 'object' && input.components !== null)) {
    throw new LeakTrendError(`components must be an object of bytes per component (sample at ${input.timestampMs})`);
  }
  for (const name in input.components) {
    if (!Object.hasOwn(input.components, name)) continue;
    const bytes = input.components[name];
    if (!(typeof bytes === 'number' && Number.isFinite(bytes) && bytes >= 0)) {
      throw new LeakTrendError(`components.${name} must be a non-negative number of bytes, got ${String(bytes)} (sample at ${input.timestampMs})`);
    }
  }
  const available = input.availableBytes;
  if (available != null && !(Number.isFinite(available) && available >= 0)) {
    throw new LeakTrendError(`availableBytes must be a non-negative number, got ${String(available)} (sample at ${input.timestampMs})`);
  }
}

function validateReset(reset: LeakReset): void {
  if (!(typeof reset === 'object' && reset !== null && typeof reset.component === 'string' && Number.isFinite(reset.atMs))) {
    throw new LeakTrendError(`a reset must be { component: string, atMs: number }, got ${JSON.stringify(reset)}`);
  }
}

/** The state of one subscription: a window per component, rebuilt when the config changes their layout. */
class LeakDetector {
  private readonly windows = new Map<string, ComponentWindow>();
  private readonly pendingResets = new Map<string, number>();
  private config: LeakTrendConfig | null = null;
  private readonly settings = new Map<string, WindowSettings | null>();

  sample(input: LeakInput, config: LeakTrendConfig): LeakEvent[] {
    validateSample(input);
    const events: LeakEvent[] = [];
    if (config !== this.config) this.configure(config, input.timestampMs, events);
    const available = input.availableBytes ?? null;
    for (const component in input.components) {
      if (!Object.hasOwn(input.components, component)) continue;
      const bytes = input.components[component] as number;
      const s = this.settingsOf(component, config);
      if (s === null) continue;
      let window = this.windows.get(component);
      if (window === undefined) {
        window = new ComponentWindow(component, config.bucketMs, config.windowMs);
        this.windows.set(component, window);
        const pending = this.pendingResets.get(component);
        if (pending !== undefined) window.reset(pending, s);
        this.pendingResets.delete(component);
      }
      window.sample(input.timestampMs, bytes, available, s, events);
    }
    return events;
  }

  reset(reset: LeakReset): void {
    validateReset(reset);
    const window = this.windows.get(reset.component);
    const s = this.config === null ? null : this.settingsOf(reset.component, this.config);
    if (window !== undefined && s !== null) window.reset(reset.atMs, s);
    // before the component's first sample (or the first config), remember it for when the window is made
    else this.pendingResets.set(reset.component, Math.max(reset.atMs, this.pendingResets.get(reset.component) ?? -Infinity));
  }

  private settingsOf(component: string, config: LeakTrendConfig): WindowSettings | null {
    let s = this.settings.get(component);
    if (s === undefined) {
      s = settingsFor(config, component);
      this.settings.set(component, s);
    }
    return s;
  }

  /** A new config: settings are re-resolved; windows whose layout changed restart (a reported leak carries over). */
  private configure(config: LeakTrendConfig, atMs: number, events: LeakEvent[]): void {
    this.config = config;
    this.settings.clear();
    for (const [component, window] of this.windows) {
      const s = this.settingsOf(component, config);
      if (s === null) {
        const cleared = window.drop(atMs, config.enabled ? 'component ignored by configuration' : 'leak detection disabled');
        if (cleared) events.push(cleared);
        this.windows.delete(component);
      } else if (window.bucketMs !== config.bucketMs || window.windowMs !== config.windowMs) {
        const fresh = new ComponentWindow(component, config.bucketMs, config.windowMs);
        fresh.adopt(window);
        this.windows.set(component, fresh);
      }
    }
  }
}

/**
 * Finds components whose memory grows steadily: a leak, not a GC sawtooth, a
 * step (model load/unload), a warm-up that saturates or a batch that frees
 * its memory within `batchToleranceMs`. Per component, samples are reduced to
 * bucket floors; every `evaluateEveryMs` (every third, while nothing trends)
 * the window of floors is tested: excursions left out, cut at steps, then
 * Mann-Kendall significance and a Theil-Sen slope above the floor on the
 * current segment, no step explaining the rise, no deceleration, growth that
 * goes on in the newer floors; or a steady steep rise on the fast path. A
 * leak is reported once, after `persistence` positive evaluations, and
 * cleared when growth stops (as many evaluations in a row) or memory falls
 * below its floor (a restart). docs/leaks.md has the why.
 *
 * Times are the samples' `timestampMs` (a trace replays with its own times);
 * no timers are used. `resets$` marks known loads/unloads: that component's
 * window is cut there. `config` may be an Observable (hot reload): the latest
 * value applies from the next sample; samples before the first config value
 * are ignored. Invalid input becomes a {@link LeakTrendError}.
 *
 * ```
 * ollama MB: -500-500-510-520-...-900-910-...-400-|   (floors; 1 frame = 1 min)
 * result:    --------------------L--------C-------|   L: leak, C: clear (restart)
 * ```
 *
 * @param config the `leaks` section, or an Observable of it.
 * @param resets$ known load/unload events per component.
 * @param scheduler unused (times come from the samples); kept last, as for every operator.
 */
export function leakTrend(
  config: LeakTrendConfig | Observable<LeakTrendConfig>,
  resets$: Observable<LeakReset> = EMPTY,
  scheduler: SchedulerLike = asyncScheduler,
): OperatorFunction<LeakInput, LeakEvent> {
  void scheduler;
  return (source) =>
    defer(() => {
      const detector = new LeakDetector();
      const sourceDone$ = new Subject<void>();
      // resets apply in arrival order between samples; they end with the source
      const resetBranch$ = resets$.pipe(
        takeUntil(sourceDone$),
        tap((reset) => detector.reset(reset)),
        ignoreElements(),
      );
      const sampleBranch$ = source.pipe(
        tap({ complete: () => sourceDone$.next() }),
        withLatestFrom(isObservable(config) ? config : of(config)),
        map(([input, current]) => detector.sample(input, current)),
        // most samples cause no event: only a batch that has one is flattened (a subscription per sample to an
        // empty batch cost more than the sample's bucket update)
        filter((events) => events.length > 0),
        concatMap((events) => events),
      );
      return merge(resetBranch$, sampleBranch$);
    });
}
