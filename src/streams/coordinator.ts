/**
 * The coordinator: memory pressure answered across components. It composes
 * - `coordinateActions` (pressure -> the plan's apply/undo decisions, with
 *   hysteresis) and `balanceBudgets` (Ollama and audio busy at once -> caps);
 * - the actuators the host gives it (governor, transcription service,
 *   caches, optional features), called only outside observe-only mode;
 * - `yieldBatch` (the model side busy or resident -> batch transcription
 *   held), published on `batchHold$` (never held in observe-only mode);
 * - a record book: every decision, and every governor action, becomes an
 *   action record with memory before and after (`actions$`, the `actions`
 *   table, the dashboard and reports).
 *
 * What the actuators are told always follows one rule: nothing in
 * observe-only mode, otherwise exactly what the decisions in force want
 * (`reconcile`). So toggling observe-only, a failed call, or a stop can never
 * leave a cap behind. Plan and reasons: docs/coordinator.md.
 */
import {
  asyncScheduler,
  BehaviorSubject,
  combineLatest,
  distinctUntilChanged,
  map,
  ReplaySubject,
  shareReplay,
  Subject,
  Subscription,
  type Observable,
  type SchedulerLike,
} from 'rxjs';
import type { MemtideConfig } from '../app/config.js';
import { formatBytes } from '../app/units.js';
import type { MemorySample, PressureChange, PressureLevel } from '../model.js';
import { balanceBudgets, type BalanceBudgetsConfig, type BudgetCaps } from '../operators/balanceBudgets.js';
import { yieldBatch, type BatchFacts, type BatchHold, type YieldBatchConfig } from '../operators/yieldBatch.js';
import { COORDINATED_ACTIONS, coordinateActions, type CoordinateActionsConfig, type CoordinatedAction, type CoordinatorDecision } from '../operators/coordinateActions.js';
import type { GovernorAction } from './governorApi.js';
import { createRecordBook } from './coordinator/recordBook.js';
import { BALANCE_IDLE_AFTER_MS, BALANCE_STEP_BYTES, BATCH_DETAIL, DETAILS, LOWERED_TRANSCRIPTION_CONCURRENCY, targetsOf } from './coordinator/targets.js';
import type { ActionEvent, ActionRecord, Actuators, CoordinatorActivity, CoordinatorFeatures, CoordinatorProblem } from './coordinator/types.js';

export type { ActionEvent, ActionRecord, Actuators, CoordinatorActivity, CoordinatorFeatures, CoordinatorProblem } from './coordinator/types.js';
export { BALANCE_IDLE_AFTER_MS, BALANCE_STEP_BYTES, LOWERED_TRANSCRIPTION_CONCURRENCY } from './coordinator/targets.js';

export interface CoordinatorOptions {
  pressure$: Observable<PressureChange>;
  /** Memory before and after each action, and audio memory for balancing. */
  samples$: Observable<MemorySample>;
  /** The live config (`optimization`, `models.contextSafetyMarginBytes`, `components.engine`, `transcription.transcriber`). */
  config$: Observable<MemtideConfig>;
  actuators: Actuators;
  /** Busy facts for budget balancing; without them nothing is balanced. */
  activity$?: Observable<CoordinatorActivity>;
  /** The governor's actions, recorded too (source `governor`). */
  governorActions$?: Observable<GovernorAction>;
  /** Model-side facts for the batch hold (`optimization.batchYield`); without them batch work is never held. */
  batchFacts$?: Observable<BatchFacts>;
  scheduler?: SchedulerLike;
}

/** What the actuators have been told (neutral: no caps, caches full size, features on). */
export interface ExecutedState {
  modelBudgetCapBytes: number | null;
  transcriptionConcurrencyCap: number | null;
  cachesShrunk: boolean;
  features: CoordinatorFeatures;
}

export interface CoordinatorState {
  observeOnly: boolean;
  level: PressureLevel | null;
  /** Reversible actions decided and in force (executed or not). */
  applied: CoordinatedAction[];
  /** Caps decided by budget balancing (executed or not). */
  caps: { modelBudgetBytes: number | null; transcriptionConcurrency: number | null };
  executed: ExecutedState;
  /** Records of what is in force now. */
  open: ActionRecord[];
  /** Batch hold: as decided (recorded even in observe-only mode) and as published on `batchHold$`. */
  batchHold: { decided: boolean; published: boolean };
}

