/**
 * The model governor: decides which Ollama models may hold memory, and for
 * how long. It composes
 * - sources: `/api/ps` polling (real sizes), `/api/show` and `/api/tags`
 *   (facts, cached), the proxy's own traffic (admit / release);
 * - operators: `idleUnload` (timers per model), `pressureResponse`
 *   (directive per pressure level), and at admission `planAdmission`
 *   (src/operators/models/admissionPlan.ts: the pure cores of `lruBudget`,
 *   `contextForMemory` and the quantization choice);
 * - actions: unload (`keep_alive: 0`), preload (warm-up), and the
 *   `num_ctx` / `keep_alive` / model the proxy injects.
 *
 * Admissions wait in one bounded queue (FIFO per model; a request that needs
 * no load is not stuck behind one waiting for memory), are planned one at a
 * time, and end in an Admission or a GovernorError. No model with a request
 * in flight is ever unloaded. Policies and reasons: docs/governor.md.
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
import type { MemtideConfig } from '../app/configSchema.js';
import { parseKeepAlive } from '../app/proxy/keepAlive.js';
import type { ModelsConfig } from '../app/schema/models.js';
import { formatBytes, formatDuration } from '../app/units.js';
import type { LoadedModel, MemorySample, PressureChange } from '../model.js';
import { idleTimeoutOf, idleUnload, type IdleUnloadDecision, type ModelActivity } from '../operators/idleUnload.js';
import { planBudget, type BudgetModel } from '../operators/lruBudget.js';
import { factsWithTag, planAdmission, type AdmissionPlan, type AdmitPlan } from '../operators/models/admissionPlan.js';
import { effectiveIdleConfig, isPinned, keepAliveFor, modelBudgetBytes, perModelOf } from '../operators/models/governorPolicy.js';
import { estimateModelMemory, overheadBytesFor, SizeCorrection, splitMapped, weightsBytes } from '../operators/models/modelMemory.js';
import { normalizeModelName } from '../operators/models/quantization.js';
import { presetFor } from '../operators/pressureThresholds.js';
import { pressureResponse, type PressureDirective } from '../operators/pressureResponse.js';
import { OllamaApiError, createModelCatalog, pollPs, type OllamaApi, type PsSnapshot } from '../sources/ollamaApi.js';
import {
  GovernorError,
  type Admission,
  type AdmissionRequest,
  type ContextRun,
  type GovernorAction,
  type ModelEndpoint,
  type ModelGovernor,
  type OptionalDeferral,
  type UnloadIdleResult,
  type UnloadIdleScope,
} from './governorApi.js';

export interface ModelGovernorOptions {
  api: OllamaApi;
  /** The live config (the `models` and `pressure` sections are read). */
  config$: Observable<MemtideConfig>;
  pressure$: Observable<PressureChange>;
  /** Samples: available memory for context sizing, total memory for `preset: auto`. */
  samples$?: Observable<MemorySample>;
  scheduler?: SchedulerLike;
  /** Clock of timestamps (default `scheduler.now()`). */
  now?: () => number;
  /** Total memory for `preset: auto` before the first sample (default: the 8gb preset). */
  totalMemoryBytes?: number;
}

/** A loaded model, with what the governor knows beyond `LoadedModel`. */
export interface GovernedModel extends LoadedModel {
  /** File-backed bytes: the weights when use_mmap is on (page cache the kernel can reclaim). */
  mappedBytes: number;
  /** Anonymous bytes: KV cache and buffers (and the weights when use_mmap is off). */
  anonymousBytes: number;
  /** True while `sizeBytes` is the governor's estimate (before /api/ps reported the model). */
  estimated: boolean;
  /** Last time a request to it started or ended (LRU order). */
  lastUsedMs: number;
}

/** Something the governor survived (Ollama unreachable, a failed unload...); it keeps its state and goes on. */
export interface GovernorProblem {
  atMs: number;
  operation: string;
  error: unknown;
}

export interface WarmUpResult {
  model: string;
  ok: boolean;
  error?: string;
}

export interface WarmUpOptions {
  /**
   * The endpoint the model's real clients will use, so it is loaded the way they will need it.
   * Default: Meetily's `/v1/chat/completions` as the proxy will send it: `chat` (a sized num_ctx)
   * while `proxy.openAiChat` is "translate", `openai-chat` (the server's default num_ctx) when "forward".
   */
  endpoint?: ModelEndpoint;
}

