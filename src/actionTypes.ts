/**
 * The coordinator's and the model governor's action records, as the history
 * store's `actions` table keeps them (`historyStore.ts` re-exports them) and
 * `GET /api/actions` answers them. Types only, free of Node and the DOM, so
 * the dashboard's scripts import them too instead of a copy. That brings
 * `model.ts` (also free of both) into the browser program: both builds emit
 * the same dist/model.js.
 */
import type { PressureLevel } from './model.js';

/** Who decided an action: the coordinator (cross-component plan) or the model governor. */
export type ActionSource = 'coordinator' | 'governor';

/** One action, executed or only decided, as the `actions` table keeps it. */
export interface ActionEntry {
  atMs: number;
  source: ActionSource;
  /** e.g. `unload-idle-models`, `shrink-caches`, `cap-model-budget`, `hold-batch` / `resume-batch` (batch transcription held for the summary model, and let go); governor: `unload`, `load`, `hold`, ... */
  kind: string;
  /** Pressure level when it was decided; null before the first level. */
  level: PressureLevel | null;
  /** Component whose memory it acts on (`ollama`, `audio`, `engine`, ...). */
  target: string | null;
  /** What exactly: a model name, a cap, a feature. */
  detail: string | null;
  reason: string;
  /** False when only decided (observe-only mode). */
  executed: boolean;
  /** Why executing it failed, when it did. */
  error: string | null;
  /** The target component's RSS when decided. */
  componentBytesBefore: number | null;
  /** System available memory when decided. */
  availableBytesBefore: number | null;
  /** The same, `optimization.settleMs` later (null until measured). */
  componentBytesAfter: number | null;
  availableBytesAfter: number | null;
  measuredAtMs: number | null;
  /** When the action was given back (hysteresis, cap lifted); null while in force or for one-shot actions. */
  undoneAtMs: number | null;
}

/** A stored action; `id` is the row's id in the table. */
export interface StoredAction extends ActionEntry {
  id: number;
}
