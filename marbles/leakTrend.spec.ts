import { EMPTY, NEVER, Subject, from, of, tap, throwError, type Observable } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import { leaksSchema } from '../src/app/schema/leaks.js';
import type { LeakCleared, LeakDetected, LeakEvent } from '../src/model.js';
import { LeakTrendError, leakTrend, type LeakInput, type LeakReset, type LeakTrendConfig } from '../src/operators/leakTrend.js';

/*
 * Time in these tests: one marble frame is one sample; the sample's own
 * timestampMs (what leakTrend reads) is one minute per sample, so a bucket
 * (1 min) holds one sample and `detectedAtMs` is the sample's minute. Long
 * traces (hours at 10 s) run synchronously through from(array).
 */
const MB = 1e6;
const MIN = 60_000;
const HOUR = 3_600_000;

/** Short windows so a leak shows within a few dozen samples: tolerance 4 min, young for 8 min. */
const quick: LeakTrendConfig = leaksSchema.parse({
  windowMs: '60m',
  minSpanMs: '4m',
  batchToleranceMs: '4m',
  persistence: 2,
  restartHoldMs: '2m',
  resetSettleMs: 0,
  fast: { windowMs: '8m' },
});
const defaults: LeakTrendConfig = leaksSchema.parse({});

/** A deterministic wiggle of 0..0.8 MB, so the floors are not a perfect line. */
const wiggle = (i: number) => ((i * 7919) % 5) * 0.2 * MB;

const SYMBOLS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

/** Marble string and values for one sample per frame: sample i at minute i (+ offset) with `bytes(i)` per component. */
function samples(count: number, bytes: (i: number) => Record<string, number>, opts: { offsetMin?: number; available?: (i: number) => number } = {}) {
  const values: Record<string, LeakInput> = {};
  let marble = '';
  for (let i = 0; i < count; i++) {
    const symbol = SYMBOLS[i] as string;
    marble += symbol;
    const input: LeakInput = { timestampMs: ((opts.offsetMin ?? 0) + i) * MIN, components: bytes(i) };
    if (opts.available) input.availableBytes = opts.available(i);
    values[symbol] = input;
  }
  return { marble, values };
}

/** Frames of silence, then `event` at frame `at`, then more silence up to `length` and `end`. */
function marbleAt(length: number, events: Record<number, string>, end = '|'): string {
  let out = '';
  for (let i = 0; i < length; i++) out += events[i] ?? '-';
  return out + end;
}

/** Asymmetric matcher: within `fraction` of `expected`. */
function near(expected: number, fraction: number) {
  return {
    asymmetricMatch: (actual: unknown) => typeof actual === 'number' && Math.abs(actual - expected) <= Math.abs(expected) * fraction,
    toString: () => `near(${expected}, ±${fraction * 100}%)`,
    toAsymmetricMatcher: () => `near(${expected}, ±${fraction * 100}%)`,
  };
}

function leak(component: string, atMin: number, slopeBytesPerHour: unknown, projectedExhaustionMs: unknown = null): LeakDetected {
  return {
    kind: 'leak',
    component,
    detectedAtMs: atMin * MIN,
    slopeBytesPerHour: slopeBytesPerHour as number,
    confidence: expect.toSatisfy((c: number) => c >= 0.5 && c <= 1) as unknown as number,
    projectedExhaustionMs: projectedExhaustionMs as number | null,
  };
}

function clear(component: string, atMin: number, reason: unknown): LeakCleared {
  return { kind: 'clear', component, atMs: atMin * MIN, reason: reason as string };
}

/** Runs `inputs` synchronously (from(array)), resets at their time; returns the events. */
function runSync(config: LeakTrendConfig, inputs: LeakInput[], resets: LeakReset[] = []): LeakEvent[] {
  const resets$ = new Subject<LeakReset>();
  const events: LeakEvent[] = [];
  let next = 0;
  let failure: unknown;
  from(inputs)
    .pipe(
      tap((input) => {
        while (next < resets.length && (resets[next] as LeakReset).atMs <= input.timestampMs) resets$.next(resets[next++] as LeakReset);
      }),
      leakTrend(config, resets$),
    )
    .subscribe({ next: (e) => events.push(e), error: (e: unknown) => (failure = e) });
  if (failure) throw failure;
  return events;
}

