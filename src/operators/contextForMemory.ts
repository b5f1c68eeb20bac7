import { asyncScheduler, defer, isObservable, map, of, withLatestFrom, type Observable, type OperatorFunction, type SchedulerLike } from 'rxjs';
import { formatBytes } from '../app/units.js';

/** Options of {@link contextForMemory} (from the `models` config). */
export interface ContextForMemoryConfig {
  /** num_ctx values that may be chosen. */
  allowedContextSizes: readonly number[];
  /** Memory left free when sizing the KV cache. */
  safetyMarginBytes: number;
  /** Tokens kept for the answer on top of the prompt. */
  answerReserveTokens: number;
  /** Largest size chosen just because memory is free (a prompt that needs more still gets it). */
  maxContext: number;
}

/** One sizing question: a prompt for a model, and the memory its KV cache may use. */
export interface ContextRequest {
  promptTokens: number;
  /** KV-cache bytes per token of context (`2 x layers x kv_heads x head_dim x bytes`); 0 when unknown. */
  kvBytesPerToken: number;
  /** Memory the KV cache may take (free memory after the weights; Infinity when unknown). */
  availableBytes: number;
  /** The model's trained context (`<arch>.context_length`); null when unknown. A hard ceiling. */
  trainedContext: number | null;
  /** num_ctx the model is loaded with now; kept while it holds the prompt and fits (changing it reloads the model). */
  currentNumCtx?: number | null;
  /** Per-model override of `maxContext`. */
  maxContext?: number | null;
}

export interface ContextSizing {
  numCtx: number;
  kvBytes: number;
  /** promptTokens + answerReserveTokens. */
  needTokens: number;
  /** False when even the smallest size that holds the prompt does not fit `availableBytes` - margin. */
  fitsMemory: boolean;
  /** True when no allowed size up to the trained context holds the prompt (Ollama will truncate it). */
  truncates: boolean;
  /** True when `currentNumCtx` was kept. */
  kept: boolean;
  reason: string;
}

export type ContextChoice = ContextSizing & { atMs: number };

export class ContextForMemoryError extends Error {
  readonly code = 'MEMTIDE_ERR_CONTEXT_INPUT';
  constructor(message: string) {
    super(message);
    this.name = 'ContextForMemoryError';
  }
}

function validate(request: ContextRequest, config: ContextForMemoryConfig): void {
  const check = (name: string, value: number, allowInfinity = false) => {
    if (Number.isNaN(value) || value < 0 || (!allowInfinity && !Number.isFinite(value))) {
      throw new ContextForMemoryError(`${name} must be a non-negative number, got ${value}`);
    }
  };
  check('promptTokens', request.promptTokens);
  check('kvBytesPerToken', request.kvBytesPerToken);
  if (Number.isNaN(request.availableBytes)) throw new ContextForMemoryError('availableBytes must be a number, got NaN');
  if (request.trainedContext !== null && !(request.trainedContext > 0)) {
    throw new ContextForMemoryError(`trainedContext must be positive or null, got ${request.trainedContext}`);
  }
  if (config.allowedContextSizes.length === 0 || config.allowedContextSizes.some((s) => !(Number.isInteger(s) && s > 0))) {
    throw new ContextForMemoryError(`allowedContextSizes must be positive integers, got [${config.allowedContextSizes.join(', ')}]`);
  }
}

/**
 * The pure choice behind {@link contextForMemory}:
 * 1. need = promptTokens + answerReserveTokens; sizes = allowed sizes up to
 *    the trained context (plus the current one);
 * 2. keep `currentNumCtx` when it holds the need and its KV fits
 *    `availableBytes - safetyMarginBytes` (no reload for nothing);
 * 3. otherwise the largest size between the smallest that holds the need and
 *    max(that, maxContext) whose KV fits; if none fits, the smallest that
 *    holds the need (never below the prompt: the budget makes room or refuses).
 * The result never decreases when `availableBytes` grows.
 */
export function chooseContext(request: ContextRequest, config: ContextForMemoryConfig): ContextSizing {
  validate(request, config);
  const need = Math.ceil(request.promptTokens) + config.answerReserveTokens;
  const cap = request.trainedContext ?? Infinity;
  const current = request.currentNumCtx != null && request.currentNumCtx > 0 && request.currentNumCtx <= cap ? request.currentNumCtx : null;
  const sizeSet = new Set(config.allowedContextSizes.filter((s) => s <= cap));
  if (current !== null) sizeSet.add(current);
  if (sizeSet.size === 0) sizeSet.add(Number.isFinite(cap) ? cap : Math.max(...config.allowedContextSizes));
  const sizes = [...sizeSet].sort((a, b) => a - b);
  const room = request.availableBytes - config.safetyMarginBytes;
  const kv = (size: number) => size * request.kvBytesPerToken;
  const fits = (size: number) => kv(size) <= room;

  const holding = sizes.find((s) => s >= need);
  const truncates = holding === undefined;
  const minimal = holding ?? sizes[sizes.length - 1]!;
  const result = (numCtx: number, kept: boolean, reason: string): ContextSizing => ({
    numCtx,
    kvBytes: kv(numCtx),
    needTokens: need,
    fitsMemory: fits(minimal),
    truncates,
    kept,
    reason: truncates ? `${reason}; the prompt needs ${need} tokens, more than any allowed size up to the trained context` : reason,
  });

  if (current !== null && current >= need && fits(current)) {
    return result(current, true, `kept num_ctx ${current}: it holds ${need} tokens and its KV cache fits (a change reloads the model)`);
  }
  const ceiling = Math.max(minimal, request.maxContext ?? config.maxContext);
  const fitting = sizes.filter((s) => s >= minimal && s <= ceiling && fits(s));
  const chosen = fitting[fitting.length - 1];
  if (chosen !== undefined) {
    return result(chosen, false, `num_ctx ${chosen}: largest up to ${ceiling} whose KV cache (${formatBytes(kv(chosen))}) fits ${formatBytes(Math.max(0, room))} free`);
  }
  return result(minimal, false, `num_ctx ${minimal}: smallest that holds ${need} tokens; its KV cache (${formatBytes(kv(minimal))}) does not fit ${formatBytes(Math.max(0, room))} free`);
}

/**
 * Chooses `num_ctx` for each request: among the allowed sizes, the largest
 * (up to `maxContext`) whose KV cache fits the available memory minus a
 * safety margin, never below what the prompt needs (prompt + answer reserve),
 * never above the model's trained context, and the model's current size when
 * that still holds the prompt and fits (changing num_ctx reloads a model in
 * Ollama). Config may be an Observable (hot: applies from the next request).
 *
 * ```
 * request:  -a----b----|    a: 10 GiB free, b: 600 MiB free (llama3 8B, 3000-token prompt)
 * result:   -A----B----|    A: 8192 (maxContext), B: 4096 (holds 3000 + 1024)
 * ```
 *
 * @param config allowed sizes, margin, reserve and ceiling, or an Observable of them.
 * @param scheduler clock for the choices' `atMs`.
 */
export function contextForMemory(
  config: ContextForMemoryConfig | Observable<ContextForMemoryConfig>,
  scheduler: SchedulerLike = asyncScheduler,
): OperatorFunction<ContextRequest, ContextChoice> {
  return (source) =>
    defer(() =>
      source.pipe(
        withLatestFrom(isObservable(config) ? config : of(config)),
        map(([request, current]): ContextChoice => ({ ...chooseContext(request, current), atMs: scheduler.now() })),
      ),
    );
}
