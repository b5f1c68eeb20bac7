import { asyncScheduler, from, tap, throwError } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import { pressureSchema, type PressureConfig } from '../src/app/configSchema.js';
import type { PressureChange, PressureLevel, Psi } from '../src/model.js';
import { classifyPressure, PressureError } from '../src/operators/classifyPressure.js';
import type { PressureSignals } from '../src/operators/pressureThresholds.js';

const GIB = 1024 ** 3;

/** One sample: `available` in percent of `total`; psi/swap optional. */
function sig(
  available: number,
  opts: { total?: number; psi?: Partial<Psi> | null; swapUsedPercent?: number | null } = {},
): PressureSignals {
  const total = opts.total ?? 8 * GIB;
  const swapTotal = opts.swapUsedPercent == null ? 0 : 4 * GIB;
  return {
    totalBytes: total,
    availableBytes: (total * available) / 100,
    swapTotalBytes: swapTotal,
    swapUsedBytes: opts.swapUsedPercent == null ? 0 : (swapTotal * opts.swapUsedPercent) / 100,
    psi: opts.psi == null ? null : { someAvg10: 0, someAvg60: 0, fullAvg10: 0, fullAvg60: 0, ...opts.psi },
  };
}

function change(atMs: number, level: PressureLevel, previous: PressureLevel | null, reasons: unknown = expect.any(Array)): PressureChange {
  return { atMs, level, previous, reasons: reasons as string[] };
}

const cfg8gb: PressureConfig = pressureSchema.parse({ preset: '8gb' }); // margin 5, dwell 30 s

