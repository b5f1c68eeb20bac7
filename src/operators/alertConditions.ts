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
  type Observable,
  type OperatorFunction,
  type SchedulerLike,
} from 'rxjs';
import type { PresetName } from '../app/configSchema.js';
import type { AlertsConfig } from '../app/schema/alerts.js';
import { formatBytes, formatDuration } from '../app/units.js';
import {
  levelRank,
  type AlertKind,
  type ComponentUsage,
  type AlertSeverity,
  type LeakCleared,
  type LeakDetected,
  type LeakEvent,
  type LoadedModel,
  type MemorySample,
  type PressureChange,
  type PressureLevel,
  type Recommendation,
} from '../model.js';
import {
  DEFAULT_MODEL_COMPONENT,
  footprintOf,
  growthBytesOf,
  recommendForBudget,
  recommendForEngine,
  recommendForExhaustion,
  recommendForLeak,
  recommendForPressure,
  roughBytes,
  selfBaselineKey,
  type GrowthBaseline,
  type RecommendState,
  type Tunables,
} from './recommend.js';

/** What `alertConditions` reads: the engine's streams, merged and tagged. */
export type AlertInput =
  | { kind: 'sample'; sample: MemorySample }
  | { kind: 'pressure'; change: PressureChange }
  | { kind: 'leak'; event: LeakEvent }
  | { kind: 'models'; models: readonly LoadedModel[] };

/**
 * The state of one alert condition, emitted when it changes. `throttleAlerts`
 * turns these into notifications.
 */
export interface AlertCondition {
  /** Stable identity: `pressure`, `leak:NAME`, `exhaustion:NAME`, `budget:NAME`, `engine:rss|heap|cpu|stalled`. */
  key: string;
  kind: AlertKind;
  severity: AlertSeverity;
  /** True while the condition holds. An inactive condition carries the recovery text and no recommendations. */
  active: boolean;
  component: string | null;
  title: string;
  message: string;
  /** Ranked, specific steps (see recommend.ts); empty when inactive. */
  recommendations: Recommendation[];
  /** Scheduler time of the evaluation. */
  atMs: number;
}

/**
 * Options of {@link alertConditions}. `MemtideConfig` fits as is; `tunables`
 * adds the settings of other features that recommendations may change.
 */
export interface AlertConditionsConfig {
  alerts: Pick<AlertsConfig, 'clearMarginPercent' | 'pressureMinLevel' | 'exhaustionHorizonMs' | 'componentBudgets' | 'engine'>;
  sampling: { intervalMs: number; pss: 'watched' | 'all' | 'off' };
  pressure: { preset: 'auto' | PresetName };
  components: { engine: string };
  tunables?: Tunables;
}

export class AlertInputError extends Error {
  readonly code = 'MEMTIDE_ERR_ALERT_INPUT';
  constructor(message: string) {
    super(message);
    this.name = 'AlertInputError';
  }
}

/** Pressure level → severity. `low` never alerts. */
const PRESSURE_SEVERITY: Record<Exclude<PressureLevel, 'low'>, AlertSeverity> = {
  medium: 'info',
  high: 'warning',
  critical: 'critical',
};

type Evaluated = Omit<AlertCondition, 'atMs'>;

interface Baseline extends GrowthBaseline {
  /** Identity of the processes it was measured on: a new identity (a restart) starts a new baseline. */
  signature: string;
}

interface State {
  sample: MemorySample | null;
  /** Scheduler time of the last sample (or of the subscription, before the first). */
  lastSampleMs: number;
  stalled: boolean;
  pressure: PressureChange | null;
  leaks: Map<string, LeakDetected>;
  /** The last clear of each component, for the recovery text of its leak condition. */
  clears: Map<string, LeakCleared>;
  models: readonly LoadedModel[];
  baselines: Map<string, Baseline>;
  /** `baselines` as the plain record recommendations read; rebuilt only after a baseline changed (null). */
  baselinesRecord: Record<string, Baseline> | null;
}

