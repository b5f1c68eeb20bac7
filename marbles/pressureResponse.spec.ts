import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import type { PressureChange, PressureLevel } from '../src/model.js';
import { pressureResponse, type PressureDirective } from '../src/operators/pressureResponse.js';

const change = (level: PressureLevel, reasons: string[] = []): PressureChange => ({ atMs: 0, level, previous: null, reasons });
const dir = (atMs: number, level: PressureLevel, evict: PressureDirective['evict'], holdLoads: boolean): PressureDirective => ({
  atMs,
  level,
  evict,
  holdLoads,
  reasons: expect.any(Array) as unknown as string[],
});

const all = { unloadPinnedAtCritical: true };
const keepPinned = { unloadPinnedAtCritical: false };
const levels = { l: change('low'), m: change('medium'), h: change('high'), c: change('critical') };

describe('pressureResponse (marbles)', () => {
  let testScheduler: TestScheduler;
  beforeEach(() => {
    testScheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  });

  it('low: nothing; high: idle unpinned go; critical: every idle model goes and loads are held', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  -l-h-c-|', levels);
      expectObservable(source.pipe(pressureResponse(all, testScheduler))).toBe('-n-u-a-|', {
        n: dir(1, 'low', 'none', false),
        u: dir(3, 'high', 'idle-unpinned', false),
        a: dir(5, 'critical', 'idle-all', true),
      });
      expectSubscriptions(source.subscriptions).toBe('^------!');
    });
  });

  it('the hold lasts until medium or lower: critical -> high keeps holding, high -> medium releases', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  -c-h-m-h-|', levels);
      expectObservable(source.pipe(pressureResponse(all, testScheduler))).toBe('-a-U-n-u-|', {
        a: dir(1, 'critical', 'idle-all', true),
        U: { ...dir(3, 'high', 'idle-unpinned', true), reasons: ['pressure high', 'loads stay held until pressure is back to medium'] },
        n: dir(5, 'medium', 'none', false),
        // a later high without a critical before it does not hold
        u: dir(7, 'high', 'idle-unpinned', false),
      });
    });
  });

  it('critical -> low releases at once', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  -c-l-|', levels);
      expectObservable(source.pipe(pressureResponse(all, testScheduler))).toBe('-a-n-|', {
        a: dir(1, 'critical', 'idle-all', true),
        n: dir(3, 'low', 'none', false),
      });
    });
  });

  it('emits only changes of what to do: low -> medium -> low is one directive; the reasons are carried', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  -l-m-l-h-h-|', { ...levels, h: change('high', ['available 17% <= 18%']) });
      expectObservable(source.pipe(pressureResponse(all, testScheduler))).toBe('-n-----u---|', {
        n: dir(1, 'low', 'none', false),
        u: { ...dir(7, 'high', 'idle-unpinned', false), reasons: ['pressure high: available 17% <= 18%'] },
      });
    });
  });

  it('unloadPinnedAtCritical false: critical unloads idle unpinned models only (and still holds)', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  -c-|', levels);
      expectObservable(source.pipe(pressureResponse(keepPinned, testScheduler))).toBe('-a-|', { a: dir(1, 'critical', 'idle-unpinned', true) });
    });
  });

  it('hot config: applies from the next pressure change; changes before the first value are dropped', () => {
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const config = hot('   --k----a---', { k: keepPinned, a: all });
      const source = cold('  c--c-l---c-|', levels);
      expectObservable(source.pipe(pressureResponse(config, testScheduler))).toBe('---U-n---A-|', {
        U: dir(3, 'critical', 'idle-unpinned', true),
        n: dir(5, 'low', 'none', false),
        A: dir(9, 'critical', 'idle-all', true),
      });
      expectSubscriptions(config.subscriptions).toBe('^----------!');
    });
  });

  it('propagates an error of the source', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  -h-#', levels, new Error('boom'));
      expectObservable(source.pipe(pressureResponse(all, testScheduler))).toBe('-u-#', { u: dir(1, 'high', 'idle-unpinned', false) }, new Error('boom'));
      expectSubscriptions(source.subscriptions).toBe('^--!');
    });
  });

  it('propagates an error of the config and unsubscribes the source', () => {
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const config = hot('   a--#', { a: all }, new Error('bad config'));
      const source = cold('  -c-----', levels);
      expectObservable(source.pipe(pressureResponse(config, testScheduler))).toBe('-a-#', { a: dir(1, 'critical', 'idle-all', true) }, new Error('bad config'));
      expectSubscriptions(source.subscriptions).toBe('^--!');
      expectSubscriptions(config.subscriptions).toBe('^--!');
    });
  });

  it('allows early unsubscription', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  -l-h-c-|', levels);
      expectObservable(source.pipe(pressureResponse(all, testScheduler)), '^--!').toBe('-n-', { n: dir(1, 'low', 'none', false) });
      expectSubscriptions(source.subscriptions).toBe('^--!');
    });
  });

  it('completes with nothing on an empty source', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold<PressureChange>('|');
      expectObservable(source.pipe(pressureResponse(all, testScheduler))).toBe('|');
      expectSubscriptions(source.subscriptions).toBe('(^!)');
    });
  });

  it('defaults to asyncScheduler (virtual inside run()) for atMs', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  ---h-|', levels);
      expectObservable(source.pipe(pressureResponse(all))).toBe('---u-|', { u: dir(3, 'high', 'idle-unpinned', false) });
    });
  });
});
