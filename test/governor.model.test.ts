/**
 * createModelGovernor against an in-memory Ollama, in virtual time: focused
 * scenarios first, then a model-based test (fc.commands) with random
 * requests, idle time, pressure, config changes, pins and upstream failures.
 *
 * The in-memory Ollama follows the real one where the governor depends on
 * it: a request loads its model (a different num_ctx reloads it), keep_alive
 * (default 5m, injected values honoured, -1 forever) unloads it after the
 * last request, `keep_alive: 0` unloads at once, `/api/ps` reports the real
 * size (the documented estimate x a per-model ratio <= 1, so the governor's
 * first estimate is never below the truth and the learned one equals it).
 */
import fc from 'fast-check';
import { BehaviorSubject, Subject, Subscription, type VirtualTimeScheduler } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import { configSchema, type MemtideConfig, type MemtideConfigInput } from '../src/app/configSchema.js';
import type { PressureChange, PressureLevel } from '../src/model.js';
import { DEFAULT_OVERHEAD_BYTES, estimateModelMemory, overheadBytesFor, type ModelFacts } from '../src/operators/models/modelMemory.js';
import { normalizeModelName, type TagInfo } from '../src/operators/models/quantization.js';
import { Ollama } from 'ollama';
import { createOllamaApi, OllamaApiError, type OllamaApi, type PreloadOptions, type PsModel } from '../src/sources/ollamaApi.js';
import { GovernorError, type Admission, type AdmissionRequest, type GovernorAction } from '../src/streams/governorApi.js';
import { createModelGovernor, type GovernorProblem, type ModelGovernorHandle } from '../src/streams/modelGovernor.js';
import { DEFAULT_FAKE_MODELS, startFakeOllama, type FakeOllama } from './support/fakeOllama.js';
import { advanceSettlingTo, drain, virtualScheduler } from './support/virtualTime.js';

const GB = 1e9;
const GIB = 1024 ** 3;

// ---- virtual time --------------------------------------------------------

/** Runs scheduled actions up to now + ms, one at a time, letting promises settle between them. */
async function advance(scheduler: VirtualTimeScheduler, ms: number): Promise<void> {
  const target = scheduler.now() + ms;
  await drain();
  await advanceSettlingTo(scheduler, target);
  await drain();
}

// ---- an in-memory Ollama -------------------------------------------------

interface FakeModel {
  facts: ModelFacts;
  fileSizeBytes: number;
  /** Real size / documented estimate (<= 1: the estimate is never below the truth). */
  ratio: number;
}

const facts = (name: string, shape: Omit<ModelFacts, 'name' | 'fileSizeBytes' | 'keyLength' | 'architecture'>): ModelFacts => ({
  name,
  architecture: 'llama',
  keyLength: null,
  fileSizeBytes: null,
  ...shape,
});
const llamaShape = { parameterCount: 8.03e9, blockCount: 32, contextLength: 131_072, embeddingLength: 4096, headCount: 32, headCountKv: 8, vocabSize: 128_256 };
const gemmaShape = { parameterCount: 4.3e9, blockCount: 34, contextLength: 131_072, embeddingLength: 2560, headCount: 8, headCountKv: 4 };
const qwenShape = { parameterCount: 494e6, blockCount: 24, contextLength: 32_768, embeddingLength: 896, headCount: 14, headCountKv: 2 };

const MODELS: Record<string, FakeModel> = {
  'llama3.1:8b': { facts: facts('llama3.1:8b', { ...llamaShape, quantization: 'Q4_K_M' }), fileSizeBytes: 4.92 * GB, ratio: 0.97 },
  'llama3.1:8b-instruct-q8_0': { facts: facts('llama3.1:8b-instruct-q8_0', { ...llamaShape, quantization: 'Q8_0' }), fileSizeBytes: 8.54 * GB, ratio: 0.95 },
  'gemma3:4b': { facts: facts('gemma3:4b', { ...gemmaShape, quantization: 'Q4_K_M' }), fileSizeBytes: 3.34 * GB, ratio: 0.9 },
  'qwen2.5:0.5b': { facts: facts('qwen2.5:0.5b', { ...qwenShape, quantization: 'Q4_K_M' }), fileSizeBytes: 0.4 * GB, ratio: 1 },
};

interface Runner {
  name: string;
  numCtx: number;
  sizeBytes: number;
  inFlight: number;
  keepAliveMs: number;
  expiry: Subscription | null;
  expiresAtMs: number | null;
}

class MemoryOllama implements OllamaApi {
  readonly runners = new Map<string, Runner>();
  down = false;
  readonly violations: string[] = [];
  readonly calls: string[] = [];
  /** Every preload's options, in order. */
  readonly preloads: PreloadOptions[] = [];
  /** Called after every load with the total then loaded. */
  onLoad: (totalBytes: number, model: string) => void = () => undefined;

  constructor(private readonly scheduler: VirtualTimeScheduler) {}

  static trueSize(name: string, numCtx: number): number {
    const m = MODELS[name]!;
    return Math.round(estimateModelMemory({ ...m.facts, fileSizeBytes: m.fileSizeBytes }, numCtx)!.totalBytes * m.ratio);
  }

  private unreachable(operation: string): OllamaApiError {
    return new OllamaApiError('MEMTIDE_ERR_OLLAMA_UNREACHABLE', operation, 'cannot reach Ollama (ECONNREFUSED)');
  }

  async ps(): Promise<PsModel[]> {
    this.calls.push('ps');
    if (this.down) throw this.unreachable('ps');
    return [...this.runners.values()].map((r) => ({
      name: r.name,
      sizeBytes: r.sizeBytes,
      sizeVramBytes: 0,
      expiresAtMs: r.expiresAtMs,
      contextLength: r.numCtx,
      quantization: MODELS[r.name]!.facts.quantization,
    }));
  }

  async show(model: string): Promise<ModelFacts> {
    this.calls.push(`show ${model}`);
    if (this.down) throw this.unreachable(`show ${model}`);
    const m = MODELS[normalizeModelName(model)];
    if (!m) throw new OllamaApiError('MEMTIDE_ERR_OLLAMA_NOT_FOUND', `show ${model}`, `HTTP 404: model '${model}' not found`, 404);
    return { ...m.facts };
  }

  async list(): Promise<TagInfo[]> {
    this.calls.push('list');
    if (this.down) throw this.unreachable('list');
    return Object.entries(MODELS).map(([name, m]) => ({ name, sizeBytes: m.fileSizeBytes, quantization: m.facts.quantization, parameterSize: `${(m.facts.parameterCount! / 1e9).toFixed(1)}B` }));
  }

  async unload(model: string): Promise<void> {
    this.calls.push(`unload ${model}`);
    if (this.down) throw this.unreachable(`unload ${model}`);
    const runner = this.runners.get(model);
    if (runner && runner.inFlight > 0) this.violations.push(`unload of ${model} with ${runner.inFlight} request(s) in flight`);
    this.drop(model);
  }

  async preload(model: string, options: PreloadOptions = {}): Promise<void> {
    this.calls.push(`preload ${model}`);
    this.preloads.push(options);
    const r = this.start(model, options.numCtx ?? null, options.keepAlive ?? null);
    this.end(r);
  }

  private drop(model: string) {
    const runner = this.runners.get(model);
    runner?.expiry?.unsubscribe();
    this.runners.delete(model);
  }

