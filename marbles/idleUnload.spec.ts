import { from, tap } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import { idleUnload, IdleUnloadError, type IdleUnloadConfig, type IdleUnloadDecision, type ModelActivity } from '../src/operators/idleUnload.js';

const start = (model = 'a'): ModelActivity => ({ kind: 'start', model });
const end = (model = 'a'): ModelActivity => ({ kind: 'end', model });
const loaded = (model = 'a'): ModelActivity => ({ kind: 'loaded', model });
const unloaded = (model = 'a'): ModelActivity => ({ kind: 'unloaded', model });

const cfg = (idleTimeoutMs: number, extra: Partial<IdleUnloadConfig> = {}): IdleUnloadConfig => ({ idleTimeoutMs, pinned: [], perModel: {}, ...extra });
const decision = (model: string, atMs: number, idleSinceMs: number, idleTimeoutMs: number): IdleUnloadDecision => ({ model, atMs, idleSinceMs, idleTimeoutMs });

describe('idleUnload (marbles)', () => {
  let testScheduler: TestScheduler;
  beforeEach(() => {
    testScheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  });

  it('emits an unload decision idleTimeoutMs after the last request ended', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  -s-e---------', { s: start(), e: end() });
      const subs = '        ^------------';
      const expected = '    --------u----';
      expectObservable(source.pipe(idleUnload(cfg(5), testScheduler))).toBe(expected, { u: decision('a', 8, 3, 5) });
      expectSubscriptions(source.subscriptions).toBe(subs);
    });
  });

  it('a new request cancels the wait; the timer restarts when it ends', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  -s-e-s-e---------', { s: start(), e: end() });
      const expected = '    ------------u----';
      expectObservable(source.pipe(idleUnload(cfg(5), testScheduler))).toBe(expected, { u: decision('a', 12, 7, 5) });
    });
  });

  it('counts requests in flight: idle only when every start has its end', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  -ss-e----e---------', { s: start(), e: end() });
      //                     the first end (4) leaves one in flight: no timer until 9
      const expected = '    --------------u----';
      expectObservable(source.pipe(idleUnload(cfg(5), testScheduler))).toBe(expected, { u: decision('a', 14, 9, 5) });
    });
  });

  it('per-model timeouts: an override beats the default; models are independent', () => {
    const config = cfg(6, { perModel: { b: { idleTimeoutMs: 2 } } });
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  -(st)(eu)----------', { s: start('a'), t: start('b'), e: end('a'), u: end('b') });
      // both end at 5 ("(st)" takes frames 1-4): b after 2, a after 6
      const expected = '    -------B---A-------';
      expectObservable(source.pipe(idleUnload(config, testScheduler))).toBe(expected, {
        B: decision('b', 7, 5, 2),
        A: decision('a', 11, 5, 6),
      });
    });
  });

  it('pinned models never get a decision (by list or per model); a per-model pinned: false unpins', () => {
    const config = cfg(2, { pinned: ['a', 'c'], perModel: { b: { pinned: true }, c: { pinned: false } } });
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  -a-b-c-----------', { a: loaded('a'), b: loaded('b'), c: loaded('c') });
      const expected = '    -------C---------';
      expectObservable(source.pipe(idleUnload(config, testScheduler))).toBe(expected, { C: decision('c', 7, 5, 2) });
    });
  });

  it('"loaded" tracks a model seen idle (e.g. in /api/ps) once; "unloaded" forgets it', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  -l-l-----x-l--y------', { l: loaded('a'), x: loaded('b'), y: unloaded('b') });
      // a: tracked from 1 (the second "loaded" at 3 changes nothing) -> 5; fired, forgotten; seen again at 11 -> 15
      // b: tracked from 9 -> 13; the "unloaded" at 14 comes after its decision and changes nothing
      const expected = '    -----a-------b-A-----';
      expectObservable(source.pipe(idleUnload(cfg(4), testScheduler))).toBe(expected, {
        a: decision('a', 5, 1, 4),
        b: decision('b', 13, 9, 4),
        A: decision('a', 15, 11, 4),
      });
    });
  });

  it('"unloaded" cancels a pending timer; it is ignored while requests are in flight', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  -s-e-x---s-x-e------', { s: start(), e: end(), x: unloaded() });
      // 3: idle, timer to 7; 5: unloaded -> cancelled. 9: start; 11: unloaded ignored (in flight); 13: end -> 17
      const expected = '    -----------------u--';
      expectObservable(source.pipe(idleUnload(cfg(4), testScheduler))).toBe(expected, { u: decision('a', 17, 13, 4) });
    });
  });

  it('timeout 0 unloads in the frame the request ended', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  -s-e---', { s: start(), e: end() });
      expectObservable(source.pipe(idleUnload(cfg(0), testScheduler))).toBe('---u---', { u: decision('a', 3, 3, 0) });
    });
  });

  it('hot config: a shorter timeout that has passed fires at once, a longer one waits, pinning cancels', () => {
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const config = hot('   c----s-------l-p-----', { c: cfg(10), s: cfg(2), l: cfg(20), p: cfg(20, { pinned: ['b'] }) });
      const configSubs = '  ^--------------------';
      const source = cold('  -(ab)-----------------', { a: loaded('a'), b: loaded('b') });
      // both idle since 1; at 5 the timeout becomes 2 (passed): both fire at 5
      const expected = '    -----(ab)-------------';
      expectObservable(source.pipe(idleUnload(config, testScheduler))).toBe(expected, {
        a: decision('a', 5, 1, 2),
        b: decision('b', 5, 1, 2),
      });
      expectSubscriptions(config.subscriptions).toBe(configSubs);
    });
  });

  it('hot config: a longer timeout postpones; a pin cancels; an unpin re-arms from the idle start', () => {
    testScheduler.run(({ cold, hot, expectObservable }) => {
      const config = hot('   c-l--p----u----------', { c: cfg(4), l: cfg(8), p: cfg(8, { pinned: ['a'] }), u: cfg(8) });
      const source = cold('  -l-------------------', { l: loaded('a') });
      // idle since 1; 4 -> 8 at frame 2 (due 9); pinned at 5; unpinned at 10: 1 + 8 = 9 has passed -> fires at 10
      const expected = '    ----------u----------';
      expectObservable(source.pipe(idleUnload(config, testScheduler))).toBe(expected, { u: decision('a', 10, 1, 8) });
    });
  });

  it('before the first config value, activity is counted and nothing is armed', () => {
    testScheduler.run(({ cold, hot, expectObservable }) => {
      const config = hot('   ------c------', { c: cfg(3) });
      const source = cold('  -s-e---------', { s: start(), e: end() });
      // idle since 3; armed at 6 for 3 + 3 = 6: fires at once
      expectObservable(source.pipe(idleUnload(config, testScheduler))).toBe('------u------', { u: decision('a', 6, 3, 3) });
    });
  });

  it('completes with the source and drops pending timers', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  -s-e-|', { s: start(), e: end() });
      expectObservable(source.pipe(idleUnload(cfg(5), testScheduler))).toBe('-----|');
      expectSubscriptions(source.subscriptions).toBe('^----!');
    });
  });

  it('propagates an error of the source (and its timers stop)', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  -s-e-#', { s: start(), e: end() }, new Error('boom'));
      expectObservable(source.pipe(idleUnload(cfg(1), testScheduler))).toBe('----u#', { u: decision('a', 4, 3, 1) }, new Error('boom'));
      expectSubscriptions(source.subscriptions).toBe('^----!');
    });
  });

  it('propagates an error of the config and unsubscribes the source', () => {
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const config = hot('   c---#', { c: cfg(10) }, new Error('bad config'));
      const source = cold('  -s-e------', { s: start(), e: end() });
      expectObservable(source.pipe(idleUnload(config, testScheduler))).toBe('----#', undefined, new Error('bad config'));
      expectSubscriptions(source.subscriptions).toBe('^---!');
      expectSubscriptions(config.subscriptions).toBe('^---!');
    });
  });

  it('an "end" without a "start" is an IdleUnloadError and unsubscribes the source', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  -s-e-e-s', { s: start(), e: end() });
      expectObservable(source.pipe(idleUnload(cfg(10), testScheduler))).toBe(
        '-----#',
        undefined,
        expect.objectContaining({ name: 'IdleUnloadError', code: 'MEMTIDE_ERR_IDLE_UNBALANCED' }),
      );
      expectSubscriptions(source.subscriptions).toBe('^----!');
    });
  });

  it('allows early unsubscription: no decision after it', () => {
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const config = hot('   c---------', { c: cfg(4) });
      const source = cold('  -s-e------', { s: start(), e: end() });
      const unsub = '       ^----!    ';
      expectObservable(source.pipe(idleUnload(config, testScheduler)), unsub).toBe('----------');
      expectSubscriptions(source.subscriptions).toBe('^----!');
      expectSubscriptions(config.subscriptions).toBe('^----!');
    });
  });

  it('completes with nothing on an empty source', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold<ModelActivity>('|');
      expectObservable(source.pipe(idleUnload(cfg(5), testScheduler))).toBe('|');
      expectSubscriptions(source.subscriptions).toBe('(^!)');
    });
  });

  it('defaults to asyncScheduler (virtual inside run())', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  -s-e------', { s: start(), e: end() });
      expectObservable(source.pipe(idleUnload(cfg(3)))).toBe('------u---', { u: decision('a', 6, 3, 3) });
    });
  });

  it('stops reading a synchronous source at the first unbalanced end', () => {
    let read = 0;
    const errors: unknown[] = [];
    from([end(), start(), end()])
      .pipe(
        tap(() => (read += 1)),
        idleUnload(cfg(1)),
      )
      .subscribe({ error: (e: unknown) => errors.push(e) });
    expect(read).toBe(1);
    expect(errors).toEqual([expect.any(IdleUnloadError)]);
  });
});