describe('classifyPressure (marbles)', () => {
  let testScheduler: TestScheduler;

  beforeEach(() => {
    testScheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  });

  it('emits the first level with previous null, and each level from a sample (8gb: 30/18/12 %)', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  a-b-c-d-|', { a: sig(60), b: sig(30), c: sig(18), d: sig(12) });
      const subs = '        ^-------!';
      const expected = '    l-m-h-c-|';
      const values = {
        l: change(0, 'low', null, []),
        m: change(2, 'medium', 'low', ['available 30% <= 30%']),
        h: change(4, 'high', 'medium', ['available 18% <= 18%']),
        c: change(6, 'critical', 'high', ['available 12% <= 12%']),
      };
      expectObservable(source.pipe(classifyPressure(cfg8gb, testScheduler))).toBe(expected, values);
      expectSubscriptions(source.subscriptions).toBe(subs);
    });
  });

  it('emits nothing while the level is unchanged', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  a-b-c-d-e|', { a: sig(25), b: sig(28), c: sig(19), d: sig(29.9), e: sig(25) });
      const expected = '    m--------|';
      expectObservable(source.pipe(classifyPressure(cfg8gb, testScheduler))).toBe(expected, {
        m: change(0, 'medium', null, ['available 25% <= 30%']),
      });
    });
  });

  it('escalates immediately, skipping levels (low -> critical in one step)', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  a--b--|', { a: sig(80), b: sig(5) });
      const expected = '    l--c--|';
      expectObservable(source.pipe(classifyPressure(cfg8gb, testScheduler))).toBe(expected, {
        l: change(0, 'low', null, []),
        c: change(3, 'critical', 'low', ['available 5% <= 12%']),
      });
    });
  });

  it('hysteresis: entering high at 18%, 20% and 22.9% stay high; 23.1% held for the dwell falls to medium', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      // each value is held for a full dwell: a@0; b@1..b@30001; c@30002..c@60002; d@60003..d@90003
      const source = cold('  a b 29999ms b c 29999ms c d 29999ms d|', { a: sig(18), b: sig(20), c: sig(22.9), d: sig(23.1) });
      const expected = '    h 90002ms                            m|';
      expectObservable(source.pipe(classifyPressure(cfg8gb, testScheduler))).toBe(expected, {
        h: change(0, 'high', null, ['available 18% <= 18%']),
        // lands on the highest level not yet recovered from (medium: 23.1 <= 30 + 5)
        m: change(90003, 'medium', 'high', ['available 23.1% <= 35%', 'recovered for 30s past the high line by 5 points']),
      });
    });
  });

  it('hysteresis at the medium line: 34.9% never leaves medium, 35.1% for the dwell goes low', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  a b 29999ms b c 29999ms c|', { a: sig(30), b: sig(34.9), c: sig(35.1) });
      //                     a@0 b@1 b@30001 c@30002 c@60002
      const expected = '    m 60001ms l|';
      expectObservable(source.pipe(classifyPressure(cfg8gb, testScheduler))).toBe(expected, {
        m: change(0, 'medium', null, ['available 30% <= 30%']),
        l: change(60002, 'low', 'medium', ['recovered for 30s past the medium line by 5 points']),
      });
    });
  });

  it('dwell: a recovery shorter than dwellMs followed by a relapse does not fall, and restarts the dwell', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      // r@1 .. r@29999 (29998 ms), relapse x@30000, r@30001 .. r@60000 (29999 ms): never 30 s
      const source = cold('  h r 29997ms r x r 29998ms r|', { h: sig(18), r: sig(40), x: sig(22) });
      const expected = '    h 60000ms                  |';
      expectObservable(source.pipe(classifyPressure(cfg8gb, testScheduler))).toBe(expected, {
        h: change(0, 'high', null),
      });
    });
  });

  it('dwell: a sustained recovery falls at the first sample at or after dwellMs', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      // recovery starts at r@1; r@30000 is 29999 ms in (not yet), r@30001 is 30000 ms in
      const source = cold('  h r 29998ms r r r|', { h: sig(12), r: sig(60) });
      const expected = '    h 29999ms  - l -|';
      expectObservable(source.pipe(classifyPressure(cfg8gb, testScheduler))).toBe(expected, {
        h: change(0, 'critical', null),
        l: change(30001, 'low', 'critical', ['recovered for 30s past the critical line by 5 points']),
      });
    });
  });

  it('dwell: a sample exactly at dwellMs after the recovery started falls', () => {
    const cfg = pressureSchema.parse({ preset: '8gb', dwellMs: '4ms' });
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  c r-r-r|', { c: sig(12), r: sig(60) });
      //                     r@1, r@3 (2 ms), r@5 (exactly 4 ms)
      const expected = '    c----l|';
      expectObservable(source.pipe(classifyPressure(cfg, testScheduler))).toBe(expected, {
        c: change(0, 'critical', null),
        l: change(5, 'low', 'critical'),
      });
    });
  });

  it('PSI escalates with plenty of available memory: some avg10 >= 25 -> high, full avg10 >= 30 -> critical', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  a-b-c-|', {
        a: sig(80, { psi: { someAvg10: 3 } }),
        b: sig(80, { psi: { someAvg10: 25 } }),
        c: sig(80, { psi: { someAvg10: 25, fullAvg10: 30 } }),
      });
      const expected = '    l-h-c-|';
      expectObservable(source.pipe(classifyPressure(cfg8gb, testScheduler))).toBe(expected, {
        l: change(0, 'low', null, []),
        h: change(2, 'high', 'low', ['psi some avg10 25% >= 25%']),
        c: change(4, 'critical', 'high', ['psi full avg10 30% >= 30%']),
      });
    });
  });

  it('psi null is ignored (no PSI on this kernel)', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  a-b-|', { a: sig(80, { psi: null }), b: sig(29, { psi: null }) });
      const expected = '    l-m-|';
      expectObservable(source.pipe(classifyPressure(cfg8gb, testScheduler))).toBe(expected, {
        l: change(0, 'low', null, []),
        m: change(2, 'medium', 'low', ['available 29% <= 30%']),
      });
    });
  });

  it('swap use escalates (60% -> medium, 85% -> high); no swap (total 0) is ignored', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  a-b-c-|', {
        a: sig(80, { swapUsedPercent: null }),
        b: sig(80, { swapUsedPercent: 60 }),
        c: sig(80, { swapUsedPercent: 85 }),
      });
      const expected = '    l-m-h-|';
      expectObservable(source.pipe(classifyPressure(cfg8gb, testScheduler))).toBe(expected, {
        l: change(0, 'low', null, []),
        m: change(2, 'medium', 'low', ['swap used 60% >= 60%']),
        h: change(4, 'high', 'medium', ['swap used 85% >= 85%']),
      });
    });
  });

  it("preset 'auto' picks by totalBytes: a 4 GiB machine at 30% is medium (4gb), low under 16gb", () => {
    const auto = pressureSchema.parse({});
    const sixteen = pressureSchema.parse({ preset: '16gb' });
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  a|', { a: sig(30, { total: 4 * GIB }) });
      const big = cold('     a|', { a: sig(30, { total: 32 * GIB }) });
      expectObservable(source.pipe(classifyPressure(auto, testScheduler))).toBe('m|', {
        m: change(0, 'medium', null, ['available 30% <= 35%']),
      });
      expectObservable(source.pipe(classifyPressure(sixteen, testScheduler))).toBe('l|', { l: change(0, 'low', null, []) });
      // auto on a 32 GiB machine -> 16gb preset -> low
      expectObservable(big.pipe(classifyPressure(auto, testScheduler))).toBe('l|', { l: change(0, 'low', null, []) });
    });
  });

  it('threshold overrides: a line can be moved, and null disables a signal', () => {
    const cfg = pressureSchema.parse({
      preset: '8gb',
      thresholds: {
        medium: { psiSomeAvg10: null },
        high: { psiSomeAvg10: null },
        critical: { availablePercent: 20, psiSomeAvg10: null },
      },
    });
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  a-b-|', { a: sig(80, { psi: { someAvg10: 90 } }), b: sig(19) });
      const expected = '    l-c-|';
      expectObservable(source.pipe(classifyPressure(cfg, testScheduler))).toBe(expected, {
        l: change(0, 'low', null, []),
        c: change(2, 'critical', 'low', ['available 19% <= 20%']),
      });
    });
  });

  it('config as a hot Observable: the latest value applies from the next sample, a change alone emits nothing', () => {
    const relaxed = pressureSchema.parse({ preset: '16gb' });
    const strict = pressureSchema.parse({ preset: '4gb' });
    const quick = pressureSchema.parse({ preset: '16gb', marginPercent: 2, dwellMs: 0 });
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const config = hot('   r-s----q----', { r: relaxed, s: strict, q: quick });
      const configSubs = '  ^----------!';
      const source = cold('  x--x-x--x-x|', { x: sig(25) });
      const expected = '    l--m----L--|';
      expectObservable(source.pipe(classifyPressure(config, testScheduler))).toBe(expected, {
        l: change(0, 'low', null, []),
        // 4gb from frame 2 on: applies to the sample at 3
        m: change(3, 'medium', 'low', ['available 25% <= 35%']),
        // 16gb, margin 2, dwell 0 from frame 7 on: 25 > 20 + 2, falls at the sample at 8
        L: change(8, 'low', 'medium', ['recovered for 0ms past the medium line by 2 points']),
      });
      expectSubscriptions(config.subscriptions).toBe(configSubs);
    });
  });

  it('samples before the first config value are ignored', () => {
    testScheduler.run(({ cold, hot, expectObservable }) => {
      const config = hot('   --c---', { c: cfg8gb });
      const source = cold('  x--x-|', { x: sig(18) });
      expectObservable(source.pipe(classifyPressure(config, testScheduler))).toBe('---h-|', { h: change(3, 'high', null) });
    });
  });

  it('propagates an error of the source', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  a--#', { a: sig(60) }, new Error('boom'));
      const subs = '        ^--!';
      expectObservable(source.pipe(classifyPressure(cfg8gb, testScheduler))).toBe('l--#', { l: change(0, 'low', null, []) }, new Error('boom'));
      expectSubscriptions(source.subscriptions).toBe(subs);
    });
  });

  it('invalid input (totalBytes <= 0) becomes a PressureError notification and unsubscribes the source', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  a-b-c', { a: sig(60), b: { ...sig(60), totalBytes: 0 }, c: sig(10) });
      const subs = '        ^-!';
      expectObservable(source.pipe(classifyPressure(cfg8gb, testScheduler))).toBe(
        'l-#',
        { l: change(0, 'low', null, []) },
        new PressureError('totalBytes must be a positive number, got 0'),
      );
      expectSubscriptions(source.subscriptions).toBe(subs);
    });
  });

  it('invalid input (totalBytes NaN) errors with code MEMTIDE_ERR_PRESSURE_INPUT', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  --a', { a: { ...sig(60), totalBytes: Number.NaN } });
      expectObservable(source.pipe(classifyPressure(cfg8gb, testScheduler))).toBe(
        '--#',
        undefined,
        expect.objectContaining({ name: 'PressureError', code: 'MEMTIDE_ERR_PRESSURE_INPUT' }),
      );
    });
  });

  it('propagates an error of the config Observable and unsubscribes the source', () => {
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const config = hot('   c--#', { c: cfg8gb }, new Error('bad config'));
      const source = cold('  a-----', { a: sig(12) });
      expectObservable(source.pipe(classifyPressure(config, testScheduler))).toBe('c--#', { c: change(0, 'critical', null) }, new Error('bad config'));
      expectSubscriptions(source.subscriptions).toBe('^--!');
      expectSubscriptions(config.subscriptions).toBe('^--!');
    });
  });

  it('allows early unsubscription', () => {
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const config = hot('   c-------', { c: cfg8gb });
      const source = cold('  a-b-c-d-|', { a: sig(60), b: sig(30), c: sig(18), d: sig(12) });
      const unsub = '       ^---!    ';
      expectObservable(source.pipe(classifyPressure(config, testScheduler)), unsub).toBe('l-m-', {
        l: change(0, 'low', null),
        m: change(2, 'medium', 'low'),
      });
      expectSubscriptions(source.subscriptions).toBe('^---!');
      expectSubscriptions(config.subscriptions).toBe('^---!');
    });
  });

  it('completes with nothing on an empty source', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold<PressureSignals>('  |');
      expectObservable(source.pipe(classifyPressure(cfg8gb, testScheduler))).toBe('|');
      expectSubscriptions(source.subscriptions).toBe('(^!)');
    });
  });

  it('works with asyncScheduler passed explicitly (virtual inside run()) as the dwell clock', () => {
    const cfg = pressureSchema.parse({ preset: '8gb', dwellMs: 5 });
    testScheduler.run(({ cold, expectObservable, time }) => {
      const dwell = time('-----|');
      expect(dwell).toBe(cfg.dwellMs);
      const source = cold('  c r----r|', { c: sig(12), r: sig(60) });
      expectObservable(source.pipe(classifyPressure(cfg, asyncScheduler))).toBe('c-----l|', {
        c: change(0, 'critical', null),
        l: change(6, 'low', 'critical'),
      });
    });
  });

  it('defaults to asyncScheduler (virtual inside run()) for the dwell clock', () => {
    const cfg = pressureSchema.parse({ preset: '8gb', dwellMs: 5 });
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  c r---rr|', { c: sig(12), r: sig(60) });
      expectObservable(source.pipe(classifyPressure(cfg))).toBe('c-----l|', {
        c: change(0, 'critical', null),
        l: change(6, 'low', 'critical'),
      });
    });
  });

  describe('synchronous sources', () => {
    it('stops reading a synchronous source at the first invalid sample', () => {
      let read = 0;
      const errors: unknown[] = [];
      from([{ ...sig(50), totalBytes: 0 }, sig(50), sig(10)])
        .pipe(
          tap(() => (read += 1)),
          classifyPressure(cfg8gb),
        )
        .subscribe({ error: (e: unknown) => errors.push(e) });
      expect(read).toBe(1);
      expect(errors).toEqual([expect.objectContaining({ code: 'MEMTIDE_ERR_PRESSURE_INPUT' })]);
    });

    it('never reads the source when the config has already failed', () => {
      let read = 0;
      const errors: unknown[] = [];
      from([sig(50), sig(10)])
        .pipe(
          tap(() => (read += 1)),
          classifyPressure(throwError(() => new Error('cfg'))),
        )
        .subscribe({ error: (e: unknown) => errors.push(e) });
      expect(read).toBe(0);
      expect(errors).toEqual([new Error('cfg')]);
    });
  });
});