  /** A request through the proxy: loads (or reloads) the model. Throws like Ollama when it cannot. */
  start(model: string, numCtx: number | null, keepAlive: number | string | null): Runner {
    if (this.down) throw this.unreachable(`request ${model}`);
    const name = normalizeModelName(model);
    if (!MODELS[name]) throw new OllamaApiError('MEMTIDE_ERR_OLLAMA_NOT_FOUND', `request ${model}`, 'not found', 404);
    const ctx = numCtx ?? 4096;
    let runner = this.runners.get(name);
    if (runner && runner.numCtx !== ctx) {
      if (runner.inFlight > 0) this.violations.push(`reload of ${name} (num_ctx ${runner.numCtx} -> ${ctx}) with requests in flight`);
      this.drop(name);
      runner = undefined;
    }
    if (!runner) {
      runner = { name, numCtx: ctx, sizeBytes: MemoryOllama.trueSize(name, ctx), inFlight: 0, keepAliveMs: 300_000, expiry: null, expiresAtMs: null };
      this.runners.set(name, runner);
      this.onLoad(this.totalBytes(), name);
    }
    runner.expiry?.unsubscribe();
    runner.expiry = null;
    runner.inFlight += 1;
    runner.keepAliveMs = keepAlive === null ? 300_000 : typeof keepAlive === 'number' ? (keepAlive < 0 ? Infinity : keepAlive * 1000) : 300_000;
    return runner;
  }

  end(runner: Runner): void {
    runner.inFlight -= 1;
    if (runner.inFlight > 0 || this.runners.get(runner.name) !== runner) return;
    if (runner.keepAliveMs === Infinity) return;
    runner.expiresAtMs = this.scheduler.now() + runner.keepAliveMs;
    runner.expiry = this.scheduler.schedule(() => {
      if (this.runners.get(runner.name) === runner && runner.inFlight === 0) this.runners.delete(runner.name);
    }, runner.keepAliveMs);
  }

  totalBytes(): number {
    return [...this.runners.values()].reduce((s, r) => s + r.sizeBytes, 0);
  }
}

// ---- harness -------------------------------------------------------------

const config = (input: NonNullable<MemtideConfigInput>['models'] = {}, pressure: NonNullable<MemtideConfigInput>['pressure'] = { preset: '16gb' }): MemtideConfig =>
  configSchema.parse({ pressure, models: { pollIntervalMs: 2000, ...input } });

const change = (level: PressureLevel): PressureChange => ({ atMs: 0, level, previous: null, reasons: [] });

interface Harness {
  scheduler: VirtualTimeScheduler;
  ollama: MemoryOllama;
  governor: ModelGovernorHandle;
  config$: BehaviorSubject<MemtideConfig>;
  pressure$: Subject<PressureChange>;
  actions: GovernorAction[];
  problems: GovernorProblem[];
  /** Admit and, once admitted, send the request to the fake (as the proxy would). */
  request(model: string, promptTokens?: number, extra?: Partial<AdmissionRequest>): Tracked;
}

interface Tracked {
  status: 'waiting' | 'running' | 'failed' | 'rejected' | 'done';
  admission: Admission | null;
  error: unknown;
  runner: Runner | null;
  /** Ends the request (ok) and releases it. */
  finish(): void;
}

const harnesses: Harness[] = [];
afterEach(() => {
  for (const h of harnesses.splice(0)) h.governor.stop();
});

function harness(models: NonNullable<MemtideConfigInput>['models'] = {}, pressure?: NonNullable<MemtideConfigInput>['pressure']): Harness {
  const scheduler = virtualScheduler();
  const ollama = new MemoryOllama(scheduler);
  const config$ = new BehaviorSubject(config(models, pressure));
  const pressure$ = new Subject<PressureChange>();
  const governor = createModelGovernor({ api: ollama, config$, pressure$, scheduler, totalMemoryBytes: 16 * GIB });
  const actions: GovernorAction[] = [];
  const problems: GovernorProblem[] = [];
  governor.actions$.subscribe({ next: (a) => actions.push(a), error: (e: unknown) => problems.push({ atMs: -1, operation: 'actions$', error: e }) });
  governor.problems$.subscribe({ next: (p) => problems.push(p), error: (e: unknown) => problems.push({ atMs: -1, operation: 'problems$', error: e }) });
  const h: Harness = {
    scheduler,
    ollama,
    governor,
    config$,
    pressure$,
    actions,
    problems,
    request(model, promptTokens = 1000, extra = {}) {
      const tracked: Tracked = {
        status: 'waiting',
        admission: null,
        error: null,
        runner: null,
        finish() {
          if (tracked.status !== 'running') return;
          tracked.status = 'done';
          ollama.end(tracked.runner!);
          tracked.admission!.release({ ok: true });
        },
      };
      governor.admit({ model, endpoint: 'chat', promptTokens, ...extra }).then(
        (admission) => {
          tracked.admission = admission;
          try {
            tracked.runner = ollama.start(admission.model, admission.numCtx, admission.keepAlive);
            tracked.status = 'running';
          } catch (error) {
            tracked.status = 'failed';
            tracked.error = error;
            admission.release({ ok: false, error: String(error) });
          }
        },
        (error: unknown) => {
          tracked.status = 'rejected';
          tracked.error = error;
        },
      );
      return tracked;
    },
  };
  harnesses.push(h);
  return h;
}

// ---- scenarios -----------------------------------------------------------

