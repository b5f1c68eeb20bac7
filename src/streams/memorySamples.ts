import {
  EMPTY,
  NEVER,
  type Observable,
  type SchedulerLike,
  asyncScheduler,
  catchError,
  distinctUntilChanged,
  exhaustMap,
  from,
  map,
  shareReplay,
  switchMap,
  takeUntil,
  timer,
  withLatestFrom,
} from 'rxjs';
import type { MemtideConfig } from '../app/configSchema.js';
import type { MemorySample } from '../model.js';
import type { Sampler } from '../sources/memorySampler.js';

/**
 * Samples on `sampling.intervalMs`, following config changes (a new interval
 * restarts the timer). A slow sample is never overlapped by the next one
 * (`exhaustMap`), and a failed sample is reported and skipped: one unreadable
 * /proc file must not end monitoring. Completes when `until$` emits.
 */
export function memorySamples(
  config$: Observable<MemtideConfig>,
  sampler: Sampler,
  onError: (error: unknown) => void,
  until$: Observable<unknown> = NEVER,
  scheduler: SchedulerLike = asyncScheduler,
): Observable<MemorySample> {
  return config$.pipe(
    map((config) => config.sampling.intervalMs),
    distinctUntilChanged(),
    switchMap((intervalMs) => timer(0, intervalMs, scheduler)),
    withLatestFrom(config$),
    exhaustMap(([, config]) =>
      from(sampler.sample(config)).pipe(
        catchError((error: unknown) => {
          onError(error);
          return EMPTY;
        }),
      ),
    ),
    // Completes for every subscriber at once when the engine stops, so no host subscription keeps the timer alive.
    takeUntil(until$),
    shareReplay({ bufferSize: 1, refCount: true }),
  );
}