function processSignature(sample: MemorySample, component: string): string {
  const pids = sample.processes.filter((p) => p.component === component).map((p) => p.pid);
  if (pids.length > 0) return pids.sort((a, b) => a - b).join(',');
  return `count:${sample.components[component]?.processCount ?? 0}`;
}

/** Starts a new low-water mark for `key` when its processes changed or its usage went lower. */
function trackBaseline(state: State, key: string, bytes: number, signature: string, nowMs: number): void {
  const old = state.baselines.get(key);
  if (!old || old.signature !== signature || bytes < old.bytes) {
    state.baselines.set(key, { bytes, atMs: nowMs, signature });
    state.baselinesRecord = null;
  }
}

/** Low-water marks since each component's processes (re)started; growth above them is what a restart frees. */
function updateBaselines(state: State, sample: MemorySample, nowMs: number, engineComponent: string): void {
  for (const component in sample.components) {
    if (!Object.hasOwn(sample.components, component)) continue;
    const usage = sample.components[component] as ComponentUsage;
    trackBaseline(state, component, growthBytesOf(usage), processSignature(sample, component), nowMs);
  }
  trackBaseline(state, selfBaselineKey(engineComponent), sample.self.rssBytes, `pid:${sample.self.pid}`, nowMs);
}

function modelNames(models: readonly LoadedModel[]): string {
  return models
    .map((m) => m.name)
    .sort()
    .join('\n');
}

function validate(input: AlertInput): void {
  const kind = (input as { kind?: unknown } | null)?.kind;
  if (kind !== 'sample' && kind !== 'pressure' && kind !== 'leak' && kind !== 'models') {
    throw new AlertInputError(`unknown alert input kind ${JSON.stringify(kind)} (expected sample, pressure, leak or models)`);
  }
  if (kind === 'leak') {
    const event = (input as { event?: Partial<LeakEvent> }).event;
    if (!event || typeof event.component !== 'string' || (event.kind !== 'leak' && event.kind !== 'clear')) {
      throw new AlertInputError(`leak input needs an event with kind 'leak' or 'clear' and a component, got ${JSON.stringify(event)}`);
    }
    if (event.kind === 'leak' && !Number.isFinite(event.slopeBytesPerHour)) {
      throw new AlertInputError(`leak event for ${event.component}: slopeBytesPerHour must be a finite number, got ${String(event.slopeBytesPerHour)}`);
    }
  }
  if (kind === 'models' && !Array.isArray((input as { models?: unknown }).models)) {
    throw new AlertInputError('models input needs a models array');
  }
}

/** A limit with hysteresis: entered above `limit`, left only below `limit * (1 - margin)`. */
function overLimit(value: number, limit: number, wasActive: boolean, marginPercent: number): boolean {
  return wasActive ? value > limit * (1 - marginPercent / 100) : value > limit;
}

function percentOf(part: number, whole: number): string {
  return `${Math.round((part / whole) * 1000) / 10}%`;
}

/** The text of a condition: built only when it is needed (see {@link Candidate}). */
type Texts = Pick<Evaluated, 'title' | 'message' | 'recommendations'>;

/**
 * A rule's verdict on one condition before its text exists. Most evaluations
 * change nothing (a condition that stays inactive, as most do on most
 * samples, never needs its text), so the text — message strings, byte
 * formatting, recommendations — is built by `texts` only when the condition
 * is, or was, active.
 */
interface Candidate {
  key: string;
  kind: AlertKind;
  severity: AlertSeverity;
  active: boolean;
  component: string | null;
  texts: () => Texts;
}

interface EngineCheck {
  check: 'rss' | 'heap' | 'cpu';
  what: string;
  setting: string;
  limit: (limits: AlertsConfig['engine']) => number | null;
  value: (self: MemorySample['self']) => number;
  /** The limit as configured. */
  text: (value: number) => string;
  /** The measured value as the text gives it: rounded, so the text changes only when the value really moves. */
  rounded: (value: number) => { value: number; text: string };
}

