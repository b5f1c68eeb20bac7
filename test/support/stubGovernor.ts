/**
 * A ModelGovernor for proxy tests and benchmarks: admits at once (or as the
 * test's `decide` says), and records every admission request and every
 * `release` call so tests can check "exactly once" in every path.
 */
import { BehaviorSubject, Subject } from 'rxjs';
import type { LoadedModel } from '../../src/model.js';
import type { Admission, AdmissionRequest, GovernorAction, GovernorError, ModelGovernor, OptionalDeferral, UnloadIdleScope } from '../../src/streams/governorApi.js';

export interface ReleaseOutcome {
  ok: boolean;
  status?: number;
  error?: string;
}

export interface RecordedAdmission {
  request: AdmissionRequest;
  granted: { model: string; numCtx: number | null; numBatch: number | null; keepAlive: number | string | null };
  /** Every call of `release` (a correct proxy makes exactly one). */
  releases: ReleaseOutcome[];
}

export type Decision = Partial<Pick<Admission, 'model' | 'numCtx' | 'numBatch' | 'keepAlive'>> | GovernorError;

export interface StubGovernor extends ModelGovernor {
  readonly admissions: RecordedAdmission[];
  /** Admission requests that got a GovernorError. */
  readonly refused: AdmissionRequest[];
  /** Admissions not released yet. */
  unreleased(): RecordedAdmission[];
  /** Resolves when every admission has been released (or rejects after `timeoutMs`). */
  settled(timeoutMs?: number): Promise<void>;
  decide: (request: AdmissionRequest) => Decision | Promise<Decision>;
  readonly pinned: Set<string>;
  readonly unloaded: string[];
  /** What `list()` / `models$` report. */
  setModels(models: LoadedModel[]): void;
  /** Makes `unload` fail with this error (null: succeed). */
  unloadError: Error | null;
  /** Every `setBudgetCap` argument, in order. */
  readonly budgetCaps: Array<number | null>;
  /** Every `unloadIdle` call, in order. */
  readonly unloadIdleCalls: Array<{ scope: UnloadIdleScope; reason: string | undefined }>;
  /** Actions to emit on `actions$` (as the real governor would). */
  emit(action: GovernorAction): void;
}

export function createStubGovernor(decide: StubGovernor['decide'] = () => ({})): StubGovernor {
  const admissions: RecordedAdmission[] = [];
  const refused: AdmissionRequest[] = [];
  const models$ = new BehaviorSubject<LoadedModel[]>([]);
  const actions$ = new Subject<GovernorAction>();
  const pinned = new Set<string>();
  const unloaded: string[] = [];
  const budgetCaps: Array<number | null> = [];
  const unloadIdleCalls: StubGovernor['unloadIdleCalls'] = [];
  let deferral: OptionalDeferral | null = null;
  const unreleased = () => admissions.filter((a) => a.releases.length === 0);

  const governor: StubGovernor = {
    admissions,
    refused,
    pinned,
    unloaded,
    decide,
    unreleased,
    unloadError: null,
    budgetCaps,
    unloadIdleCalls,
    emit: (action) => actions$.next(action),
    setModels: (models) => models$.next(models),
    setBudgetCap: (bytes) => void budgetCaps.push(bytes),
    async unloadIdle(scope, reason) {
      unloadIdleCalls.push({ scope, reason });
      const idle = models$.getValue().filter((m) => m.inFlight === 0 && (scope === 'idle-all' || !m.pinned));
      return { models: idle.map((m) => m.name), bytes: idle.reduce((sum, m) => sum + m.sizeBytes, 0) };
    },
    deferOptional(next) {
      deferral = next === null ? null : { ...next, sinceMs: deferral?.sinceMs ?? Date.now() };
    },
    optionalDeferral: () => deferral,
    async settled(timeoutMs = 2000) {
      const deadline = Date.now() + timeoutMs;
      while (unreleased().length > 0) {
        if (Date.now() > deadline) throw new Error(`${unreleased().length} admission(s) never released`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    },
    async admit(request) {
      const decision = await governor.decide(request);
      if (decision instanceof Error) {
        refused.push(request);
        throw decision;
      }
      const granted = { model: decision.model ?? request.model, numCtx: decision.numCtx ?? null, numBatch: decision.numBatch ?? null, keepAlive: decision.keepAlive ?? null };
      const record: RecordedAdmission = { request, granted, releases: [] };
      admissions.push(record);
      return { ...granted, release: (outcome) => void record.releases.push(outcome) };
    },
    models$,
    actions$,
    list: () => models$.getValue(),
    async unload(name) {
      if (governor.unloadError) throw governor.unloadError;
      unloaded.push(name);
    },
    pin: (name) => void pinned.add(name),
    unpin: (name) => void pinned.delete(name),
    stop() {
      models$.complete();
      actions$.complete();
    },
  };
  return governor;
}
