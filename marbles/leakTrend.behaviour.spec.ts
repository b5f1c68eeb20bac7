/**
 * leakTrend: the stream contract (marbles: empty, error, unsubscribe, bad
 * input) and the behaviour on long synthetic traces that any tuning must keep
 * (run with `from(array)`: hours at 10 s sampling do not fit a marble line).
 */
import { EMPTY, from, lastValueFrom, of, toArray } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import { leaksSchema } from '../src/app/schema/leaks.js';
import type { LeakEvent } from '../src/model.js';
import { leakTrend, LeakTrendError, type LeakInput, type LeakReset } from '../src/operators/leakTrend.js';
import { prng } from '../test/support/prng.js';

const config = leaksSchema.parse({});
const MB = 1e6;
const HOUR = 3_600_000;
const STEP_MS = 10_000;
const T0 = 1_700_000_000_000;


/** `hours` of samples every 10 s; `bytes(hoursSinceStart, noise)` per component. */
function trace(hours: number, components: Record<string, (h: number, noise: () => number) => number>, seed = 7): LeakInput[] {
  const random = prng(seed);
  const noise = () => (random() - 0.5) * 2;
  const out: LeakInput[] = [];
  for (let i = 0; i * STEP_MS <= hours * HOUR; i += 1) {
    const h = (i * STEP_MS) / HOUR;
    const values: Record<string, number> = {};
    for (const [name, f] of Object.entries(components)) values[name] = Math.max(0, Math.round(f(h, noise)));
    out.push({ timestampMs: T0 + i * STEP_MS, components: values, availableBytes: 4e9 });
  }
  return out;
}

const run = (inputs: LeakInput[], resets: LeakReset[] = []) =>
  lastValueFrom(from(inputs).pipe(leakTrend(config, resets.length ? from(resets) : EMPTY), toArray()));

const leaksOf = (events: LeakEvent[], component: string) => events.filter((e) => e.kind === 'leak' && e.component === component);

describe('leakTrend (marbles)', () => {
  let testScheduler: TestScheduler;
  beforeEach(() => {
    testScheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  });

  it('completes with nothing on an empty source', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold<LeakInput>('|');
      expectObservable(source.pipe(leakTrend(config, EMPTY, testScheduler))).toBe('|');
      expectSubscriptions(source.subscriptions).toBe('(^!)');
    });
  });

  it('emits nothing for a flat component and completes with the source', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const s = (i: number): LeakInput => ({ timestampMs: T0 + i * 60_000, components: { engine: 300 * MB }, availableBytes: 4e9 });
      const source = cold('a-b-c-d|', { a: s(0), b: s(1), c: s(2), d: s(3) });
      expectObservable(source.pipe(leakTrend(config, EMPTY, testScheduler))).toBe('-------|');
    });
  });

  it('passes a source error through', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold<LeakInput>('--#', undefined, new Error('proc gone'));
      expectObservable(source.pipe(leakTrend(config, EMPTY, testScheduler))).toBe('--#', undefined, new Error('proc gone'));
      expectSubscriptions(source.subscriptions).toBe('^-!');
    });
  });

  it('unsubscribes from the source and the resets when the subscriber leaves', () => {
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const s: LeakInput = { timestampMs: T0, components: { ollama: 500 * MB }, availableBytes: 4e9 };
      const source = cold('a-a-a-a-a-', { a: s });
      const resets = hot<LeakReset>('----------');
      expectObservable(source.pipe(leakTrend(config, resets, testScheduler)), '^---!').toBe('-----');
      expectSubscriptions(source.subscriptions).toBe('^---!');
      expectSubscriptions(resets.subscriptions).toBe('^---!');
    });
  });

  it('turns invalid input into a LeakTrendError naming the field', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const bad = { timestampMs: T0, components: { ollama: -1 } } as LeakInput;
      const source = cold('a|', { a: bad });
      expectObservable(source.pipe(leakTrend(config, EMPTY, testScheduler))).toBe(
        '#',
        undefined,
        new LeakTrendError(`components.ollama must be a non-negative number of bytes, got -1 (sample at ${T0})`),
      );
    });
  });

  it('ignores samples until the config observable has a value', () => {
    testScheduler.run(({ cold, hot, expectObservable }) => {
      const s: LeakInput = { timestampMs: T0, components: { ollama: 500 * MB }, availableBytes: 4e9 };
      const config$ = hot('---c', { c: config });
      expectObservable(cold('a-a-a-a|', { a: s }).pipe(leakTrend(config$, EMPTY, testScheduler))).toBe('-------|');
    });
  });
});