export interface ModelGovernorHandle extends ModelGovernor {
  readonly models$: Observable<GovernedModel[]>;
  list(): GovernedModel[];
  readonly problems$: Observable<GovernorProblem>;
  /**
   * Loads `models` (default `models.warmUp`) through the same admission policy, e.g. when a meeting
   * starts. A warmed model then idles out like any other: pin it for as long as it must stay.
   */
  warmUp(models?: readonly string[], options?: WarmUpOptions): Promise<WarmUpResult[]>;
  /** The budget in force now: the base budget, or the temporary cap when it is lower. */
  budgetBytes(): number;
  /** The budget before the temporary cap: `models.budgetBytes`, or the preset's x `models.budgetScale`. */
  baseBudgetBytes(): number;
  /** The temporary cap set by `setBudgetCap` (null: none). */
  budgetCap(): number | null;
  /** The most bytes a load waiting only because of the cap misses (0: none waits for it). */
  capShortfallBytes(): number;
  /** Requests waiting for admission now. */
  queued(): number;
}

interface Entry {
  name: string;
  sizeBytes: number;
  sizeVramBytes: number;
  /** num_ctx it is loaded with; null when unknown (an old /api/ps, or loaded past us). */
  numCtx: number | null;
  /** num_batch we loaded it with; null when unknown (loaded past us: Ollama's /api/ps does not say). */
  numBatch: number | null;
  inFlight: number;
  idleSinceMs: number | null;
  lastUsedMs: number;
  expiresAtMs: number | null;
  estimated: boolean;
  weightsBytes: number | null;
  unloading: boolean;
}

interface Pending {
  request: AdmissionRequest;
  model: string;
  waiting: boolean;
  waitReason: string | null;
  heldByPressure: boolean;
  /** What its load misses under the temporary budget cap (0 when the cap is not what it waits for). */
  shortfallBytes: number;
  settled: boolean;
  resolve: (admission: Admission) => void;
  reject: (error: unknown) => void;
  cleanup: Subscription;
}

type Outcome = { kind: 'admit'; admission: Admission } | { kind: 'fail'; error: unknown } | { kind: 'wait'; reason: string; hold: boolean; shortfallBytes?: number };

const FACTS_TTL_MS = 10 * 60_000;
const TAGS_TTL_MS = 60_000;
const QUEUE_FULL_RETRY_MS = 5_000;
/** Pause before a model whose unload failed is tracked for idleness again. */
const UNLOAD_RETRY_MS = 5_000;
/** Evict-then-replan rounds per admission before it waits instead (the loaded set kept changing under it). */
const MAX_EVICTION_ROUNDS = 3;

const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** Smallest context ever advertised: below it no prompt and answer fit anyway. */
const MIN_ADVERTISED_CONTEXT = 512;

/**
 * The context a client should size its prompts by (what the proxy puts in
 * `/api/show`): the num_ctx its requests will run at (governed: the model's
 * `maxContext`, else `models.maxContext`; at the server default:
 * `models.serverContextLength`; never beyond the trained context), minus
 * `answerReserveTokens`; at least 512, never above the trained context.
 * A prompt of that size plus the reserve is exactly what the governor sizes
 * num_ctx for, so every such request fits, and at the same num_ctx.
 */
export function advertisedContextOf(models: ModelsConfig, model: string, trainedContext: number, runsAt: ContextRun): number {
  const runs = runsAt === 'governed' ? (perModelOf(models, normalizeModelName(model))?.maxContext ?? models.maxContext) : models.serverContextLength;
  const context = Math.min(runs, trainedContext) - models.answerReserveTokens;
  return Math.min(trainedContext, Math.max(MIN_ADVERTISED_CONTEXT, context));
}