export interface CoordinatorHandle {
  /** Every new record and every change to one (not replayed). */
  readonly actions$: Observable<ActionEvent>;
  /** The features in force (replays the latest). */
  readonly features$: Observable<CoordinatorFeatures>;
  readonly problems$: Observable<CoordinatorProblem>;
  /**
   * Whether batch transcription (imports, re-transcription of files; never
   * live meetings) should wait now, and why. Replays the latest; starts
   * released; never holds in observe-only mode (the decision is still
   * recorded as a `hold-batch` action); released on `stop()`.
   */
  readonly batchHold$: Observable<BatchHold>;
  state(): CoordinatorState;
  /** The latest records, newest first (in memory; the table keeps them all). */
  recent(limit?: number): ActionRecord[];
  /** Restores what was executed, closes the records in force, completes the streams. */
  stop(): void;
}

const NEUTRAL: ExecutedState = { modelBudgetCapBytes: null, transcriptionConcurrencyCap: null, cachesShrunk: false, features: { liveSummaries: true } };

type OpenKey = CoordinatedAction | 'cap-model-budget' | 'cap-transcription-concurrency' | 'governor-hold' | 'hold-batch';

/**
 * Starts a coordinator: decisions from `pressure$` (the plan of
 * `optimization.level` with hysteresis), caps from `activity$` (budget
 * balancing), records of its own and the governor's actions, and calls to
 * `actuators` unless `optimization.observeOnly`. Runs until `stop()`, which
 * gives back what was executed.
 */
