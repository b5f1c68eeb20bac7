/**
 * Model-based test of createCoordinator (fc.commands): random pressure
 * changes, time, observe-only switches and samples, against a small model of
 * the plan with hysteresis. After every command: the applied set, what the
 * actuators were told, the unload calls, and the open records agree with it.
 */
import fc from 'fast-check';
import { BehaviorSubject, Subject, type VirtualTimeScheduler } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { configSchema, type MemtideConfig } from '../src/app/configSchema.js';
import type { OptimizationLevel } from '../src/app/schema/optimization.js';
import { levelRank, PRESSURE_LEVELS, type MemorySample, type PressureChange, type PressureLevel } from '../src/model.js';
import { COORDINATED_ACTIONS, ONE_SHOT_ACTIONS, planFor, type CoordinatedAction } from '../src/operators/coordinateActions.js';
import { createCoordinator, LOWERED_TRANSCRIPTION_CONCURRENCY, type ActionEvent, type Actuators, type CoordinatorHandle } from '../src/streams/coordinator.js';
import { advance, virtualScheduler } from './support/virtualTime.js';

const sample = (atMs: number): MemorySample => ({
  timestampMs: atMs,
  system: { totalBytes: 8e9, availableBytes: 2e9, usedBytes: 6e9, swapTotalBytes: 0, swapUsedBytes: 0, psi: null, physicalTotalBytes: 8e9, cgroupLimitBytes: null },
  components: { ollama: { rssBytes: 4e9, pssBytes: null, pssAnonBytes: null, processCount: 1 } },
  processes: [],
  self: { pid: 1, rssBytes: 1, heapUsedBytes: 1, heapTotalBytes: 1, externalBytes: 0, arrayBuffersBytes: 0, sampleCpuMs: 0 },
});

interface Model {
  level: PressureLevel | null;
  observeOnly: boolean;
  /** Reversible actions in force, with when pressure fell below their level (null: not yet). */
  applied: Map<CoordinatedAction, number | null>;
  oneShotFired: boolean;
  unloadCalls: number;
}

interface Real {
  scheduler: VirtualTimeScheduler;
  config(observeOnly: boolean): MemtideConfig;
  config$: BehaviorSubject<MemtideConfig>;
  pressure$: Subject<PressureChange>;
  samples$: Subject<MemorySample>;
  coordinator: CoordinatorHandle;
  told: { transcriptionCap: number | null; shrunk: boolean; liveSummaries: boolean; modelCap: number | null };
  unloadCalls: number;
  /** Actuator calls not made by an observe-only switch, while observe-only was on. */
  callsWhileObserving: string[];
  switching: boolean;
  events: ActionEvent[];
  undoAfterMs: number;
  plan: ReturnType<typeof planFor>;
}

const reversible = COORDINATED_ACTIONS.filter((a) => !ONE_SHOT_ACTIONS.has(a));

function expire(model: Model, real: Real): void {
  const now = real.scheduler.now();
  for (const [action, fellAt] of model.applied) if (fellAt !== null && fellAt + real.undoAfterMs <= now) model.applied.delete(action);
}

function check(model: Model, real: Real): void {
  expire(model, real);
  const state = real.coordinator.state();
  const expected = reversible.filter((a) => model.applied.has(a));
  expect(state.applied).toEqual(expected);
  expect(state.observeOnly).toBe(model.observeOnly);
  const execute = !model.observeOnly;
  expect(real.told).toEqual({
    modelCap: null,
    transcriptionCap: execute && model.applied.has('lower-transcription-concurrency') ? LOWERED_TRANSCRIPTION_CONCURRENCY : null,
    shrunk: execute && model.applied.has('shrink-caches'),
    liveSummaries: !(execute && model.applied.has('disable-live-summaries')),
  });
  expect(real.unloadCalls).toBe(model.unloadCalls);
  expect(real.callsWhileObserving).toEqual([]);
  // one open record per action in force, executed exactly when not observing
  expect(state.open.map((r) => r.kind).sort()).toEqual([...expected].sort());
  expect(state.open.every((r) => r.executed === execute)).toBe(true);
  // every record undone at most once
  const undone = real.events.filter((e) => e.type === 'undone').map((e) => e.record.id);
  expect(new Set(undone).size).toBe(undone.length);
}

const pressureCommand = (level: PressureLevel): fc.Command<Model, Real> => ({
  check: () => true,
  run(model, real) {
    expire(model, real);
    const previous = model.level;
    const rank = levelRank(level);
    const rose = previous === null || rank > levelRank(previous);
    for (const action of COORDINATED_ACTIONS) {
      const trigger = real.plan[action];
      const inForce = trigger !== undefined && rank >= levelRank(trigger);
      if (ONE_SHOT_ACTIONS.has(action)) {
        if (!inForce) model.oneShotFired = false;
        else if (!model.oneShotFired || rose) {
          model.oneShotFired = true;
          if (!model.observeOnly) model.unloadCalls += 1;
        }
      } else if (inForce) model.applied.set(action, null);
      else if (model.applied.has(action) && model.applied.get(action) === null) {
        if (real.undoAfterMs === 0) model.applied.delete(action);
        else model.applied.set(action, real.scheduler.now());
      }
    }
    model.level = level;
    real.pressure$.next({ atMs: real.scheduler.now(), level, previous, reasons: [] });
    check(model, real);
  },
  toString: () => `pressure(${level})`,
});

