import { from, tap, throwError } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import { alertsSchema } from '../src/app/schema/alerts.js';
import type { ComponentUsage, EngineSelf, LeakEvent, LoadedModel, MemorySample, PressureChange, PressureLevel, ProcessSample } from '../src/model.js';
import { alertConditions, AlertInputError, type AlertConditionsConfig, type AlertInput } from '../src/operators/alertConditions.js';

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;

type Usage = { rss: number; pss?: number | null; pssAnon?: number | null; count?: number };

function sample(opts: { available?: number; total?: number; components?: Record<string, Usage>; self?: Partial<EngineSelf>; processes?: ProcessSample[] } = {}): MemorySample {
  const total = opts.total ?? 8 * GIB;
  const available = opts.available ?? 4 * GIB;
  const components = Object.fromEntries(
    Object.entries(opts.components ?? {}).map(([name, u]): [string, ComponentUsage] => [
      name,
      { rssBytes: u.rss, pssBytes: u.pss ?? null, pssAnonBytes: u.pssAnon ?? null, processCount: u.count ?? 1 },
    ]),
  );
  return {
    timestampMs: 0,
    system: {
      totalBytes: total,
      availableBytes: available,
      usedBytes: total - available,
      swapTotalBytes: 0,
      swapUsedBytes: 0,
      psi: null,
      physicalTotalBytes: total,
      cgroupLimitBytes: null,
    },
    components,
    processes: opts.processes ?? [],
    self: { pid: 42, rssBytes: 80 * MIB, heapUsedBytes: 20 * MIB, heapTotalBytes: 40 * MIB, externalBytes: 0, arrayBuffersBytes: 0, sampleCpuMs: 2, ...opts.self },
  };
}

const S = (s: MemorySample): AlertInput => ({ kind: 'sample', sample: s });
const P = (level: PressureLevel, reasons: string[] = [], previous: PressureLevel | null = null): AlertInput => ({
  kind: 'pressure',
  change: { atMs: 0, level, previous, reasons } satisfies PressureChange,
});
const L = (event: LeakEvent): AlertInput => ({ kind: 'leak', event });
const M = (models: LoadedModel[]): AlertInput => ({ kind: 'models', models });

function model(name: string, sizeGiB: number, idleSinceMs: number | null, extra: Partial<LoadedModel> = {}): LoadedModel {
  return { name, sizeBytes: sizeGiB * GIB, sizeVramBytes: 0, contextLength: null, inFlight: 0, idleSinceMs, pinned: false, expiresAtMs: null, ...extra };
}

/** Sampling every 1000 frames: the stall check (5 intervals) stays out of the way unless a test wants it. */
function config(alerts: Record<string, unknown> = {}, extra: Partial<AlertConditionsConfig> = {}): AlertConditionsConfig {
  return {
    alerts: alertsSchema.parse(alerts),
    sampling: { intervalMs: 1000, pss: 'watched' },
    pressure: { preset: 'auto' },
    components: { engine: 'engine' },
    ...extra,
  };
}

/** Matches a condition by its identity, state and time; `extra` adds fields to check. */
function cond(key: string, active: boolean, severity: string, atMs: number, extra: Record<string, unknown> = {}) {
  return expect.objectContaining({ key, active, severity, atMs, ...extra });
}