export function createModelGovernor(options: ModelGovernorOptions): ModelGovernorHandle {
  const { api } = options;
  const scheduler = options.scheduler ?? asyncScheduler;
  const now = options.now ?? (() => scheduler.now());

  const entries = new Map<string, Entry>();
  const pinOverrides = new Map<string, boolean>();
  const correction = new SizeCorrection();
  /** Last size /api/ps reported per model: the estimate when /api/show cannot be read. */
  const lastKnownSize = new Map<string, number>();
  const queue: Pending[] = [];
  const idleWaiters = new Map<string, Array<{ resolve: () => void; reject: (e: unknown) => void }>>();
  let config: MemtideConfig | null = null;
  let directive: PressureDirective | null = null;
  let sample: MemorySample | null = null;
  let inFlightTotal = 0;
  let stopped = false;
  /** The coordinator's temporary ceiling on the budget (budget balancing); null: none. */
  let budgetCap: number | null = null;
  let deferral: OptionalDeferral | null = null;

  const configSubject = new ReplaySubject<MemtideConfig>(1);
  const directiveSubject = new BehaviorSubject<PressureDirective | null>(null);
  const pinsSubject = new BehaviorSubject<number>(0);
  const activity = new Subject<ModelActivity>();
  const actions = new Subject<GovernorAction>();
  const problems = new Subject<GovernorProblem>();
  const modelsSubject = new BehaviorSubject<GovernedModel[]>([]);
  const subscriptions = new Subscription();

  const report = (operation: string, error: unknown) => {
    if (!stopped) problems.next({ atMs: now(), operation, error });
  };
  const act = (action: Omit<GovernorAction, 'atMs'>) => {
    if (!stopped) actions.next({ atMs: now(), ...action });
  };
  const models = (): ModelsConfig | null => config?.models ?? null;
  // optimization.observeOnly reaches here as models.observeOnly (the profile layer sets it unless the user did).
  const observeOnly = () => models()?.observeOnly ?? false;

  // ---- budget and memory -------------------------------------------------

  const baseBudgetBytes = (): number => {
    if (!config) return Infinity;
    const total = sample?.system.totalBytes ?? options.totalMemoryBytes ?? null;
    const preset = config.pressure.preset !== 'auto' ? config.pressure.preset : total !== null ? presetFor(total) : '8gb';
    return modelBudgetBytes(config.models, preset, total);
  };

  const budgetBytes = (): number => Math.min(baseBudgetBytes(), budgetCap ?? Infinity);

  const pinned = (name: string) => (config ? isPinned(config.models, pinOverrides, name) : false);

  const budgetModels = (): BudgetModel[] =>
    [...entries.values()].map((e) => ({ name: e.name, bytes: e.sizeBytes, inFlight: e.inFlight, pinned: pinned(e.name), lastUsedMs: e.lastUsedMs }));

  // ---- state published ---------------------------------------------------

  const publish = () => {
    if (stopped) return;
    const useMmap = models()?.useMmap ?? true;
    const list = [...entries.values()]
      .sort((a, b) => (a.name < b.name ? -1 : 1))
      .map((e): GovernedModel => ({
        name: e.name,
        sizeBytes: e.sizeBytes,
        sizeVramBytes: e.sizeVramBytes,
        contextLength: e.numCtx,
        inFlight: e.inFlight,
        idleSinceMs: e.inFlight > 0 ? null : e.idleSinceMs,
        pinned: pinned(e.name),
        expiresAtMs: e.expiresAtMs,
        ...splitMapped(e.sizeBytes, e.weightsBytes, useMmap),
        estimated: e.estimated,
        lastUsedMs: e.lastUsedMs,
      }));
    modelsSubject.next(list);
  };

  // ---- facts -------------------------------------------------------------

  const catalog = createModelCatalog(api, { scheduler, onError: (operation, error) => report(operation, error), factsTtlMs: FACTS_TTL_MS, tagsTtlMs: TAGS_TTL_MS });

  /** Raw (uncorrected) estimate of `name` at `numCtx` and `numBatch` (null: Ollama's default) from cached facts; null when unknown. */
  const rawEstimate = (name: string, numCtx: number, numBatch: number | null): number | null => {
    const f = catalog.cachedFacts(name);
    if (!f || !config) return null;
    const overhead = overheadBytesFor(f, numCtx, numBatch);
    return estimateModelMemory(factsWithTag(f, name, catalog.cachedTags()), numCtx, config.models.kvCacheType, overhead)?.totalBytes ?? null;
  };

  // ---- unloading ---------------------------------------------------------

  const notifyIdle = (name: string) => {
    const waiters = idleWaiters.get(name);
    if (!waiters) return;
    idleWaiters.delete(name);
    for (const w of waiters) w.resolve();
  };

  /** Unloads `name` (never while a request to it is in flight). Throws the API error when it fails. */
  const unloadModel = async (name: string, reason: string): Promise<void> => {
    const entry = entries.get(name);
    if (!entry || entry.unloading) return;
    if (entry.inFlight > 0) throw new Error(`${name} has ${entry.inFlight} request(s) in flight`);
    const bytes = entry.sizeBytes;
    if (observeOnly()) {
      act({ kind: 'unload', model: name, reason, bytes, executed: false });
      return;
    }
    entry.unloading = true;
    try {
      await api.unload(name);
      entries.delete(name);
      activity.next({ kind: 'unloaded', model: name });
      act({ kind: 'unload', model: name, reason, bytes, executed: true });
    } catch (error) {
      report(`unload ${name}`, error);
      // Track it again after a pause (then its idle timeout runs anew): an immediate retry would spin
      // against an Ollama that is down, all the more with a zero idle timeout.
      const retry = scheduler.schedule(() => {
        subscriptions.remove(retry);
        if (!stopped && entries.get(name) === entry && entry.inFlight === 0) activity.next({ kind: 'loaded', model: name });
      }, Math.max(UNLOAD_RETRY_MS, models()?.pollIntervalMs ?? 0));
      subscriptions.add(retry);
      throw error;
    } finally {
      entry.unloading = false;
      publish();
      schedulePump();
    }
  };

  const onIdle = (decision: IdleUnloadDecision) => {
    const entry = entries.get(decision.model);
    if (!entry || entry.inFlight > 0 || stopped) return;
    const evict = directive?.evict ?? 'none';
    const idleFor = formatDuration(decision.atMs - decision.idleSinceMs);
    const reason =
      evict === 'none'
        ? `idle for ${idleFor} (idle timeout ${formatDuration(decision.idleTimeoutMs)})`
        : `pressure ${directive?.level}: idle for ${idleFor} (grace ${formatDuration(decision.idleTimeoutMs)})`;
    unloadModel(decision.model, reason).catch(() => undefined);
  };

  /** Unloads every idle model of `scope` now (the coordinator's pressure action); a failed unload is reported and skipped. */
  const unloadIdle = async (scope: UnloadIdleScope, reason?: string): Promise<UnloadIdleResult> => {
    const result: UnloadIdleResult = { models: [], bytes: 0 };
    if (stopped) return result;
    const idle = [...entries.values()].filter((e) => e.inFlight === 0 && !e.unloading && (scope === 'idle-all' || !pinned(e.name)));
    for (const entry of idle) {
      if (entry.inFlight > 0 || entries.get(entry.name) !== entry) continue; // a request came in meanwhile
      const bytes = entry.sizeBytes;
      try {
        await unloadModel(entry.name, reason ?? `unload of idle models requested (${scope})`);
        result.models.push(entry.name);
        result.bytes += bytes;
      } catch {
        // unloadModel reported it; the other models still go
      }
    }
    return result;
  };

  /** Unloads least recently used idle models until the loaded set is within the budget (after a budget or pin change). */
  const enforceBudget = async () => {
    const plan = planBudget({ loaded: budgetModels(), load: { model: '\u0000none', bytes: 0 } }, budgetBytes());
    if (plan.kind !== 'admit') return;
    for (const name of plan.evict) {
      await unloadModel(name, `over the model budget of ${formatBytes(plan.budgetBytes)}`).catch(() => undefined);
    }
  };

  // ---- /api/ps -----------------------------------------------------------

  let previousPsAtMs: number | null = null;
  const onPs = (snapshot: PsSnapshot) => {
    const seen = new Set<string>();
    for (const m of snapshot.models) {
      const name = normalizeModelName(m.name);
      seen.add(name);
      let entry = entries.get(name);
      if (!entry) {
        entry = {
          name,
          sizeBytes: m.sizeBytes,
          sizeVramBytes: m.sizeVramBytes,
          numCtx: m.contextLength,
          numBatch: null,
          inFlight: 0,
          idleSinceMs: snapshot.atMs,
          lastUsedMs: snapshot.atMs,
          expiresAtMs: m.expiresAtMs,
          estimated: false,
          weightsBytes: null,
          unloading: false,
        };
        entries.set(name, entry);
        activity.next({ kind: 'loaded', model: name });
      }
      // A client that bypasses the proxy is seen only here: Ollama moves expires_at when one of its
      // requests ends. Count that as use (unless it was ours), so its idle timer starts again.
      const usedPastUs =
        m.expiresAtMs !== null &&
        entry.expiresAtMs !== null &&
        m.expiresAtMs > entry.expiresAtMs + 1000 &&
        entry.inFlight === 0 &&
        previousPsAtMs !== null &&
        entry.lastUsedMs < previousPsAtMs;
      if (usedPastUs) {
        entry.lastUsedMs = snapshot.atMs;
        entry.idleSinceMs = snapshot.atMs;
        activity.next({ kind: 'unloaded', model: name });
        activity.next({ kind: 'loaded', model: name });
      }
      const numCtx = m.contextLength ?? entry.numCtx;
      const raw = numCtx !== null ? rawEstimate(name, numCtx, entry.numBatch) : null;
      if (raw !== null) correction.observe(name, raw, m.sizeBytes);
      const f = catalog.cachedFacts(name);
      lastKnownSize.set(name, m.sizeBytes);
      entry.sizeBytes = m.sizeBytes;
      entry.sizeVramBytes = m.sizeVramBytes;
      entry.expiresAtMs = m.expiresAtMs;
      entry.numCtx = numCtx;
      entry.estimated = false;
      entry.weightsBytes = f ? weightsBytes(factsWithTag(f, name, catalog.cachedTags())) : entry.weightsBytes;
    }
    for (const entry of [...entries.values()]) {
      // Gone from Ollama (its own keep_alive, an OOM, another client): forget it, unless we
      // admitted a request after the snapshot was asked for or one is still in flight.
      if (!seen.has(entry.name) && entry.inFlight === 0 && !entry.unloading && entry.lastUsedMs < snapshot.requestedAtMs) {
        entries.delete(entry.name);
        activity.next({ kind: 'unloaded', model: entry.name });
      }
    }
    previousPsAtMs = snapshot.requestedAtMs;
    publish();
    schedulePump();
  };

  // ---- admission ---------------------------------------------------------

  const governorError = (code: GovernorError['code'], message: string, status: number, retryAfterMs: number | null) =>
    new GovernorError(code, message, status, retryAfterMs);

  const holdRetryMs = () => Math.max(1000, config?.pressure.dwellMs ?? 30_000);

  const clientKeepAliveMs = (value: AdmissionRequest['requestedKeepAlive']): number | null => {
    if (value === undefined || value === null) return null;
    const parsed = parseKeepAlive(value);
    return parsed.ok ? parsed.ms : null;
  };

  /** Plans one admission (src/operators/models/admissionPlan.ts), executes evictions, and admits or says why not. */
  const plan = async (p: Pending): Promise<Outcome> => {
    if (!config) return { kind: 'wait', reason: 'no configuration yet', hold: false };
    const cfg = config.models;
    if (!observeOnly() && inFlightTotal >= cfg.maxConcurrent) {
      return { kind: 'wait', reason: `a free slot (models.maxConcurrent ${cfg.maxConcurrent})`, hold: false };
    }
    const [facts, tags] = await Promise.all([catalog.facts(p.model), catalog.tags()]);
    // A model we cannot size while Ollama does not answer would be admitted blind and could break the
    // budget once Ollama is back: refuse for now (the request would fail upstream anyway). A model Ollama
    // says does not exist goes through, so the client gets Ollama's own 404.
    const factsError = facts ? null : catalog.factsError(p.model);
    if (factsError instanceof OllamaApiError && factsError.code !== 'MEMTIDE_ERR_OLLAMA_NOT_FOUND' && !entries.has(p.model) && !observeOnly()) {
      const message = `cannot size ${p.model} for the memory budget: ${factsError.message}`;
      return { kind: 'fail', error: governorError('MEMTIDE_ERR_GOVERNOR_HELD', message, 503, cfg.pollIntervalMs * 2) };
    }
    for (let round = 0; ; round += 1) {
      if (p.settled || stopped || !config) return { kind: 'wait', reason: 'cancelled', hold: false };
      const decision = planAdmission({
        request: p.request,
        config: config.models,
        budgetBytes: budgetBytes(),
        uncappedBudgetBytes: baseBudgetBytes(),
        models: [...entries.values()].map((e) => ({ ...e, pinned: pinned(e.name) })),
        facts,
        tags,
        correct: (model, raw) => correction.correct(model, raw),
        lastKnownSize: (model) => lastKnownSize.get(model) ?? null,
        hold: directive?.holdLoads ? `pressure ${directive.level}: new loads are held until pressure is back to medium` : null,
        systemAvailableBytes: sample?.system.availableBytes ?? null,
      });
      if (observeOnly()) return observe(p, decision);
      switch (decision.verdict) {
        case 'admit':
          return { kind: 'admit', admission: admitNow(p, decision.admit, false) };
        case 'wait':
          return { kind: 'wait', reason: decision.reason, hold: decision.hold, ...(decision.shortfallBytes !== undefined ? { shortfallBytes: decision.shortfallBytes } : {}) };
        case 'refuse': {
          const error = governorError('MEMTIDE_ERR_GOVERNOR_TOO_LARGE', decision.reason, 507, null);
          act({ kind: 'reject', model: decision.admit.target, reason: decision.reason, bytes: decision.admit.bytes, executed: true });
          return { kind: 'fail', error };
        }
        case 'evict':
          if (round >= MAX_EVICTION_ROUNDS) return { kind: 'wait', reason: 'the loaded models kept changing while making room', hold: false };
          try {
            for (const name of decision.evict) await unloadModel(name, decision.reason);
          } catch (error) {
            const message = `could not unload to make room for ${decision.admit.target}: ${errorText(error)}`;
            return { kind: 'fail', error: governorError('MEMTIDE_ERR_GOVERNOR_HELD', message, 503, cfg.pollIntervalMs * 2) };
          }
      }
    }
  };

  /** Observe-only: record what would have happened (executed: false) and let the request through untouched. */
  const observe = (p: Pending, decision: AdmissionPlan): Outcome => {
    const { target, bytes } = decision.admit;
    if (decision.verdict === 'wait') act({ kind: 'hold', model: target, reason: `would wait: ${decision.reason}`, bytes, executed: false });
    if (decision.verdict === 'refuse') act({ kind: 'reject', model: target, reason: decision.reason, bytes, executed: false });
    if (decision.verdict === 'evict') {
      for (const name of decision.evict) act({ kind: 'unload', model: name, reason: decision.reason, bytes: entries.get(name)?.sizeBytes ?? null, executed: false });
    }
    return { kind: 'admit', admission: admitNow(p, decision.admit, true) };
  };

  /** Records the admission (actions, state, idle timers) and builds what the proxy applies. */
  const admitNow = (p: Pending, plan: AdmitPlan, observing: boolean): Admission => {
    const cfg = config!.models;
    const { request, model: requested } = p;
    const { target, bytes, numCtx, needsLoad } = plan;
    const executed = !observing;
    if (plan.switchReason) act({ kind: 'switch-quantization', model: target, reason: `${requested} -> ${target}: ${plan.switchReason}`, bytes, executed });
    if (plan.resizedFrom !== null) {
      act({ kind: 'resize-context', model: target, reason: `num_ctx ${plan.resizedFrom} -> ${numCtx}: ${plan.sizing?.reason ?? 'the request needs it'}`, bytes, executed });
    }
    if (needsLoad) {
      const size = bytes !== null ? `: estimate ${formatBytes(bytes)}` : ': size unknown until /api/ps reports it';
      act({ kind: 'load', model: target, reason: `${request.endpoint} request${numCtx !== null ? ` at num_ctx ${numCtx}` : ''}${size}`, bytes, executed });
    }
    const at = now();
    // Observe-only forwards the request untouched: track the model it really uses.
    const used = observing ? requested : target;
    let e = entries.get(used);
    if (!e) {
      e = {
        name: used,
        sizeBytes: bytes ?? 0,
        sizeVramBytes: 0,
        numCtx: observing ? null : numCtx,
        numBatch: observing ? null : plan.numBatch,
        inFlight: 0,
        idleSinceMs: null,
        lastUsedMs: at,
        expiresAtMs: null,
        estimated: true,
        weightsBytes: plan.weightsBytes,
        unloading: false,
      };
      entries.set(used, e);
    } else if (needsLoad && !observing) {
      e.sizeBytes = bytes ?? e.sizeBytes;
      e.numCtx = numCtx;
      e.numBatch = plan.numBatch;
      e.estimated = true;
      e.weightsBytes = plan.weightsBytes ?? e.weightsBytes;
    }
    e.inFlight += 1;
    e.idleSinceMs = null;
    e.lastUsedMs = at;
    inFlightTotal += 1;
    activity.next({ kind: 'start', model: used });
    publish();

    const timeout = idleTimeoutOf(effectiveIdleConfig(cfg, pinOverrides, directive), target);
    let released = false;
    return {
      model: observing || target === requested ? request.model : target,
      numCtx: observing ? null : plan.inject,
      numBatch: observing ? null : plan.injectBatch,
      keepAlive: observing || !plan.injectable ? null : keepAliveFor(timeout, clientKeepAliveMs(request.requestedKeepAlive)),
      release: () => {
        if (released) return;
        released = true;
        release(used);
      },
    };
  };

  const release = (name: string) => {
    inFlightTotal -= 1;
    const e = entries.get(name);
    if (e) {
      e.inFlight -= 1;
      e.lastUsedMs = now();
      if (e.inFlight === 0) e.idleSinceMs = e.lastUsedMs;
    }
    if (!stopped) activity.next({ kind: 'end', model: name });
    if (!e || e.inFlight === 0) notifyIdle(name);
    publish();
    schedulePump();
  };

  const waitingCount = () => queue.filter((q) => q.waiting && !q.settled).length;

  const settle = (p: Pending, outcome: { admission: Admission } | { error: unknown }) => {
    if (p.settled) return;
    p.settled = true;
    p.cleanup.unsubscribe();
    const index = queue.indexOf(p);
    if (index >= 0) queue.splice(index, 1);
    if ('admission' in outcome) p.resolve(outcome.admission);
    else p.reject(outcome.error);
  };

  /** Marks `p` as waiting, or refuses it when models.maxQueue requests already wait. */
  const wait = (p: Pending, outcome: Extract<Outcome, { kind: 'wait' }>) => {
    if (!p.waiting) {
      const waiting = waitingCount();
      if (waiting >= (config?.models.maxQueue ?? 0)) {
        const error = governorError(
          'MEMTIDE_ERR_GOVERNOR_QUEUE_FULL',
          `${p.request.model}: ${waiting} request(s) already wait for admission (models.maxQueue); this one would wait for ${outcome.reason}`,
          503,
          outcome.hold ? holdRetryMs() : QUEUE_FULL_RETRY_MS,
        );
        act({ kind: 'reject', model: p.model, reason: error.message, bytes: null, executed: true });
        settle(p, { error });
        return;
      }
      p.waiting = true;
    }
    p.waitReason = outcome.reason;
    p.heldByPressure = outcome.hold;
    p.shortfallBytes = outcome.shortfallBytes ?? 0;
  };

  let pumping = false;
  let pumpAgain = false;
  const schedulePump = () => {
    if (stopped) return;
    if (pumping) {
      pumpAgain = true;
      return;
    }
    void pump();
  };

  const pump = async () => {
    pumping = true;
    try {
      do {
        pumpAgain = false;
        const blocked = new Set<string>();
        for (const p of [...queue]) {
          if (p.settled || stopped) continue;
          if (blocked.has(p.model)) {
            // FIFO per model: behind an earlier request to the same model that waits.
            wait(p, { kind: 'wait', reason: `an earlier request to ${p.model}`, hold: false });
            continue;
          }
          let outcome: Outcome;
          try {
            outcome = await plan(p);
          } catch (error) {
            outcome = { kind: 'fail', error };
          }
          if (p.settled || stopped) {
            if (outcome.kind === 'admit') outcome.admission.release({ ok: false, error: 'cancelled while admitted' });
            continue;
          }
          if (outcome.kind === 'admit') settle(p, { admission: outcome.admission });
          else if (outcome.kind === 'fail') settle(p, { error: outcome.error });
          else {
            blocked.add(p.model);
            wait(p, outcome);
          }
        }
      } while (pumpAgain && !stopped);
    } catch (error) {
      report('admission queue', error);
    } finally {
      pumping = false;
    }
  };

  const admit = (request: AdmissionRequest): Promise<Admission> =>
    new Promise<Admission>((resolve, reject) => {
      if (stopped) {
        reject(governorError('MEMTIDE_ERR_GOVERNOR_STOPPED', 'the model governor is stopped', 503, null));
        return;
      }
      if (request.signal?.aborted) {
        reject(request.signal.reason);
        return;
      }
      const p: Pending = {
        request,
        model: normalizeModelName(request.model),
        waiting: false,
        waitReason: null,
        heldByPressure: false,
        shortfallBytes: 0,
        settled: false,
        resolve,
        reject,
        cleanup: new Subscription(),
      };
      const timeoutMs = config?.models.queueTimeoutMs ?? 120_000;
      p.cleanup.add(
        scheduler.schedule(() => {
          const held = p.heldByPressure;
          const error = governorError(
            'MEMTIDE_ERR_GOVERNOR_HELD',
            `${request.model} waited ${formatDuration(timeoutMs)} (models.queueTimeoutMs) for ${p.waitReason ?? 'admission'}`,
            503,
            held ? holdRetryMs() : Math.min(timeoutMs, 10_000),
          );
          act({ kind: 'reject', model: p.model, reason: error.message, bytes: null, executed: true });
          settle(p, { error });
        }, timeoutMs),
      );
      if (request.signal) {
        const signal = request.signal;
        const onAbort = () => settle(p, { error: signal.reason });
        signal.addEventListener('abort', onAbort, { once: true });
        p.cleanup.add(() => signal.removeEventListener('abort', onAbort));
      }
      queue.push(p);
      schedulePump();
    });

  // ---- wiring ------------------------------------------------------------

  subscriptions.add(
    options.config$.subscribe({
      next: (value) => {
        const budgetBefore = config ? budgetBytes() : null;
        config = value;
        configSubject.next(value);
        publish();
        if (budgetBefore !== null && budgetBytes() < budgetBefore) void enforceBudget();
        schedulePump();
      },
      error: (error: unknown) => report('config', error),
    }),
  );
  if (options.samples$) {
    subscriptions.add(
      options.samples$.subscribe({
        next: (value) => {
          sample = value;
        },
        error: (error: unknown) => report('samples', error),
      }),
    );
  }
  subscriptions.add(
    options.pressure$
      .pipe(
        pressureResponse(
          configSubject.pipe(
            map((c) => ({ unloadPinnedAtCritical: c.models.unloadPinnedAtCritical })),
            distinctUntilChanged((a, b) => a.unloadPinnedAtCritical === b.unloadPinnedAtCritical),
          ),
          scheduler,
        ),
      )
      .subscribe({
        next: (next) => {
          const before = directive;
          directive = next;
          const executed = !observeOnly();
          if (next.holdLoads && !before?.holdLoads) act({ kind: 'hold', model: null, reason: `new loads held: ${next.reasons.join('; ')}`, bytes: null, executed });
          if (!next.holdLoads && before?.holdLoads) act({ kind: 'release-hold', model: null, reason: `loads allowed again: ${next.reasons.join('; ')}`, bytes: null, executed });
          directiveSubject.next(next);
          schedulePump();
        },
        error: (error: unknown) => report('pressure', error),
      }),
  );
  subscriptions.add(
    activity
      .pipe(
        idleUnload(
          combineLatest([configSubject, directiveSubject, pinsSubject]).pipe(map(([c, d]) => effectiveIdleConfig(c.models, pinOverrides, d))),
          scheduler,
        ),
      )
      .subscribe({ next: onIdle, error: (error: unknown) => report('idle timers', error) }),
  );
  subscriptions.add(
    pollPs(
      api,
      configSubject.pipe(map((c) => c.models.pollIntervalMs)),
      (error) => report('ps', error),
      scheduler,
    ).subscribe({ next: onPs, error: (error: unknown) => report('ps', error) }),
  );

  const models$ = modelsSubject.pipe(shareReplay({ bufferSize: 1, refCount: true }));

  const stop = () => {
    if (stopped) return;
    stopped = true;
    const error = () => governorError('MEMTIDE_ERR_GOVERNOR_STOPPED', 'the model governor is stopped', 503, null);
    for (const p of [...queue]) settle(p, { error: error() });
    for (const waiters of idleWaiters.values()) for (const w of waiters) w.reject(error());
    idleWaiters.clear();
    subscriptions.unsubscribe();
    activity.complete();
    actions.complete();
    problems.complete();
    modelsSubject.complete();
    configSubject.complete();
    directiveSubject.complete();
    pinsSubject.complete();
  };

  const setPin = (name: string, value: boolean) => {
    if (stopped) return;
    pinOverrides.set(normalizeModelName(name), value);
    pinsSubject.next(pinsSubject.getValue() + 1);
    publish();
  };

  return {
    admit,
    models$,
    actions$: actions.asObservable(),
    problems$: problems.asObservable(),
    list: () => modelsSubject.getValue(),
    budgetBytes,
    baseBudgetBytes,
    budgetCap: () => budgetCap,
    capShortfallBytes: () => queue.reduce((most, p) => (p.waiting && !p.settled ? Math.max(most, p.shortfallBytes) : most), 0),
    queued: () => queue.filter((p) => !p.settled).length,
    setBudgetCap(bytes: number | null) {
      if (bytes !== null && !(Number.isFinite(bytes) && bytes >= 0)) {
        throw governorError('MEMTIDE_ERR_GOVERNOR_INPUT', `setBudgetCap: expected bytes >= 0 or null, got ${String(bytes)}`, 400, null);
      }
      if (stopped) return;
      const before = budgetBytes();
      budgetCap = bytes === null ? null : Math.floor(bytes);
      if (budgetBytes() < before) void enforceBudget();
      // A lifted or raised cap may let waiting loads in.
      schedulePump();
    },
    unloadIdle: (scope: UnloadIdleScope, reason?: string) => unloadIdle(scope, reason),
    deferOptional(next: Omit<OptionalDeferral, 'sinceMs'> | null) {
      deferral = next === null ? null : { reason: next.reason, retryAfterMs: Math.max(0, next.retryAfterMs), sinceMs: deferral?.sinceMs ?? now() };
    },
    optionalDeferral: () => (stopped ? null : deferral),
    // Observe-only changes nothing, /api/show answers included.
    advertisedContext: (model: string, trainedContext: number, runsAt: ContextRun) =>
      stopped || !config || observeOnly() || !(trainedContext > 0) ? null : advertisedContextOf(config.models, model, trainedContext, runsAt),
    async unload(name: string) {
      const model = normalizeModelName(name);
      const entry = entries.get(model);
      if (!entry) return;
      if (entry.inFlight > 0) {
        await new Promise<void>((resolve, reject) => {
          const list = idleWaiters.get(model) ?? [];
          list.push({ resolve, reject });
          idleWaiters.set(model, list);
        });
      }
      if (stopped) throw governorError('MEMTIDE_ERR_GOVERNOR_STOPPED', 'the model governor is stopped', 503, null);
      await unloadModel(model, 'unload requested');
    },
    pin: (name: string) => setPin(name, true),
    unpin: (name: string) => {
      setPin(name, false);
      void enforceBudget();
    },
    async warmUp(names?: readonly string[], warmOptions: WarmUpOptions = {}) {
      const list = names ?? config?.models.warmUp ?? [];
      const results: WarmUpResult[] = [];
      for (const model of list) {
        try {
          // Warmed the way Meetily's requests will arrive, so the first one does not reload it at another num_ctx.
          const meetilyEndpoint: ModelEndpoint = config?.proxy.openAiChat === 'forward' ? 'openai-chat' : 'chat';
          const admission = await admit({ model, endpoint: warmOptions.endpoint ?? meetilyEndpoint, promptTokens: 0 });
          try {
            if (!observeOnly()) {
              await api.preload(admission.model, { numCtx: admission.numCtx, numBatch: admission.numBatch ?? null, keepAlive: admission.keepAlive, useMmap: models()?.useMmap ?? true });
            }
            admission.release({ ok: true });
            results.push({ model, ok: true });
          } catch (error) {
            admission.release({ ok: false, error: errorText(error) });
            report(`warm-up ${model}`, error);
            results.push({ model, ok: false, error: errorText(error) });
          }
        } catch (error) {
          results.push({ model, ok: false, error: errorText(error) });
        }
      }
      return results;
    },
    stop,
  };
}