const roughAmount = (value: number): { value: number; text: string } => {
  const rough = roughBytes(value);
  return { value: rough.bytes, text: rough.text };
};

/** The engine's own limits: static, so a sample allocates none of this. */
const ENGINE_CHECKS: readonly EngineCheck[] = [
  { check: 'rss', what: 'RSS', setting: 'alerts.engine.maxRssBytes', limit: (l) => l.maxRssBytes, value: (s) => s.rssBytes, text: formatBytes, rounded: roughAmount },
  {
    check: 'heap',
    what: 'V8 heap in use',
    setting: 'alerts.engine.maxHeapUsedBytes',
    limit: (l) => l.maxHeapUsedBytes,
    value: (s) => s.heapUsedBytes,
    text: formatBytes,
    rounded: roughAmount,
  },
  {
    check: 'cpu',
    what: 'CPU time of one sample',
    setting: 'alerts.engine.maxSampleCpuMs',
    limit: (l) => l.maxSampleCpuMs,
    value: (s) => s.sampleCpuMs,
    text: (v) => `${Math.round(v * 10) / 10} ms`,
    rounded: (v) => ({ value: Math.round(v * 10) / 10, text: `${Math.round(v * 10) / 10} ms` }),
  },
];

const ENGINE_KEYS = { rss: 'engine:rss', heap: 'engine:heap', cpu: 'engine:cpu' } as const;

/** What the texts of one evaluation read; the recommendation state is built on first use (only an active condition's text reads it). */
interface Evaluation {
  state: State;
  config: AlertConditionsConfig;
  nowMs: number;
  leaks: LeakDetected[];
  recommend: RecommendState | null;
}

function recommendStateOf(e: Evaluation): RecommendState {
  return (e.recommend ??= {
    nowMs: e.nowMs,
    sample: e.state.sample,
    pressure: e.state.pressure?.level ?? null,
    models: e.state.models,
    leaks: e.leaks,
    baselines: (e.state.baselinesRecord ??= Object.fromEntries(e.state.baselines)),
    preset: e.config.pressure.preset,
    componentBudgets: e.config.alerts.componentBudgets,
    sampling: e.config.sampling,
    tunables: e.config.tunables ?? {},
  });
}

/**
 * Evaluates every rule on the current state. Returns the conditions that are
 * active or were (the inactive ones carry the recovery text), with their text
 * deferred. A condition neither active nor active before has nothing to say,
 * so it is not even made: most rules, on most samples (a sample is evaluated
 * tens of thousands of times in a trace replay).
 */