describe('alertConditions (marbles)', () => {
  let testScheduler: TestScheduler;

  beforeEach(() => {
    testScheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  });

  it('pressure: medium → info, high → warning, critical → critical, low → cleared with the recovery text', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  l-m-h-c-l-|', {
        l: P('low'),
        m: P('medium', ['available 30% <= 30%']),
        h: P('high', ['available 18% <= 18%']),
        c: P('critical', ['available 12% <= 12%']),
      });
      expectObservable(source.pipe(alertConditions(config(), testScheduler))).toBe('--m-h-c-l-|', {
        m: {
          key: 'pressure',
          kind: 'pressure',
          severity: 'info',
          active: true,
          component: null,
          title: 'Memory pressure medium',
          message: 'Memory pressure is medium: available 30% <= 30%.',
          recommendations: [],
          atMs: 2,
        },
        h: cond('pressure', true, 'warning', 4, { title: 'Memory pressure high' }),
        c: cond('pressure', true, 'critical', 6, { message: 'Memory pressure is critical: available 12% <= 12%.' }),
        l: cond('pressure', false, 'info', 8, { title: 'Memory pressure back to low', message: 'Memory pressure fell to low.', recommendations: [] }),
      });
      expectSubscriptions(source.subscriptions).toBe('^---------!');
    });
  });

  it('the example of the TSDoc: identical samples change nothing, pressure high → W, low → w', () => {
    const s = S(sample());
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  -s--p--s--s--c--|', { s, p: P('high'), c: P('low') });
      expectObservable(source.pipe(alertConditions(config(), testScheduler))).toBe('----W--------w--|', {
        W: cond('pressure', true, 'warning', 4),
        w: cond('pressure', false, 'info', 13),
      });
    });
  });

  it('pressure below pressureMinLevel does not alert', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  m-h-m-|', { m: P('medium'), h: P('high') });
      expectObservable(source.pipe(alertConditions(config({ pressureMinLevel: 'high' }), testScheduler))).toBe('--h-m-|', {
        h: cond('pressure', true, 'warning', 2),
        m: cond('pressure', false, 'info', 4, { title: 'Memory pressure back to medium' }),
      });
    });
  });

  it('pressure with a sample names the memory, and recommends unloading the largest idle model', () => {
    const s = sample({ available: 1.5 * GIB });
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  sm-h|', { s: S(s), m: M([model('llama3.1:8b', 4.7, 0), model('tiny', 0.5, 0), model('busy', 9, null, { inFlight: 1 })]), h: P('high', ['available 18.8% <= 18%']) });
      expectObservable(source.pipe(alertConditions(config(), testScheduler))).toBe('---h|', {
        h: cond('pressure', true, 'warning', 3, {
          message: 'Memory pressure is high: available 18.8% <= 18%. 1.5 GiB of 8.0 GiB available.',
          recommendations: [
            { action: 'Unload the idle model llama3.1:8b (idle for under a minute): frees about 4.7 GiB.', command: 'memtide models unload llama3.1:8b', expectedSavingBytes: 4.7 * GIB },
          ],
        }),
      });
    });
  });

  it('an unchanged condition is not emitted again; a changed text is', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  hs-s-t-|', { h: P('high'), s: S(sample({ available: 1 * GIB })), t: S(sample({ available: 2 * GIB })) });
      expectObservable(source.pipe(alertConditions(config(), testScheduler))).toBe('ab---c-|', {
        a: cond('pressure', true, 'warning', 0, { message: 'Memory pressure is high.' }),
        b: cond('pressure', true, 'warning', 1, { message: 'Memory pressure is high. 1.0 GiB of 8.0 GiB available.' }),
        c: cond('pressure', true, 'warning', 5, { message: 'Memory pressure is high. 2.0 GiB of 8.0 GiB available.' }),
      });
    });
  });

  it('leak: warning with a restart step sized by the growth since the baseline; a clear ends it with the reason', () => {
    const at = (anon: number) => S(sample({ components: { backend: { rss: anon + 100 * MIB, pss: anon + 50 * MIB, pssAnon: anon } } }));
    const leak: LeakEvent = { kind: 'leak', component: 'backend', detectedAtMs: 3, slopeBytesPerHour: 300 * MIB, confidence: 0.9, projectedExhaustionMs: null };
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  a-b-L-c-|', { a: at(500 * MIB), b: at(700 * MIB), L: L(leak), c: L({ kind: 'clear', component: 'backend', atMs: 6, reason: 'growth ended' }) });
      expectObservable(source.pipe(alertConditions(config(), testScheduler))).toBe('----l-c-|', {
        l: {
          key: 'leak:backend',
          kind: 'leak',
          severity: 'warning',
          active: true,
          component: 'backend',
          title: 'backend is leaking memory',
          message: 'backend grows steadily at about 300 MiB/h (confidence 90%). It uses 750 MiB now.',
          recommendations: [
            {
              action: 'Restart backend: it grew 200 MiB in under a minute (leaking about 300 MiB/h); a restart gives that back.',
              expectedSavingBytes: 200 * MIB,
            },
          ],
          atMs: 4,
        },
        c: cond('leak:backend', false, 'warning', 6, { message: 'backend stopped leaking: growth ended.', recommendations: [] }),
      });
    });
  });

  it('leak: memory that jitters by a few MiB is the same condition (amounts rounded); a real move is a new text', () => {
    const at = (anon: number) => S(sample({ components: { backend: { rss: anon + 100 * MIB, pss: anon + 50 * MIB, pssAnon: anon } } }));
    const leak: LeakEvent = { kind: 'leak', component: 'backend', detectedAtMs: 3, slopeBytesPerHour: 300 * MIB, confidence: 0.9, projectedExhaustionMs: null };
    testScheduler.run(({ cold, expectObservable }) => {
      // the baseline is 500 MiB; then 700, 701.5, 698.7, 702 MiB: uses ~750 MiB, grew ~200 MiB (two digits) each time
      const source = cold('  a-b-L-j-k-m-n-|', {
        a: at(500 * MIB),
        b: at(700 * MIB),
        L: L(leak),
        j: at(701.5 * MIB),
        k: at(698.7 * MIB),
        m: at(702 * MIB),
        n: at(760 * MIB),
      });
      expectObservable(source.pipe(alertConditions(config(), testScheduler))).toBe('----l-------n-|', {
        l: cond('leak:backend', true, 'warning', 4, { message: 'backend grows steadily at about 300 MiB/h (confidence 90%). It uses 750 MiB now.' }),
        n: cond('leak:backend', true, 'warning', 12, {
          message: 'backend grows steadily at about 300 MiB/h (confidence 90%). It uses 810 MiB now.',
          recommendations: [
            { action: 'Restart backend: it grew 260 MiB in under a minute (leaking about 300 MiB/h); a restart gives that back.', expectedSavingBytes: 260 * MIB },
          ],
        }),
      });
    });
  });

  it('leak: a restart of the component (new pids) starts a new baseline', () => {
    const proc = (pid: number): ProcessSample => ({ pid, ppid: 1, name: 'py', component: 'backend', rssBytes: 0, pssBytes: null, pssAnonBytes: null });
    const at = (rss: number, pid: number) => S(sample({ components: { backend: { rss } }, processes: [proc(pid)] }));
    const leak: LeakEvent = { kind: 'leak', component: 'backend', detectedAtMs: 0, slopeBytesPerHour: 100 * MIB, confidence: 0.8, projectedExhaustionMs: null };
    testScheduler.run(({ cold, expectObservable }) => {
      // 900 MiB before the restart; the new process starts at 300 and grows to 400
      const source = cold('  a-b-c-L|', { a: at(900 * MIB, 1), b: at(300 * MIB, 2), c: at(400 * MIB, 2), L: L(leak) });
      expectObservable(source.pipe(alertConditions(config(), testScheduler))).toBe('------l|', {
        l: cond('leak:backend', true, 'warning', 6, {
          recommendations: [expect.objectContaining({ expectedSavingBytes: 100 * MIB, action: expect.stringContaining('grew 100 MiB in under a minute') })],
        }),
      });
    });
  });

  it('exhaustion: critical once the projection is within the horizon (re-checked as time passes), cleared with the leak', () => {
    const leak: LeakEvent = { kind: 'leak', component: 'ollama', detectedAtMs: 0, slopeBytesPerHour: GIB, confidence: 0.95, projectedExhaustionMs: 30 * 60_000 };
    testScheduler.run(({ cold, expectObservable }) => {
      // horizon 20 min: at 0 the exhaustion is 30 min away; the sample at 10 min brings it within 20 min
      const source = cold('  L 10m s 5m c 9ms |', { L: L(leak), s: S(sample()), c: L({ kind: 'clear', component: 'ollama', atMs: 0, reason: 'restarted' }) });
      const cfg = config({ exhaustionHorizonMs: '20m' }, { sampling: { intervalMs: 3_600_000, pss: 'watched' } });
      expectObservable(source.pipe(alertConditions(cfg, testScheduler))).toBe('l 10m e 5m (cx) 6ms |', {
        l: cond('leak:ollama', true, 'warning', 0),
        e: cond('exhaustion:ollama', true, 'critical', 600_001, {
          title: 'ollama will exhaust memory',
          message: 'At about 1.0 GiB/h, ollama would exhaust available memory in about 20m (at 1970-01-01T00:30:00.000Z).',
        }),
        c: cond('leak:ollama', false, 'warning', 900_002, { message: 'ollama stopped leaking: restarted.' }),
        x: cond('exhaustion:ollama', false, 'critical', 900_002, { message: 'ollama stopped leaking: restarted.' }),
      });
    });
  });

  it('budget: above the budget → warning (PSS when read); clears only below the margin; a missing component is not running', () => {
    const at = (pssGiB: number | null) => S(sample({ components: pssGiB === null ? {} : { ollama: { rss: 9 * GIB, pss: pssGiB * GIB } } }));
    testScheduler.run(({ cold, expectObservable }) => {
      // budget 5 GiB, margin 5 %: 4.8 GiB stays, 4.7 GiB clears; 5.5 fires again; gone clears
      const source = cold('  a-b-c-d-e-f-|', { a: at(4.9), b: at(5.5), c: at(4.8), d: at(4.7), e: at(5.5), f: at(null) });
      expectObservable(source.pipe(alertConditions(config({ componentBudgets: { ollama: '5GiB' } }), testScheduler))).toBe('--b-c-d-e-f-|', {
        b: cond('budget:ollama', true, 'warning', 2, {
          kind: 'budget',
          component: 'ollama',
          // measured amounts to two significant digits (0.5 GiB over: 510 MiB), the budget as configured
          message: 'ollama uses 5.5 GiB (PSS), 510 MiB over its 5.0 GiB budget.',
        }),
        c: cond('budget:ollama', true, 'warning', 4, { message: 'ollama uses 4.8 GiB (PSS), just under its 5.0 GiB budget; it clears below 4.8 GiB.' }),
        d: cond('budget:ollama', false, 'warning', 6, { message: 'ollama uses 4.7 GiB (PSS) of its 5.0 GiB budget.' }),
        e: cond('budget:ollama', true, 'warning', 8),
        f: cond('budget:ollama', false, 'warning', 10, { message: 'ollama is not running.' }),
      });
    });
  });

  it('engine: RSS, heap and CPU per sample above their limits are warnings; a null limit disables its check', () => {
    const big = S(sample({ self: { rssBytes: 600 * MIB, heapUsedBytes: 300 * MIB, sampleCpuMs: 150 } }));
    const fine = S(sample());
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  f-b-----f-----|', { f: fine, b: big });
      expectObservable(source.pipe(alertConditions(config({ engine: { maxHeapUsedBytes: null } }), testScheduler))).toBe('--(rc)--(RC)--|', {
        r: cond('engine:rss', true, 'warning', 2, {
          component: 'engine',
          message: 'The engine process (pid 42): RSS 600 MiB, above alerts.engine.maxRssBytes 512 MiB (7.3% of memory).',
        }),
        c: cond('engine:cpu', true, 'warning', 2, { message: 'The engine process (pid 42): CPU time of one sample 150 ms, above alerts.engine.maxSampleCpuMs 100 ms.' }),
        R: cond('engine:rss', false, 'warning', 8),
        C: cond('engine:cpu', false, 'warning', 8),
      });
    });
  });

  it('engine: sampling stalled (no sample for stallIntervals × intervalMs) is critical; the next sample clears it', () => {
    const cfg = config({ engine: { stallIntervals: 3 } }, { sampling: { intervalMs: 2, pss: 'watched' } });
    testScheduler.run(({ cold, expectObservable }) => {
      // samples at 0, 2, then a gap: stalled at 2 + 6 = 8; the sample at 12 clears it
      const source = cold('  s-s---------s-|', { s: S(sample()) });
      expectObservable(source.pipe(alertConditions(cfg, testScheduler))).toBe('--------a---b-|', {
        a: cond('engine:stalled', true, 'critical', 8, {
          title: 'memtide sampling stalled',
          message: 'No memory sample for 6ms (expected every 2ms): memory is not being watched.',
          recommendations: [],
        }),
        b: cond('engine:stalled', false, 'critical', 12, { message: 'Samples arrive again (every 2ms).' }),
      });
    });
  });

  it('engine: stalled counts from the subscription when no sample ever arrives; a config change re-arms the timer', () => {
    const slow = config({ engine: { stallIntervals: 2 } }, { sampling: { intervalMs: 2, pss: 'watched' } });
    const slower = config({ engine: { stallIntervals: 2 } }, { sampling: { intervalMs: 5, pss: 'watched' } });
    testScheduler.run(({ cold, hot, expectObservable }) => {
      const cfg = hot('      a--b--------', { a: slow, b: slower });
      const source = cold<AlertInput>('  ------------|');
      // under a: stalled at 4; b at 3 re-arms: 0 + 10 = 10
      expectObservable(source.pipe(alertConditions(cfg, testScheduler))).toBe('----------a-|', {
        a: cond('engine:stalled', true, 'critical', 10),
      });
    });
  });

  it('hot reload: a new budget applies at once; a removed budget clears its condition', () => {
    const withBudget = config({ componentBudgets: { ollama: '4GiB' } });
    const lower = config({ componentBudgets: { ollama: '1GiB' } });
    const none = config();
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const cfg = hot('      a--b---c----', { a: withBudget, b: lower, c: none });
      const source = cold('  s----------|', { s: S(sample({ components: { ollama: { rss: 2 * GIB } } })) });
      expectObservable(source.pipe(alertConditions(cfg, testScheduler))).toBe('---b---c---|', {
        b: cond('budget:ollama', true, 'warning', 3),
        c: cond('budget:ollama', false, 'warning', 7, { message: 'ollama over its memory budget: no longer evaluated (its setting or component is gone).' }),
      });
      expectSubscriptions(cfg.subscriptions).toBe('^----------!');
    });
  });

  it('inputs before the first config value update the state; the config then evaluates it', () => {
    testScheduler.run(({ cold, hot, expectObservable }) => {
      const cfg = hot('      ---c---', { c: config() });
      const source = cold('  h-----|', { h: P('critical') });
      expectObservable(source.pipe(alertConditions(cfg, testScheduler))).toBe('---c--|', { c: cond('pressure', true, 'critical', 3) });
    });
  });

  it('a model load resets the growth baseline of the model component (a load is a step, not a leak)', () => {
    const leak: LeakEvent = { kind: 'leak', component: 'ollama', detectedAtMs: 0, slopeBytesPerHour: 50 * MIB, confidence: 0.9, projectedExhaustionMs: null };
    const at = (rss: number) => S(sample({ components: { ollama: { rss } } }));
    testScheduler.run(({ cold, expectObservable }) => {
      // 1 GiB, then a model load (+4 GiB), then 100 MiB of growth: the restart frees 100 MiB, not 4.1 GiB
      const source = cold('  a-m-b-c-L|', { a: at(GIB), m: M([model('llama3.1:8b', 4, null, { inFlight: 1 })]), b: at(5 * GIB), c: at(5 * GIB + 100 * MIB), L: L(leak) });
      expectObservable(source.pipe(alertConditions(config(), testScheduler))).toBe('--------l|', {
        l: cond('leak:ollama', true, 'warning', 8, { recommendations: [expect.objectContaining({ expectedSavingBytes: 100 * MIB })] }),
      });
    });
  });

  it('propagates an error of the source', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  h--#', { h: P('high') }, new Error('boom'));
      expectObservable(source.pipe(alertConditions(config(), testScheduler))).toBe('h--#', { h: cond('pressure', true, 'warning', 0) }, new Error('boom'));
      expectSubscriptions(source.subscriptions).toBe('^--!');
    });
  });

  it('invalid input becomes an AlertInputError (MEMTIDE_ERR_ALERT_INPUT) and unsubscribes the source', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const bad = { kind: 'leak', event: { kind: 'leak', component: 'x', slopeBytesPerHour: Number.NaN } } as unknown as AlertInput;
      const source = cold('  h-b-h', { h: P('high'), b: bad });
      expectObservable(source.pipe(alertConditions(config(), testScheduler))).toBe(
        'h-#',
        { h: cond('pressure', true, 'warning', 0) },
        new AlertInputError('leak event for x: slopeBytesPerHour must be a finite number, got NaN'),
      );
      expectSubscriptions(source.subscriptions).toBe('^-!');
    });
  });

  it('an unknown input kind errors with code MEMTIDE_ERR_ALERT_INPUT', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  -x', { x: { kind: 'weather' } as unknown as AlertInput });
      expectObservable(source.pipe(alertConditions(config(), testScheduler))).toBe(
        '-#',
        undefined,
        expect.objectContaining({ name: 'AlertInputError', code: 'MEMTIDE_ERR_ALERT_INPUT' }),
      );
    });
  });

  it('propagates an error of the config Observable and unsubscribes the source', () => {
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const cfg = hot('      c--#', { c: config() }, new Error('bad config'));
      const source = cold('  h-----', { h: P('critical') });
      expectObservable(source.pipe(alertConditions(cfg, testScheduler))).toBe('h--#', { h: cond('pressure', true, 'critical', 0) }, new Error('bad config'));
      expectSubscriptions(source.subscriptions).toBe('^--!');
      expectSubscriptions(cfg.subscriptions).toBe('^--!');
    });
  });

  it('allows early unsubscription (and cancels the stall timer)', () => {
    const cfg = config({ engine: { stallIntervals: 2 } }, { sampling: { intervalMs: 2, pss: 'watched' } });
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const config$ = hot('  c---------', { c: cfg });
      const source = cold('  h-m-------|', { h: P('high'), m: P('medium') });
      expectObservable(source.pipe(alertConditions(config$, testScheduler)), '^--!').toBe('h-m', {
        h: cond('pressure', true, 'warning', 0),
        m: cond('pressure', true, 'info', 2),
      });
      expectSubscriptions(source.subscriptions).toBe('^--!');
      expectSubscriptions(config$.subscriptions).toBe('^--!');
    });
  });

  it('completes with nothing on an empty source', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold<AlertInput>('  |');
      expectObservable(source.pipe(alertConditions(config(), testScheduler))).toBe('|');
      expectSubscriptions(source.subscriptions).toBe('(^!)');
    });
  });

  it('defaults to asyncScheduler (virtual inside run())', () => {
    const cfg = config({ engine: { stallIntervals: 2 } }, { sampling: { intervalMs: 3, pss: 'watched' } });
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  s--------|', { s: S(sample()) });
      expectObservable(source.pipe(alertConditions(cfg))).toBe('------a--|', { a: cond('engine:stalled', true, 'critical', 6) });
    });
  });

  it('stops reading a synchronous source at the first invalid input; never reads it when the config failed', () => {
    let read = 0;
    const errors: unknown[] = [];
    from([{ kind: 'nope' } as unknown as AlertInput, P('high'), P('low')])
      .pipe(
        tap(() => (read += 1)),
        alertConditions(config()),
      )
      .subscribe({ error: (e: unknown) => errors.push(e) });
    expect(read).toBe(1);
    expect(errors).toEqual([expect.objectContaining({ code: 'MEMTIDE_ERR_ALERT_INPUT' })]);

    read = 0;
    from([P('high')])
      .pipe(
        tap(() => (read += 1)),
        alertConditions(throwError(() => new Error('cfg'))),
      )
      .subscribe({ error: (e: unknown) => errors.push(e) });
    expect(read).toBe(0);
    expect(errors[1]).toEqual(new Error('cfg'));
  });
});
