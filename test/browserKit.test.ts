/**
 * The browser kit's logic, in Node: windowing math (properties), the asset
 * cache against a model of an LRU with a byte budget (fc.commands), the ring
 * buffer, idle cleanup and the memory reporter's backoff (fake timers). The
 * DOM parts are in test/react.test.ts (happy-dom) and test/browser/ (Chromium).
 */
import { test as propTest, fc } from '@fast-check/vitest';
import { afterEach, describe, expect, expectTypeOf, it, vi } from 'vitest';
import type { MemorySample, PressureChange } from '../src/model.js';
import { AssetCache, AssetCacheError, estimateBytes } from '../src/browser/assetCache.js';
import { createIdleCleanup, type IdleDeadlineLike, type IdleHost } from '../src/browser/idleCleanup.js';
import type { LiveSample, PressureEvent } from '../src/browser/liveTypes.js';
import { backoffDelay, startMemoryReporter, type PageMemorySample } from '../src/browser/memorySampler.js';
import { RingBuffer } from '../src/browser/ringBuffer.js';
import { computeVirtualRange, VirtualListError } from '../src/browser/virtualList.js';

describe('live feed types', () => {
  it('mirror src/model.ts (checked by the typecheck)', () => {
    expectTypeOf<PressureChange>().toEqualTypeOf<PressureEvent>();
    expectTypeOf<Pick<MemorySample, 'timestampMs' | 'system' | 'components' | 'self'>>().toExtend<LiveSample>();
  });
});

describe('computeVirtualRange', () => {
  const input = fc.record({
    itemCount: fc.integer({ min: 0, max: 2_000_000 }),
    itemHeight: fc.oneof(fc.integer({ min: 1, max: 120 }), fc.double({ min: 0.5, max: 120, noNaN: true })),
    viewportHeight: fc.oneof(fc.integer({ min: 0, max: 4000 }), fc.double({ min: 0, max: 4000, noNaN: true })),
    scrollTop: fc.oneof(fc.integer({ min: 0, max: 300_000_000 }), fc.double({ min: -100, max: 300_000_000, noNaN: true })),
    overscan: fc.integer({ min: 0, max: 30 }),
  });

  propTest.prop([input])('covers every row that intersects the viewport, and never more than visible + 2 x overscan', (i) => {
    const r = computeVirtualRange(i);
    expect(r.start).toBeGreaterThanOrEqual(0);
    expect(r.end).toBeLessThanOrEqual(i.itemCount);
    expect(r.start).toBeLessThanOrEqual(r.end);
    expect(r.end - r.start).toBeLessThanOrEqual(r.visibleCount + 2 * i.overscan);
    expect(r.offsetTop).toBe(r.start * i.itemHeight);
    expect(r.totalHeight).toBe(i.itemCount * i.itemHeight);
    // Brute force, independent of the implementation's formulas: rows near the viewport that intersect it.
    const top = Math.min(Math.max(0, i.scrollTop), Math.max(0, r.totalHeight - i.viewportHeight));
    const bottom = top + i.viewportHeight;
    const from = Math.max(0, Math.floor(top / i.itemHeight) - 3);
    const to = Math.min(i.itemCount, Math.ceil(bottom / i.itemHeight) + 3);
    for (let row = from; row < to; row++) {
      const intersects = row * i.itemHeight < bottom && (row + 1) * i.itemHeight > top;
      if (intersects) {
        expect(row, `row ${row} is in view`).toBeGreaterThanOrEqual(r.start);
        expect(row, `row ${row} is in view`).toBeLessThan(r.end);
      }
    }
  });

  it('scrolled to the end shows the last row; an empty list renders nothing', () => {
    const end = computeVirtualRange({ itemCount: 100_000, itemHeight: 30, viewportHeight: 420, scrollTop: 1e12, overscan: 8 });
    expect(end.end).toBe(100_000);
    expect(end.end - end.start).toBeLessThanOrEqual(15 + 16);
    expect(computeVirtualRange({ itemCount: 0, itemHeight: 30, viewportHeight: 420, scrollTop: 0 })).toMatchObject({ start: 0, end: 0, totalHeight: 0 });
  });

  it('refuses a row height that is not a positive number', () => {
    for (const itemHeight of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => computeVirtualRange({ itemCount: 10, itemHeight, viewportHeight: 100, scrollTop: 0 })).toThrow(VirtualListError);
    }
  });
});

