/**
 * createCoordinator in virtual time with recording actuators: the plan per
 * level, hysteresis, observe-only, memory before/after, governor actions,
 * budget balancing, failures and stop; then the records in a real history
 * database (`actions` table) and `GET /api/actions`.
 */
import { BehaviorSubject, Subject, type VirtualTimeScheduler } from 'rxjs';
import type { BatchFacts, BatchHold } from '../src/operators/yieldBatch.js';
import { afterEach, describe, expect, it } from 'vitest';
import { configSchema, type MemtideConfig, type MemtideConfigInput } from '../src/app/configSchema.js';
import type { MemorySample, PressureChange, PressureLevel } from '../src/model.js';
import { HistoryStore } from '../src/sinks/historyStore.js';
import { createCoordinator, type ActionEvent, type Actuators, type CoordinatorActivity, type CoordinatorFeatures, type CoordinatorHandle, type CoordinatorProblem } from '../src/streams/coordinator.js';
import { actuatorsOf, recordActions } from '../src/streams/coordinator/forMemtide.js';
import { describeRecord } from '../src/streams/coordinator/describe.js';
import type { GovernorAction } from '../src/streams/governorApi.js';
import { createStubGovernor } from './support/stubGovernor.js';
import { advance, virtualScheduler } from './support/virtualTime.js';

const MIB = 1024 ** 2;
const GIB = 1024 ** 3;

const config = (optimization: NonNullable<MemtideConfigInput>['optimization'] = {}, extra: MemtideConfigInput = {}): MemtideConfig =>
  configSchema.parse({ ...extra, optimization: { settleMs: '10s', undoAfterMs: '1m', ...optimization }, transcription: { transcriber: 'server' } });

const sample = (atMs: number, availableBytes: number, components: Record<string, number> = {}): MemorySample => ({
  timestampMs: atMs,
  system: { totalBytes: 16 * GIB, availableBytes, usedBytes: 16 * GIB - availableBytes, swapTotalBytes: 0, swapUsedBytes: 0, psi: null, physicalTotalBytes: 16 * GIB, cgroupLimitBytes: null },
  components: Object.fromEntries(Object.entries(components).map(([name, rssBytes]) => [name, { rssBytes, pssBytes: null, pssAnonBytes: null, processCount: 1 }])),
  processes: [],
  self: { pid: 1, rssBytes: 1, heapUsedBytes: 1, heapTotalBytes: 1, externalBytes: 0, arrayBuffersBytes: 0, sampleCpuMs: 0 },
});

interface Recorder extends Actuators {
  calls: string[];
  state: { modelCap: number | null; transcriptionCap: number | null; shrunk: boolean; liveSummaries: boolean };
  fail: Set<string>;
}

function recorder(): Recorder {
  const r: Recorder = {
    calls: [],
    state: { modelCap: null, transcriptionCap: null, shrunk: false, liveSummaries: true },
    fail: new Set(),
    unloadIdleModels(scope, reason) {
      r.calls.push(`unloadIdleModels ${scope}`);
      if (r.fail.has('unload')) return Promise.reject(new Error('Ollama is down'));
      expect(reason).toMatch(/^coordinator: pressure/);
      return Promise.resolve();
    },
    setModelBudgetCap(bytes) {
      r.calls.push(`setModelBudgetCap ${bytes}`);
      r.state.modelCap = bytes;
    },
    setTranscriptionConcurrencyCap(chunks) {
      r.calls.push(`setTranscriptionConcurrencyCap ${chunks}`);
      r.state.transcriptionCap = chunks;
    },
    shrinkCaches() {
      r.calls.push('shrinkCaches');
      if (r.fail.has('shrink')) throw new Error('cache is gone');
      r.state.shrunk = true;
    },
    restoreCaches() {
      r.calls.push('restoreCaches');
      r.state.shrunk = false;
    },
    setFeature(feature, enabled, why) {
      r.calls.push(`setFeature ${feature} ${enabled} ${why.retryAfterMs}`);
      r.state.liveSummaries = enabled;
    },
  };
  return r;
}

