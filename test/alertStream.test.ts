import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { configSchema, type MemtideConfig } from '../src/app/configSchema.js';
import type { alertsSchema } from '../src/app/schema/alerts.js';
import type { Alert, MemorySample, PressureChange, PressureLevel } from '../src/model.js';
import { alertConditionsConfigOf, alertStream, firingAlerts, tunablesOf } from '../src/streams/alerts.js';

const GIB = 1024 ** 3;

function sample(): MemorySample {
  return {
    timestampMs: 0,
    system: { totalBytes: 8 * GIB, availableBytes: 2 * GIB, usedBytes: 6 * GIB, swapTotalBytes: 0, swapUsedBytes: 0, psi: null, physicalTotalBytes: 8 * GIB, cgroupLimitBytes: null },
    components: {},
    processes: [],
    self: { pid: 1, rssBytes: 50 * 1024 ** 2, heapUsedBytes: 10 * 1024 ** 2, heapTotalBytes: 20 * 1024 ** 2, externalBytes: 0, arrayBuffersBytes: 0, sampleCpuMs: 1 },
  };
}

const change = (level: PressureLevel): PressureChange => ({ atMs: 0, level, previous: null, reasons: [] });

/** One frame = 1 ms: group_wait 3, recovery 2; sampling every 1 s (no stall within these tests). */
function config(alerts: z.input<typeof alertsSchema> = {}): MemtideConfig {
  return configSchema.parse({ alerts: { groupWaitMs: 3, recoveryDelayMs: 2, maxRecoveryDelayMs: 10, ...alerts } });
}

const firing = (atMs: number, sinceMs: number) =>
  expect.objectContaining({ key: 'pressure', status: 'firing', severity: 'warning', atMs, sinceMs, repeat: 0 }) as unknown as Alert;
const resolved = (atMs: number) => expect.objectContaining({ key: 'pressure', status: 'resolved', severity: 'warning', atMs }) as unknown as Alert;

describe('alertStream', () => {
  let ts: TestScheduler;
  beforeEach(() => {
    ts = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  });

  it('composes conditions and throttling: pressure high for 6 ms → one firing after group_wait, one resolved after the recovery delay', () => {
    ts.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const config$ = hot('  c-----------', { c: config() });
      const samples$ = cold('s---------|', { s: sample() });
      const pressure$ = cold('-h-----l--|', { h: change('high'), l: change('low') });
      expectObservable(alertStream({ samples$, pressure$ }, config$, ts)).toBe('----F----R--', { F: firing(4, 1), R: resolved(9) });
      expectSubscriptions(pressure$.subscriptions).toBe('^---------!');
    });
  });

  it('alerts.enabled: false evaluates nothing; turning it off mid-way drops the state', () => {
    ts.run(({ cold, hot, expectObservable }) => {
      const off = config({ enabled: false });
      expectObservable(alertStream({ samples$: cold('s-|', { s: sample() }), pressure$: cold('h-|', { h: change('critical') }) }, hot('c---', { c: off }), ts), '^---!').toBe(
        '----',
      );
      const config$ = hot('  c-d-------', { c: config(), d: off });
      const pressure$ = cold('h---------|', { h: change('high') });
      expectObservable(alertStream({ samples$: cold('s', { s: sample() }), pressure$ }, config$, ts), '^---------!').toBe('----------');
    });
  });

  it('is shared without replay: one state machine for all subscribers, and a late subscriber gets no stale alert', () => {
    ts.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const config$ = hot('  c-----------', { c: config() });
      const pressure$ = cold('-h----------', { h: change('high') });
      const samples$ = cold('s-----------', { s: sample() });
      const alerts$ = alertStream({ samples$, pressure$ }, config$, ts);
      // Inputs that never complete: both subscribers leave at 11 (else the 4 h repeat would run forever).
      expectObservable(alerts$, '^----------!').toBe('----F------', { F: firing(4, 1) });
      expectObservable(alerts$, '------^----!').toBe('-----------');
      expectSubscriptions(pressure$.subscriptions).toBe('^----------!');
    });
  });

  it('firingAlerts is the current state, replayed: a firing enters, a resolved leaves', () => {
    ts.run(({ cold, hot, expectObservable }) => {
      const config$ = hot('  c-----------', { c: config() });
      const pressure$ = cold('-h-----l----', { h: change('high'), l: change('low') });
      const firing$ = firingAlerts(alertStream({ samples$: cold('s', { s: sample() }), pressure$ }, config$, ts));
      expectObservable(firing$, '^-----------!').toBe('----a----b--', {
        a: new Map([['pressure', firing(4, 1)]]),
        b: new Map(),
      });
    });
  });

  it('maps the whole config to the operators: thresholds, sampling, preset, engine component, and tunables when the sections have them', () => {
    const c = config({ componentBudgets: { ollama: '5GB' } });
    const mapped = alertConditionsConfigOf(c);
    expect(mapped.alerts.componentBudgets).toEqual({ ollama: 5e9 });
    expect(mapped.sampling.intervalMs).toBe(1000);
    expect(mapped.components.engine).toBe('engine');
    expect(tunablesOf(c)).toEqual({ modelComponent: 'ollama', transcription: { concurrency: 1, component: 'audio' }, kvCacheType: 'f16', numBatch: null });
    const withConcurrency = { ...c, transcription: { ...c.transcription, maxConcurrent: 3 } };
    expect(tunablesOf(withConcurrency)).toEqual({ modelComponent: 'ollama', transcription: { concurrency: 3, component: 'audio' }, kvCacheType: 'f16', numBatch: null });
  });
});