describe('createModelGovernor: scenarios', () => {
  it('lazy: nothing is loaded or preloaded until a request comes', async () => {
    const h = harness({ warmUp: ['gemma3:4b'] });
    await advance(h.scheduler, 60_000);
    expect(h.ollama.calls.filter((c) => !c.startsWith('ps'))).toEqual([]);
    expect(h.governor.list()).toEqual([]);
  });

  it('admits with num_ctx and keep_alive injected, then unloads with keep_alive 0 after the idle timeout', async () => {
    const h = harness({ idleTimeoutMs: '1m' });
    const r = h.request('llama3.1:8b', 3000);
    await advance(h.scheduler, 0);
    expect(r.status).toBe('running');
    // need 3000 + 1024 -> 4096 (maxContext 4096 by default); keep_alive 60 s + 30 s backstop
    expect(r.admission).toMatchObject({ model: 'llama3.1:8b', numCtx: 4096, keepAlive: 90 });
    expect(h.governor.list()).toMatchObject([{ name: 'llama3.1:8b', inFlight: 1, idleSinceMs: null, contextLength: 4096 }]);
    await advance(h.scheduler, 2000);
    expect(h.governor.list()[0]).toMatchObject({ estimated: false, sizeBytes: MemoryOllama.trueSize('llama3.1:8b', 4096) });
    await advance(h.scheduler, 10_000);
    r.finish();
    await advance(h.scheduler, 59_000);
    expect(h.ollama.runners.has('llama3.1:8b')).toBe(true);
    await advance(h.scheduler, 1000);
    expect(h.ollama.runners.has('llama3.1:8b')).toBe(false);
    expect(h.ollama.calls).toContain('unload llama3.1:8b');
    expect(h.actions.map((a) => [a.kind, a.model, a.executed])).toEqual([
      ['load', 'llama3.1:8b', true],
      ['unload', 'llama3.1:8b', true],
    ]);
    expect(h.actions[1]!.reason).toBe('idle for 1m (idle timeout 1m)');
    expect(h.governor.list()).toEqual([]);
  });

  it('a new request resets the idle timer; a model is never unloaded while a request is in flight', async () => {
    const h = harness({ idleTimeoutMs: '1m' });
    const a = h.request('gemma3:4b');
    await advance(h.scheduler, 1000);
    a.finish();
    await advance(h.scheduler, 50_000);
    const b = h.request('gemma3:4b');
    await advance(h.scheduler, 5 * 60_000);
    expect(b.status).toBe('running');
    expect(h.ollama.runners.has('gemma3:4b')).toBe(true);
    b.finish();
    await advance(h.scheduler, 60_000);
    expect(h.ollama.runners.has('gemma3:4b')).toBe(false);
    expect(h.ollama.violations).toEqual([]);
  });

  it('pinned models get keep_alive -1 and are never unloaded for idleness; unpinning lets the timer run', async () => {
    const h = harness({ idleTimeoutMs: '1m', pinned: ['qwen2.5:0.5b'] });
    const r = h.request('qwen2.5:0.5b');
    await advance(h.scheduler, 0);
    expect(r.admission?.keepAlive).toBe(-1);
    r.finish();
    await advance(h.scheduler, 30 * 60_000);
    expect(h.ollama.runners.has('qwen2.5:0.5b')).toBe(true);
    expect(h.governor.list()[0]?.pinned).toBe(true);
    h.governor.unpin('qwen2.5:0.5b');
    await advance(h.scheduler, 0);
    // idle for 30 minutes already: the 1-minute timeout has passed
    expect(h.ollama.runners.has('qwen2.5:0.5b')).toBe(false);
    h.governor.pin('gemma3:4b');
    const g = h.request('gemma3:4b');
    await advance(h.scheduler, 0);
    expect(g.admission?.keepAlive).toBe(-1);
  });

  it('per-model idle timeout overrides the default (names with or without :latest)', async () => {
    const h = harness({ idleTimeoutMs: '10m', perModel: { 'qwen2.5:0.5b': { idleTimeoutMs: '5s' } } });
    const r = h.request('qwen2.5:0.5b');
    await advance(h.scheduler, 0);
    expect(r.admission?.keepAlive).toBe(35);
    r.finish();
    await advance(h.scheduler, 5000);
    expect(h.ollama.runners.size).toBe(0);
  });

  it('LRU under the budget: a load that would exceed it first unloads the least recently used idle model', async () => {
    const h = harness({ budgetBytes: '10GB', idleTimeoutMs: '1h' });
    for (const model of ['gemma3:4b', 'qwen2.5:0.5b', 'llama3.1:8b']) {
      const r = h.request(model);
      await advance(h.scheduler, 1000);
      r.finish();
      await advance(h.scheduler, 1000);
    }
    // gemma (4.1 GB) + qwen (1 GB) + llama (5.7 GB at num_ctx 2048, the least that holds the prompt) > 10 GB:
    // gemma, the oldest, went; re-planned after the eviction, llama gets 4096 in the room it freed
    expect([...h.ollama.runners.keys()].sort()).toEqual(['llama3.1:8b', 'qwen2.5:0.5b']);
    expect(h.ollama.runners.get('llama3.1:8b')?.numCtx).toBe(4096);
    expect(h.actions.find((a) => a.kind === 'unload')).toMatchObject({ model: 'gemma3:4b', executed: true, reason: expect.stringContaining('least recently used') });
    expect(h.ollama.totalBytes()).toBeLessThanOrEqual(10 * GB);
  });

  it('a load blocked by a model in flight waits for it, then evicts it', async () => {
    const h = harness({ budgetBytes: '7GB', idleTimeoutMs: '1h' });
    const llama = h.request('llama3.1:8b');
    await advance(h.scheduler, 1000);
    const gemma = h.request('gemma3:4b');
    await advance(h.scheduler, 30_000);
    expect(gemma.status).toBe('waiting');
    expect(h.governor.queued()).toBe(1);
    llama.finish();
    await advance(h.scheduler, 0);
    expect(gemma.status).toBe('running');
    expect([...h.ollama.runners.keys()]).toEqual(['gemma3:4b']);
    expect(h.ollama.violations).toEqual([]);
  });

  it('a model larger than the budget is refused with TOO_LARGE (507) and a message naming the fix', async () => {
    const h = harness({ budgetBytes: '3GB' });
    const r = h.request('llama3.1:8b');
    await advance(h.scheduler, 0);
    expect(r.status).toBe('rejected');
    expect(r.error).toBeInstanceOf(GovernorError);
    expect(r.error).toMatchObject({ code: 'MEMTIDE_ERR_GOVERNOR_TOO_LARGE', status: 507, message: expect.stringContaining('models.budgetBytes') });
    expect(h.actions.at(-1)).toMatchObject({ kind: 'reject', model: 'llama3.1:8b' });
  });

  it('quantization: a tag that does not fit is swapped for a smaller variant of the same model', async () => {
    const h = harness({ budgetBytes: '8GB' });
    const r = h.request('llama3.1:8b-instruct-q8_0');
    await advance(h.scheduler, 0);
    expect(r.admission?.model).toBe('llama3.1:8b');
    expect(h.actions.map((a) => a.kind)).toEqual(['switch-quantization', 'load']);
    const asked = harness({ budgetBytes: '20GB' }).request('llama3.1:8b-instruct-q8_0');
    await advance(harnesses.at(-1)!.scheduler, 0);
    expect(asked.admission?.model).toBe('llama3.1:8b-instruct-q8_0');
  });

  it('context: a loaded model keeps its num_ctx for smaller prompts, grows for a larger one only when idle', async () => {
    const h = harness({ idleTimeoutMs: '1h' });
    const first = h.request('llama3.1:8b', 6000);
    await advance(h.scheduler, 0);
    expect(first.admission?.numCtx).toBe(8192);
    const small = h.request('llama3.1:8b', 100);
    await advance(h.scheduler, 0);
    expect(small.admission?.numCtx).toBe(8192);
    const big = h.request('llama3.1:8b', 12_000);
    await advance(h.scheduler, 10_000);
    expect(big.status).toBe('waiting');
    first.finish();
    small.finish();
    await advance(h.scheduler, 0);
    expect(big.admission?.numCtx).toBe(16384);
    expect(h.actions.filter((a) => a.kind === 'resize-context')).toMatchObject([{ model: 'llama3.1:8b', reason: expect.stringContaining('8192 -> 16384') }]);
    expect(h.ollama.violations).toEqual([]);
  });

  it('a client num_ctx is honoured as sent; a client keep_alive shorter than ours is left alone', async () => {
    const h = harness();
    const r = h.request('gemma3:4b', 100, { requestedNumCtx: 2048, requestedKeepAlive: 0 });
    await advance(h.scheduler, 0);
    expect(r.admission).toMatchObject({ numCtx: null, keepAlive: null });
    const longer = h.request('qwen2.5:0.5b', 100, { requestedKeepAlive: '1h' });
    await advance(h.scheduler, 0);
    expect(longer.admission?.keepAlive).toBe(90);
  });

  it('pressure high: idle unpinned models go after the grace; critical: pinned too, and new loads wait until medium', async () => {
    const h = harness({ idleTimeoutMs: '1h', pressureGraceMs: '15s', pinned: ['qwen2.5:0.5b'] });
    for (const model of ['gemma3:4b', 'qwen2.5:0.5b']) {
      const r = h.request(model);
      await advance(h.scheduler, 1000);
      r.finish();
    }
    await advance(h.scheduler, 5000);
    h.pressure$.next(change('high'));
    await advance(h.scheduler, 5000);
    expect([...h.ollama.runners.keys()].sort()).toEqual(['gemma3:4b', 'qwen2.5:0.5b']);
    await advance(h.scheduler, 10_000);
    expect([...h.ollama.runners.keys()]).toEqual(['qwen2.5:0.5b']);
    h.pressure$.next(change('critical'));
    await advance(h.scheduler, 0);
    expect(h.ollama.runners.size).toBe(0);
    expect(h.actions.filter((a) => a.kind === 'unload').map((a) => a.reason)).toEqual([
      expect.stringMatching(/^pressure high: idle/),
      expect.stringMatching(/^pressure critical: idle/),
    ]);
    const held = h.request('gemma3:4b');
    await advance(h.scheduler, 10_000);
    expect(held.status).toBe('waiting');
    h.pressure$.next(change('high'));
    await advance(h.scheduler, 10_000);
    expect(held.status).toBe('waiting');
    h.pressure$.next(change('medium'));
    await advance(h.scheduler, 0);
    expect(held.status).toBe('running');
    expect(h.actions.filter((a) => a.kind === 'hold' || a.kind === 'release-hold').map((a) => a.kind)).toEqual(['hold', 'release-hold']);
  });

  it('a held request times out with 503 HELD and a Retry-After of the pressure dwell', async () => {
    const h = harness({ queueTimeoutMs: '30s' });
    h.pressure$.next(change('critical'));
    const r = h.request('gemma3:4b');
    await advance(h.scheduler, 30_000);
    expect(r.error).toMatchObject({ code: 'MEMTIDE_ERR_GOVERNOR_HELD', status: 503, retryAfterMs: 30_000, message: expect.stringContaining('pressure critical') });
    expect(h.governor.queued()).toBe(0);
  });

  it('a request to a loaded model is not held by critical pressure, and not stuck behind a held one', async () => {
    const h = harness({ idleTimeoutMs: '1h', unloadPinnedAtCritical: false, pinned: ['qwen2.5:0.5b'] });
    const q = h.request('qwen2.5:0.5b');
    await advance(h.scheduler, 1000);
    q.finish();
    h.pressure$.next(change('critical'));
    const held = h.request('gemma3:4b');
    const loaded = h.request('qwen2.5:0.5b');
    await advance(h.scheduler, 0);
    expect(held.status).toBe('waiting');
    expect(loaded.status).toBe('running');
  });

  it('maxConcurrent bounds requests in flight; maxQueue bounds waiting ones (503 QUEUE_FULL)', async () => {
    const h = harness({ maxConcurrent: 2, maxQueue: 1, idleTimeoutMs: '1h' });
    const rs = [h.request('qwen2.5:0.5b'), h.request('qwen2.5:0.5b'), h.request('qwen2.5:0.5b'), h.request('qwen2.5:0.5b')];
    await advance(h.scheduler, 0);
    expect(rs.map((r) => r.status)).toEqual(['running', 'running', 'waiting', 'rejected']);
    expect(rs[3]!.error).toMatchObject({ code: 'MEMTIDE_ERR_GOVERNOR_QUEUE_FULL', status: 503, retryAfterMs: 5000 });
    rs[0]!.finish();
    await advance(h.scheduler, 0);
    expect(rs[2]!.status).toBe('running');
  });

  it('an aborted request leaves the queue with the abort reason', async () => {
    const h = harness({ maxConcurrent: 1, idleTimeoutMs: '1h' });
    const first = h.request('qwen2.5:0.5b');
    const controller = new AbortController();
    const second = h.request('qwen2.5:0.5b', 10, { signal: controller.signal });
    await advance(h.scheduler, 0);
    expect(second.status).toBe('waiting');
    controller.abort();
    await advance(h.scheduler, 0);
    expect(second.status).toBe('rejected');
    expect((second.error as Error).name).toBe('AbortError');
    expect(h.governor.queued()).toBe(0);
    first.finish();
  });

  it('observe-only: decides and records (executed: false) but changes nothing', async () => {
    const h = harness({ observeOnly: true, budgetBytes: '6GB', idleTimeoutMs: '1m' });
    const a = h.request('gemma3:4b');
    await advance(h.scheduler, 1000);
    a.finish();
    const b = h.request('llama3.1:8b', 3000);
    await advance(h.scheduler, 0);
    expect(b.admission).toMatchObject({ model: 'llama3.1:8b', numCtx: null, keepAlive: null });
    b.finish();
    await advance(h.scheduler, 10 * 60_000);
    expect(h.ollama.calls.filter((c) => c.startsWith('unload') || c.startsWith('preload'))).toEqual([]);
    expect(h.actions.length).toBeGreaterThan(0);
    expect(h.actions.every((a) => !a.executed)).toBe(true);
    expect(h.actions.map((x) => x.kind)).toEqual(expect.arrayContaining(['load', 'unload']));
  });

  it('upstream down: failures are reported, state is kept, unloads are retried, and nothing hangs', async () => {
    const h = harness({ idleTimeoutMs: '1m' });
    const r = h.request('gemma3:4b');
    await advance(h.scheduler, 2000);
    r.finish();
    h.ollama.down = true;
    await advance(h.scheduler, 61_000);
    expect(h.problems.map((p) => p.operation)).toEqual(expect.arrayContaining(['ps', 'unload gemma3:4b']));
    expect(h.governor.list().map((m) => m.name)).toEqual(['gemma3:4b']);
    // a new request for a model that cannot be sized while Ollama is down is refused (503 HELD, retry later):
    // admitted blind, it could break the budget once Ollama is back
    const down = h.request('qwen2.5:0.5b');
    await advance(h.scheduler, 0);
    expect(down.status).toBe('rejected');
    h.ollama.down = false;
    await advance(h.scheduler, 61_000);
    expect(h.ollama.runners.size).toBe(0);
    expect(h.governor.list()).toEqual([]);
  });

  it('a model whose facts cannot be read is refused until they can, then sized and counted', async () => {
    // found by the model-based tests: down, request, up, request, request of a second model
    const h = harness({ budgetBytes: '10GB' });
    h.ollama.down = true;
    const refused = h.request('llama3.1:8b', 0);
    await advance(h.scheduler, 0);
    expect(refused.status).toBe('rejected');
    h.ollama.down = false;
    const llama = h.request('llama3.1:8b', 0);
    await advance(h.scheduler, 0);
    expect(llama.admission?.numCtx).toBe(4096);
    // llama (5.8 GB) + gemma (4.6 GB estimated) > 10 GB: gemma waits for llama's request, then llama goes
    const gemma = h.request('gemma3:4b', 0);
    await advance(h.scheduler, 0);
    expect(gemma.status).toBe('waiting');
    expect(h.ollama.totalBytes()).toBeLessThanOrEqual(10 * GB);
    llama.finish();
    await advance(h.scheduler, 0);
    expect(gemma.status).toBe('running');
    expect([...h.ollama.runners.keys()]).toEqual(['gemma3:4b']);
  });

  it('a model loaded past the proxy is governed from /api/ps; its own use (expires_at moving) restarts the idle timer', async () => {
    const h = harness({ idleTimeoutMs: '1m' });
    const direct = (model: string) => h.ollama.end(h.ollama.start(model, null, null)); // a client talking to Ollama directly
    direct('qwen2.5:0.5b');
    await advance(h.scheduler, 2000);
    expect(h.governor.list()).toMatchObject([{ name: 'qwen2.5:0.5b', estimated: false, inFlight: 0 }]);
    await advance(h.scheduler, 40_000);
    direct('qwen2.5:0.5b');
    await advance(h.scheduler, 40_000);
    expect(h.ollama.runners.has('qwen2.5:0.5b')).toBe(true);
    await advance(h.scheduler, 25_000);
    expect(h.ollama.runners.has('qwen2.5:0.5b')).toBe(false);
    expect(h.actions).toMatchObject([{ kind: 'unload', model: 'qwen2.5:0.5b', executed: true }]);
  });

  it('learns the size correction from /api/ps: the next estimate is the real size', async () => {
    const h = harness({ idleTimeoutMs: '10s' });
    const r = h.request('gemma3:4b');
    await advance(h.scheduler, 2000);
    r.finish();
    await advance(h.scheduler, 15_000);
    const again = h.request('gemma3:4b');
    await advance(h.scheduler, 0);
    const loads = h.actions.filter((a) => a.kind === 'load');
    expect(loads[0]!.bytes! * 0.9).toBeCloseTo(MemoryOllama.trueSize('gemma3:4b', 4096), -1);
    expect(loads[1]!.bytes).toBe(MemoryOllama.trueSize('gemma3:4b', 4096));
    again.finish();
  });

  it('accounts mapped (weights) and anonymous bytes apart; use_mmap off makes everything anonymous', async () => {
    const h = harness();
    const r = h.request('llama3.1:8b', 100);
    await advance(h.scheduler, 2000);
    const [m] = h.governor.list();
    expect(m!.mappedBytes).toBe(MODELS['llama3.1:8b']!.fileSizeBytes);
    expect(m!.mappedBytes + m!.anonymousBytes).toBe(m!.sizeBytes);
    h.config$.next(config({ useMmap: false }));
    await advance(h.scheduler, 0);
    expect(h.governor.list()[0]).toMatchObject({ mappedBytes: 0, anonymousBytes: m!.sizeBytes });
    r.finish();
  });

  it('a lower budget in the config unloads least recently used idle models to fit', async () => {
    const h = harness({ idleTimeoutMs: '1h' });
    for (const model of ['gemma3:4b', 'llama3.1:8b']) {
      const r = h.request(model);
      await advance(h.scheduler, 1000);
      r.finish();
    }
    h.config$.next(config({ idleTimeoutMs: '1h', budgetBytes: '7GB' }));
    await advance(h.scheduler, 0);
    expect([...h.ollama.runners.keys()]).toEqual(['llama3.1:8b']);
  });

  it('warm-up loads the configured models through the same policy, the way their clients will use them', async () => {
    const h = harness({ warmUp: ['gemma3:4b', 'nope:1b'], serverContextLength: 2048 });
    const done = h.governor.warmUp();
    await advance(h.scheduler, 0);
    await expect(done).resolves.toEqual([
      { model: 'gemma3:4b', ok: true },
      { model: 'nope:1b', ok: false, error: expect.stringContaining('not found') },
    ]);
    // Meetily's /v1 requests arrive translated to /api/chat (proxy.openAiChat "translate"): warmed at the
    // governed size (maxContext 4096), not the server's 2048, so its first request does not reload it.
    expect(h.ollama.calls).toContain('preload gemma3:4b');
    expect(h.ollama.runners.get('gemma3:4b')).toMatchObject({ numCtx: 4096 });
    const native = h.governor.warmUp(['qwen2.5:0.5b'], { endpoint: 'generate' });
    await advance(h.scheduler, 0);
    await expect(native).resolves.toEqual([{ model: 'qwen2.5:0.5b', ok: true }]);
    expect(h.ollama.runners.get('qwen2.5:0.5b')).toMatchObject({ numCtx: 4096, keepAliveMs: 90_000 });
  });

  it('/v1 requests: nothing is injected (the OpenAI layer takes no options); planned at the server default num_ctx', async () => {
    const h = harness({ budgetBytes: '20GB', idleTimeoutMs: '1h' });
    const native = h.request('llama3.1:8b', 6000);
    await advance(h.scheduler, 0);
    expect(native.admission).toMatchObject({ numCtx: 8192, keepAlive: 3630 });
    const v1 = h.request('llama3.1:8b', 100, { endpoint: 'openai-chat' });
    await advance(h.scheduler, 1000);
    // the runner is at 8192; a /v1 request would make Ollama reload it at 4096: it waits for the native one
    expect(v1.status).toBe('waiting');
    native.finish();
    await advance(h.scheduler, 0);
    expect(v1.admission).toMatchObject({ model: 'llama3.1:8b', numCtx: null, keepAlive: null });
    expect(h.actions.filter((a) => a.kind === 'resize-context')).toMatchObject([{ reason: expect.stringContaining('8192 -> 4096') }]);
    expect(h.ollama.violations).toEqual([]);
  });

  it('models.numBatch: injected on chat and generate, never on embeddings; sized into the estimate; a new value reloads; warm-up loads with it', async () => {
    const h = harness({ numBatch: 128, idleTimeoutMs: '1h', budgetBytes: '20GB' });
    const chat = h.request('llama3.1:8b', 3000);
    await advance(h.scheduler, 0);
    expect(chat.admission).toMatchObject({ numCtx: 4096, numBatch: 128 });
    // llama3.1's graph at 4096 context: the attention term 4·b·(1 + 4·e + n_ctx·(1 + heads)) dominates (32 heads).
    const facts = { ...MODELS['llama3.1:8b']!.facts, fileSizeBytes: MODELS['llama3.1:8b']!.fileSizeBytes };
    const overhead = overheadBytesFor(facts, 4096, 128);
    expect(DEFAULT_OVERHEAD_BYTES - overhead).toBe(4 * (512 - 128) * (1 + 4 * 4096 + 4096 * 33));
    expect(h.actions[0]).toMatchObject({ kind: 'load', bytes: Math.round(estimateModelMemory(facts, 4096, 'f16', overhead)!.totalBytes) });
    const embed = h.request('qwen2.5:0.5b', 10, { endpoint: 'embed' });
    await advance(h.scheduler, 0);
    expect(embed.admission).toMatchObject({ numBatch: null });
    const clientSmaller = h.request('llama3.1:8b', 100, { endpoint: 'generate', requestedNumBatch: 128 });
    await advance(h.scheduler, 0);
    expect(clientSmaller.admission).toMatchObject({ numBatch: null }); // already what the runner has: nothing to change
    chat.finish();
    clientSmaller.finish();
    await advance(h.scheduler, 1000);
    h.config$.next(config({ numBatch: 256, idleTimeoutMs: '1h', budgetBytes: '20GB' }));
    const after = h.request('llama3.1:8b', 3000);
    await advance(h.scheduler, 0);
    expect(after.admission).toMatchObject({ numBatch: 256 });
    expect(h.actions.filter((a) => a.kind === 'load' && a.model === 'llama3.1:8b')).toHaveLength(2); // Ollama reloads on a new num_batch
    after.finish();
    await h.governor.warmUp(['gemma3:4b']);
    expect(h.ollama.preloads.at(-1)).toMatchObject({ numCtx: 4096, numBatch: 256 });
    expect(h.ollama.violations).toEqual([]);
  });

  it('unload(name) waits for requests in flight, then unloads', async () => {
    const h = harness({ idleTimeoutMs: '1h' });
    const r = h.request('gemma3:4b');
    await advance(h.scheduler, 0);
    let unloaded = false;
    void h.governor.unload('gemma3:4b').then(() => (unloaded = true));
    await advance(h.scheduler, 60_000);
    expect(unloaded).toBe(false);
    r.finish();
    await advance(h.scheduler, 0);
    expect(unloaded).toBe(true);
    expect(h.ollama.runners.size).toBe(0);
    expect(h.ollama.violations).toEqual([]);
  });

  it('models$ replays the latest list; actions$ does not replay', async () => {
    const h = harness();
    const r = h.request('qwen2.5:0.5b');
    await advance(h.scheduler, 0);
    const late: unknown[] = [];
    const lateActions: unknown[] = [];
    const fail = (e: unknown) => late.push(e);
    h.governor.models$.subscribe({ next: (m) => late.push(m), error: fail }).unsubscribe();
    h.governor.actions$.subscribe({ next: (a) => lateActions.push(a), error: fail }).unsubscribe();
    expect(late).toEqual([[expect.objectContaining({ name: 'qwen2.5:0.5b', inFlight: 1 })]]);
    expect(lateActions).toEqual([]);
    r.finish();
  });

  it('stop() rejects queued admissions with STOPPED, refuses new ones, and leaves no timer behind', async () => {
    const h = harness({ maxConcurrent: 1, idleTimeoutMs: '1m' });
    const first = h.request('qwen2.5:0.5b');
    const queued = h.request('qwen2.5:0.5b');
    await advance(h.scheduler, 0);
    h.governor.stop();
    await advance(h.scheduler, 0);
    expect(queued.error).toMatchObject({ code: 'MEMTIDE_ERR_GOVERNOR_STOPPED', status: 503 });
    const after = h.request('gemma3:4b');
    await advance(h.scheduler, 0);
    expect(after.error).toMatchObject({ code: 'MEMTIDE_ERR_GOVERNOR_STOPPED' });
    first.finish();
    // only the fake's own keep_alive timer may remain
    expect(h.scheduler.actions.length).toBeLessThanOrEqual(1);
  });
});

