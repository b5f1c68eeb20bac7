import { asyncScheduler, defer, isObservable, map, of, withLatestFrom, type Observable, type OperatorFunction, type SchedulerLike } from 'rxjs';
import { formatBytes } from '../app/units.js';

/** Options of {@link lruBudget}. */
export interface LruBudgetConfig {
  /** Most bytes the loaded models may hold together. */
  budgetBytes: number;
}

/** A loaded model as the budget sees it. */
export interface BudgetModel {
  name: string;
  bytes: number;
  /** Requests in flight: such a model is never unloaded. */
  inFlight: number;
  pinned: boolean;
  /** Last time a request to it started or ended (the LRU order). */
  lastUsedMs: number;
}

/** A prospective load and the loaded set it would join. */
export interface BudgetRequest {
  loaded: readonly BudgetModel[];
  /** The model to load; if it is in `loaded` (a reload, e.g. another num_ctx) its old bytes are replaced. */
  load: { model: string; bytes: number };
}

export type BudgetDecision = BudgetPlan & { atMs: number };

export type BudgetPlan =
  | {
      kind: 'admit';
      model: string;
      /** Unload these first, in this order (least recently used first). */
      evict: string[];
      /** Bytes loaded after the evictions and the load. */
      totalAfterBytes: number;
      budgetBytes: number;
    }
  | {
      kind: 'reject';
      model: string;
      /**
       * `too-large`: the load does not fit even with every unpinned model gone
       * (only a bigger budget, an unpin or a smaller model helps);
       * `busy`: it would fit once requests in flight on other models end.
       */
      reason: 'too-large' | 'busy';
      /** Bytes over the budget after every possible eviction. */
      shortBytes: number;
      budgetBytes: number;
      message: string;
    };

export class LruBudgetError extends Error {
  readonly code = 'MEMTIDE_ERR_BUDGET_INPUT';
  constructor(message: string) {
    super(message);
    this.name = 'LruBudgetError';
  }
}

const validBytes = (value: number) => Number.isFinite(value) && value >= 0;

/**
 * The pure decision behind {@link lruBudget}: evict the least recently used
 * idle unpinned models (oldest first, ties by name) until the load fits; a
 * model with a request in flight and a pinned model are never chosen.
 */
export function planBudget(request: BudgetRequest, budgetBytes: number): BudgetPlan {
  if (!validBytes(budgetBytes)) throw new LruBudgetError(`budgetBytes must be a non-negative number, got ${budgetBytes}`);
  const { load } = request;
  if (!validBytes(load.bytes)) throw new LruBudgetError(`load.bytes of ${load.model} must be a non-negative number, got ${load.bytes}`);
  const others = request.loaded.filter((m) => m.name !== load.model);
  for (const m of others) {
    if (!validBytes(m.bytes)) throw new LruBudgetError(`bytes of loaded model ${m.name} must be a non-negative number, got ${m.bytes}`);
  }
  let total = others.reduce((sum, m) => sum + m.bytes, 0) + load.bytes;
  const evict: string[] = [];
  const candidates = others
    .filter((m) => m.inFlight === 0 && !m.pinned)
    .sort((a, b) => a.lastUsedMs - b.lastUsedMs || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const m of candidates) {
    if (total <= budgetBytes) break;
    evict.push(m.name);
    total -= m.bytes;
  }
  if (total <= budgetBytes) return { kind: 'admit', model: load.model, evict, totalAfterBytes: total, budgetBytes };
  const pinnedBytes = others.filter((m) => m.pinned).reduce((sum, m) => sum + m.bytes, 0);
  const tooLarge = load.bytes + pinnedBytes > budgetBytes;
  const busy = others.filter((m) => m.inFlight > 0 && !m.pinned).map((m) => m.name);
  return {
    kind: 'reject',
    model: load.model,
    reason: tooLarge ? 'too-large' : 'busy',
    shortBytes: total - budgetBytes,
    budgetBytes,
    message: tooLarge
      ? pinnedBytes > 0
        ? `${load.model} needs ${formatBytes(load.bytes)}; with ${formatBytes(pinnedBytes)} of pinned models that exceeds the model budget of ${formatBytes(budgetBytes)}`
        : `${load.model} needs ${formatBytes(load.bytes)}, more than the whole model budget of ${formatBytes(budgetBytes)}`
      : `${load.model} needs ${formatBytes(load.bytes)}; it fits once the requests in flight on ${busy.join(', ')} end`,
  };
}

/**
 * For each prospective load, decides which least recently used idle unpinned
 * models to unload so the loaded total stays within `budgetBytes`, or rejects
 * the load when that is impossible. A pure map: the result depends only on
 * the request and the latest config (hot: a new budget applies from the next
 * request on; requests before the first config value are dropped). Invalid
 * bytes (negative, NaN) end the stream with an {@link LruBudgetError}.
 *
 * ```
 * request: -a---b---|      (a fits; b needs the idle LRU model x out)
 * result:  -A---B---|      A = admit, evict []; B = admit, evict [x]
 * ```
 *
 * @param config the budget, or an Observable of it.
 * @param scheduler clock for the decisions' `atMs`.
 */
export function lruBudget(
  config: LruBudgetConfig | Observable<LruBudgetConfig>,
  scheduler: SchedulerLike = asyncScheduler,
): OperatorFunction<BudgetRequest, BudgetDecision> {
  return (source) =>
    defer(() =>
      source.pipe(
        withLatestFrom(isObservable(config) ? config : of(config)),
        map(([request, current]): BudgetDecision => ({ ...planBudget(request, current.budgetBytes), atMs: scheduler.now() })),
      ),
    );
}
