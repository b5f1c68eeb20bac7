/**
 * What memtide concludes from samples: pressure levels, leaks, alerts. One
 * composition used by the live engine and by `memtide analyze` (which replays
 * a trace in virtual time), so a trace gives exactly what the live engine
 * would have said on the same samples.
 */
import { EMPTY, asyncScheduler, filter, map, share, shareReplay, type Observable, type SchedulerLike } from 'rxjs';
import type { MemtideConfig } from '../app/configSchema.js';
import type { Alert, LeakEvent, LoadedModel, MemorySample, PressureChange } from '../model.js';
import { classifyPressure } from '../operators/classifyPressure.js';
import { leakTrend, type LeakInput, type LeakReset } from '../operators/leakTrend.js';
import { alertStream } from './alerts.js';

/**
 * Bytes the leak detector follows per component: anonymous PSS where it was
 * read (mapped model weights are file pages the kernel can reclaim, so a model
 * load does not look like growth), else RSS.
 */
export function leakInputOf(sample: MemorySample): LeakInput {
  const components: Record<string, number> = {};
  for (const [name, usage] of Object.entries(sample.components)) {
    if (usage.processCount === 0) continue;
    components[name] = usage.pssAnonBytes ?? usage.rssBytes;
  }
  // Without a known total (a trace lacking system rows) there is nothing to project exhaustion against.
  const availableBytes = sample.system.totalBytes > 0 ? sample.system.availableBytes : null;
  return { timestampMs: sample.timestampMs, components, availableBytes };
}

export interface AnalysisInputs {
  samples$: Observable<MemorySample>;
  config$: Observable<MemtideConfig>;
  /** Known model loads/unloads (the governor): leak windows restart there. */
  resets$?: Observable<LeakReset>;
  /** Loaded models, for alert recommendations. */
  models$?: Observable<readonly LoadedModel[]>;
  scheduler?: SchedulerLike;
}

export interface Analysis {
  /** Level changes; replays the current level. */
  pressure$: Observable<PressureChange>;
  /** Leak and clear events (events: not replayed). */
  leaks$: Observable<LeakEvent>;
  /** Alert notifications (events: not replayed). */
  alerts$: Observable<Alert>;
}

export function memoryAnalysis(inputs: AnalysisInputs): Analysis {
  const scheduler = inputs.scheduler ?? asyncScheduler;
  const { samples$, config$ } = inputs;
  const pressure$ = samples$.pipe(
    // A trace without system rows has no total to classify against: pressure is unknown there, not an error.
    filter((sample) => sample.system.totalBytes > 0),
    map((sample) => sample.system),
    classifyPressure(config$.pipe(map((config) => config.pressure)), scheduler),
    shareReplay({ bufferSize: 1, refCount: true }),
  );
  const leaks$ = samples$.pipe(
    map(leakInputOf),
    leakTrend(config$.pipe(map((config) => config.leaks)), inputs.resets$ ?? EMPTY, scheduler),
    share(),
  );
  const alerts$ = alertStream(
    { samples$, pressure$, leaks$, ...(inputs.models$ ? { models$: inputs.models$ } : {}) },
    config$,
    scheduler,
  );
  return { pressure$, leaks$, alerts$ };
}
