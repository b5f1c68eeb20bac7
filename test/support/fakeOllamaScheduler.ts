/**
 * The fake Ollama's scheduler: which runners are loaded, for how long, and
 * which one goes when a load does not fit. It follows ollama/ollama
 * `server/sched.go`:
 * - one scheduling decision at a time (loads are serialised);
 * - a runner is reused when its runner options (here `num_ctx`, `num_batch`, `use_mmap`)
 *   equal the request's; otherwise it is drained and reloaded;
 * - `keep_alive` (session duration): a load takes the request's, else the
 *   default (OLLAMA_KEEP_ALIVE); a request reusing a runner changes it only
 *   when it carries one (`load` / `useLoadedRunner`: a request without
 *   keep_alive, e.g. every `/v1/*` one, leaves it as it was). When the last
 *   request on a runner ends, a timer of that length unloads it (0 = unload
 *   now, Infinity = never);
 * - eviction is NOT LRU: among idle runners, the one with the shortest
 *   session duration goes first, ties broken by name (`ByDurationAndName`);
 * - at `maxLoadedModels`, a load waits until a runner is idle and evicts it;
 * - when the model does not fit in memory after evicting every idle runner,
 *   the load fails with Ollama's error (HTTP 500). Real Ollama would first
 *   wait for busy runners to finish; failing fast keeps tests deterministic.
 */
import type { FakeModelSpec } from './fakeOllamaModels.js';
import { humanBytes2, runnerSizeBytes, type FakeKvCacheType } from './fakeOllamaModels.js';

export interface FakeAllocator {
  load(name: string, bytes: number): Promise<void>;
  unload(name: string): Promise<void>;
}

export interface ModelStats {
  requests: number;
  loads: number;
  unloads: number;
  reloads: number;
  evictions: number;
  cancelled: number;
  /** Prompts longer than the runner's num_ctx: Ollama cuts them to fit ("truncating input prompt"), and the model never reads the rest. */
  truncated: number;
}

export interface FakeStats extends ModelStats {
  /** 503 answers (queue full or injected). */
  rejected: number;
  /** Loads refused for memory (500). */
  oom: number;
  perModel: Record<string, ModelStats>;
}

/** The options that make a runner (Ollama's api.Runner): a request with other ones reloads it. */
export interface RunnerOptions {
  numCtx: number;
  /** llama.cpp n_batch = n_ubatch (Ollama's default 512). */
  numBatch: number;
  useMmap: boolean | null;
}

export interface Runner extends RunnerOptions {
  name: string;
  spec: FakeModelSpec;
  sizeBytes: number;
  /** Keep-alive of the session in real milliseconds (already scaled); Infinity = forever. */
  sessionMs: number;
  /** Requests scheduled on this runner (running or waiting for a slot). */
  refCount: number;
  active: number;
  slotWaiters: Array<() => void>;
  expiresAtMs: number;
  timer: NodeJS.Timeout | null;
  loading: boolean;
  /** Unload as soon as refCount reaches 0 (keep_alive 0 while busy, or a pending reload). */
  expireOnIdle: boolean;
  drained: Array<() => void>;
}

export class OutOfMemoryError extends Error {
  constructor(requiredBytes: number, availableBytes: number) {
    super(`model requires more system memory (${humanBytes2(requiredBytes)}) than is available (${humanBytes2(Math.max(0, availableBytes))})`);
    this.name = 'OutOfMemoryError';
  }
}

export class CancelledError extends Error {
  constructor() {
    super('request cancelled');
    this.name = 'CancelledError';
  }
}

export interface SchedulerOptions {
  memoryBytes: number;
  numParallel: number;
  maxLoadedModels: number;
  /** Real milliseconds of load time per GB of runner size. */
  loadDelayMsPerGb: number;
  /** Keep-alive of a load whose request named none (real ms, already scaled; Infinity = forever). */
  defaultSessionMs?: number;
  allocator?: FakeAllocator;
  /** OLLAMA_KV_CACHE_TYPE (default f16). */
  kvCacheType?: FakeKvCacheType;
  stats: FakeStats;
}

/** Far future for "forever", like Go's `time.Now().Add(math.MaxInt64)` (~292 years). */
const FOREVER_MS = 292 * 365.25 * 86_400_000;

export const emptyModelStats = (): ModelStats => ({ requests: 0, loads: 0, unloads: 0, reloads: 0, evictions: 0, cancelled: 0, truncated: 0 });

export class FakeScheduler {
  readonly runners = new Map<string, Runner>();
  memoryBytes: number;
  private lock: Promise<void> = Promise.resolve();
  private idleWaiters: Array<() => void> = [];
  private closed = false;

  constructor(private readonly options: SchedulerOptions) {
    this.memoryBytes = options.memoryBytes;
  }

  usedBytes(): number {
    let used = 0;
    for (const runner of this.runners.values()) used += runner.sizeBytes;
    return used;
  }

  modelStats(name: string): ModelStats {
    const perModel = this.options.stats.perModel;
    return (perModel[name] ??= emptyModelStats());
  }

  private count(name: string, key: keyof ModelStats): void {
    this.options.stats[key] += 1;
    this.modelStats(name)[key] += 1;
  }

