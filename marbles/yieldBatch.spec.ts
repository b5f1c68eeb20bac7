import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import { yieldBatch, YieldBatchError, type BatchFacts, type BatchHold, type YieldBatchConfig } from '../src/operators/yieldBatch.js';

const GIB = 1024 ** 3;
const config: YieldBatchConfig = { enabled: true, idleAfterMs: 3, maxHoldMs: 20 };
const facts = (ollamaInFlight: number, residentModelBytes: number): BatchFacts => ({ ollamaInFlight, residentModelBytes });
const F = {
  /** a summary request in flight, its model resident */
  r: facts(1, 3.5 * GIB),
  /** no request, the model still resident (Ollama's or the governor's idle timer runs) */
  i: facts(0, 3.5 * GIB),
  /** a request in flight before its model shows as loaded */
  q: facts(1, 0),
  /** nothing */
  z: facts(0, 0),
};
const hold = (atMs: number, on: boolean): BatchHold => ({ atMs, hold: on, reason: expect.any(String) as unknown as string });
const H = (atMs: number) => hold(atMs, true);
const L = (atMs: number) => hold(atMs, false);

describe('yieldBatch (marbles)', () => {
  let testScheduler: TestScheduler;
  beforeEach(() => {
    testScheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  });

  it('holds while a request is in flight or a model is resident; releases when the model is unloaded', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      // 3: the request is done but the model stays resident; 14: unloaded, and the last request ended 11 frames ago
      const source = cold('  -r-i----------z----|', F);
      expectObservable(source.pipe(yieldBatch(config, testScheduler))).toBe('-h------------l----|', { h: H(1), l: L(14) });
      expectSubscriptions(source.subscriptions).toBe('^------------------!');
    });
  });

  it('says why', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      expectObservable(cold('-r-i-z', F).pipe(yieldBatch({ ...config, idleAfterMs: 0 }, testScheduler))).toBe('-h---l', {
        h: { atMs: 1, hold: true, reason: 'Ollama busy (1 request(s) in flight): batch transcription waits' },
        l: { atMs: 5, hold: false, reason: 'Ollama idle for 0ms and no model resident: batch transcription runs' },
      });
      expectObservable(cold('-i', F).pipe(yieldBatch(config, testScheduler)), '^--!').toBe('-h', {
        h: { atMs: 1, hold: true, reason: '3.5 GiB of models resident: batch transcription waits until they are unloaded' },
      });
    });
  });

  it('the first facts emit the current state: released when nothing is busy', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      expectObservable(cold('--z-z-|', F).pipe(yieldBatch(config, testScheduler))).toBe('--l---|', { l: L(2) });
    });
  });

  it('stays held for idleAfterMs after the last request (summary chunks come back to back), then releases', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      // in flight at 1, done at 3: released 3 frames later
      expectObservable(cold('-q-z---------|', F).pipe(yieldBatch(config, testScheduler))).toBe('-h----l------|', { h: H(1), l: L(6) });
      // a second request at 5 (within the grace) restarts it: done at 7, released at 10
      expectObservable(cold('-q-z-q-z------|', F).pipe(yieldBatch(config, testScheduler))).toBe('-h--------l---|', { h: H(1), l: L(10) });
    });
  });

  it('never holds longer than maxHoldMs: released until the model side has been idle, then the hold re-arms', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      // resident from 1: held, capped at 21; a request at 23 does not hold again (capped);
      // idle from 30 (27 + idleAfterMs): the cap is cleared; a request at 33 holds again, capped at 53
      const source = cold('  -i 21ms r 3ms z 5ms q 25ms |', F);
      expectObservable(source.pipe(yieldBatch(config, testScheduler))).toBe('-h 19ms l 11ms H 19ms L 5ms |', { h: H(1), l: L(21), H: H(33), L: L(53) });
    });
  });

  it('the release after maxHoldMs says so', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      expectObservable(cold('-i 30ms -', F).pipe(yieldBatch({ ...config, maxHoldMs: 60_000 }, testScheduler)), '^ 40ms !').toBe('-h', { h: H(1) });
      expectObservable(cold('-i 30ms -', F).pipe(yieldBatch(config, testScheduler))).toBe('-h 19ms l', {
        h: H(1),
        l: { atMs: 21, hold: false, reason: expect.stringContaining('held for 20ms (optimization.batchYield.maxHoldMs)') as unknown as string },
      });
    });
  });

  it('disabled: never holds', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      expectObservable(cold('-r-i-q-z-|', F).pipe(yieldBatch({ ...config, enabled: false }, testScheduler))).toBe('-l-------|', {
        l: { atMs: 1, hold: false, reason: expect.stringContaining('batch yield is off') as unknown as string },
      });
    });
  });

  it('hot config: switched off releases at once; back on, it holds again; a shorter maxHoldMs applies to the hold in force', () => {
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const cfg = hot('      a---d---a---', { a: config, d: { ...config, enabled: false } });
      const source = cold('  -r----------', F);
      expectObservable(source.pipe(yieldBatch(cfg, testScheduler)), '^----------!').toBe('-h--l---H---', { h: H(1), l: L(4), H: H(8) });
      expectSubscriptions(cfg.subscriptions).toBe('^----------!');
      // held since 1; at 5 maxHoldMs becomes 6: released at 7
      const shorter = hot('  a----s------', { a: config, s: { ...config, maxHoldMs: 6 } });
      expectObservable(cold('-i----------', F).pipe(yieldBatch(shorter, testScheduler))).toBe('-h-----l----', { h: H(1), l: L(7) });
    });
  });

  it('bad facts are a YieldBatchError naming the field', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  -r-x-', { ...F, x: facts(-1, 0) });
      expectObservable(source.pipe(yieldBatch(config, testScheduler))).toBe(
        '-h-#',
        { h: H(1) },
        expect.objectContaining({ name: 'YieldBatchError', code: 'MEMTIDE_ERR_YIELD_BATCH_INPUT', field: 'ollamaInFlight', message: expect.stringContaining('ollamaInFlight') }),
      );
      expectSubscriptions(source.subscriptions).toBe('^--!');
      const nan = cold('     -x-', { x: facts(0, Number.NaN) });
      expectObservable(nan.pipe(yieldBatch(config, testScheduler))).toBe('-#', undefined, expect.objectContaining({ field: 'residentModelBytes' }));
      const at = cold('      -x-', { x: { ...F.z, atMs: Infinity } });
      expectObservable(at.pipe(yieldBatch(config, testScheduler))).toBe('-#', undefined, expect.objectContaining({ field: 'atMs' }));
    });
  });

  it('a bad config is an error naming the key; the source is not subscribed', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  -r-', F);
      expectObservable(source.pipe(yieldBatch({ ...config, maxHoldMs: 0 }, testScheduler))).toBe(
        '#',
        undefined,
        expect.objectContaining({ code: 'MEMTIDE_ERR_YIELD_BATCH_CONFIG', field: 'maxHoldMs' }),
      );
      expectSubscriptions(source.subscriptions).toBe([]);
    });
    expect(new YieldBatchError('MEMTIDE_ERR_YIELD_BATCH_INPUT', 'x', 'bad')).toMatchObject({ name: 'YieldBatchError', message: 'x: bad' });
  });

  it('propagates an error of the source; an error of the config unsubscribes the source', () => {
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const source = cold('  -r-#', F, new Error('boom'));
      expectObservable(source.pipe(yieldBatch(config, testScheduler))).toBe('-h-#', { h: H(1) }, new Error('boom'));
      const cfg = hot('      a--#', { a: config }, new Error('bad config'));
      const other = cold('   -r----', F);
      expectObservable(other.pipe(yieldBatch(cfg, testScheduler))).toBe('-h-#', { h: H(1) }, new Error('bad config'));
      expectSubscriptions(other.subscriptions).toBe('^--!');
    });
  });

  it('allows early unsubscription (no release fires after it); completion drops the timers', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  -q-z--------', F);
      expectObservable(source.pipe(yieldBatch(config, testScheduler)), '^---!').toBe('-h--', { h: H(1) });
      expectSubscriptions(source.subscriptions).toBe('^---!');
      expectObservable(cold('-q-z-|', F).pipe(yieldBatch(config, testScheduler))).toBe('-h---|', { h: H(1) });
    });
  });

  it('defaults to asyncScheduler (virtual inside run())', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      expectObservable(cold('-q-z-------|', F).pipe(yieldBatch(config))).toBe('-h----l----|', { h: H(1), l: L(6) });
    });
  });
});