describe('leakTrend on long traces', () => {
  it('finds a 100 MB/h leak that starts mid-run, once, with its slope, and not the flat or sawtooth neighbours', async () => {
    const events = await run(
      trace(6, {
        ollama: (h, n) => 500 * MB + Math.max(0, h - 1) * 100 * MB + n() * 5 * MB,
        engine: (_h, n) => 80 * MB + n() * 3 * MB,
        backend: (h, n) => 400 * MB + ((h * 3600) % 300) * 0.3 * MB + n() * 5 * MB, // GC sawtooth, 5 min period
      }),
    );
    const found = leaksOf(events, 'ollama');
    expect(found).toHaveLength(1);
    const leak = found[0]!;
    // The slope at detection still averages over the flat hour before the leak began: it is low
    // (a known limit, docs/leaks.md), but it is growth, and it is found within the 100 MB/h target.
    expect(leak.kind === 'leak' && leak.slopeBytesPerHour).toBeGreaterThan(25 * MB);
    expect(leak.kind === 'leak' && leak.slopeBytesPerHour).toBeLessThan(125 * MB);
    expect(leak.kind === 'leak' && leak.detectedAtMs - (T0 + HOUR)).toBeLessThanOrEqual(40 * 60_000);
    expect(events.filter((e) => e.component !== 'ollama')).toEqual([]);
  });

  it('reports the slope of a steady leak within 15%', async () => {
    for (const rate of [30, 100, 600]) {
      const events = await run(trace(6, { ollama: (h, n) => 500 * MB + h * rate * MB + n() * 5 * MB }));
      const found = leaksOf(events, 'ollama');
      expect(found).toHaveLength(1);
      const slope = found[0]!.kind === 'leak' ? found[0]!.slopeBytesPerHour : 0;
      expect(Math.abs(slope - rate * MB) / (rate * MB)).toBeLessThan(0.15);
    }
  });

  it('does not take a model load (a step up) or a known load with a reset for a leak', async () => {
    const step = (h: number, n: () => number) => (h < 2 ? 300 * MB : 1800 * MB) + n() * 5 * MB;
    expect(await run(trace(6, { ollama: step }))).toEqual([]);
    expect(await run(trace(6, { ollama: step }), [{ component: 'ollama', atMs: T0 + 2 * HOUR }])).toEqual([]);
  });

  it('does not take a saturating warm-up for a leak', async () => {
    const warmUp = (h: number, n: () => number) => 200 * MB + 400 * MB * (1 - Math.exp(-h / 0.5)) + n() * 4 * MB;
    expect(await run(trace(8, { cache: warmUp }))).toEqual([]);
  });

  it('clears a leak when the process restarts, and finds it again when it resumes', async () => {
    const restarting = (h: number, n: () => number) => {
      const since = h < 4 ? h : h - 4; // restart at 4 h: back to the base, then leaking again
      return 300 * MB + since * 200 * MB + n() * 5 * MB;
    };
    const events = (await run(trace(8, { backend: restarting }))).map((e) => e.kind);
    expect(events[0]).toBe('leak');
    expect(events).toContain('clear');
    expect(events.lastIndexOf('leak')).toBeGreaterThan(events.indexOf('clear'));
  });

  it('uses the same event for the same input (deterministic)', async () => {
    const input = trace(5, { ollama: (h, n) => 500 * MB + h * 60 * MB + n() * 5 * MB });
    expect(await run(input)).toEqual(await run(input));
    expect(await lastValueFrom(of(...input).pipe(leakTrend(config), toArray()))).toEqual(await run(input));
  });
});
