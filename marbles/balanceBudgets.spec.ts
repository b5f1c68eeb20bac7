import { fc, it as propIt } from '@fast-check/vitest';
import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import { balanceBudgets, BalanceBudgetsError, capsFor, type BalanceBudgetsConfig, type BalanceFacts, type BudgetCaps } from '../src/operators/balanceBudgets.js';
import { replaySteps, type TimedStep } from '../test/support/virtualTime.js';

const MIB = 1024 ** 2;
const GIB = 1024 ** 3;
const config: BalanceBudgetsConfig = { enabled: true, safetyBytes: 512 * MIB, stepBytes: 64 * MIB, idleAfterMs: 5 };
const facts = (extra: Partial<BalanceFacts>): BalanceFacts => ({
  ollamaInFlight: 0,
  audioInFlight: 0,
  audioBytes: 500 * MIB,
  budgetBytes: 8 * GIB,
  loadShortfallBytes: 0,
  transcriptionConcurrency: 2,
  ...extra,
});
const F = {
  i: facts({}),
  o: facts({ ollamaInFlight: 1 }),
  b: facts({ ollamaInFlight: 1, audioInFlight: 1, audioBytes: 1.5 * GIB - 30 * MIB }),
  /** both busy, 20 MiB more audio: the cap stays on its 64 MiB step */
  n: facts({ ollamaInFlight: 1, audioInFlight: 1, audioBytes: 1.5 * GIB - 10 * MIB }),
  s: facts({ ollamaInFlight: 2, audioInFlight: 2, audioBytes: 2 * GIB, loadShortfallBytes: 1 * GIB }),
  a: facts({ ollamaInFlight: 1, audioInFlight: 0, audioBytes: 2 * GIB }),
  x: facts({ ollamaInFlight: 0, audioInFlight: 1, audioBytes: 1.5 * GIB - 30 * MIB }),
};
const caps = (atMs: number, modelGib: number | null, chunks: number | null): BudgetCaps => ({
  atMs,
  modelBudgetCapBytes: modelGib === null ? null : modelGib * GIB,
  transcriptionConcurrencyCap: chunks,
  reason: expect.any(String) as unknown as string,
});

