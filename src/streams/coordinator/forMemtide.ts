/**
 * The coordinator wired to a memtide engine and the parts a host has: the
 * model governor, the transcription service, caches. Each part is optional;
 * an action whose part is missing is still decided and recorded, and
 * executing it changes nothing. Also the sink that keeps the records in the
 * history database's `actions` table.
 */
import { asapScheduler, EMPTY, map, observeOn, Subscription, type Observable, type SchedulerLike } from 'rxjs';
import type { Memtide } from '../../app/memtide.js';
import type { MemorySample } from '../../model.js';
import type { BatchFacts } from '../../operators/yieldBatch.js';
import type { ActionEntry, ActionUpdate } from '../../sinks/historyStore.js';
import type { ModelGovernor } from '../governorApi.js';
import type { ModelGovernorHandle } from '../modelGovernor.js';
import { createCoordinator, type CoordinatorHandle } from '../coordinator.js';
import type { ActionEvent, Actuators, CoordinatorActivity } from './types.js';

/** What the coordinator needs of the governor (a `ModelGovernorHandle` has it all). */
export type CoordinatedGovernor = Pick<ModelGovernor, 'setBudgetCap' | 'unloadIdle' | 'deferOptional' | 'actions$' | 'list'> &
  Partial<Pick<ModelGovernorHandle, 'baseBudgetBytes' | 'capShortfallBytes'>>;

/** What it needs of the transcription service (src/app/routes/transcribe.ts). */
export interface CoordinatedTranscription {
  setConcurrencyCap(chunks: number | null): void;
  activity(): { busy: boolean; inFlightChunks: number; concurrency: number };
}

/** A cache with a small budget under pressure (the history query cache). */
export interface ShrinkableCache {
  shrink(): unknown;
  restore(): void;
}

/** Where records are kept: the part of `HistoryStore` used. */
export interface ActionsWriter {
  readonly isOpen: boolean;
  insertAction(action: ActionEntry): number;
  updateAction(id: number, update: ActionUpdate): boolean;
}

export interface CoordinatorParts {
  governor?: CoordinatedGovernor;
  transcription?: CoordinatedTranscription;
  caches?: readonly ShrinkableCache[];
  /** Default: the engine's history database, when open. */
  history?: ActionsWriter;
  /** A failed history write (the coordinator goes on). */
  onHistoryError?(error: unknown): void;
  scheduler?: SchedulerLike;
}

export interface MemtideCoordinator extends CoordinatorHandle {
  /** Stops the coordinator and its history sink. */
  stop(): void;
}

/** The actuators over the parts that exist. */
export function actuatorsOf(parts: Pick<CoordinatorParts, 'governor' | 'transcription' | 'caches'>): Actuators {
  const { governor, transcription, caches = [] } = parts;
  return {
    unloadIdleModels: (scope, reason) => governor?.unloadIdle(scope, reason),
    setModelBudgetCap: (bytes) => governor?.setBudgetCap(bytes),
    setTranscriptionConcurrencyCap: (chunks) => transcription?.setConcurrencyCap(chunks),
    shrinkCaches: () => caches.forEach((cache) => cache.shrink()),
    restoreCaches: () => caches.forEach((cache) => cache.restore()),
    setFeature: (feature, enabled, why) => {
      if (feature === 'liveSummaries') governor?.deferOptional(enabled ? null : { reason: why.reason, retryAfterMs: why.retryAfterMs });
    },
  };
}

/** Busy facts read at each sample from the governor and the transcription service. */
export function activityOf(samples$: Observable<unknown>, parts: Pick<CoordinatorParts, 'governor' | 'transcription'>): Observable<CoordinatorActivity> {
  const { governor, transcription } = parts;
  if (!governor || !transcription) return EMPTY; // balancing needs both sides
  return samples$.pipe(
    map(() => {
      const audio = transcription.activity();
      return {
        ollamaInFlight: governor.list().reduce((sum, m) => sum + m.inFlight, 0),
        audioInFlight: audio.inFlightChunks,
        modelBudgetBytes: governor.baseBudgetBytes?.() ?? Infinity,
        loadShortfallBytes: governor.capShortfallBytes?.() ?? 0,
        transcriptionConcurrency: Math.max(1, audio.concurrency),
      };
    }),
  );
}