// ---- what the coordinator drives ------------------------------------------

describe('createModelGovernor: coordinator actuators', () => {
  it('budgetScale scales the preset budget; an explicit budgetBytes is used as written', async () => {
    const h = harness({ budgetScale: 0.5 }, { preset: '8gb' });
    expect(h.governor.budgetBytes()).toBe(Math.floor(4.5 * GIB * 0.5));
    expect(h.governor.baseBudgetBytes()).toBe(h.governor.budgetBytes());
    h.config$.next(config({ budgetScale: 0.5, budgetBytes: '6GB' }, { preset: '8gb' }));
    expect(h.governor.budgetBytes()).toBe(6 * GB);
    // the scaled budget is what admission plans with: gemma3:4b (4.3 GiB) no longer fits 2.25 GiB
    h.config$.next(config({ budgetScale: 0.5 }, { preset: '8gb' }));
    const r = h.request('gemma3:4b');
    await advance(h.scheduler, 0);
    expect(r.error).toMatchObject({ code: 'MEMTIDE_ERR_GOVERNOR_TOO_LARGE' });
  });

  it('setBudgetCap: a lower cap evicts idle models to fit; a load that fits the budget but not the cap waits (with its shortfall), then goes when the cap lifts', async () => {
    const h = harness({ budgetBytes: '12GB', idleTimeoutMs: '1h' });
    const gemma = h.request('gemma3:4b');
    await advance(h.scheduler, 1000);
    gemma.finish();
    await advance(h.scheduler, 1000);
    h.governor.setBudgetCap(3 * GB);
    await advance(h.scheduler, 0);
    expect(h.governor.budgetBytes()).toBe(3 * GB);
    expect(h.governor.budgetCap()).toBe(3 * GB);
    expect(h.ollama.runners.has('gemma3:4b')).toBe(false);
    expect(h.actions.at(-1)).toMatchObject({ kind: 'unload', model: 'gemma3:4b', reason: expect.stringContaining('over the model budget of') });
    const llama = h.request('llama3.1:8b');
    await advance(h.scheduler, 10_000);
    expect(llama.status).toBe('waiting');
    expect(h.governor.capShortfallBytes()).toBeGreaterThan(2 * GB);
    h.governor.setBudgetCap(null);
    await advance(h.scheduler, 0);
    expect(llama.status).toBe('running');
    expect(h.governor.capShortfallBytes()).toBe(0);
    expect(() => h.governor.setBudgetCap(-1)).toThrow(expect.objectContaining({ code: 'MEMTIDE_ERR_GOVERNOR_INPUT' }));
    llama.finish();
  });

  it('unloadIdle: unloads idle unpinned models now (pinned ones too with idle-all), never one in flight', async () => {
    const h = harness({ budgetBytes: '20GB', idleTimeoutMs: '1h', pinned: ['qwen2.5:0.5b'] });
    const busy = h.request('llama3.1:8b');
    for (const model of ['gemma3:4b', 'qwen2.5:0.5b']) {
      const r = h.request(model);
      await advance(h.scheduler, 1000);
      r.finish();
    }
    await advance(h.scheduler, 0);
    const result = await h.governor.unloadIdle('idle-unpinned', 'coordinator: pressure high');
    expect(result.models).toEqual(['gemma3:4b']);
    expect(result.bytes).toBeGreaterThan(3 * GB);
    expect(h.actions.at(-1)).toMatchObject({ kind: 'unload', model: 'gemma3:4b', reason: 'coordinator: pressure high', executed: true });
    expect((await h.governor.unloadIdle('idle-all')).models).toEqual(['qwen2.5:0.5b']);
    expect([...h.ollama.runners.keys()]).toEqual(['llama3.1:8b']);
    expect(h.ollama.violations).toEqual([]);
    busy.finish();
  });

  it('unloadIdle in observe-only mode records what it would unload (executed: false) and unloads nothing', async () => {
    const h = harness({ idleTimeoutMs: '1h', observeOnly: true });
    const r = h.request('gemma3:4b');
    await advance(h.scheduler, 1000);
    r.finish();
    const result = await h.governor.unloadIdle('idle-unpinned', 'coordinator: test');
    expect(result.models).toEqual(['gemma3:4b']);
    expect(h.ollama.runners.has('gemma3:4b')).toBe(true);
    expect(h.actions.at(-1)).toMatchObject({ kind: 'unload', executed: false });
  });

  it('deferOptional: kept until lifted, with when it started', () => {
    const h = harness();
    expect(h.governor.optionalDeferral()).toBeNull();
    h.governor.deferOptional({ reason: 'memory pressure critical', retryAfterMs: 120_000 });
    expect(h.governor.optionalDeferral()).toEqual({ reason: 'memory pressure critical', retryAfterMs: 120_000, sinceMs: 0 });
    h.governor.deferOptional(null);
    expect(h.governor.optionalDeferral()).toBeNull();
  });
});