describe('balanceBudgets (marbles)', () => {
  let testScheduler: TestScheduler;
  beforeEach(() => {
    testScheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  });

  it('caps the model budget while both are busy, caps concurrency when a load misses room, lifts both when a side idles', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  -o-b----n-s--a------|', F);
      // 3: 8 GiB - 1.47 GiB - 0.5 GiB = 6.03 GiB, 6 GiB on the 64 MiB grid (8: 20 MiB more audio, same step); 10: 8 - 2 - 0.5 = 5.5 GiB, and a load misses 1 GiB = one chunk's worth;
      // 13: audio idle, lifted 5 later (18)
      expectObservable(source.pipe(balanceBudgets(config, testScheduler))).toBe('---c------C-------l-|', {
        c: caps(3, 6, null),
        C: caps(10, 5.5, 1),
        l: caps(18, null, null),
      });
      expectSubscriptions(source.subscriptions).toBe('^-------------------!');
    });
  });

  it('says why, with the arithmetic', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      expectObservable(cold('-b-', F).pipe(balanceBudgets(config, testScheduler))).toBe('-c-', {
        c: {
          atMs: 1,
          modelBudgetCapBytes: 6 * GIB,
          transcriptionConcurrencyCap: null,
          reason: 'Ollama (1 request(s)) and transcription (1 chunk(s)) busy at once: model budget capped at 6.0 GiB (8.0 GiB - transcription 1.5 GiB - safety 512 MiB)',
        },
      });
    });
  });

  it('a side idle for less than idleAfterMs still counts as busy (back-to-back requests)', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      // Ollama idle at 3 (x), busy again at 6: no lift; idle again at 8, lifted at 13
      const source = cold('  -b-x--b-x--------|', F);
      expectObservable(source.pipe(balanceBudgets(config, testScheduler))).toBe('-c-----------l---|', { c: caps(1, 6, null), l: caps(13, null, null) });
    });
  });

  it('the concurrency cap only goes down while in force (lifting it once the load got room would flap)', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  -s-b-|', F);
      // at 3 no load misses room any more: the model cap follows audio memory (6 GiB), the chunk cap stays 1
      expectObservable(source.pipe(balanceBudgets(config, testScheduler))).toBe('-C-c-|', { C: caps(1, 5.5, 1), c: caps(3, 6, 1) });
    });
  });

  it('the model cap never goes below 0, and there is none when the budget is unbounded', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const huge = facts({ ollamaInFlight: 1, audioInFlight: 1, audioBytes: 9 * GIB });
      const unbounded = facts({ ollamaInFlight: 1, audioInFlight: 1, budgetBytes: Infinity });
      expectObservable(cold('-h-u-|', { h: huge, u: unbounded }).pipe(balanceBudgets(config, testScheduler))).toBe('-z-l-|', { z: caps(1, 0, null), l: caps(3, null, null) });
    });
  });

  it('hot config: turning balancing off lifts the caps at once; back on, they return', () => {
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const cfg = hot('      a---d---a---', { a: config, d: { ...config, enabled: false } });
      const source = cold('  -b----------', F);
      expectObservable(source.pipe(balanceBudgets(cfg, testScheduler))).toBe('-c--l---C---', { c: caps(1, 6, null), l: caps(4, null, null), C: caps(8, 6, null) });
      expectSubscriptions(cfg.subscriptions).toBe('^-----------');
    });
  });

  it('bad facts are an error naming the field', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  -b-x-', { ...F, x: facts({ audioBytes: -1 }) });
      expectObservable(source.pipe(balanceBudgets(config, testScheduler))).toBe(
        '-c-#',
        { c: caps(1, 6, null) },
        expect.objectContaining({ code: 'MEMTIDE_ERR_BALANCE_INPUT', message: expect.stringContaining('audioBytes') }),
      );
      expectSubscriptions(source.subscriptions).toBe('^--!');
    });
  });

  it('a bad config is an error naming the key; the source is not subscribed', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  -b-', F);
      expectObservable(source.pipe(balanceBudgets({ ...config, stepBytes: 0 }, testScheduler))).toBe('#', undefined, expect.objectContaining({ message: expect.stringContaining('stepBytes') }));
      expectSubscriptions(source.subscriptions).toBe([]);
    });
    expect(new BalanceBudgetsError('x')).toMatchObject({ name: 'BalanceBudgetsError', code: 'MEMTIDE_ERR_BALANCE_INPUT' });
  });

  it('propagates an error of the source; an error of the config unsubscribes the source', () => {
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const source = cold('  -b-#', F, new Error('boom'));
      expectObservable(source.pipe(balanceBudgets(config, testScheduler))).toBe('-c-#', { c: caps(1, 6, null) }, new Error('boom'));
      const cfg = hot('      a--#', { a: config }, new Error('bad config'));
      const other = cold('   -b----', F);
      expectObservable(other.pipe(balanceBudgets(cfg, testScheduler))).toBe('-c-#', { c: caps(1, 6, null) }, new Error('bad config'));
      expectSubscriptions(other.subscriptions).toBe('^--!');
    });
  });

  it('allows early unsubscription (no lift fires after it); completion drops the idle timers', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  -b-x--------', F);
      expectObservable(source.pipe(balanceBudgets(config, testScheduler)), '^---!').toBe('-c--', { c: caps(1, 6, null) });
      expectSubscriptions(source.subscriptions).toBe('^---!');
      expectObservable(cold('-b-x-|', F).pipe(balanceBudgets(config, testScheduler))).toBe('-c---|', { c: caps(1, 6, null) });
    });
  });

  it('emits nothing while only one side works; defaults to asyncScheduler (virtual inside run())', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      // Ollama idle at 3 (idle from 8 on); transcription busy from 13: never both at once
      expectObservable(cold('-o-i 9ms x-|', F).pipe(balanceBudgets(config))).toBe('-'.repeat(15) + '|');
      expectObservable(cold('---b-|', F).pipe(balanceBudgets(config))).toBe('---c-|', { c: caps(3, 6, null) });
    });
  });
});