interface Rig {
  scheduler: VirtualTimeScheduler;
  config$: BehaviorSubject<MemtideConfig>;
  pressure$: Subject<PressureChange>;
  samples$: Subject<MemorySample>;
  activity$: Subject<CoordinatorActivity>;
  governor$: Subject<GovernorAction>;
  actuators: Recorder;
  coordinator: CoordinatorHandle;
  events: ActionEvent[];
  problems: CoordinatorProblem[];
  features: CoordinatorFeatures[];
  pressure(level: PressureLevel): void;
}

const rigs: Rig[] = [];
afterEach(() => {
  for (const r of rigs.splice(0)) r.coordinator.stop();
});

function rig(initial: MemtideConfig = config()): Rig {
  const scheduler = virtualScheduler();
  const config$ = new BehaviorSubject(initial);
  const pressure$ = new Subject<PressureChange>();
  const samples$ = new Subject<MemorySample>();
  const activity$ = new Subject<CoordinatorActivity>();
  const governor$ = new Subject<GovernorAction>();
  const actuators = recorder();
  const coordinator = createCoordinator({ pressure$, samples$, config$, actuators, activity$, governorActions$: governor$, scheduler });
  const r: Rig = {
    scheduler,
    config$,
    pressure$,
    samples$,
    activity$,
    governor$,
    actuators,
    coordinator,
    events: [],
    problems: [],
    features: [],
    pressure: (level) => pressure$.next({ atMs: scheduler.now(), level, previous: null, reasons: [`test ${level}`] }),
  };
  coordinator.actions$.subscribe({ next: (e) => r.events.push(e), error: (e: unknown) => r.problems.push({ atMs: -1, operation: 'actions$', error: e }) });
  coordinator.problems$.subscribe({ next: (p) => r.problems.push(p), error: (e: unknown) => r.problems.push({ atMs: -1, operation: 'problems$', error: e }) });
  coordinator.features$.subscribe({ next: (f) => r.features.push(f), error: (e: unknown) => r.problems.push({ atMs: -1, operation: 'features$', error: e }) });
  rigs.push(r);
  return r;
}

const recorded = (r: Rig) => r.events.filter((e) => e.type === 'recorded').map((e) => e.record);