  /** Runs `work` as the only scheduling decision in progress. */
  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const result = this.lock.then(work);
    this.lock = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  /**
   * Schedules a request: finds or loads the runner, then waits for a slot.
   * The returned runner must be given back with `release`. `sessionMs` null:
   * the request named no keep_alive.
   */
  async acquire(spec: FakeModelSpec, options: RunnerOptions, sessionMs: number | null, signal: AbortSignal, failOom: boolean): Promise<Runner> {
    const runner = await this.exclusive(async () => {
      if (signal.aborted) throw new CancelledError();
      const found = await this.runnerFor(spec, options, failOom, signal);
      found.refCount += 1;
      if (sessionMs !== null) found.sessionMs = sessionMs;
      if (found.timer) clearTimeout(found.timer);
      found.timer = null;
      return found;
    });
    if (runner.active < this.options.numParallel) {
      runner.active += 1;
      return runner;
    }
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        runner.slotWaiters = runner.slotWaiters.filter((w) => w !== grant);
        this.dropRef(runner);
        reject(new CancelledError());
      };
      const grant = () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      runner.slotWaiters.push(grant);
      signal.addEventListener('abort', onAbort, { once: true });
    });
    return runner;
  }

  /** The request on `runner` finished (or was cancelled). */
  release(runner: Runner): void {
    const next = runner.slotWaiters.shift();
    if (next) {
      next(); // the slot passes to the next waiting request
    } else {
      runner.active -= 1;
    }
    this.dropRef(runner);
  }

  private dropRef(runner: Runner): void {
    runner.refCount -= 1;
    if (runner.refCount > 0) return;
    for (const resolve of runner.drained.splice(0)) resolve();
    if (!this.runners.has(runner.name) || this.runners.get(runner.name) !== runner) return;
    if (runner.expireOnIdle || runner.sessionMs === 0) {
      this.unload(runner);
    } else if (Number.isFinite(runner.sessionMs)) {
      runner.expiresAtMs = Date.now() + runner.sessionMs;
      runner.timer = setTimeout(() => {
        runner.timer = null;
        if (runner.refCount === 0 && this.runners.get(runner.name) === runner) this.unload(runner);
      }, runner.sessionMs);
      runner.timer.unref();
    } else {
      runner.expiresAtMs = Date.now() + FOREVER_MS;
    }
    for (const wake of this.idleWaiters.splice(0)) wake();
  }

  /** `keep_alive: 0` with an empty prompt: unload now, or as soon as the runner is idle. */
  expire(name: string): void {
    const runner = this.runners.get(name);
    if (!runner) return;
    runner.sessionMs = 0;
    if (runner.refCount === 0 && !runner.loading) this.unload(runner);
    else runner.expireOnIdle = true;
  }

  private unload(runner: Runner): void {
    if (runner.timer) clearTimeout(runner.timer);
    runner.timer = null;
    this.runners.delete(runner.name);
    this.count(runner.name, 'unloads');
    void this.options.allocator?.unload(runner.name).catch(() => undefined);
  }

  private async runnerFor(spec: FakeModelSpec, options: RunnerOptions, failOom: boolean, signal: AbortSignal): Promise<Runner> {
    const { numCtx, numBatch, useMmap } = options;
    const sizeBytes = runnerSizeBytes(spec, numCtx * this.options.numParallel, this.options.kvCacheType, numBatch);
    if (failOom) {
      // Injected (failNext('oom')): as if the load had been refused, whether or not a runner was there.
      this.options.stats.oom += 1;
      throw new OutOfMemoryError(sizeBytes, this.memoryBytes - this.usedBytes());
    }
    const existing = this.runners.get(spec.name);
    if (existing) {
      if (existing.numCtx === numCtx && existing.numBatch === numBatch && existing.useMmap === useMmap && !existing.expireOnIdle) return existing;
      // Runner options changed (or the runner is on its way out): drain, unload, load anew.
      this.count(spec.name, 'reloads');
      existing.expireOnIdle = true;
      if (existing.refCount > 0) await new Promise<void>((resolve) => existing.drained.push(resolve));
      if (this.runners.get(spec.name) === existing) this.unload(existing);
    }
    while (this.runners.size >= this.options.maxLoadedModels) {
      const victim = this.idleVictim();
      if (victim) {
        this.evict(victim);
        continue;
      }
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
      if (signal.aborted || this.closed) throw new CancelledError();
    }
    while (this.usedBytes() + sizeBytes > this.memoryBytes) {
      const victim = this.idleVictim();
      if (!victim) break;
      this.evict(victim);
    }
    if (this.usedBytes() + sizeBytes > this.memoryBytes) {
      this.options.stats.oom += 1;
      throw new OutOfMemoryError(sizeBytes, this.memoryBytes - this.usedBytes());
    }
    const runner: Runner = {
      name: spec.name,
      spec,
      numCtx,
      numBatch,
      useMmap,
      sizeBytes,
      sessionMs: this.options.defaultSessionMs ?? 300_000,
      refCount: 0,
      active: 0,
      slotWaiters: [],
      expiresAtMs: Date.now(),
      timer: null,
      loading: true,
      expireOnIdle: false,
      drained: [],
    };
    this.runners.set(spec.name, runner);
    try {
      await this.options.allocator?.load(spec.name, sizeBytes);
      const delay = (this.options.loadDelayMsPerGb * sizeBytes) / 1e9;
      if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
    } catch (error) {
      this.runners.delete(spec.name);
      throw error;
    }
    runner.loading = false;
    this.count(spec.name, 'loads');
    return runner;
  }

  /** Ollama's choice: the idle runner with the shortest session duration, then by name. */
  private idleVictim(): Runner | undefined {
    return [...this.runners.values()]
      .filter((r) => r.refCount === 0 && !r.loading)
      .sort((a, b) => a.sessionMs - b.sessionMs || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))[0];
  }

  private evict(runner: Runner): void {
    this.count(runner.name, 'evictions');
    this.unload(runner);
  }

  close(): void {
    this.closed = true;
    for (const runner of this.runners.values()) if (runner.timer) clearTimeout(runner.timer);
    for (const wake of this.idleWaiters.splice(0)) wake();
  }
}