function evaluate(state: State, config: AlertConditionsConfig, nowMs: number, wasActive: (key: string) => boolean): Candidate[] {
  const { alerts } = config;
  const engine = config.components.engine;
  const leaks = [...state.leaks.values()];
  const e: Evaluation = { state, config, nowMs, leaks, recommend: null };
  const out: Candidate[] = [];
  const sample = state.sample;

  // Pressure.
  const change = state.pressure;
  const pressureActive = change !== null && change.level !== 'low' && levelRank(change.level) >= levelRank(alerts.pressureMinLevel);
  if (change && (pressureActive || wasActive('pressure'))) {
    const active = pressureActive;
    out.push({
      key: 'pressure',
      kind: 'pressure',
      severity: change.level === 'low' ? 'info' : PRESSURE_SEVERITY[change.level],
      active,
      component: null,
      texts: () => {
        const available = sample ? ` ${roughBytes(sample.system.availableBytes).text} of ${formatBytes(sample.system.totalBytes)} available.` : '';
        const why = change.reasons.length ? `: ${change.reasons.join('; ')}` : '';
        return {
          title: active ? `Memory pressure ${change.level}` : `Memory pressure back to ${change.level}`,
          message: active ? `Memory pressure is ${change.level}${why}.${available}` : `Memory pressure fell to ${change.level}${why}.${available}`,
          recommendations: active ? recommendForPressure(recommendStateOf(e)) : [],
        };
      },
    });
  }

  // Leaks and projected exhaustion.
  for (const leak of leaks) {
    out.push({
      key: `leak:${leak.component}`,
      kind: 'leak',
      severity: 'warning',
      active: true,
      component: leak.component,
      texts: () => {
        const usage = sample?.components[leak.component];
        const now = usage ? ` It uses ${roughBytes(footprintOf(usage)).text} now.` : '';
        return {
          title: `${leak.component} is leaking memory`,
          message: `${leak.component} grows steadily at about ${formatBytes(leak.slopeBytesPerHour)}/h (confidence ${Math.round(leak.confidence * 100)}%).${now}`,
          recommendations: recommendForLeak(recommendStateOf(e), leak),
        };
      },
    });
    const projected = leak.projectedExhaustionMs;
    const remaining = projected === null ? null : projected - nowMs;
    const soon = remaining !== null && remaining <= alerts.exhaustionHorizonMs;
    const key = `exhaustion:${leak.component}`;
    if (soon || wasActive(key)) {
      out.push({
        key,
        kind: 'exhaustion',
        severity: 'critical',
        active: soon,
        component: leak.component,
        texts: () => {
          // Whole minutes: the text (and so the condition) changes once a minute, not with every sample.
          const minutes = Math.max(0, Math.ceil((remaining ?? 0) / 60_000)) * 60_000;
          return {
            title: soon ? `${leak.component} will exhaust memory` : `${leak.component} no longer projected to exhaust memory`,
            message: soon
              ? `At about ${formatBytes(leak.slopeBytesPerHour)}/h, ${leak.component} would exhaust available memory in about ${formatDuration(minutes)} (at ${new Date(projected ?? nowMs).toISOString()}).`
              : `${leak.component} is no longer projected to exhaust memory within ${formatDuration(alerts.exhaustionHorizonMs)}.`,
            recommendations: soon ? recommendForExhaustion(recommendStateOf(e), leak) : [],
          };
        },
      });
    }
  }
  for (const clear of state.clears.values()) {
    if (state.leaks.has(clear.component)) continue;
    const leakKey = `leak:${clear.component}`;
    const exhaustionKey = `exhaustion:${clear.component}`;
    if (!wasActive(leakKey) && !wasActive(exhaustionKey)) continue;
    const texts = (): Texts => ({ title: `${clear.component} stopped leaking`, message: `${clear.component} stopped leaking: ${clear.reason}.`, recommendations: [] });
    out.push({ key: leakKey, kind: 'leak', severity: 'warning', active: false, component: clear.component, texts });
    out.push({ key: exhaustionKey, kind: 'exhaustion', severity: 'critical', active: false, component: clear.component, texts });
  }

  if (sample) {
    // Component budgets.
    for (const component in alerts.componentBudgets) {
      if (!Object.hasOwn(alerts.componentBudgets, component)) continue;
      const budget = alerts.componentBudgets[component] as number;
      const key = `budget:${component}`;
      const usage = sample.components[component];
      const bytes = usage ? footprintOf(usage) : 0;
      const was = wasActive(key);
      const active = overLimit(bytes, budget, was, alerts.clearMarginPercent);
      if (!active && !was) continue;
      out.push({
        key,
        kind: 'budget',
        severity: 'warning',
        active,
        component,
        texts: () => {
          const measure = usage?.pssBytes != null ? 'PSS' : 'RSS';
          // measured amounts rounded (see roughBytes), the budget and its clear line as configured
          const uses = roughBytes(bytes).text;
          return {
            title: active ? `${component} over its memory budget` : `${component} back within its memory budget`,
            message: active
              ? bytes > budget
                ? `${component} uses ${uses} (${measure}), ${roughBytes(bytes - budget).text} over its ${formatBytes(budget)} budget.`
                : `${component} uses ${uses} (${measure}), just under its ${formatBytes(budget)} budget; it clears below ${formatBytes(budget * (1 - alerts.clearMarginPercent / 100))}.`
              : usage
                ? `${component} uses ${uses} (${measure}) of its ${formatBytes(budget)} budget.`
                : `${component} is not running.`,
            recommendations: active ? recommendForBudget(recommendStateOf(e), component) : [],
          };
        },
      });
    }

    // The engine's own health.
    const self = sample.self;
    for (const { check, what, setting, limit: limitOf, value: valueOf, text, rounded } of ENGINE_CHECKS) {
      const limit = limitOf(alerts.engine);
      if (limit === null) continue;
      const key = ENGINE_KEYS[check];
      const value = valueOf(self);
      const was = wasActive(key);
      const active = overLimit(value, limit, was, alerts.clearMarginPercent);
      if (!active && !was) continue;
      out.push({
        key,
        kind: 'engine',
        severity: 'warning',
        active,
        component: engine,
        texts: () => {
          // the share of memory from the rounded value: it changes with the text, not with every sample
          const shown = rounded(value);
          return {
            title: active ? `memtide ${what} above its limit` : `memtide ${what} back within its limit`,
            message: `The engine process (pid ${self.pid}): ${what} ${shown.text}, ${active ? 'above' : 'within'} ${setting} ${text(limit)}${
              check === 'rss' ? ` (${percentOf(shown.value, sample.system.totalBytes)} of memory)` : ''
            }.`,
            recommendations: active ? recommendForEngine(recommendStateOf(e), check, engine) : [],
          };
        },
      });
    }
  }

  // Sampling stalled.
  const stalled = state.stalled;
  if (!stalled && !wasActive('engine:stalled')) return out;
  out.push({
    key: 'engine:stalled',
    kind: 'engine',
    severity: 'critical',
    active: stalled,
    component: engine,
    texts: () => ({
      title: stalled ? 'memtide sampling stalled' : 'memtide sampling resumed',
      message: stalled
        ? `No memory sample for ${formatDuration(nowMs - state.lastSampleMs)} (expected every ${formatDuration(config.sampling.intervalMs)}): memory is not being watched.`
        : `Samples arrive again (every ${formatDuration(config.sampling.intervalMs)}).`,
      recommendations: stalled ? recommendForEngine(recommendStateOf(e), 'stalled', engine) : [],
    }),
  });
  return out;
}