describe('createCoordinator: the plan, executed', () => {
  it('basic: at high it unloads idle models once, recording memory before and, settleMs later, after', async () => {
    const r = rig(config({ level: 'basic' }));
    r.samples$.next(sample(0, 2 * GIB, { ollama: 6 * GIB }));
    r.pressure('medium');
    expect(recorded(r)).toEqual([]);
    advance(r.scheduler, 1000);
    r.pressure('high');
    await Promise.resolve();
    expect(r.actuators.calls).toEqual(['unloadIdleModels idle-unpinned']);
    const [record] = recorded(r);
    expect(record).toMatchObject({
      id: 1,
      atMs: 1000,
      source: 'coordinator',
      kind: 'unload-idle-models',
      level: 'high',
      target: 'ollama',
      executed: true,
      componentBytesBefore: 6 * GIB,
      availableBytesBefore: 2 * GIB,
      componentBytesAfter: null,
      undoneAtMs: null,
      reason: 'pressure high (test high): optimization level basic acts from high',
    });
    expect(describeRecord(record!)).toBe('unload idle models at high: pressure high (test high): optimization level basic acts from high');
    // a sample before settleMs is not "after"; the first one at or past it is
    advance(r.scheduler, 5000);
    r.samples$.next(sample(6000, 3 * GIB, { ollama: 5 * GIB }));
    advance(r.scheduler, 5000);
    r.samples$.next(sample(11_000, 6 * GIB, { ollama: 1 * GIB }));
    const measured = r.events.filter((e) => e.type === 'measured');
    expect(measured.map((e) => e.record)).toEqual([expect.objectContaining({ id: 1, componentBytesAfter: 1 * GIB, availableBytesAfter: 6 * GIB, measuredAtMs: 11_000 })]);
    expect(measured[0]!.final).toBe(true);
    // critical is a rise: the one-shot unload runs again; back to low undoes nothing (one-shot)
    r.pressure('critical');
    await Promise.resolve();
    expect(r.actuators.calls.filter((c) => c.startsWith('unload'))).toHaveLength(2);
    expect(r.actuators.calls).toContain('shrinkCaches');
    expect(r.problems).toEqual([]);
  });

  it('aggressive: caps transcription, shrinks caches, then pauses live summaries at critical; undone after undoAfterMs below', () => {
    const r = rig(config({ level: 'aggressive', undoAfterMs: '1m' }));
    r.pressure('high');
    expect(r.actuators.calls).toEqual(['unloadIdleModels idle-unpinned', 'setTranscriptionConcurrencyCap 1', 'shrinkCaches']);
    r.pressure('critical');
    expect(r.actuators.calls.slice(3)).toEqual(['unloadIdleModels idle-unpinned', 'setFeature liveSummaries false 60000']);
    expect(r.features.at(-1)).toEqual({ liveSummaries: false });
    advance(r.scheduler, 10_000);
    r.pressure('low');
    advance(r.scheduler, 59_999);
    expect(r.coordinator.state().applied).toEqual(['lower-transcription-concurrency', 'shrink-caches', 'disable-live-summaries']);
    advance(r.scheduler, 1);
    expect(r.coordinator.state().applied).toEqual([]);
    expect(r.actuators.state).toEqual({ modelCap: null, transcriptionCap: null, shrunk: false, liveSummaries: true });
    expect(r.features.at(-1)).toEqual({ liveSummaries: true });
    const undone = r.events.filter((e) => e.type === 'undone').map((e) => [e.record.kind, e.record.undoneAtMs]);
    expect(undone).toEqual([
      ['lower-transcription-concurrency', 70_000],
      ['shrink-caches', 70_000],
      ['disable-live-summaries', 70_000],
    ]);
  });

  it('a re-rise within undoAfterMs cancels the undo: nothing is restored, no second record', () => {
    const r = rig(config({ level: 'maximum', undoAfterMs: '1m' }));
    r.pressure('medium');
    r.pressure('low');
    advance(r.scheduler, 30_000);
    r.pressure('medium');
    advance(r.scheduler, 5 * 60_000);
    expect(r.actuators.calls.filter((c) => c === 'restoreCaches')).toEqual([]);
    expect(recorded(r).filter((x) => x.kind === 'shrink-caches')).toHaveLength(1);
    expect(r.coordinator.state().open.map((x) => x.kind).sort()).toEqual(['disable-live-summaries', 'lower-transcription-concurrency', 'shrink-caches']);
  });

  it('low-memory mode takes the maximum plan whatever the level', () => {
    const r = rig(config({ level: 'basic', lowMemory: true }));
    r.pressure('medium');
    expect(r.coordinator.state().applied).toEqual(['lower-transcription-concurrency', 'shrink-caches', 'disable-live-summaries']);
  });
});

describe('createCoordinator: observe-only', () => {
  it('decides and records (executed: false) but calls nothing; turning it off executes what is in force, on again gives it back', () => {
    const r = rig(config({ level: 'aggressive', observeOnly: true }));
    r.samples$.next(sample(0, 1 * GIB, { engine: 300 * MIB }));
    r.pressure('high');
    expect(r.actuators.calls).toEqual([]);
    expect(recorded(r).map((x) => [x.kind, x.executed])).toEqual([
      ['unload-idle-models', false],
      ['lower-transcription-concurrency', false],
      ['shrink-caches', false],
    ]);
    expect(recorded(r).find((x) => x.kind === 'shrink-caches')).toMatchObject({ target: 'engine', componentBytesBefore: 300 * MIB });
    expect(describeRecord(recorded(r)[0]!)).toContain('unload idle models at high (observe-only, not executed)');

    r.config$.next(config({ level: 'aggressive', observeOnly: false }));
    expect(r.actuators.calls).toEqual(['setTranscriptionConcurrencyCap 1', 'shrinkCaches']);
    const open = r.coordinator.state().open;
    expect(open.map((x) => [x.kind, x.executed])).toEqual([
      ['lower-transcription-concurrency', true],
      ['shrink-caches', true],
    ]);
    expect(open[0]!.reason).toMatch(/^observe-only turned off/);
    // the not-executed records were closed when the executed ones opened
    expect(r.events.filter((e) => e.type === 'undone').map((e) => [e.record.kind, e.record.executed])).toEqual([
      ['lower-transcription-concurrency', false],
      ['shrink-caches', false],
    ]);

    r.config$.next(config({ level: 'aggressive', observeOnly: true }));
    expect(r.actuators.calls.slice(2)).toEqual(['setTranscriptionConcurrencyCap null', 'restoreCaches']);
    expect(r.coordinator.state().open.every((x) => !x.executed)).toBe(true);
    expect(r.coordinator.state().executed).toEqual({ modelBudgetCapBytes: null, transcriptionConcurrencyCap: null, cachesShrunk: false, features: { liveSummaries: true } });
  });
});