describe('RingBuffer', () => {
  propTest.prop([fc.integer({ min: 1, max: 50 }), fc.array(fc.integer(), { maxLength: 300 })])('holds the newest `capacity` items in order', (capacity, items) => {
    const ring = new RingBuffer<number>(capacity);
    const evicted: number[] = [];
    for (const item of items) {
      const out = ring.push(item);
      if (out !== undefined) evicted.push(out);
    }
    const expected = items.slice(-capacity);
    expect(ring.toArray()).toEqual(expected);
    expect([...ring]).toEqual(expected);
    expect(ring.length).toBe(expected.length);
    expect(ring.last()).toBe(expected.at(-1));
    expect(evicted).toEqual(items.slice(0, Math.max(0, items.length - capacity)));
    const reused = [9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9];
    expect(ring.toArray(reused)).toBe(reused);
    expect(reused).toEqual(expected);
  });

  it('refuses a capacity that is not a positive integer', () => {
    expect(() => new RingBuffer(0)).toThrow(RangeError);
    expect(() => new RingBuffer(1.5)).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------
// AssetCache: model-based
// ---------------------------------------------------------------------------

const BUDGET = 100;

interface Value {
  id: number;
  size: number;
}

interface Model {
  /** Least recently used first. */
  entries: Array<{ key: string; value: Value }>;
  hits: number;
  misses: number;
  evictions: number;
  rejected: number;
  released: Set<number>;
}

interface Real {
  cache: AssetCache<Value>;
  released: number[];
  nextId: number;
}

const total = (entries: Model['entries']) => entries.reduce((sum, e) => sum + e.value.size, 0);

function check(model: Model, real: Real): void {
  const stats = real.cache.stats();
  expect(real.cache.keys()).toEqual(model.entries.map((e) => e.key).reverse());
  expect(stats.bytes).toBe(total(model.entries));
  expect(stats.bytes).toBeLessThanOrEqual(BUDGET);
  expect(stats).toMatchObject({ hits: model.hits, misses: model.misses, evictions: model.evictions, rejected: model.rejected, entries: model.entries.length });
  expect(stats.hitRate).toBe(model.hits + model.misses === 0 ? 0 : model.hits / (model.hits + model.misses));
  // Every value that left was released exactly once, and no live value was.
  expect(new Set(real.released).size).toBe(real.released.length);
  expect(new Set(real.released)).toEqual(model.released);
  for (const e of model.entries) expect(model.released.has(e.value.id)).toBe(false);
}

class SetCommand implements fc.Command<Model, Real> {
  constructor(
    readonly key: string,
    readonly size: number,
  ) {}
  check = () => true;
  run(model: Model, real: Real): void {
    const value = { id: real.nextId++, size: this.size };
    const stored = real.cache.set(this.key, value);
    const old = model.entries.find((e) => e.key === this.key);
    const others = model.entries.filter((e) => e.key !== this.key);
    if (old) model.released.add(old.value.id);
    if (this.size > BUDGET) {
      expect(stored).toBe(false);
      model.entries = others;
      model.rejected++;
    } else {
      expect(stored).toBe(true);
      while (total(others) > BUDGET - this.size) {
        const evicted = others.shift() as Model['entries'][number];
        model.released.add(evicted.value.id);
        model.evictions++;
      }
      model.entries = [...others, { key: this.key, value }];
    }
    check(model, real);
  }
  toString = () => `set(${this.key}, ${this.size})`;
}

class GetCommand implements fc.Command<Model, Real> {
  constructor(readonly key: string) {}
  check = () => true;
  run(model: Model, real: Real): void {
    const got = real.cache.get(this.key);
    const index = model.entries.findIndex((e) => e.key === this.key);
    if (index < 0) {
      expect(got).toBeUndefined();
      model.misses++;
    } else {
      const [entry] = model.entries.splice(index, 1);
      expect(got).toBe(entry?.value);
      model.entries.push(entry as Model['entries'][number]);
      model.hits++;
    }
    check(model, real);
  }
  toString = () => `get(${this.key})`;
}

class DeleteCommand implements fc.Command<Model, Real> {
  constructor(readonly key: string) {}
  check = () => true;
  run(model: Model, real: Real): void {
    const index = model.entries.findIndex((e) => e.key === this.key);
    expect(real.cache.delete(this.key)).toBe(index >= 0);
    if (index >= 0) model.released.add((model.entries.splice(index, 1)[0] as Model['entries'][number]).value.id);
    check(model, real);
  }
  toString = () => `delete(${this.key})`;
}

class TrimCommand implements fc.Command<Model, Real> {
  constructor(readonly target: number) {}
  check = () => true;
  run(model: Model, real: Real): void {
    real.cache.trim(this.target);
    while (total(model.entries) > this.target) {
      model.released.add((model.entries.shift() as Model['entries'][number]).value.id);
      model.evictions++;
    }
    check(model, real);
  }
  toString = () => `trim(${this.target})`;
}

describe('AssetCache', () => {
  const key = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g');
  const commands = [
    // Sets weigh double, and sizes are a good part of the budget, so evictions happen in most runs.
    fc.tuple(key, fc.oneof(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 90, max: 130 }))).map(([k, s]) => new SetCommand(k, s)),
    fc.tuple(key, fc.integer({ min: 15, max: 60 })).map(([k, s]) => new SetCommand(k, s)),
    key.map((k) => new GetCommand(k)),
    key.map((k) => new DeleteCommand(k)),
    fc.integer({ min: 0, max: BUDGET }).map((t) => new TrimCommand(t)),
  ];

  it('behaves like an LRU with a byte budget: counters, eviction order, every value released once (fc.commands)', () => {
    fc.assert(
      fc.property(fc.commands(commands, { maxCommands: 60, size: 'large' }), (cmds) => {
        const released: number[] = [];
        const real: Real = {
          cache: new AssetCache<Value>({ maxBytes: BUDGET, sizeOf: (v) => v.size, release: (v) => released.push(v.id) }),
          released,
          nextId: 0,
        };
        const model: Model = { entries: [], hits: 0, misses: 0, evictions: 0, rejected: 0, released: new Set() };
        fc.modelRun(() => ({ model, real }), cmds);
        // dispose releases whatever is left, and the cache then stores nothing.
        real.cache.dispose();
        for (const e of model.entries) model.released.add(e.value.id);
        expect(new Set(released)).toEqual(model.released);
        expect(released.length).toBe(model.released.size);
        expect(real.cache.set('z', { id: -1, size: 1 })).toBe(false);
        expect(real.cache.get('z')).toBeUndefined();
        expect(real.cache.size).toBe(0);
      }),
      { numRuns: 200 },
    );
  });

  it('revokes object URLs when they leave, sized by their Blob', () => {
    const revoke = vi.spyOn(URL, 'revokeObjectURL');
    const cache = new AssetCache({ maxBytes: 1000 });
    const a = cache.setObjectUrl('a', new Blob([new Uint8Array(600)]));
    expect(a?.url).toMatch(/^blob:/);
    expect(cache.bytes).toBe(600);
    cache.setObjectUrl('b', new Blob([new Uint8Array(600)])); // evicts a
    expect(revoke).toHaveBeenCalledWith(a?.url);
    expect(cache.stats().evictions).toBe(1);
    expect(cache.setObjectUrl('huge', new Blob([new Uint8Array(2000)]))).toBeNull();
    cache.dispose();
    expect(revoke).toHaveBeenCalledTimes(2);
    revoke.mockRestore();
  });

  it('shares one load between concurrent callers and does not cache a failure', async () => {
    const cache = new AssetCache<{ n: number }>({ maxBytes: 1000 });
    let loads = 0;
    const load = () => new Promise<{ n: number }>((resolve) => setTimeout(() => resolve({ n: ++loads }), 5));
    const [x, y] = await Promise.all([cache.getOrLoad('k', load), cache.getOrLoad('k', load)]);
    expect(x).toBe(y);
    expect(loads).toBe(1);
    expect(await cache.getOrLoad('k', load)).toBe(x);
    expect(cache.stats()).toMatchObject({ hits: 1, misses: 2 });
    await expect(cache.getOrLoad('bad', () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(cache.has('bad')).toBe(false);
  });

  it('estimates sizes and checks its options', () => {
    expect(estimateBytes(new ArrayBuffer(123))).toBe(123);
    expect(estimateBytes(new Float64Array(10))).toBe(80);
    expect(estimateBytes('abcd')).toBe(8);
    expect(estimateBytes({ a: 1 })).toBe(14);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(estimateBytes(cyclic)).toBe(1024);
    expect(() => new AssetCache({ maxBytes: 0 })).toThrow(AssetCacheError);
    expect(() => new AssetCache({ maxBytes: 10, maxEntries: -1 })).toThrow(/maxEntries/);
    expect(() => new AssetCache({ maxBytes: 10, ttlMs: Number.NaN })).toThrow(/ttlMs/);
  });

  it('counts expirations separately from evictions', async () => {
    const cache = new AssetCache<{ v: number }>({ maxBytes: 100, ttlMs: 20, sizeOf: () => 1 });
    cache.set('a', { v: 1 });
    await new Promise((resolve) => setTimeout(resolve, 60));
    cache.purgeStale();
    expect(cache.stats()).toMatchObject({ expirations: 1, evictions: 0, entries: 0 });
  });
});

// ---------------------------------------------------------------------------
// Idle cleanup
// ---------------------------------------------------------------------------

/** A host with requestIdleCallback whose deadlines the test controls. */
function idleHost(budgets: number[]) {
  const pending = new Map<number, (deadline: IdleDeadlineLike) => void>();
  let next = 1;
  const host: IdleHost = {
    requestIdleCallback: (callback) => {
      pending.set(next, callback);
      return next++;
    },
    cancelIdleCallback: (handle) => pending.delete(handle),
    setTimeout: (callback, ms) => setTimeout(callback, ms),
    clearTimeout: (handle) => clearTimeout(handle as unknown as ReturnType<typeof setTimeout>),
  };
  /** Runs the pending idle callbacks with the next budget each. */
  const idle = () => {
    const callbacks = [...pending.values()];
    pending.clear();
    for (const callback of callbacks) {
      const budget = budgets.shift() ?? 50;
      let remaining = budget;
      callback({ didTimeout: false, timeRemaining: () => Math.max(0, remaining--) });
    }
  };
  return { host, idle, pending };
}

describe('createIdleCleanup', () => {
  afterEach(() => vi.useRealTimers());

  it('falls back to setTimeout, runs every cleanup once per schedule, and is cancellable', () => {
    vi.useFakeTimers();
    const host: IdleHost = { setTimeout: (cb, ms) => setTimeout(cb, ms), clearTimeout: (h) => clearTimeout(h as never) };
    const idle = createIdleCleanup({ host });
    const ran: string[] = [];
    idle.register('a', () => ran.push('a'));
    const removeB = idle.register('b', () => ran.push('b'));
    idle.schedule();
    idle.schedule(); // coalesced
    expect(idle.pending).toBe(true);
    vi.advanceTimersByTime(5);
    expect(ran).toEqual(['a', 'b']);
    removeB();
    idle.schedule();
    idle.cancel();
    vi.advanceTimersByTime(5);
    expect(ran).toEqual(['a', 'b']);
    idle.runNow();
    expect(ran).toEqual(['a', 'b', 'a']);
  });

  it('spreads cleanups over idle periods when time runs out, one at least per period', () => {
    const { host, idle, pending } = idleHost([1, 0, 0]);
    const cleanup = createIdleCleanup({ host });
    const ran: number[] = [];
    for (let i = 0; i < 3; i++) cleanup.register(`c${i}`, () => ran.push(i));
    cleanup.schedule();
    idle(); // budget 1: runs c0, then c1 while timeRemaining() was 1, then stops
    expect(ran.length).toBeGreaterThanOrEqual(1);
    expect(ran.length).toBeLessThan(3);
    expect(pending.size).toBe(1);
    idle();
    idle();
    expect(ran).toEqual([0, 1, 2]);
    expect(pending.size).toBe(0);
  });

  it('reports a failing cleanup and still runs the others; repeats on its interval; dispose stops everything', () => {
    vi.useFakeTimers();
    const host: IdleHost = { setTimeout: (cb, ms) => setTimeout(cb, ms), clearTimeout: (h) => clearTimeout(h as never) };
    const errors: string[] = [];
    const idle = createIdleCleanup({ host, intervalMs: 1000, onError: (_e, name) => errors.push(name) });
    let runs = 0;
    idle.register('bad', () => {
      throw new Error('boom');
    });
    idle.register('good', () => runs++);
    vi.advanceTimersByTime(1010);
    expect(runs).toBe(1);
    expect(errors).toEqual(['bad']);
    vi.advanceTimersByTime(1010);
    expect(runs).toBe(2);
    idle.dispose();
    vi.advanceTimersByTime(5000);
    expect(runs).toBe(2);
    expect(vi.getTimerCount()).toBe(0);
    expect(idle.size).toBe(0);
  });
});

// ---------------------------------------------------------------------------
// Memory reporter
// ---------------------------------------------------------------------------

describe('startMemoryReporter', () => {
  afterEach(() => vi.useRealTimers());

  const sample = (): PageMemorySample => ({ bytes: 5_000_000, source: 'performance.memory', atMs: Date.now() });

  it('backoff doubles from the interval up to the cap', () => {
    expect([0, 1, 2, 3, 10, 100].map((f) => backoffDelay(1000, f, 30_000))).toEqual([1000, 2000, 4000, 8000, 30_000, 30_000]);
  });

  it('posts { bytes, source, atMs } with the token, backs off while the runner fails, resets after a success, stops cleanly', async () => {
    vi.useFakeTimers();
    const statuses = [404, 503, 500, 204, 204];
    const calls: Array<{ url: string; init: RequestInit; atMs: number }> = [];
    const fetchStub = vi.fn(async (url: RequestInfo | URL, init?: RequestInit) => {
      calls.push({ url: String(url), init: init as RequestInit, atMs: Date.now() });
      const status = statuses.shift() ?? 204;
      return new Response(status === 204 ? null : 'x', { status });
    });
    const errors: Array<number | null> = [];
    const reporter = startMemoryReporter({
      intervalMs: 1000,
      maxBackoffMs: 6000,
      token: () => 'secret',
      fetch: fetchStub as unknown as typeof fetch,
      measure: async () => sample(),
      onError: (e) => errors.push(e.status),
    });
    const start = Date.now();
    await vi.advanceTimersByTimeAsync(0);
    await vi.advanceTimersByTimeAsync(20_000);
    reporter.stop();
    const gaps = calls.map((c) => c.atMs - start);
    // 404 at 0, then 2 s (1 failure), 4 s (2), 6 s (3: capped), success, then every 1 s.
    expect(gaps.slice(0, 6)).toEqual([0, 2000, 6000, 12_000, 13_000, 14_000]);
    expect(errors).toEqual([404, 503, 500]);
    expect(reporter.failures).toBe(0);
    const first = calls[0] as (typeof calls)[number];
    expect(first.url).toBe('/api/frontend-memory');
    expect(first.init.method).toBe('POST');
    expect((first.init.headers as Record<string, string>).authorization).toBe('Bearer secret');
    expect(Object.keys(JSON.parse(String(first.init.body))).sort()).toEqual(['atMs', 'bytes', 'source']);
    const count = calls.length;
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls.length).toBe(count);
    expect(reporter.stopped).toBe(true);
  });

  it('gives up at once where the browser has no memory API', async () => {
    vi.useFakeTimers();
    const fetchStub = vi.fn();
    const reporter = startMemoryReporter({ fetch: fetchStub as unknown as typeof fetch, measure: async () => null });
    await vi.advanceTimersByTimeAsync(100_000);
    expect(reporter.supported).toBe(false);
    expect(reporter.stopped).toBe(true);
    expect(fetchStub).not.toHaveBeenCalled();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('measures only, with endpoint null', async () => {
    vi.useFakeTimers();
    const fetchStub = vi.fn();
    const seen: PageMemorySample[] = [];
    const reporter = startMemoryReporter({ endpoint: null, intervalMs: 1000, fetch: fetchStub as unknown as typeof fetch, measure: async () => sample(), onSample: (s) => seen.push(s) });
    await vi.advanceTimersByTimeAsync(3500);
    reporter.stop();
    expect(seen.length).toBe(4);
    expect(fetchStub).not.toHaveBeenCalled();
    expect(reporter.latest?.bytes).toBe(5_000_000);
  });
});
