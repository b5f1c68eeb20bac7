/**
 * The pure decision behind one admission: which tag, which `num_ctx`, whether
 * it loads (or reloads) a model, what that costs, and whether it may go now,
 * must wait, needs room made first, or can never fit. The governor
 * (src/streams/modelGovernor.ts) gathers the inputs, executes the evictions
 * and records the actions; everything decided lives here.
 */
import type { ModelsConfig } from '../../app/schema/models.js';
import { formatBytes } from '../../app/units.js';
import { chooseContext, type ContextSizing } from '../contextForMemory.js';
import { planBudget } from '../lruBudget.js';
import { perModelOf } from './governorPolicy.js';
import { estimateModelMemory, kvBytesPerToken, OLLAMA_DEFAULT_NUM_BATCH, overheadBytesFor, weightsBytes, type ModelFacts } from './modelMemory.js';
import { chooseQuantization, normalizeModelName, type TagInfo } from './quantization.js';

/** A model the governor tracks, as planning sees it. */
export interface PlannedModel {
  name: string;
  sizeBytes: number;
  /** num_ctx it is loaded with; null when unknown. */
  numCtx: number | null;
  /** num_batch it was loaded with by us; null when unknown (loaded past us). */
  numBatch?: number | null;
  inFlight: number;
  /** True while sizeBytes is our estimate (not yet reported by /api/ps). */
  estimated: boolean;
  unloading: boolean;
  pinned: boolean;
  lastUsedMs: number;
}

/** The parts of an `AdmissionRequest` (src/streams/governorApi.ts) planning reads. */
export interface PlannedRequest {
  model: string;
  /** `openai-*` endpoints take no options and no keep_alive (a translated /v1 chat request comes as `chat`). */
  endpoint: string;
  promptTokens: number;
  requestedNumCtx?: number | undefined;
  /** `options.num_batch` the client set. */
  requestedNumBatch?: number | undefined;
}

export interface AdmissionPlanInput {
  request: PlannedRequest;
  config: ModelsConfig;
  /** The budget in force (with a temporary cap, when there is one). */
  budgetBytes: number;
  /**
   * The budget without the coordinator's temporary cap (default: `budgetBytes`).
   * A load that fits it but not the cap waits for the cap to lift instead of being refused.
   */
  uncappedBudgetBytes?: number;
  models: readonly PlannedModel[];
  /** `/api/show` facts of the requested model; null when they could not be read. */
  facts: ModelFacts | null;
  /** `/api/tags`; null when it could not be read. */
  tags: readonly TagInfo[] | null;
  /** The learned size correction: raw estimate -> expected size, per model. */
  correct: (model: string, rawBytes: number) => number;
  /** The last size /api/ps reported for a model (the estimate when facts are missing). */
  lastKnownSize: (model: string) => number | null;
  /** New loads are held (critical pressure, until medium); the text says why. */
  hold: string | null;
  /** System available memory when samples are given. */
  systemAvailableBytes: number | null;
}

/** What the admission would do, whatever the verdict. */
export interface AdmitPlan {
  /** The (normalised) tag the request goes to. */
  target: string;
  /** Why another quantization was chosen; null when the requested tag is used. */
  switchReason: string | null;
  /** num_ctx the runner will have; null when unknown (left to the server). */
  numCtx: number | null;
  /** num_ctx to inject; null = leave the request as it is. */
  inject: number | null;
  /** False for /v1/* (the OpenAI layer takes no options and no keep_alive). */
  injectable: boolean;
  /** num_batch the runner will have (Ollama's 512 when nothing sets one). */
  numBatch: number;
  /** num_batch to inject; null = leave the request as it is. */
  injectBatch: number | null;
  /** The request loads the model, or reloads it at another num_ctx. */
  needsLoad: boolean;
  /** Expected size after the load (corrected estimate); null when unknown. */
  bytes: number | null;
  weightsBytes: number | null;
  /** num_ctx before a reload (a resize); null otherwise. */
  resizedFrom: number | null;
  sizing: ContextSizing | null;
}

export type AdmissionPlan =
  | { verdict: 'admit'; admit: AdmitPlan }
  /** `shortfallBytes`: what the load misses under the temporary budget cap (only when the cap alone makes it wait). */
  | { verdict: 'wait'; reason: string; hold: boolean; admit: AdmitPlan; shortfallBytes?: number }
  /** Unload these (least recently used first), then plan again. */
  | { verdict: 'evict'; evict: string[]; reason: string; admit: AdmitPlan }
  /** Never fits: only a bigger budget, an unpin or a smaller model helps. */
  | { verdict: 'refuse'; reason: string; admit: AdmitPlan };

/**
 * An entry whose size was never known (admitted while /api/show failed, not
 * yet seen in /api/ps) may not be loaded at all: it is planned as a load.
 */