describe('createCoordinator: governor actions and budget balancing', () => {
  it('records every governor action (source governor); a pressure hold stays open until its release', () => {
    const r = rig();
    r.pressure('critical');
    r.governor$.next({ atMs: 5, kind: 'unload', model: 'llama3.1:8b', reason: 'pressure critical: idle for 20s', bytes: 5 * GIB, executed: true });
    r.governor$.next({ atMs: 6, kind: 'hold', model: null, reason: 'new loads held', bytes: null, executed: false });
    advance(r.scheduler, 100);
    r.governor$.next({ atMs: 100, kind: 'release-hold', model: null, reason: 'loads allowed again', bytes: null, executed: false });
    const governor = recorded(r).filter((x) => x.source === 'governor');
    expect(governor.map((x) => [x.kind, x.detail, x.executed, x.level, x.target])).toEqual([
      ['unload', 'llama3.1:8b (5.0 GiB)', true, 'critical', 'ollama'],
      ['hold', null, false, 'critical', 'ollama'],
      ['release-hold', null, false, 'critical', 'ollama'],
    ]);
    expect(r.events.find((e) => e.type === 'undone' && e.record.kind === 'hold')?.record.undoneAtMs).toBe(100);
  });

  it('both busy: caps the model budget by what transcription holds; a load missing room caps transcription too; idle lifts both', () => {
    const r = rig(config({ level: 'basic' }, { models: { contextSafetyMarginBytes: '512MiB' } }));
    const activity = (ollama: number, audio: number, shortfall = 0): CoordinatorActivity => ({
      ollamaInFlight: ollama,
      audioInFlight: audio,
      modelBudgetBytes: 8 * GIB,
      loadShortfallBytes: shortfall,
      transcriptionConcurrency: 4,
    });
    r.samples$.next(sample(0, 4 * GIB, { audio: 1.5 * GIB }));
    r.activity$.next(activity(1, 0));
    expect(r.actuators.calls).toEqual([]);
    r.activity$.next(activity(1, 2));
    expect(r.actuators.calls).toEqual([`setModelBudgetCap ${6 * GIB}`]);
    expect(recorded(r).at(-1)).toMatchObject({ kind: 'cap-model-budget', target: 'ollama', detail: '6.0 GiB', componentBytesBefore: null, availableBytesBefore: 4 * GIB });
    r.activity$.next(activity(1, 2, 1 * GIB));
    // 1.5 GiB for 2 chunks: 0.75 GiB a chunk, 1 GiB missing -> 2 fewer of 4
    expect(r.actuators.calls.at(-1)).toBe('setTranscriptionConcurrencyCap 2');
    // pressure's own lowering (aggressive at high) wins when lower
    r.config$.next(config({ level: 'aggressive' }, { models: { contextSafetyMarginBytes: '512MiB' } }));
    r.pressure('high');
    expect(r.actuators.state.transcriptionCap).toBe(1);
    r.activity$.next(activity(0, 2));
    advance(r.scheduler, 10_000);
    r.samples$.next(sample(10_000, 4 * GIB, { audio: 1.5 * GIB }));
    expect(r.actuators.state).toMatchObject({ modelCap: null, transcriptionCap: 1 });
    expect(r.coordinator.state().caps).toEqual({ modelBudgetBytes: null, transcriptionConcurrency: null });
    expect(r.events.filter((e) => e.type === 'undone').map((e) => e.record.kind).sort()).toEqual(['cap-model-budget', 'cap-transcription-concurrency']);
  });

  it('balancing off (optimization.balanceBudgets false): no caps', () => {
    const r = rig(config({ balanceBudgets: false }));
    r.samples$.next(sample(0, 4 * GIB, { audio: 1.5 * GIB }));
    r.activity$.next({ ollamaInFlight: 1, audioInFlight: 1, modelBudgetBytes: 8 * GIB, loadShortfallBytes: 0, transcriptionConcurrency: 1 });
    expect(r.actuators.calls).toEqual([]);
  });
});