/**
 * Model-side facts for the batch hold, read at each sample from the governor:
 * requests in flight through the proxy and the bytes of the models it knows
 * are loaded (`/api/ps` sizes, or its estimate before Ollama reports them).
 * Without a governor nothing is known, so nothing is held.
 */
export function batchFactsOf(samples$: Observable<MemorySample>, governor: Pick<CoordinatedGovernor, 'list'> | undefined): Observable<BatchFacts> {
  if (!governor) return EMPTY;
  return samples$.pipe(
    map((sample) => {
      const models = governor.list();
      return {
        atMs: sample.timestampMs,
        ollamaInFlight: models.reduce((sum, m) => sum + m.inFlight, 0),
        residentModelBytes: models.reduce((sum, m) => sum + m.sizeBytes, 0),
      };
    }),
  );
}

/**
 * Keeps the records in the `actions` table: inserted when recorded, updated
 * when measured, undone or failed (the coordinator's ids map to row ids).
 */
export function recordActions(actions$: Observable<ActionEvent>, store: ActionsWriter, onError: (error: unknown) => void = () => undefined): Subscription {
  const rows = new Map<number, number>();
  return actions$.subscribe({
    next: ({ type, record, final }) => {
      if (!store.isOpen) return;
      try {
        if (type === 'recorded') {
          const { id, ...entry } = record;
          const row = store.insertAction(entry);
          if (!final) rows.set(id, row);
          return;
        }
        const row = rows.get(record.id);
        if (row === undefined) return;
        store.updateAction(row, {
          componentBytesAfter: record.componentBytesAfter,
          availableBytesAfter: record.availableBytesAfter,
          measuredAtMs: record.measuredAtMs,
          undoneAtMs: record.undoneAtMs,
          error: record.error,
        });
        if (final) rows.delete(record.id);
      } catch (error) {
        onError(error);
      }
    },
    error: onError,
  });
}

/**
 * `createCoordinator` over a memtide engine (pressure, samples, config) and
 * the host's parts; governor actions are recorded too, and every record goes
 * to the history database when it is open.
 */
export function coordinatorForMemtide(memtide: Memtide, parts: CoordinatorParts = {}): MemtideCoordinator {
  const coordinator = createCoordinator({
    // The engine classifies a sample before the coordinator's own subscription sees it: one hop later, the
    // sample a pressure change came from is the coordinator's latest, so it is the records' "memory before".
    pressure$: memtide.pressure$.pipe(observeOn(parts.scheduler ?? asapScheduler)),
    samples$: memtide.samples$,
    config$: memtide.config$,
    actuators: actuatorsOf(parts),
    activity$: activityOf(memtide.samples$, parts),
    ...(parts.governor ? { governorActions$: parts.governor.actions$, batchFacts$: batchFactsOf(memtide.samples$, parts.governor) } : {}),
    ...(parts.scheduler ? { scheduler: parts.scheduler } : {}),
  });
  const history = parts.history ?? memtide.history;
  const sink = history ? recordActions(coordinator.actions$, history, parts.onHistoryError) : new Subscription();
  // The engine's batchHold$ (and the runner's `batch` event) follows this coordinator from now on.
  // (Test doubles of the engine may lack the hook.)
  const attached = typeof memtide.attachBatchHold === 'function' ? memtide.attachBatchHold(coordinator.batchHold$) : new Subscription();
  return {
    ...coordinator,
    stop() {
      // The coordinator's last records (closed on stop) still reach the table, then the sink goes.
      coordinator.stop();
      sink.unsubscribe();
      attached.unsubscribe();
    },
  };
}
