/**
 * The coordinator's contract: what it calls (actuators), what it reads
 * besides pressure and samples (activity), and what it records (actions).
 */
import type { ActionEntry } from '../../sinks/historyStore.js';
import type { UnloadIdleScope } from '../governorApi.js';

/** Optional features the coordinator may switch off under pressure. */
export interface CoordinatorFeatures {
  /**
   * Live summaries during a meeting: requests marked `X-Memtide-Priority: optional`
   * are deferred by the proxy (503 + Retry-After) while false.
   */
  liveSummaries: boolean;
}
export type CoordinatorFeature = keyof CoordinatorFeatures;

/**
 * What the coordinator changes. Never called in observe-only mode. Each call
 * may throw (or reject): the coordinator reports it on `problems$`, sets the
 * action record's `error`, and goes on.
 */
export interface Actuators {
  /** Unload idle models now (one-shot). */
  unloadIdleModels(scope: UnloadIdleScope, reason: string): Promise<unknown> | void;
  /** Cap the model budget (budget balancing); null lifts the cap. */
  setModelBudgetCap(bytes: number | null): void;
  /** Cap the chunks transcribed at once; null lifts the cap. */
  setTranscriptionConcurrencyCap(chunks: number | null): void;
  /** Resize caches to their small budget (history query cache, ...). */
  shrinkCaches(): void;
  /** Back to their configured budget. */
  restoreCaches(): void;
  /** Switch an optional feature; `why` says for how long callers should wait when it is off. */
  setFeature(feature: CoordinatorFeature, enabled: boolean, why: { reason: string; retryAfterMs: number }): void;
}

/** Busy facts for budget balancing, read by the host (governor and transcription service). */
export interface CoordinatorActivity {
  /** Requests to Ollama in flight. */
  ollamaInFlight: number;
  /** Audio chunks being transcribed now. */
  audioInFlight: number;
  /** The model budget before any cap. */
  modelBudgetBytes: number;
  /** What a model load waiting for the capped budget misses (0: none waits). */
  loadShortfallBytes: number;
  /** Chunks transcribed at once now. */
  transcriptionConcurrency: number;
}

/** An action as the coordinator records it; `id` is the coordinator's own sequence (the table has its own ids). */
export interface ActionRecord extends ActionEntry {
  id: number;
}

/**
 * A change to the record book: `recorded` (new, with memory before),
 * `measured` (memory after, `optimization.settleMs` later), `undone`
 * (given back), `failed` (an actuator threw: `error` is set).
 */
export interface ActionEvent {
  type: 'recorded' | 'measured' | 'undone' | 'failed';
  record: ActionRecord;
  /** Nothing more will change in this record (measured, and undone or never to be). */
  final: boolean;
}

/** Something the coordinator survived: an actuator or an input failed. */
export interface CoordinatorProblem {
  atMs: number;
  operation: string;
  error: unknown;
}