// ---- model-based test ----------------------------------------------------

const MODEL_NAMES = ['llama3.1:8b', 'gemma3:4b', 'qwen2.5:0.5b', 'llama3.1:8b-instruct-q8_0', 'ghost:7b'] as const;
const BUDGETS = ['4GB', '7GB', '11GB', '20GB'] as const;

interface World {
  h: Harness;
  requests: Tracked[];
  pins: Map<string, boolean>;
  configPinned: string[];
  level: PressureLevel;
}

type Cmd = fc.AsyncCommand<object, World>;

const pinnedNow = (w: World, model: string) => w.pins.get(model) ?? w.configPinned.includes(model);

class RequestCmd implements Cmd {
  constructor(
    readonly model: string,
    readonly promptTokens: number,
    readonly endpoint: 'chat' | 'openai-chat',
  ) {}
  check = () => true;
  async run(_: object, w: World) {
    w.requests.push(w.h.request(this.model, this.promptTokens, { endpoint: this.endpoint }));
    await advance(w.h.scheduler, 0);
  }
  toString = () => `request(${this.model}, ${this.promptTokens}, ${this.endpoint})`;
}

class FinishCmd implements Cmd {
  constructor(readonly index: number) {}
  check = () => true;
  async run(_: object, w: World) {
    const running = w.requests.filter((r) => r.status === 'running');
    running[this.index % Math.max(1, running.length)]?.finish();
    await advance(w.h.scheduler, 0);
  }
  toString = () => `finish(${this.index})`;
}