const knownModel = (models: readonly PlannedModel[], name: string): PlannedModel | undefined => {
  const m = models.find((x) => x.name === name);
  return m && !(m.estimated && m.sizeBytes === 0) ? m : undefined;
};

const tagOf = (tags: readonly TagInfo[] | null, name: string) => tags?.find((t) => normalizeModelName(t.name) === name);

/** Facts of `name` with the file size and quantization of its tag. */
export function factsWithTag(facts: ModelFacts, name: string, tags: readonly TagInfo[] | null): ModelFacts {
  const tag = tagOf(tags, name);
  return tag ? { ...facts, name, fileSizeBytes: tag.sizeBytes, quantization: tag.quantization ?? facts.quantization } : { ...facts, name };
}

/**
 * num_batch of a request: models.numBatch caps it on /api/generate and
 * /api/chat (a client's smaller one is kept). Never on embedding endpoints:
 * an embedding model must take its whole input in one batch, so a small
 * batch would turn long inputs into errors. /v1/* takes no options.
 */
export function batchOf(request: PlannedRequest, cfg: Pick<ModelsConfig, 'numBatch'>): { numBatch: number; inject: number | null } {
  const asked = request.requestedNumBatch;
  const sized = request.endpoint === 'generate' || request.endpoint === 'chat';
  if (!sized || cfg.numBatch === null || (asked !== undefined && asked <= cfg.numBatch)) {
    return { numBatch: asked !== undefined && !request.endpoint.startsWith('openai-') ? asked : OLLAMA_DEFAULT_NUM_BATCH, inject: null };
  }
  return { numBatch: cfg.numBatch, inject: cfg.numBatch };
}