interface Emitted {
  active: boolean;
  severity: AlertSeverity;
  last: Evaluated;
}

/**
 * Whether `a` and `b` serialise to the same JSON (plain data: strings,
 * numbers, booleans, null, arrays, objects), without serialising: the
 * condition's fingerprint was its JSON, compared on every active evaluation.
 * Follows JSON's rules: key order counts, `undefined` properties are left
 * out (null in arrays), non-finite numbers are null.
 */
export function sameJson(a: unknown, b: unknown, inArray = false): boolean {
  if (a === b) return typeof a !== 'number' || Number.isFinite(a);
  const na = jsonLeaf(a, inArray);
  const nb = jsonLeaf(b, inArray);
  if (na !== NOT_LEAF || nb !== NOT_LEAF) return na === nb;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    if (a.length !== bb.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameJson(a[i], bb[i], true)) return false;
    return true;
  }
  const ka = jsonKeys(a as Record<string, unknown>);
  const kb = jsonKeys(b as Record<string, unknown>);
  if (ka.length !== kb.length) return false;
  for (let i = 0; i < ka.length; i++) {
    const key = ka[i] as string;
    if (key !== kb[i] || !sameJson((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key])) return false;
  }
  return true;
}

const NOT_LEAF = Symbol('object');
const OMITTED = Symbol('omitted');