class AdvanceCmd implements Cmd {
  constructor(readonly ms: number) {}
  check = () => true;
  async run(_: object, w: World) {
    await advance(w.h.scheduler, this.ms);
  }
  toString = () => `advance(${this.ms})`;
}

class PressureCmd implements Cmd {
  constructor(readonly level: PressureLevel) {}
  check = () => true;
  async run(_: object, w: World) {
    w.level = this.level;
    w.h.pressure$.next(change(this.level));
    await advance(w.h.scheduler, 0);
  }
  toString = () => `pressure(${this.level})`;
}

class ConfigCmd implements Cmd {
  constructor(
    readonly budget: (typeof BUDGETS)[number],
    readonly idleTimeoutMs: number,
    readonly maxConcurrent: number,
    readonly pinned: string[],
  ) {}
  check = () => true;
  async run(_: object, w: World) {
    w.configPinned = this.pinned;
    w.h.config$.next(config({ budgetBytes: this.budget, idleTimeoutMs: this.idleTimeoutMs, maxConcurrent: this.maxConcurrent, maxQueue: 4, queueTimeoutMs: '1m', pinned: this.pinned }));
    await advance(w.h.scheduler, 0);
  }
  toString = () => `config(${this.budget}, idle ${this.idleTimeoutMs}, conc ${this.maxConcurrent}, pinned [${this.pinned.join(',')}])`;
}

class PinCmd implements Cmd {
  constructor(
    readonly model: string,
    readonly pin: boolean,
  ) {}
  check = () => true;
  async run(_: object, w: World) {
    w.pins.set(this.model, this.pin);
    if (this.pin) w.h.governor.pin(this.model);
    else w.h.governor.unpin(this.model);
    await advance(w.h.scheduler, 0);
  }
  toString = () => `${this.pin ? 'pin' : 'unpin'}(${this.model})`;
}

/** The coordinator's budget balancing: a temporary cap, or none. */
class CapCmd implements Cmd {
  constructor(readonly gb: number | null) {}
  check = () => true;
  async run(_: object, w: World) {
    w.h.governor.setBudgetCap(this.gb === null ? null : this.gb * GB);
    await advance(w.h.scheduler, 0);
  }
  toString = () => `cap(${this.gb ?? 'none'})`;
}