describe('createCoordinator: batch transcription yields to the summary model', () => {
  const batchConfig = (extra: NonNullable<MemtideConfigInput>['optimization'] = {}) =>
    config({ batchYield: { enabled: true, idleAfterMs: '20s', maxHoldMs: '15m' }, ...extra });

  function batchRig(initial: MemtideConfig) {
    const scheduler = virtualScheduler();
    const config$ = new BehaviorSubject(initial);
    const samples$ = new Subject<MemorySample>();
    const facts$ = new Subject<BatchFacts>();
    const coordinator = createCoordinator({ pressure$: new Subject<PressureChange>(), samples$, config$, actuators: recorder(), batchFacts$: facts$, scheduler });
    const events: ActionEvent[] = [];
    const published: BatchHold[] = [];
    const problems: CoordinatorProblem[] = [];
    coordinator.actions$.subscribe({ next: (e) => events.push(e), error: (e: unknown) => problems.push({ atMs: -1, operation: 'actions$', error: e }) });
    coordinator.problems$.subscribe({ next: (p) => problems.push(p), error: () => undefined });
    coordinator.batchHold$.subscribe({ next: (h) => published.push(h), error: (e: unknown) => problems.push({ atMs: -1, operation: 'batchHold$', error: e }) });
    rigs.push({ coordinator } as Rig);
    const facts = (ollamaInFlight: number, residentModelBytes: number) => facts$.next({ ollamaInFlight, residentModelBytes });
    return { scheduler, config$, samples$, facts$, facts, coordinator, events, published, problems, recorded: () => events.filter((e) => e.type === 'recorded').map((e) => e.record) };
  }

  it('holds while the model works or is resident, records hold-batch (memory before, after settleMs) and resume-batch, publishes both', () => {
    const r = batchRig(batchConfig());
    // transcription.transcriber 'server' here: whisper-server, component audio (in-process whisper: the engine)
    const engine = 'audio';
    r.samples$.next(sample(0, 4 * GIB, { [engine]: 600 * MIB }));
    expect(r.published.map((h) => h.hold)).toEqual([false]);
    r.facts(1, 3.5 * GIB);
    expect(r.published.at(-1)).toMatchObject({ hold: true, reason: expect.stringContaining('1 request(s) in flight') });
    expect(r.coordinator.state().batchHold).toEqual({ decided: true, published: true });
    expect(r.recorded().at(-1)).toMatchObject({ source: 'coordinator', kind: 'hold-batch', target: engine, executed: true, componentBytesBefore: 600 * MIB, availableBytesBefore: 4 * GIB });
    expect(describeRecord(r.recorded().at(-1)!)).toMatch(/^hold batch transcription: Ollama busy/);
    // Summary done, the model stays resident: still held; the governor unloads it a minute later: released.
    r.facts(0, 3.5 * GIB);
    advance(r.scheduler, 60_000);
    r.samples$.next(sample(60_000, 3 * GIB, { [engine]: 120 * MIB }));
    expect(r.published.at(-1)!.hold).toBe(true);
    r.facts(0, 0);
    expect(r.published.at(-1)).toMatchObject({ hold: false, atMs: 60_000, reason: expect.stringContaining('no model resident') });
    expect(r.recorded().at(-1)).toMatchObject({ kind: 'resume-batch', target: engine, executed: true });
    const hold = r.events.filter((e) => e.record.kind === 'hold-batch');
    expect(hold.find((e) => e.type === 'measured')?.record).toMatchObject({ componentBytesBefore: 600 * MIB, componentBytesAfter: 120 * MIB });
    expect(hold.find((e) => e.type === 'undone')?.record.undoneAtMs).toBe(60_000);
    expect(r.problems).toEqual([]);
  });

  it('releases after maxHoldMs and stays released while the model is kept loaded', () => {
    const r = batchRig(batchConfig({ batchYield: { enabled: true, idleAfterMs: '20s', maxHoldMs: '15m' } }));
    r.facts(0, 3.5 * GIB);
    expect(r.published.at(-1)!.hold).toBe(true);
    advance(r.scheduler, 15 * 60_000);
    expect(r.published.at(-1)).toMatchObject({ hold: false, reason: expect.stringContaining('maxHoldMs') });
    r.facts(1, 3.5 * GIB);
    expect(r.published.at(-1)!.hold).toBe(false);
    expect(r.recorded().map((x) => x.kind)).toEqual(['hold-batch', 'resume-batch']);
  });

  it('observe-only: decided and recorded (executed false) but never published; turning it off publishes the hold in force', () => {
    const r = batchRig(batchConfig({ observeOnly: true }));
    r.facts(1, 0);
    expect(r.recorded().at(-1)).toMatchObject({ kind: 'hold-batch', executed: false });
    expect(r.published.map((h) => h.hold)).toEqual([false]);
    expect(r.coordinator.state().batchHold).toEqual({ decided: true, published: false });
    r.config$.next(batchConfig());
    expect(r.published.at(-1)!.hold).toBe(true);
    expect(r.recorded().at(-1)).toMatchObject({ kind: 'hold-batch', executed: true });
    r.config$.next(batchConfig({ observeOnly: true }));
    expect(r.published.at(-1)).toMatchObject({ hold: false, reason: expect.stringContaining('observe-only') });
  });

  it('off (basic profile) never holds; stop() releases and completes batchHold$', () => {
    const off = batchRig(config());
    off.facts(2, 3.5 * GIB);
    expect(off.published.map((h) => h.hold)).toEqual([false]);
    expect(off.recorded()).toEqual([]);
    const r = batchRig(batchConfig());
    r.facts(1, 0);
    let completed = false;
    r.coordinator.batchHold$.subscribe({ complete: () => (completed = true), error: () => undefined });
    r.coordinator.stop();
    expect(r.published.at(-1)).toMatchObject({ hold: false, reason: expect.stringContaining('stopped') });
    expect(completed).toBe(true);
    expect(r.events.find((e) => e.type === 'undone' && e.record.kind === 'hold-batch')).toBeDefined();
  });

  it('bad facts are reported and release the hold (a dead decision stream must not hold imports)', () => {
    const r = batchRig(batchConfig());
    r.facts(1, 0);
    r.facts$.next({ ollamaInFlight: Number.NaN, residentModelBytes: 0 });
    expect(r.problems).toEqual([expect.objectContaining({ operation: 'batch yield', error: expect.objectContaining({ code: 'MEMTIDE_ERR_YIELD_BATCH_INPUT', field: 'ollamaInFlight' }) })]);
    expect(r.published.at(-1)).toMatchObject({ hold: false, reason: expect.stringContaining('batch yield failed') });
  });
});