export function createCoordinator(options: CoordinatorOptions): CoordinatorHandle {
  const scheduler = options.scheduler ?? asyncScheduler;
  const now = () => scheduler.now();
  const { actuators } = options;

  let config: MemtideConfig | null = null;
  let sample: MemorySample | null = null;
  let level: PressureLevel | null = null;
  let observeOnly = false;
  let stopped = false;
  const applied = new Set<CoordinatedAction>();
  const caps = { modelBudgetBytes: null as number | null, transcriptionConcurrency: null as number | null };
  let executed: ExecutedState = { ...NEUTRAL, features: { ...NEUTRAL.features } };
  const open = new Map<OpenKey, number>();

  const events = new Subject<ActionEvent>();
  const problems = new Subject<CoordinatorProblem>();
  const features = new BehaviorSubject<CoordinatorFeatures>({ ...NEUTRAL.features });
  /** The batch hold decided (null before the first decision) and the one published (never held in observe-only mode). */
  let batchDecided: BatchHold | null = null;
  const batchPublished = new BehaviorSubject<BatchHold>({ atMs: now(), hold: false, reason: 'no batch hold decided yet: batch transcription runs' });
  const configSubject = new ReplaySubject<MemtideConfig>(1);
  const activity = new ReplaySubject<CoordinatorActivity>(1);
  const samples = new Subject<MemorySample>();
  const subscriptions = new Subscription();

  const book = createRecordBook(now, (event) => events.next(event));
  const report = (operation: string, error: unknown) => {
    if (!stopped) problems.next({ atMs: now(), operation, error });
  };
  const settleMs = () => config?.optimization.settleMs ?? 30_000;

  /** Opens the record of an action now in force (closing the one it replaces). */
  const openRecord = (key: OpenKey, kind: string, target: string | null, detail: string | null, reason: string) => {
    closeRecord(key);
    const record = book.add({ source: 'coordinator', kind, level, target, detail, reason, executed: !observeOnly }, sample, settleMs(), true);
    open.set(key, record.id);
    return record;
  };
  const closeRecord = (key: OpenKey) => {
    const id = open.get(key);
    if (id === undefined) return;
    open.delete(key);
    book.undo(id);
  };

  // ---- actuators ---------------------------------------------------------

  const wanted = (): ExecutedState => {
    if (observeOnly) return { ...NEUTRAL, features: { ...NEUTRAL.features } };
    const lowered = applied.has('lower-transcription-concurrency') ? LOWERED_TRANSCRIPTION_CONCURRENCY : null;
    const concurrency = [lowered, caps.transcriptionConcurrency].filter((n): n is number => n !== null);
    return {
      modelBudgetCapBytes: caps.modelBudgetBytes,
      transcriptionConcurrencyCap: concurrency.length ? Math.min(...concurrency) : null,
      cachesShrunk: applied.has('shrink-caches'),
      features: { liveSummaries: !applied.has('disable-live-summaries') },
    };
  };

  /** Calls an actuator; a failure is reported and marked on the record of the action behind it. */
  const call = (operation: string, keys: OpenKey[], run: () => void) => {
    try {
      run();
    } catch (error) {
      report(operation, error);
      for (const key of keys) {
        const id = open.get(key);
        if (id !== undefined) book.fail(id, error);
      }
    }
  };

  /** Tells the actuators what differs between what they were told and what is wanted now. */
  const reconcile = () => {
    const target = wanted();
    const was = executed;
    // Recorded before calling: an actuator that throws must not make the next reconcile call it again and again.
    executed = target;
    if (target.modelBudgetCapBytes !== was.modelBudgetCapBytes) {
      call('setModelBudgetCap', ['cap-model-budget'], () => actuators.setModelBudgetCap(target.modelBudgetCapBytes));
    }
    if (target.transcriptionConcurrencyCap !== was.transcriptionConcurrencyCap) {
      call('setTranscriptionConcurrencyCap', ['lower-transcription-concurrency', 'cap-transcription-concurrency'], () =>
        actuators.setTranscriptionConcurrencyCap(target.transcriptionConcurrencyCap),
      );
    }
    if (target.cachesShrunk !== was.cachesShrunk) {
      call(target.cachesShrunk ? 'shrinkCaches' : 'restoreCaches', ['shrink-caches'], () => (target.cachesShrunk ? actuators.shrinkCaches() : actuators.restoreCaches()));
    }
    if (target.features.liveSummaries !== was.features.liveSummaries) {
      const retryAfterMs = config?.optimization.undoAfterMs ?? 120_000;
      const reason = `memory pressure ${level ?? 'unknown'}: live summaries are paused by the coordinator (${config ? planLabel(config) : 'optimization'})`;
      call('setFeature liveSummaries', ['disable-live-summaries'], () => actuators.setFeature('liveSummaries', target.features.liveSummaries, { reason, retryAfterMs }));
      features.next({ ...target.features });
    }
  };

  const planLabel = (c: MemtideConfig) => (c.optimization.lowMemory ? 'low-memory mode' : `optimization.level ${c.optimization.level}`);

  // ---- decisions ---------------------------------------------------------

  const onDecision = (decision: CoordinatorDecision) => {
    if (!config) return;
    const targets = targetsOf(config);
    const targetOf: Record<CoordinatedAction, string> = {
      'unload-idle-models': targets.models,
      'lower-transcription-concurrency': targets.transcription,
      'shrink-caches': targets.caches,
      'disable-live-summaries': targets.liveSummaries,
    };
    const { action } = decision;
    if (decision.oneShot) {
      const record = book.add(
        { source: 'coordinator', kind: action, level: decision.level, target: targetOf[action], detail: DETAILS[action], reason: decision.reason, executed: !observeOnly },
        sample,
        settleMs(),
      );
      if (observeOnly) return;
      const fail = (error: unknown) => {
        report('unloadIdleModels', error);
        book.fail(record.id, error);
      };
      try {
        Promise.resolve(actuators.unloadIdleModels('idle-unpinned', `coordinator: ${decision.reason}`)).catch(fail);
      } catch (error) {
        fail(error);
      }
      return;
    }
    if (decision.op === 'apply') {
      applied.add(action);
      openRecord(action, action, targetOf[action], DETAILS[action], decision.reason);
    } else {
      applied.delete(action);
      closeRecord(action);
    }
    reconcile();
  };

  const onCaps = (next: BudgetCaps) => {
    if (!config) return;
    const targets = targetsOf(config);
    if (next.modelBudgetCapBytes !== caps.modelBudgetBytes) {
      caps.modelBudgetBytes = next.modelBudgetCapBytes;
      if (next.modelBudgetCapBytes === null) closeRecord('cap-model-budget');
      else openRecord('cap-model-budget', 'cap-model-budget', targets.models, formatBytes(next.modelBudgetCapBytes), next.reason);
    }
    if (next.transcriptionConcurrencyCap !== caps.transcriptionConcurrency) {
      caps.transcriptionConcurrency = next.transcriptionConcurrencyCap;
      if (next.transcriptionConcurrencyCap === null) closeRecord('cap-transcription-concurrency');
      else openRecord('cap-transcription-concurrency', 'cap-transcription-concurrency', targets.transcription, `${next.transcriptionConcurrencyCap} chunk(s) at once`, next.reason);
    }
    reconcile();
  };

  /** Observe-only switched: every record in force is closed and reopened with the new `executed`, then the actuators follow. */
  const onObserveOnly = (value: boolean) => {
    observeOnly = value;
    for (const [key, id] of [...open]) {
      if (key === 'governor-hold') continue;
      const old = book.get(id);
      if (!old) continue;
      const why = value ? 'observe-only turned on: kept as decided, given back' : 'observe-only turned off: executing what is in force';
      openRecord(key, old.kind, old.target, old.detail, `${why} (${old.reason})`);
    }
    reconcile();
    publishBatch();
  };

  // ---- batch hold --------------------------------------------------------

  /** Publishes what consumers must do: the decision, except in observe-only mode or once stopped. */
  const publishBatch = (why?: string) => {
    const decided = batchDecided?.hold === true;
    const hold = decided && !observeOnly && !stopped;
    if (hold === batchPublished.getValue().hold) return;
    const reason = why ?? (decided && observeOnly ? `observe-only: batch hold decided but not published (${batchDecided?.reason ?? ''})` : (batchDecided?.reason ?? 'batch transcription runs'));
    batchPublished.next({ atMs: now(), hold, reason });
  };

  const onBatchHold = (next: BatchHold) => {
    const was = batchDecided?.hold === true;
    batchDecided = next;
    const target = config ? targetsOf(config).transcription : null;
    if (next.hold && !was) {
      openRecord('hold-batch', 'hold-batch', target, BATCH_DETAIL, next.reason);
    } else if (!next.hold && was) {
      closeRecord('hold-batch');
      book.add({ source: 'coordinator', kind: 'resume-batch', level, target, detail: BATCH_DETAIL, reason: next.reason, executed: !observeOnly }, sample, settleMs());
    }
    publishBatch();
  };

  const onGovernorAction = (action: GovernorAction) => {
    const detail = action.model === null ? null : `${action.model}${action.bytes !== null ? ` (${formatBytes(action.bytes)})` : ''}`;
    const entry = { source: 'governor' as const, kind: action.kind, level, target: 'ollama', detail, reason: action.reason, executed: action.executed, atMs: action.atMs };
    if (action.kind === 'hold' && action.model === null) {
      // A pressure hold is in force until its release-hold: one open record, closed then.
      closeRecord('governor-hold');
      open.set('governor-hold', book.add(entry, sample, settleMs(), true).id);
      return;
    }
    if (action.kind === 'release-hold') closeRecord('governor-hold');
    book.add(entry, sample, settleMs());
  };

  // ---- wiring ------------------------------------------------------------

  subscriptions.add(
    options.config$.subscribe({
      next: (value) => {
        const first = config === null;
        config = value;
        configSubject.next(value);
        if (first || value.optimization.observeOnly !== observeOnly) onObserveOnly(value.optimization.observeOnly);
      },
      error: (error: unknown) => report('config', error),
    }),
  );
  subscriptions.add(
    options.samples$.subscribe({
      next: (value) => {
        sample = value;
        book.measure(value);
        samples.next(value);
      },
      error: (error: unknown) => report('samples', error),
    }),
  );
  const actionsConfig$ = configSubject.pipe(
    map((c): CoordinateActionsConfig => ({ level: c.optimization.level, lowMemory: c.optimization.lowMemory, undoAfterMs: c.optimization.undoAfterMs })),
    distinctUntilChanged((a, b) => a.level === b.level && a.lowMemory === b.lowMemory && a.undoAfterMs === b.undoAfterMs),
  );
  // The level first (it labels the records of caps and governor actions), then the decisions.
  subscriptions.add(
    options.pressure$.subscribe({
      next: (change) => {
        level = change.level;
      },
      error: () => undefined,
    }),
  );
  subscriptions.add(
    options.pressure$.pipe(coordinateActions(actionsConfig$, scheduler)).subscribe({
      next: onDecision,
      error: (error: unknown) => report('pressure decisions', error),
    }),
  );
  if (options.activity$) {
    subscriptions.add(options.activity$.subscribe({ next: (a) => activity.next(a), error: (error: unknown) => report('activity', error) }));
    const balanceConfig$ = configSubject.pipe(
      map((c): BalanceBudgetsConfig => ({ enabled: c.optimization.balanceBudgets, safetyBytes: c.models.contextSafetyMarginBytes, stepBytes: BALANCE_STEP_BYTES, idleAfterMs: BALANCE_IDLE_AFTER_MS })),
      distinctUntilChanged((a, b) => a.enabled === b.enabled && a.safetyBytes === b.safetyBytes),
    );
    subscriptions.add(
      combineLatest([samples, activity])
        .pipe(
          map(([s, a]) => ({
            ollamaInFlight: a.ollamaInFlight,
            audioInFlight: a.audioInFlight,
            audioBytes: config ? (s.components[targetsOf(config).transcription]?.rssBytes ?? 0) : 0,
            budgetBytes: a.modelBudgetBytes,
            loadShortfallBytes: a.loadShortfallBytes,
            transcriptionConcurrency: a.transcriptionConcurrency,
          })),
          balanceBudgets(balanceConfig$, scheduler),
        )
        .subscribe({ next: onCaps, error: (error: unknown) => report('budget balancing', error) }),
    );
  }
  if (options.governorActions$) {
    subscriptions.add(options.governorActions$.subscribe({ next: onGovernorAction, error: (error: unknown) => report('governor actions', error) }));
  }
  if (options.batchFacts$) {
    const batchConfig$ = configSubject.pipe(
      map((c): YieldBatchConfig => ({ ...c.optimization.batchYield })),
      distinctUntilChanged((a, b) => a.enabled === b.enabled && a.idleAfterMs === b.idleAfterMs && a.maxHoldMs === b.maxHoldMs),
    );
    subscriptions.add(
      options.batchFacts$.pipe(yieldBatch(batchConfig$, scheduler)).subscribe({
        next: onBatchHold,
        error: (error: unknown) => {
          report('batch yield', error);
          // A dead decision stream must not leave imports held.
          onBatchHold({ atMs: now(), hold: false, reason: `batch yield failed (${error instanceof Error ? error.message : String(error)}): batch transcription runs` });
        },
      }),
    );
  }

  const features$ = features.pipe(shareReplay({ bufferSize: 1, refCount: true }));

  return {
    actions$: events.asObservable(),
    features$,
    problems$: problems.asObservable(),
    batchHold$: batchPublished.asObservable(),
    state: () => ({
      observeOnly,
      level,
      applied: COORDINATED_ACTIONS.filter((a) => applied.has(a)),
      caps: { ...caps },
      executed: { ...executed, features: { ...executed.features } },
      open: [...open.values()].map((id) => book.get(id)).filter((r): r is ActionRecord => r !== undefined),
      batchHold: { decided: batchDecided?.hold === true, published: batchPublished.getValue().hold },
    }),
    recent: (limit = 100) => book.recent(limit),
    stop() {
      if (stopped) return;
      subscriptions.unsubscribe();
      // Give back what was executed: a stopped coordinator must not leave caps or shrunk caches behind.
      applied.clear();
      caps.modelBudgetBytes = null;
      caps.transcriptionConcurrency = null;
      reconcile();
      for (const key of [...open.keys()]) closeRecord(key);
      stopped = true;
      // A stopped coordinator holds nothing: batch work runs again.
      publishBatch('coordinator stopped: batch transcription runs');
      batchPublished.complete();
      events.complete();
      problems.complete();
      features.complete();
      configSubject.complete();
      activity.complete();
      samples.complete();
    },
  };
}