/** The coordinator's one-shot pressure action. */
class UnloadIdleCmd implements Cmd {
  check = () => true;
  async run(_: object, w: World) {
    await w.h.governor.unloadIdle('idle-unpinned', 'coordinator: pressure high');
    await advance(w.h.scheduler, 0);
  }
  toString = () => 'unloadIdle(idle-unpinned)';
}

class UpstreamCmd implements Cmd {
  constructor(readonly down: boolean) {}
  check = () => true;
  async run(_: object, w: World) {
    w.h.ollama.down = this.down;
    await advance(w.h.scheduler, 0);
  }
  toString = () => (this.down ? 'upstream down' : 'upstream up');
}

const requestCmd = fc
  .tuple(fc.constantFrom(...MODEL_NAMES), fc.integer({ min: 0, max: 20_000 }), fc.constantFrom('chat' as const, 'openai-chat' as const))
  .map(([m, p, e]) => new RequestCmd(m, p, e));
const finishCmd = fc.nat({ max: 5 }).map((i) => new FinishCmd(i));
const pressureCmd = fc.constantFrom<PressureLevel>('low', 'medium', 'high', 'critical').map((l) => new PressureCmd(l));
// Requests, their ends and pressure changes are listed twice: they are what most of a day is made of.
const commands = [
  requestCmd,
  requestCmd,
  finishCmd,
  finishCmd,
  fc.constantFrom(1000, 15_000, 61_000, 5 * 60_000, 11 * 60_000).map((ms) => new AdvanceCmd(ms)),
  pressureCmd,
  pressureCmd,
  fc
    .tuple(fc.constantFrom(...BUDGETS), fc.constantFrom(0, 10_000, 60_000, 600_000), fc.integer({ min: 1, max: 4 }), fc.subarray(['gemma3:4b', 'qwen2.5:0.5b']))
    .map(([b, i, c, p]) => new ConfigCmd(b, i, c, p)),
  fc.tuple(fc.constantFrom(...MODEL_NAMES), fc.boolean()).map(([m, p]) => new PinCmd(m, p)),
  fc.boolean().map((d) => new UpstreamCmd(d)),
  // The coordinator's hooks share one slot, so they do not crowd out what the coverage check below counts on.
  fc.oneof(
    fc.constantFrom(null, null, 3, 6, 9).map((gb): Cmd => new CapCmd(gb)),
    fc.constant<Cmd>(new UnloadIdleCmd()),
  ),
];

describe('createModelGovernor: model-based (fc.commands)', () => {
  it('keeps its invariants under random requests, time, pressure, config, pins and upstream failures', async () => {
    // What the runs exercised, so a generator that stops reaching a path fails the test instead of passing vacuously.
    const seen = new Map<string, number>();
    const count = (key: string) => seen.set(key, (seen.get(key) ?? 0) + 1);
    await fc.assert(
      fc.asyncProperty(fc.commands(commands, { maxCommands: 40 }), async (cmds) => {
        const h = harness({ budgetBytes: '11GB', idleTimeoutMs: 600_000, maxConcurrent: 3, maxQueue: 4, queueTimeoutMs: '1m', pinned: ['qwen2.5:0.5b'] });
        const world: World = { h, requests: [], pins: new Map(), configPinned: ['qwen2.5:0.5b'], level: 'low' };
        const overBudget: string[] = [];
        h.ollama.onLoad = (total, model) => {
          const budget = h.governor.budgetBytes();
          if (total > budget + 16) overBudget.push(`${model}: ${total} > ${budget}`);
        };
        const idleUnloadsOfPinned: string[] = [];
        h.governor.actions$.subscribe({
          next: (a) => {
            if (a.kind === 'unload' && a.executed && a.model && pinnedNow(world, a.model) && !a.reason.startsWith('pressure critical')) {
              idleUnloadsOfPinned.push(`${a.model}: ${a.reason}`);
            }
            const why = ['idle for', 'least recently used', 'pressure', 'over the model budget'].find((r) => a.reason.startsWith(r));
            count(a.kind === 'unload' ? `unload: ${why ?? a.reason}` : a.kind);
          },
          error: (e: unknown) => idleUnloadsOfPinned.push(`actions$ failed: ${String(e)}`),
        });
        try {
          await fc.asyncModelRun(() => ({ model: {}, real: world }), cmds);
          // Invariants along the way.
          expect(overBudget, 'an admitted load left the loaded set above budget').toEqual([]);
          expect(h.ollama.violations, 'unload or reload of a model with a request in flight').toEqual([]);
          expect(idleUnloadsOfPinned, 'a pinned model was unloaded for idleness').toEqual([]);
          // Every request ends: finish what runs, let time pass, and nothing is left waiting.
          h.ollama.down = false;
          h.governor.setBudgetCap(null);
          h.pressure$.next(change('low'));
          for (let round = 0; round < 20 && world.requests.some((r) => r.status === 'waiting' || r.status === 'running'); round += 1) {
            for (const r of world.requests) r.finish();
            await advance(h.scheduler, 61_000);
          }
          expect(world.requests.filter((r) => r.status === 'waiting' || r.status === 'running')).toEqual([]);
          for (const r of world.requests.filter((x) => x.status === 'rejected')) {
            expect(r.error, String(r.error)).toBeInstanceOf(GovernorError);
            count((r.error as GovernorError).code);
          }
          expect(overBudget).toEqual([]);
          expect(h.ollama.violations).toEqual([]);
          expect(h.governor.queued()).toBe(0);
        } finally {
          h.governor.stop();
        }
      }),
      // A run that hangs fails (and shrinks) instead of timing the whole test out.
      { numRuns: 100, timeout: 5000 },
    );
    // Frequent in every batch of runs; the rarer paths (resize, pressure unloads, timeouts) have scenarios above.
    const report = JSON.stringify([...seen]);
    for (const key of ['load', 'unload: idle for', 'hold', 'release-hold', 'switch-quantization', 'MEMTIDE_ERR_GOVERNOR_TOO_LARGE']) {
      expect(seen.get(key) ?? 0, `${key} never happened: ${report}`).toBeGreaterThan(0);
    }
    const forMemory = ['unload: least recently used', 'unload: over the model budget', 'unload: pressure'].reduce((s, k) => s + (seen.get(k) ?? 0), 0);
    expect(forMemory, `no unload for memory (LRU, budget, pressure) happened: ${report}`).toBeGreaterThan(0);
  });
});

// ---- the same, over the real `ollama` client against the fake Ollama server -------