describe('createCoordinator: failures and stop', () => {
  it('an actuator that throws or rejects is reported and marked on its record; the coordinator goes on', async () => {
    const r = rig(config({ level: 'aggressive' }));
    r.actuators.fail.add('shrink').add('unload');
    r.pressure('high');
    await Promise.resolve();
    await Promise.resolve();
    expect(r.problems.map((p) => [p.operation, (p.error as Error).message])).toEqual([
      ['shrinkCaches', 'cache is gone'],
      ['unloadIdleModels', 'Ollama is down'],
    ]);
    expect(r.events.filter((e) => e.type === 'failed').map((e) => [e.record.kind, e.record.error])).toEqual([
      ['shrink-caches', 'cache is gone'],
      ['unload-idle-models', 'Ollama is down'],
    ]);
    // not called again and again: the next change only does what differs
    r.pressure('critical');
    expect(r.actuators.calls.filter((c) => c === 'shrinkCaches')).toHaveLength(1);
  });

  it('stop() gives back what was executed, closes the records in force and completes its streams', () => {
    const r = rig(config({ level: 'maximum' }));
    r.pressure('critical');
    let completed = 0;
    r.coordinator.actions$.subscribe({ complete: () => (completed += 1), error: () => undefined });
    r.coordinator.features$.subscribe({ complete: () => (completed += 1), error: () => undefined });
    r.coordinator.stop();
    expect(r.actuators.state).toEqual({ modelCap: null, transcriptionCap: null, shrunk: false, liveSummaries: true });
    expect(r.coordinator.state().open).toEqual([]);
    expect(r.events.filter((e) => e.type === 'undone').map((e) => e.record.kind).sort()).toEqual(['disable-live-summaries', 'lower-transcription-concurrency', 'shrink-caches']);
    expect(completed).toBe(2);
    r.pressure('critical');
    expect(r.actuators.calls.filter((c) => c === 'shrinkCaches')).toHaveLength(1);
  });
});