export function planAdmission(input: AdmissionPlanInput): AdmissionPlan {
  const { request, config: cfg, models } = input;
  const requested = normalizeModelName(request.model);
  const injectable = !request.endpoint.startsWith('openai-');
  const batch = batchOf(request, cfg);

  // Quantization: only for a model not loaded yet (a loaded one costs nothing more).
  let target = requested;
  let switchReason: string | null = null;
  let facts = input.facts ? factsWithTag(input.facts, requested, input.tags) : null;
  if (!knownModel(models, requested) && input.facts && input.tags) {
    const base = input.facts;
    const unevictable = models.filter((m) => m.inFlight > 0 || m.pinned).reduce((s, m) => s + m.sizeBytes, 0);
    const minimalCtx = chooseContext(
      { promptTokens: request.promptTokens, kvBytesPerToken: 0, availableBytes: 0, trainedContext: base.contextLength },
      { allowedContextSizes: cfg.allowedContextSizes, safetyMarginBytes: 0, answerReserveTokens: cfg.answerReserveTokens, maxContext: 0 },
    ).numCtx;
    const choice = chooseQuantization({
      requested,
      tags: input.tags,
      preference: cfg.quantization,
      fits: (tag) => {
        const name = normalizeModelName(tag.name);
        if (knownModel(models, name)) return true;
        const est = estimateModelMemory(factsWithTag({ ...base, quantization: tag.quantization }, name, input.tags), minimalCtx, cfg.kvCacheType, overheadBytesFor(base, minimalCtx, batch.numBatch));
        return est !== null && input.correct(name, est.totalBytes) <= input.budgetBytes - unevictable;
      },
    });
    if (choice.switched) {
      target = normalizeModelName(choice.model);
      switchReason = choice.reason;
      facts = factsWithTag({ ...base, quantization: choice.quantization }, target, input.tags);
    }
  }

  const tracked = models.find((m) => m.name === target);
  const loaded = knownModel(models, target);

  // Context size. A request that reaches Ollama as /v1/* runs at the server's default num_ctx, whatever we
  // would choose. The proxy translates /v1/chat/completions to /api/chat (proxy.openAiChat), so those
  // arrive here as `chat` and are sized like native ones; what is still `openai-*` is forwarded as it is.
  const serverDefaultCtx = Math.min(cfg.serverContextLength, facts?.contextLength ?? Infinity);
  let numCtx: number | null = null;
  let inject: number | null = null;
  let sizing: ContextSizing | null = null;
  if (!injectable) {
    numCtx = serverDefaultCtx;
  } else if (request.requestedNumCtx !== undefined && request.requestedNumCtx > 0) {
    numCtx = request.requestedNumCtx; // the client chose: honoured as sent
  } else if (loaded && loaded.numCtx === null) {
    numCtx = null; // loaded past us at an unknown size: injecting one could force a reload
  } else if (facts) {
    const perToken = kvBytesPerToken(facts, cfg.kvCacheType) ?? 0;
    // Buffers at models.maxContext: only the attention part of a llama graph grows with the context.
    const fixed = (weightsBytes(facts) ?? 0) + overheadBytesFor(facts, cfg.maxContext, batch.numBatch);
    const systemFree = input.systemAvailableBytes ?? Infinity;
    let available: number;
    if (loaded && loaded.numCtx !== null) {
      available = systemFree + loaded.numCtx * perToken; // its own KV cache is already allocated
    } else {
      const others = models.filter((m) => m.name !== target).reduce((s, m) => s + m.sizeBytes, 0);
      available = Math.min(input.budgetBytes - others - fixed, systemFree - fixed);
    }
    sizing = chooseContext(
      {
        promptTokens: request.promptTokens,
        kvBytesPerToken: perToken,
        availableBytes: available,
        trainedContext: facts.contextLength,
        currentNumCtx: loaded?.numCtx ?? null,
        maxContext: perModelOf(cfg, target)?.maxContext ?? null,
      },
      { allowedContextSizes: cfg.allowedContextSizes, safetyMarginBytes: cfg.contextSafetyMarginBytes, answerReserveTokens: cfg.answerReserveTokens, maxContext: cfg.maxContext },
    );
    numCtx = sizing.numCtx;
    inject = numCtx;
  }

  // Ollama reloads a runner whose num_ctx or num_batch differs (its needsReload compares the runner options).
  const rebatch = loaded?.numBatch != null && loaded.numBatch !== batch.numBatch;
  const needsLoad = !loaded || (numCtx !== null && loaded.numCtx !== null && loaded.numCtx !== numCtx) || rebatch;
  let bytes: number | null = null;
  let weights = facts ? weightsBytes(facts) : null;
  if (needsLoad) {
    const ctx = numCtx ?? serverDefaultCtx;
    const est = facts ? estimateModelMemory(facts, ctx, cfg.kvCacheType, overheadBytesFor(facts, ctx, batch.numBatch)) : null;
    bytes = est ? input.correct(target, est.totalBytes) : input.lastKnownSize(target);
    weights = est?.weightsBytes ?? weights;
  }
  const admit: AdmitPlan = {
    target,
    switchReason,
    numCtx,
    inject,
    injectable,
    numBatch: batch.numBatch,
    injectBatch: batch.inject,
    needsLoad,
    bytes,
    weightsBytes: weights,
    resizedFrom: loaded && needsLoad && loaded.numCtx !== null && numCtx !== null && loaded.numCtx !== numCtx ? loaded.numCtx : null,
    sizing,
  };

  if (tracked?.unloading) return { verdict: 'wait', reason: `${target} is being unloaded`, hold: false, admit };
  if (needsLoad && input.hold) return { verdict: 'wait', reason: input.hold, hold: true, admit };
  // Changing num_ctx reloads the model: never while requests to it are in flight.
  if (needsLoad && tracked && tracked.inFlight > 0) {
    return { verdict: 'wait', reason: `requests in flight on ${target} (a new ${rebatch ? 'num_batch' : 'num_ctx'} reloads it)`, hold: false, admit };
  }
  if (!needsLoad || bytes === null) return { verdict: 'admit', admit };

  const budgetRequest = { loaded: models.map((m) => ({ name: m.name, bytes: m.sizeBytes, inFlight: m.inFlight, pinned: m.pinned, lastUsedMs: m.lastUsedMs })), load: { model: target, bytes } };
  const budget = planBudget(budgetRequest, input.budgetBytes);
  if (budget.kind === 'reject') {
    const uncapped = input.uncappedBudgetBytes ?? input.budgetBytes;
    if (uncapped > input.budgetBytes) {
      // The cap is temporary (transcription is busy): a load that fits without it waits for it to lift,
      // and says how much it misses so the coordinator can make room on the audio side.
      const full = planBudget(budgetRequest, uncapped);
      if (full.kind === 'admit') {
        const reason = `${target} (${formatBytes(bytes)}) does not fit the model budget capped at ${formatBytes(input.budgetBytes)} while transcription is busy (optimization.balanceBudgets)`;
        return { verdict: 'wait', reason, hold: false, admit, shortfallBytes: budget.shortBytes };
      }
      if (full.reason === 'busy') return { verdict: 'wait', reason: full.message, hold: false, admit };
      return { verdict: 'refuse', reason: `${full.message}: raise models.budgetBytes, unpin a model or use a smaller quantization`, admit };
    }
    if (budget.reason === 'busy') return { verdict: 'wait', reason: budget.message, hold: false, admit };
    return { verdict: 'refuse', reason: `${budget.message}: raise models.budgetBytes, unpin a model or use a smaller quantization`, admit };
  }
  if (budget.evict.length > 0) {
    return {
      verdict: 'evict',
      evict: budget.evict,
      reason: `least recently used: making room for ${target} (${formatBytes(bytes)}) in the model budget of ${formatBytes(input.budgetBytes)}`,
      admit,
    };
  }
  return { verdict: 'admit', admit };
}