describe('createModelGovernor over the real client against the fake Ollama (real time)', () => {
  const sleepReal = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

  interface LiveRequest {
    model: string;
    status: 'waiting' | 'running' | 'done' | 'failed' | 'rejected';
    error: unknown;
    finish: () => Promise<void>;
  }

  interface Live {
    fake: FakeOllama;
    governor: ModelGovernorHandle;
    config$: BehaviorSubject<MemtideConfig>;
    pressure$: Subject<PressureChange>;
    requests: LiveRequest[];
    down: { value: boolean };
    pins: Map<string, boolean>;
    violations: string[];
  }

  const liveConfig = (budget: string, idleTimeoutMs: number) =>
    config({ budgetBytes: budget, idleTimeoutMs, pollIntervalMs: 100, pressureGraceMs: 100, queueTimeoutMs: 600, maxConcurrent: 2, maxQueue: 3 });

  class LiveRequestCmd implements fc.AsyncCommand<object, Live> {
    constructor(
      readonly model: string,
      readonly promptTokens: number,
    ) {}
    check = () => true;
    async run(_: object, w: Live) {
      const client = new Ollama({ host: w.fake.url });
      const r: LiveRequest = { model: this.model, status: 'waiting', error: null, finish: async () => undefined };
      w.requests.push(r);
      const promptTokens = this.promptTokens;
      w.governor.admit({ model: this.model, endpoint: 'generate', promptTokens }).then(
        (admission) => {
          if (w.down.value) {
            r.status = 'failed';
            admission.release({ ok: false, error: 'upstream down' });
            return;
          }
          r.status = 'running';
          const budget = w.governor.budgetBytes();
          const done = (async () => {
            const stream = await client.generate({
              model: admission.model,
              prompt: 'word '.repeat(Math.min(promptTokens, 2000)),
              stream: true,
              ...(admission.keepAlive !== null ? { keep_alive: admission.keepAlive } : {}),
              ...(admission.numCtx !== null ? { options: { num_ctx: admission.numCtx } } : {}),
            });
            let first = true;
            for await (const _chunk of stream) {
              if (first && w.fake.usedBytes() > budget + 16) w.violations.push(`over budget after loading ${admission.model}: ${w.fake.usedBytes()} > ${budget}`);
              first = false;
            }
          })().then(
            () => admission.release({ ok: true }),
            (error: unknown) => admission.release({ ok: false, error: String(error) }),
          );
          r.finish = async () => {
            // A request the fake never finishes is a finding, not a hung test.
            const finished = await Promise.race([done.then(() => true), sleepReal(3000).then(() => false)]);
            if (!finished) w.violations.push(`${admission.model}: the request did not finish within 3 s (fake: ${JSON.stringify(w.fake.loaded())})`);
            r.status = 'done';
          };
        },
        (error: unknown) => {
          r.status = 'rejected';
          r.error = error;
        },
      );
      await sleepReal(5);
    }
    toString = () => `request(${this.model}, ${this.promptTokens})`;
  }

  const live = {
    finish: (i: number): fc.AsyncCommand<object, Live> => ({
      check: () => true,
      run: async (_: object, w: Live) => {
        const running = w.requests.filter((r) => r.status === 'running');
        await running[i % Math.max(1, running.length)]?.finish();
      },
      toString: () => `finish(${i})`,
    }),
    wait: (ms: number): fc.AsyncCommand<object, Live> => ({ check: () => true, run: () => sleepReal(ms), toString: () => `wait(${ms})` }),
    pressure: (level: PressureLevel): fc.AsyncCommand<object, Live> => ({
      check: () => true,
      run: async (_: object, w: Live) => w.pressure$.next(change(level)),
      toString: () => `pressure(${level})`,
    }),
    config: (budget: string, idle: number): fc.AsyncCommand<object, Live> => ({
      check: () => true,
      run: async (_: object, w: Live) => w.config$.next(liveConfig(budget, idle)),
      toString: () => `config(${budget}, ${idle})`,
    }),
    pin: (model: string, pin: boolean): fc.AsyncCommand<object, Live> => ({
      check: () => true,
      run: async (_: object, w: Live) => {
        w.pins.set(model, pin);
        if (pin) w.governor.pin(model);
        else w.governor.unpin(model);
      },
      toString: () => `${pin ? 'pin' : 'unpin'}(${model})`,
    }),
    upstream: (down: boolean): fc.AsyncCommand<object, Live> => ({
      check: () => true,
      run: async (_: object, w: Live) => {
        w.down.value = down;
      },
      toString: () => (down ? 'upstream down' : 'upstream up'),
    }),
  };

  const liveModels = ['llama3.1:8b', 'llama3.1:8b-instruct-q8_0', 'gemma3:4b', 'qwen2.5:0.5b'];
  const liveRequest = fc.tuple(fc.constantFrom(...liveModels), fc.integer({ min: 0, max: 12_000 })).map(([m, p]) => new LiveRequestCmd(m, p));
  const liveFinish = fc.nat({ max: 3 }).map(live.finish);
  const liveCommands = [
    liveRequest,
    liveRequest,
    liveFinish,
    liveFinish,
    fc.constantFrom(20, 150, 450).map(live.wait),
    fc.constantFrom<PressureLevel>('low', 'high', 'critical').map(live.pressure),
    fc.tuple(fc.constantFrom('8GB', '12GB'), fc.constantFrom(0, 300)).map(([b, i]) => live.config(b, i)),
    fc.tuple(fc.constantFrom(...liveModels), fc.boolean()).map(([m, p]) => live.pin(m, p)),
    fc.boolean().map(live.upstream),
  ];

  it('keeps the invariants with real HTTP, the real client and the fake server', async () => {
    let loads = 0;
    let unloads = 0;
    await fc.assert(
      fc.asyncProperty(fc.commands(liveCommands, { maxCommands: 16, size: '+1' }), async (cmds) => {
        // Bias below 1: the real size never exceeds the documented estimate, so the budget holds from the first load.
        const models = DEFAULT_FAKE_MODELS.filter((m) => liveModels.includes(m.name)).map((m) => ({ ...m, bias: 0.95 }));
        const fake = await startFakeOllama({ models, memoryBytes: 64 * GIB, tokenDelayMs: 5 });
        const real = createOllamaApi({ host: fake.url, retries: 0, timeoutMs: 2000 });
        const down = { value: false };
        const violations: string[] = [];
        const api: OllamaApi = {
          ps: () => (down.value ? Promise.reject(new OllamaApiError('MEMTIDE_ERR_OLLAMA_UNREACHABLE', 'ps', 'down')) : real.ps()),
          show: (m) => (down.value ? Promise.reject(new OllamaApiError('MEMTIDE_ERR_OLLAMA_UNREACHABLE', 'show', 'down')) : real.show(m)),
          list: () => (down.value ? Promise.reject(new OllamaApiError('MEMTIDE_ERR_OLLAMA_UNREACHABLE', 'list', 'down')) : real.list()),
          unload: (m) => {
            const busy = fake.loaded().find((r) => r.name === m)?.refCount ?? 0;
            if (busy > 0) violations.push(`unload of ${m} with ${busy} request(s) in flight`);
            return down.value ? Promise.reject(new OllamaApiError('MEMTIDE_ERR_OLLAMA_UNREACHABLE', 'unload', 'down')) : real.unload(m);
          },
          preload: (m, o) => real.preload(m, o),
        };
        const config$ = new BehaviorSubject(liveConfig('12GB', 300));
        const pressure$ = new Subject<PressureChange>();
        const governor = createModelGovernor({ api, config$, pressure$ });
        const w: Live = { fake, governor, config$, pressure$, requests: [], down, pins: new Map(), violations };
        governor.actions$.subscribe({
          next: (a) => {
            if (a.kind === 'unload' && a.executed) unloads += 1;
            if (a.kind === 'unload' && a.executed && a.model && w.pins.get(a.model) === true && !a.reason.startsWith('pressure critical')) {
              violations.push(`pinned ${a.model} unloaded: ${a.reason}`);
            }
          },
          error: (e: unknown) => violations.push(`actions$ failed: ${String(e)}`),
        });
        try {
          await fc.asyncModelRun(() => ({ model: {}, real: w }), cmds);
          down.value = false;
          pressure$.next(change('low'));
          for (let round = 0; round < 20 && w.requests.some((r) => r.status === 'waiting' || r.status === 'running'); round += 1) {
            await Promise.all(w.requests.filter((r) => r.status === 'running').map((r) => r.finish()));
            await sleepReal(100);
          }
          expect(w.requests.filter((r) => r.status === 'waiting' || r.status === 'running')).toEqual([]);
          for (const r of w.requests.filter((x) => x.status === 'rejected')) expect(r.error).toBeInstanceOf(GovernorError);
          // Let idle timers (0 or 300 ms) run out on what is still loaded.
          if (fake.loaded().length > 0) await sleepReal(400);
          expect(violations).toEqual([]);
        } finally {
          loads += fake.stats.loads;
          governor.stop();
          await fake.close();
        }
      }),
      { numRuns: 8, timeout: 15_000 },
    );
    // Not vacuous: models were loaded through the real client and unloaded by the governor.
    expect(loads).toBeGreaterThan(0);
    expect(unloads).toBeGreaterThan(0);
  });
});