// ---- properties ----------------------------------------------------------

const arbFacts = fc.record({
  ollamaInFlight: fc.integer({ min: 0, max: 3 }),
  audioInFlight: fc.integer({ min: 0, max: 4 }),
  audioBytes: fc.integer({ min: 0, max: 12 * 1024 }).map((m) => m * MIB),
  budgetBytes: fc.integer({ min: 1, max: 16 }).map((g) => g * GIB),
  loadShortfallBytes: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 8 * 1024 }).map((m) => m * MIB)),
  transcriptionConcurrency: fc.integer({ min: 1, max: 8 }),
});
const arbSteps = fc.array(fc.record({ gap: fc.integer({ min: 0, max: 8 }), facts: arbFacts }), { maxLength: 40 });

const simulate = (steps: ReadonlyArray<TimedStep<BalanceFacts>>) => replaySteps((scheduler) => balanceBudgets(config, scheduler), steps);

describe('balanceBudgets (properties)', () => {
  propIt.prop([arbSteps])('caps only while both sides had work within idleAfterMs; each emission changes something', (steps) => {
    const { out, errors, timeline } = simulate(steps);
    expect(errors).toEqual([]);
    // A side is busy from facts with work until idleAfterMs after the first facts without work that follow.
    const busyWithin = (atMs: number, side: 'ollamaInFlight' | 'audioInFlight') => {
      let busy = false;
      let zeroAt: number | null = null;
      for (const e of timeline) {
        if (e.atMs > atMs) break;
        // idle once idleAfterMs passed without work before this facts arrived
        if (busy && zeroAt !== null && e.atMs > zeroAt + config.idleAfterMs) {
          busy = false;
          zeroAt = null;
        }
        if (e.facts[side] > 0) {
          busy = true;
          zeroAt = null;
        } else if (busy && zeroAt === null) zeroAt = e.atMs;
      }
      return busy && (zeroAt === null || atMs <= zeroAt + config.idleAfterMs);
    };
    for (const [i, c] of out.entries()) {
      const capped = c.modelBudgetCapBytes !== null || c.transcriptionConcurrencyCap !== null;
      if (capped) expect(busyWithin(c.atMs, 'ollamaInFlight') && busyWithin(c.atMs, 'audioInFlight')).toBe(true);
      const before = out[i - 1];
      if (before) expect([before.modelBudgetCapBytes, before.transcriptionConcurrencyCap]).not.toEqual([c.modelBudgetCapBytes, c.transcriptionConcurrencyCap]);
      else expect(capped).toBe(true);
    }
  });

  propIt.prop([arbFacts, fc.option(fc.integer({ min: 1, max: 8 }), { nil: null })])('models + transcription + safety fit the budget; the chunk cap is within 1..concurrency and only goes down', (f, sticky) => {
    const c = capsFor(f, config, sticky);
    if (c.modelBudgetCapBytes !== null) {
      expect(c.modelBudgetCapBytes).toBeGreaterThanOrEqual(0);
      expect(c.modelBudgetCapBytes % config.stepBytes).toBe(0);
      if (c.modelBudgetCapBytes > 0) expect(c.modelBudgetCapBytes + f.audioBytes + config.safetyBytes).toBeLessThanOrEqual(f.budgetBytes);
      expect(c.modelBudgetCapBytes).toBeGreaterThan(f.budgetBytes - f.audioBytes - config.safetyBytes - config.stepBytes);
    } else {
      expect(f.audioBytes + config.safetyBytes).toBeLessThan(config.stepBytes);
    }
    if (c.transcriptionConcurrencyCap !== null) {
      expect(c.transcriptionConcurrencyCap).toBeGreaterThanOrEqual(1);
      if (sticky !== null) expect(c.transcriptionConcurrencyCap).toBeLessThanOrEqual(sticky);
      else expect(c.transcriptionConcurrencyCap).toBeLessThan(f.transcriptionConcurrency);
    } else {
      expect(sticky).toBeNull();
    }
  });
});