/** `hours` of samples every 10 s of one component. */
function trace(hours: number, bytes: (tMs: number) => number): LeakInput[] {
  return Array.from({ length: Math.round((hours * HOUR) / 10_000) }, (_, i) => ({ timestampMs: i * 10_000, components: { c: Math.round(bytes(i * 10_000)) } }));
}

/** Gaussian-ish noise from a seeded LCG (sum of 4 uniforms), sd `sigma`. */
function noise(seed: number, sigma: number): () => number {
  let state = seed >>> 0;
  const uniform = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 4294967296);
  return () => (uniform() + uniform() + uniform() + uniform() - 2) * sigma * Math.sqrt(3);
}

describe('leakTrend (marbles)', () => {
  let testScheduler: TestScheduler;

  beforeEach(() => {
    testScheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  });

  it('reports a linear leak once, at the sample completing the persistence, slope within ±15%, with the projected exhaustion', () => {
    // 600 MB/h = 10 MB a minute, 2 GB available shrinking as it grows
    const { marble, values } = samples(24, (i) => ({ ollama: 500 * MB + i * 10 * MB + wiggle(i) }), { available: (i) => 2000 * MB - i * 10 * MB });
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold(`${marble}|`, values);
      // at minute 12 memtide still sees 1880 MB available: it runs out 1880 MB / 600 MB/h = 188 min later
      expectObservable(source.pipe(leakTrend(quick))).toBe(marbleAt(24, { 12: 'L' }), {
        L: leak('ollama', 12, near(600 * MB, 0.15), near(12 * MIN + (1880 / 600) * HOUR, 0.01)),
      });
      expectSubscriptions(source.subscriptions).toBe(`^${'-'.repeat(23)}!`);
    });
  });

  it('GC sawtooth (150 MB ramps every 4 min, floors back to the same trough) is not a leak', () => {
    const { marble, values } = samples(48, (i) => ({ c: 500 * MB + (i % 4) * 50 * MB + wiggle(i) }));
    testScheduler.run(({ cold, expectObservable }) => {
      expectObservable(cold(`${marble}|`, values).pipe(leakTrend(quick))).toBe(marbleAt(48, {}));
    });
  });

  it('a step up (a 2 GB model load) and a step down later are not a leak', () => {
    const { marble, values } = samples(48, (i) => ({ c: 500 * MB + (i >= 10 && i < 30 ? 2000 * MB : 0) + wiggle(i) }));
    testScheduler.run(({ cold, expectObservable }) => {
      expectObservable(cold(`${marble}|`, values).pipe(leakTrend(quick))).toBe(marbleAt(48, {}));
    });
  });

  it('known loads (resets$) restart the window: a staircase of announced 15 MB loads is no leak, the same staircase unannounced is', () => {
    // +15 MB every 3 min: 300 MB/h, each step too small to be a step by itself (20 MB)
    const { marble, values } = samples(30, (i) => ({ c: 500 * MB + Math.floor(i / 3) * 15 * MB + wiggle(i) }));
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const source = cold(`${marble}|`, values);
      // a hot stream whose values carry their own minute: one symbol per announced load
      const announced: Record<string, LeakReset> = {};
      let announcedMarble = '';
      for (let i = 0; i < 30; i++) {
        if (i > 0 && i % 3 === 0) {
          const symbol = SYMBOLS[i] as string;
          announced[symbol] = { component: 'c', atMs: i * MIN };
          announcedMarble += symbol;
        } else announcedMarble += '-';
      }
      const resets$ = hot(announcedMarble, announced);
      expectObservable(source.pipe(leakTrend(quick, resets$))).toBe(marbleAt(30, {}));
      expectSubscriptions(resets$.subscriptions).toBe(`^${'-'.repeat(29)}!`);
      expectObservable(cold(`${marble}|`, values).pipe(leakTrend(quick))).toBe(marbleAt(30, { 16: 'L' }), { L: leak('c', 16, near(300 * MB, 0.15)) });
    });
  });

  it('a leak that starts mid-run is reported once it has grown long enough, with its own slope', () => {
    // flat for 10 minutes, then 300 MB/h
    const { marble, values } = samples(30, (i) => ({ c: 500 * MB + Math.max(0, i - 10) * 5 * MB + wiggle(i) }));
    testScheduler.run(({ cold, expectObservable }) => {
      expectObservable(cold(`${marble}|`, values).pipe(leakTrend(quick))).toBe(marbleAt(30, { 22: 'L' }), { L: leak('c', 22, near(300 * MB, 0.15)) });
    });
  });

  it('a restart resets the leak: leak, clear (memory fell below its floor), leak again when growth resumes', () => {
    // 300 MB/h for 25 minutes, the process restarts (back to 500 MB), and leaks again
    const { marble, values } = samples(50, (i) => ({ c: 500 * MB + (i < 25 ? i : i - 25) * 5 * MB + wiggle(i) }));
    testScheduler.run(({ cold, expectObservable }) => {
      expectObservable(cold(`${marble}|`, values).pipe(leakTrend(quick))).toBe(marbleAt(50, { 12: 'L', 28: 'C', 37: 'M' }), {
        L: leak('c', 12, near(300 * MB, 0.15)),
        C: clear('c', 28, expect.stringMatching(/^memory fell by .* below its floor \(restart or unload\)$/)),
        M: leak('c', 37, near(300 * MB, 0.15)),
      });
    });
  });

  it('clears when growth stops', () => {
    // 300 MB/h for 25 minutes, then flat
    const { marble, values } = samples(50, (i) => ({ c: 500 * MB + Math.min(i, 25) * 5 * MB + wiggle(i) }));
    testScheduler.run(({ cold, expectObservable }) => {
      expectObservable(cold(`${marble}|`, values).pipe(leakTrend(quick))).toBe(marbleAt(50, { 12: 'L', 40: 'C' }), {
        L: leak('c', 12, near(300 * MB, 0.15)),
        C: clear('c', 40, 'growth stopped (reported 28m ago)'),
      });
    });
  });

  it('components are independent: one leaks, one is flat, one loads a model', () => {
    const { marble, values } = samples(24, (i) => ({
      ollama: 500 * MB + i * 10 * MB + wiggle(i),
      audio: 300 * MB + wiggle(i + 1),
      frontend: 800 * MB + (i >= 8 ? 1500 * MB : 0) + wiggle(i + 2),
    }));
    testScheduler.run(({ cold, expectObservable }) => {
      expectObservable(cold(`${marble}|`, values).pipe(leakTrend(quick))).toBe(marbleAt(24, { 12: 'L' }), { L: leak('ollama', 12, near(600 * MB, 0.15)) });
    });
  });

  it('propagates an error of the source and unsubscribes it', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const { values } = samples(3, (i) => ({ c: 500 * MB + i }));
      const source = cold('a-b-#', values, new Error('boom'));
      expectObservable(source.pipe(leakTrend(quick))).toBe('----#', undefined, new Error('boom'));
      expectSubscriptions(source.subscriptions).toBe('^---!');
    });
  });

  it('propagates an error of resets$ and unsubscribes the source', () => {
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const { values } = samples(6, (i) => ({ c: 500 * MB + i }));
      const source = cold('abcdef|', values);
      const resets$ = hot<LeakReset>('--#', undefined, new Error('governor gone'));
      expectObservable(source.pipe(leakTrend(quick, resets$))).toBe('--#', undefined, new Error('governor gone'));
      expectSubscriptions(source.subscriptions).toBe('^-!');
      expectSubscriptions(resets$.subscriptions).toBe('^-!');
    });
  });

  it('completes with the source even when resets$ never does (and resets$ completing early changes nothing)', () => {
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const { values } = samples(4, (i) => ({ c: 500 * MB + i }));
      const resets$ = hot<LeakReset>('-------');
      expectObservable(cold('abcd|', values).pipe(leakTrend(quick, resets$))).toBe('----|');
      expectSubscriptions(resets$.subscriptions).toBe('^---!');
      expectObservable(cold('abcd|', values).pipe(leakTrend(quick, cold<LeakReset>('|')))).toBe('----|');
    });
  });

  it('allows early unsubscription (source, config and resets$ are all let go)', () => {
    const { marble, values } = samples(24, (i) => ({ c: 500 * MB + i * 10 * MB + wiggle(i) }));
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const source = cold(`${marble}|`, values);
      const config = hot('c---------', { c: quick });
      const resets$ = hot<LeakReset>('----------');
      const unsub = '^-----!';
      // unsubscribed before the leak is reported at minute 12: nothing is emitted
      expectObservable(source.pipe(leakTrend(config, resets$)), unsub).toBe('-------');
      expectSubscriptions(source.subscriptions).toBe('^-----!');
      expectSubscriptions(config.subscriptions).toBe('^-----!');
      expectSubscriptions(resets$.subscriptions).toBe('^-----!');
    });
  });

  it('completes with nothing on an empty source', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold<LeakInput>('|');
      expectObservable(source.pipe(leakTrend(quick))).toBe('|');
      expectSubscriptions(source.subscriptions).toBe('(^!)');
    });
  });

  it('config as a hot Observable: the latest value applies from the next sample (one in the same frame comes first); switching detection off clears a reported leak', () => {
    const { marble, values } = samples(24, (i) => ({ c: 500 * MB + i * 10 * MB + wiggle(i) }));
    const off = leaksSchema.parse({ ...quick, enabled: false });
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const config = hot(`c${'-'.repeat(15)}o`, { c: quick, o: off });
      const source = cold(`${marble}|`, values);
      expectObservable(source.pipe(leakTrend(config))).toBe(marbleAt(24, { 12: 'L', 16: 'C' }), {
        L: leak('c', 12, near(600 * MB, 0.15)),
        C: clear('c', 16, 'leak detection disabled'),
      });
      expectSubscriptions(config.subscriptions).toBe(`^${'-'.repeat(23)}!`);
    });
  });

  it('config: samples before the first config value are ignored; a component in `ignore` is never reported', () => {
    const { marble, values } = samples(24, (i) => ({ c: 500 * MB + i * 10 * MB + wiggle(i), d: 500 * MB + i * 10 * MB + wiggle(i) }));
    const ignoringD = leaksSchema.parse({ ...quick, ignore: ['d'] });
    testScheduler.run(({ cold, hot, expectObservable }) => {
      // the config arrives at frame 5: minute 5 is the first sample seen, so the leak shows 5 minutes later
      const config = hot('-----c', { c: ignoringD });
      expectObservable(cold(`${marble}|`, values).pipe(leakTrend(config))).toBe(marbleAt(24, { 17: 'L' }), { L: leak('c', 17, near(600 * MB, 0.15)) });
    });
  });

  it('invalid input (negative bytes) becomes a LeakTrendError naming the field and unsubscribes the source', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('a-b-c', {
        a: { timestampMs: 0, components: { c: 1 } },
        b: { timestampMs: MIN, components: { c: -5 } },
        c: { timestampMs: 2 * MIN, components: { c: 1 } },
      });
      expectObservable(source.pipe(leakTrend(quick))).toBe(
        '--#',
        undefined,
        new LeakTrendError('components.c must be a non-negative number of bytes, got -5 (sample at 60000)'),
      );
      expectSubscriptions(source.subscriptions).toBe('^-!');
    });
  });

  it('invalid input (timestamp NaN) errors with code MEMTIDE_ERR_LEAK_INPUT', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('-a', { a: { timestampMs: Number.NaN, components: {} } });
      expectObservable(source.pipe(leakTrend(quick))).toBe('-#', undefined, expect.objectContaining({ name: 'LeakTrendError', code: 'MEMTIDE_ERR_LEAK_INPUT' }));
    });
  });

  it('an invalid reset becomes a LeakTrendError', () => {
    testScheduler.run(({ cold, hot, expectObservable }) => {
      const resets$ = hot('-r', { r: { component: 'c', atMs: Number.NaN } as LeakReset });
      expectObservable(cold('a---|', { a: { timestampMs: 0, components: { c: 1 } } }).pipe(leakTrend(quick, resets$))).toBe(
        '-#',
        undefined,
        expect.objectContaining({ code: 'MEMTIDE_ERR_LEAK_INPUT' }),
      );
    });
  });

  describe('long traces (hours at 10 s, run synchronously; default config)', () => {
    it('a cache warm-up that saturates (400 MB, time constant 30 min) is not a leak', () => {
      const jitter = noise(1, 5 * MB);
      expect(runSync(defaults, trace(6, (t) => 800 * MB + 400 * MB * (1 - Math.exp(-t / (30 * MIN))) + jitter()))).toEqual([]);
    });

    it('a periodic batch (600 MB over 5 min, freed 15 min after it started, every 45 min) is not a leak', () => {
      const jitter = noise(2, 5 * MB);
      const batch = (t: number) => {
        const into = t % (45 * MIN);
        if (into < 5 * MIN) return (600 * MB * into) / (5 * MIN);
        return into < 15 * MIN ? 600 * MB : 0;
      };
      expect(runSync(defaults, trace(6, (t) => 1000 * MB + batch(t) + jitter()))).toEqual([]);
    });

    it('a V8-like GC sawtooth (100 MB every 90 s, longer than a bucket) on a 30 MB/h leak: found within 90 min, near its slope', () => {
      const jitter = noise(3, 5 * MB);
      const events = runSync(defaults, trace(4, (t) => 700 * MB + ((t % 90_000) / 90_000) * 100 * MB + (30 * MB * t) / HOUR + jitter()));
      expect(events).toEqual([{ ...leak('c', 0, near(30 * MB, 0.3)), detectedAtMs: expect.toSatisfy((at: number) => at <= 90 * MIN) }]);
    });

    it('a leak across a known model load (resets$) is still found, on the load segment alone', () => {
      const jitter = noise(4, 2 * MB);
      const load = 90 * MIN;
      const inputs = trace(5, (t) => 600 * MB + (t >= load ? 2000 * MB : 0) + (100 * MB * t) / HOUR + jitter());
      const events = runSync(defaults, inputs, [{ component: 'c', atMs: load }]);
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ kind: 'leak', component: 'c', slopeBytesPerHour: near(100 * MB, 0.15) });
    });
  });

  describe('synchronous sources', () => {
    it('stops reading a synchronous source at the first invalid sample', () => {
      let read = 0;
      const errors: unknown[] = [];
      from([{ timestampMs: 0, components: { c: Number.POSITIVE_INFINITY } }, { timestampMs: MIN, components: { c: 1 } }])
        .pipe(
          tap(() => (read += 1)),
          leakTrend(quick),
        )
        .subscribe({ error: (e: unknown) => errors.push(e) });
      expect(read).toBe(1);
      expect(errors).toEqual([expect.objectContaining({ code: 'MEMTIDE_ERR_LEAK_INPUT' })]);
    });

    it('never reads the source when the config has already failed', () => {
      let read = 0;
      const errors: unknown[] = [];
      from([{ timestampMs: 0, components: { c: 1 } }])
        .pipe(
          tap(() => (read += 1)),
          leakTrend(throwError(() => new Error('cfg')) as Observable<LeakTrendConfig>),
        )
        .subscribe({ error: (e: unknown) => errors.push(e) });
      expect(read).toBe(0);
      expect(errors).toEqual([new Error('cfg')]);
    });

    it('accepts NEVER / EMPTY / of() as resets$ and a plain config', () => {
      for (const resets$ of [NEVER, EMPTY, of<LeakReset>()]) {
        const seen: LeakEvent[] = [];
        let completed = false;
        from([{ timestampMs: 0, components: { c: 1 } }])
          .pipe(leakTrend(quick, resets$))
          .subscribe({ next: (e) => seen.push(e), complete: () => (completed = true), error: () => undefined });
        expect(seen).toEqual([]);
        expect(completed).toBe(true);
      }
    });
  });
});