/** A primitive as JSON sees it (objects and arrays: NOT_LEAF). */
function jsonLeaf(v: unknown, inArray: boolean): unknown {
  if (v === null) return null;
  switch (typeof v) {
    case 'object':
      return NOT_LEAF;
    case 'number':
      return Number.isFinite(v) ? v : null;
    case 'undefined':
    case 'function':
    case 'symbol':
      return inArray ? null : OMITTED;
    default:
      return v;
  }
}

function jsonKeys(o: Record<string, unknown>): string[] {
  return Object.keys(o).filter((k) => jsonLeaf(o[k], false) !== OMITTED);
}

/** Same as the last emitted state: no new notification (what the JSON fingerprint compared). */
function sameCondition(previous: Evaluated, next: Evaluated): boolean {
  return (
    previous.title === next.title &&
    previous.message === next.message &&
    previous.component === next.component &&
    previous.kind === next.kind &&
    sameJson(previous.recommendations, next.recommendations)
  );
}

/**
 * Turns the engine's state streams into alert *conditions*: pressure, leaks,
 * projected exhaustion, components over budget, and memtide's own health
 * (RSS, heap, CPU per sample, sampling stalled). A condition is emitted when
 * it becomes active, when its severity or text changes while active, and
 * once when it clears (with the recovery text). Unchanged conditions are not
 * re-emitted, and a condition that was never active never emits.
 *
 * - Severities: pressure medium → info, high → warning, critical → critical
 *   (below `pressureMinLevel` no alert); leak → warning; exhaustion within
 *   `exhaustionHorizonMs` → critical; over budget → warning; engine RSS, heap,
 *   CPU → warning; sampling stalled → critical.
 * - Budgets and engine limits have hysteresis: they clear only
 *   `clearMarginPercent` below the limit.
 * - Stalled: no sample for `stallIntervals × sampling.intervalMs` of
 *   scheduler time (counted from the subscription before the first sample).
 * - Every active condition carries ranked recommendations computed from the
 *   state (recommend.ts), e.g. which idle model to unload.
 * - `config` may be an Observable (hot reload): a new value re-evaluates at
 *   once and re-arms the stall timer. Inputs before the first config value
 *   update the state but emit nothing.
 *
 * ```
 * input:  -s--p--s--s--c--|    p: pressure high, c: pressure low; s: samples
 * result: ----W--------w--|    W: pressure active (warning), w: pressure inactive
 * ```
 *
 * @param config alert thresholds and the settings recommendations name, or an Observable of them.
 * @param scheduler clock for `atMs`, the exhaustion horizon and the stall timer.
 */