describe('records in the history database', () => {
  it('recordActions inserts on decision, updates with memory after and undone time; GET-style query newest first', () => {
    const store = HistoryStore.open(':memory:');
    try {
      const r = rig(config({ level: 'aggressive', undoAfterMs: '1m', settleMs: '10s' }));
      const sink = recordActions(r.coordinator.actions$, store);
      r.samples$.next(sample(0, 2 * GIB, { ollama: 5 * GIB, engine: 200 * MIB }));
      r.pressure('high');
      r.governor$.next({ atMs: 0, kind: 'unload', model: 'gemma3:4b', reason: 'pressure high: idle', bytes: 3 * GIB, executed: true });
      advance(r.scheduler, 10_000);
      r.samples$.next(sample(10_000, 5 * GIB, { ollama: 2 * GIB, engine: 150 * MIB }));
      r.pressure('low');
      advance(r.scheduler, 60_000);
      sink.unsubscribe();
      const rows = store.actions({ sinceMs: 0 });
      expect(rows.map((x) => [x.kind, x.source, x.executed])).toEqual([
        ['unload', 'governor', true],
        ['shrink-caches', 'coordinator', true],
        ['lower-transcription-concurrency', 'coordinator', true],
        ['unload-idle-models', 'coordinator', true],
      ]);
      expect(rows.find((x) => x.kind === 'shrink-caches')).toMatchObject({
        target: 'engine',
        componentBytesBefore: 200 * MIB,
        availableBytesBefore: 2 * GIB,
        componentBytesAfter: 150 * MIB,
        availableBytesAfter: 5 * GIB,
        measuredAtMs: 10_000,
        undoneAtMs: 70_000,
      });
      expect(rows.find((x) => x.kind === 'unload-idle-models')).toMatchObject({ componentBytesAfter: 2 * GIB, undoneAtMs: null });
      expect(store.actions({ sinceMs: 0, limit: 1 })).toHaveLength(1);
    } finally {
      store.close();
    }
  });

  it('actuatorsOf maps the actions onto the governor, the transcription service and the caches', async () => {
    const governor = createStubGovernor();
    governor.setModels([
      { name: 'a', sizeBytes: 1, sizeVramBytes: 0, contextLength: null, inFlight: 0, idleSinceMs: 0, pinned: false, expiresAtMs: null },
      { name: 'b', sizeBytes: 2, sizeVramBytes: 0, contextLength: null, inFlight: 0, idleSinceMs: 0, pinned: true, expiresAtMs: null },
    ]);
    const caps: Array<number | null> = [];
    const cache = { shrunk: 0, restored: 0, shrink: () => (cache.shrunk += 1), restore: () => void (cache.restored += 1) };
    const actuators = actuatorsOf({ governor, transcription: { setConcurrencyCap: (n) => void caps.push(n), activity: () => ({ busy: false, inFlightChunks: 0, concurrency: 1 }) }, caches: [cache] });
    await actuators.unloadIdleModels('idle-unpinned', 'coordinator: test');
    actuators.setModelBudgetCap(3 * GIB);
    actuators.setTranscriptionConcurrencyCap(1);
    actuators.shrinkCaches();
    actuators.restoreCaches();
    actuators.setFeature('liveSummaries', false, { reason: 'memory pressure critical', retryAfterMs: 120_000 });
    expect(governor.unloadIdleCalls).toEqual([{ scope: 'idle-unpinned', reason: 'coordinator: test' }]);
    expect(governor.budgetCaps).toEqual([3 * GIB]);
    expect(caps).toEqual([1]);
    expect(cache).toMatchObject({ shrunk: 1, restored: 1 });
    expect(governor.optionalDeferral()).toMatchObject({ reason: 'memory pressure critical', retryAfterMs: 120_000 });
    actuators.setFeature('liveSummaries', true, { reason: '', retryAfterMs: 0 });
    expect(governor.optionalDeferral()).toBeNull();
  });
});