const advanceCommand = (ms: number): fc.Command<Model, Real> => ({
  check: () => true,
  run(model, real) {
    advance(real.scheduler, ms);
    check(model, real);
  },
  toString: () => `advance(${ms})`,
});

const observeCommand = (): fc.Command<Model, Real> => ({
  check: () => true,
  run(model, real) {
    expire(model, real);
    model.observeOnly = !model.observeOnly;
    real.switching = true;
    real.config$.next(real.config(model.observeOnly));
    real.switching = false;
    check(model, real);
  },
  toString: () => 'toggleObserveOnly',
});

const sampleCommand = (): fc.Command<Model, Real> => ({
  check: () => true,
  run(model, real) {
    real.samples$.next(sample(real.scheduler.now()));
    check(model, real);
    // a record is measured once settleMs (10 ms here) has passed and a sample came
    for (const e of real.events.filter((x) => x.type === 'measured')) expect(e.record.measuredAtMs! - e.record.atMs).toBeGreaterThanOrEqual(10);
  },
  toString: () => 'sample',
});

function setup(level: OptimizationLevel, lowMemory: boolean, undoAfterMs: number, observeOnly: boolean): { model: Model; real: Real } {
  const scheduler = virtualScheduler();
  const config = (observe: boolean) => configSchema.parse({ optimization: { level, lowMemory, undoAfterMs, settleMs: 10, observeOnly: observe } });
  const config$ = new BehaviorSubject(config(observeOnly));
  const pressure$ = new Subject<PressureChange>();
  const samples$ = new Subject<MemorySample>();
  const real = {} as Real;
  const note = (call: string) => {
    if (real.coordinator?.state().observeOnly && !real.switching) real.callsWhileObserving.push(call);
  };
  const actuators: Actuators = {
    unloadIdleModels: () => {
      note('unloadIdleModels');
      real.unloadCalls += 1;
    },
    setModelBudgetCap: (bytes) => {
      note('setModelBudgetCap');
      real.told.modelCap = bytes;
    },
    setTranscriptionConcurrencyCap: (chunks) => {
      note('setTranscriptionConcurrencyCap');
      real.told.transcriptionCap = chunks;
    },
    shrinkCaches: () => {
      note('shrinkCaches');
      real.told.shrunk = true;
    },
    restoreCaches: () => {
      note('restoreCaches');
      real.told.shrunk = false;
    },
    setFeature: (_feature, enabled) => {
      note('setFeature');
      real.told.liveSummaries = enabled;
    },
  };
  Object.assign(real, {
    scheduler,
    config,
    config$,
    pressure$,
    samples$,
    told: { transcriptionCap: null, shrunk: false, liveSummaries: true, modelCap: null },
    unloadCalls: 0,
    callsWhileObserving: [],
    switching: false,
    events: [],
    undoAfterMs,
    plan: planFor({ level, lowMemory }),
  });
  real.coordinator = createCoordinator({ pressure$, samples$, config$, actuators, scheduler });
  real.coordinator.actions$.subscribe({ next: (e) => real.events.push(e), error: (e: unknown) => real.callsWhileObserving.push(`actions$ failed: ${String(e)}`) });
  real.coordinator.problems$.subscribe({ next: (p) => real.callsWhileObserving.push(`problem: ${p.operation}`), error: () => undefined });
  const model: Model = { level: null, observeOnly, applied: new Map(), oneShotFired: false, unloadCalls: 0 };
  return { model, real };
}

describe('createCoordinator: model-based (fc.commands)', () => {
  it('keeps the applied set, the actuators and the records in line with the plan, hysteresis and observe-only', () => {
    const commands = [
      fc.constantFrom(...PRESSURE_LEVELS).map(pressureCommand),
      fc.integer({ min: 1, max: 150 }).map(advanceCommand),
      fc.constant(observeCommand()),
      fc.constant(sampleCommand()),
    ];
    fc.assert(
      fc.property(
        fc.constantFrom<OptimizationLevel>('basic', 'aggressive', 'maximum'),
        fc.boolean(),
        fc.integer({ min: 0, max: 100 }),
        fc.boolean(),
        fc.commands(commands, { maxCommands: 60 }),
        (level, lowMemory, undoAfterMs, observeOnly, cmds) => {
          const { model, real } = setup(level, lowMemory, undoAfterMs, observeOnly);
          try {
            fc.modelRun(() => ({ model, real }), cmds);
            // stop gives everything back
            real.coordinator.stop();
            expect(real.told).toEqual({ modelCap: null, transcriptionCap: null, shrunk: false, liveSummaries: true });
          } finally {
            real.coordinator.stop();
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