export function alertConditions(
  config: AlertConditionsConfig | Observable<AlertConditionsConfig>,
  scheduler: SchedulerLike = asyncScheduler,
): OperatorFunction<AlertInput, AlertCondition> {
  return (source) =>
    defer(() => {
      const state: State = {
        sample: null,
        lastSampleMs: scheduler.now(),
        stalled: false,
        pressure: null,
        leaks: new Map(),
        clears: new Map(),
        models: [],
        baselines: new Map(),
        baselinesRecord: null,
      };
      const emitted = new Map<string, Emitted>();
      let current: AlertConditionsConfig | undefined;
      /** Delays of the stall timer; each value replaces the running timer. */
      const rearm = new Subject<number>();
      const sourceDone = new Subject<void>();

      // made once, not per evaluation: a replay evaluates every sample
      const wasActive = (key: string): boolean => emitted.get(key)?.active === true;
      const emitTo = (out: AlertCondition[], condition: Evaluated, nowMs: number): void => {
        if (condition.active) emitted.set(condition.key, { active: true, severity: condition.severity, last: condition });
        else emitted.delete(condition.key);
        const { key, kind, severity, active, component, title, message, recommendations } = condition;
        out.push({ key, kind, severity, active, component, title, message, recommendations, atMs: nowMs });
      };

      const publish = (): AlertCondition[] => {
        if (!current) return [];
        const nowMs = scheduler.now();
        const candidates = evaluate(state, current, nowMs, wasActive);
        const out: AlertCondition[] = [];
        const seen = new Set<string>();
        for (const candidate of candidates) {
          if (seen.has(candidate.key)) continue;
          seen.add(candidate.key);
          const previous = emitted.get(candidate.key);
          // Never active and still not: nothing to say, and no text to build.
          if (!candidate.active && !previous?.active) continue;
          const { key, kind, severity, active, component } = candidate;
          const condition: Evaluated = { key, kind, severity, active, component, ...candidate.texts() };
          if (active && previous && previous.severity === severity && sameCondition(previous.last, condition)) continue;
          emitTo(out, condition, nowMs);
        }
        // Conditions no rule reports any more (a budget removed from the config, a component gone): clear them.
        // (Deleting the entry being visited is safe in a Map iteration.)
        for (const [key, previous] of emitted) {
          if (seen.has(key) || !previous.active) continue;
          emitTo(
            out,
            {
              ...previous.last,
              active: false,
              recommendations: [],
              message: `${previous.last.title}: no longer evaluated (its setting or component is gone).`,
            },
            nowMs,
          );
        }
        return out;
      };

      const armStallTimer = (): void => {
        if (!current || state.stalled) return;
        const deadline = state.lastSampleMs + current.alerts.engine.stallIntervals * current.sampling.intervalMs;
        rearm.next(Math.max(0, deadline - scheduler.now()));
      };

      const onConfig = (value: AlertConditionsConfig): AlertCondition[] => {
        current = value;
        armStallTimer();
        return publish();
      };

      const onStall = (): AlertCondition[] => {
        state.stalled = true;
        return publish();
      };

      const onInput = (input: AlertInput): AlertCondition[] => {
        validate(input);
        const nowMs = scheduler.now();
        switch (input.kind) {
          case 'sample':
            state.sample = input.sample;
            state.lastSampleMs = nowMs;
            state.stalled = false;
            updateBaselines(state, input.sample, nowMs, current?.components.engine ?? 'engine');
            armStallTimer();
            break;
          case 'pressure':
            state.pressure = input.change;
            break;
          case 'leak':
            if (input.event.kind === 'leak') {
              state.leaks.set(input.event.component, input.event);
              state.clears.delete(input.event.component);
            } else {
              state.leaks.delete(input.event.component);
              state.clears.set(input.event.component, input.event);
            }
            break;
          case 'models': {
            const modelComponent = current?.tunables?.modelComponent ?? DEFAULT_MODEL_COMPONENT;
            // A model load or unload is a step, not growth: the baseline starts again.
            if (modelNames(input.models) !== modelNames(state.models) && state.baselines.delete(modelComponent)) state.baselinesRecord = null;
            state.models = input.models;
            break;
          }
        }
        return publish();
      };

      // Built from RxJS's own operators: an error (or unsubscription) stops even a synchronous source at
      // once. The stall timer is subscribed first so the config can arm it; the config is subscribed before
      // the source (a failed config never reads the source); the source's completion ends the other branches.
      return merge(
        rearm.pipe(
          switchMap((delayMs) => timer(delayMs, scheduler)),
          map(onStall),
          takeUntil(sourceDone),
        ),
        (isObservable(config) ? config : of(config)).pipe(map(onConfig), takeUntil(sourceDone)),
        source.pipe(
          map(onInput),
          tap({ complete: () => sourceDone.next() }),
        ),
      ).pipe(
        // Most inputs change nothing: an empty batch is dropped here, not subscribed to as an inner stream.
        filter((conditions) => conditions.length > 0),
        mergeMap((conditions) => conditions),
      );
    });
}
