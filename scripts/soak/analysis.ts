/**
 * Offline analysis of a soak: one memory series of the engine (RSS from the
 * history, anonymous PSS or V8 heap from the live feed, or the real heap of a
 * test process) fed to the same `leakTrend` operator the live engine runs,
 * with the same `leaks` config, plus the numbers a reader wants next to the
 * verdict (start / peak / end, the slope of the detector's per-minute floors).
 *
 * Shared by `scripts/soak.ts` (the 30-minute runner soak) and
 * `test/soak.virtualDay.test.ts` (the virtual day).
 */
import { from, lastValueFrom, toArray } from 'rxjs';
import { configSchema, type MemtideConfig } from '../../src/app/configSchema.js';
import type { LeakEvent } from '../../src/model.js';
import { leakTrend, type LeakInput } from '../../src/operators/leakTrend.js';
import { mannKendall } from '../../src/operators/trend/mannKendall.js';
import { theilSenSlope } from '../../src/operators/trend/theilSen.js';

export type LeaksConfig = MemtideConfig['leaks'];

export interface Point {
  timestampMs: number;
  bytes: number;
  /** System available bytes at that time, when known (for the projected exhaustion). */
  availableBytes?: number | null;
}

/** The schema's `leaks` defaults: what `memtide run` uses without a config file. */
export const defaultLeaksConfig = (): LeaksConfig => configSchema.parse({}).leaks;

/** Runs `leakTrend` over one series as component `component`; times are the points' own (no timers). */
export async function detectLeaks(points: readonly Point[], config: LeaksConfig, component = 'engine'): Promise<LeakEvent[]> {
  const inputs: LeakInput[] = points.map((p) => ({
    timestampMs: p.timestampMs,
    components: { [component]: p.bytes },
    availableBytes: p.availableBytes ?? null,
  }));
  return lastValueFrom(from(inputs).pipe(leakTrend(config), toArray()));
}

/**
 * Floors the way the detector's buckets make them: per bucket, the
 * second-smallest sample (the smallest with fewer than 3). A GC sawtooth
 * shorter than a bucket disappears; a leak raises every floor.
 */
export function bucketFloors(points: readonly Point[], bucketMs: number): { times: number[]; values: number[] } {
  const byBucket = new Map<number, number[]>();
  for (const p of points) {
    const bucket = Math.floor(p.timestampMs / bucketMs) * bucketMs;
    let values = byBucket.get(bucket);
    if (!values) byBucket.set(bucket, (values = []));
    values.push(p.bytes);
  }
  const times: number[] = [];
  const values: number[] = [];
  for (const [bucket, list] of [...byBucket].sort((a, b) => a[0] - b[0])) {
    list.sort((a, b) => a - b);
    times.push(bucket);
    values.push(list.length >= 3 ? list[1]! : list[0]!);
  }
  return { times, values };
}

export interface SeriesSummary {
  samples: number;
  firstMs: number;
  spanMs: number;
  /** Median of the first / last `edgeMs` of samples (one GC cycle does not decide the number). */
  startBytes: number;
  endBytes: number;
  peakBytes: number;
  /** Theil-Sen slope of the bucket floors, bytes per hour (NaN with fewer than 2 floors). */
  floorSlopeBytesPerHour: number;
  /** Mann-Kendall z of the floors (positive: rising). */
  floorTrendZ: number;
  /** Theil-Sen slope of the floors of the second half only (after a warm-up, what is left), bytes per hour. */
  lateFloorSlopeBytesPerHour: number;
  floors: number;
  /** Leak and clear events of `leakTrend` over the series. */
  events: LeakEvent[];
  leak: boolean;
}

function medianOf(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export async function summarize(points: readonly Point[], config: LeaksConfig, edgeMs = 60_000): Promise<SeriesSummary> {
  const first = points[0]?.timestampMs ?? 0;
  const last = points.at(-1)?.timestampMs ?? 0;
  const floors = bucketFloors(points, config.bucketMs);
  // The last bucket is usually partial: its floor is not comparable.
  if (floors.times.length > 2) {
    floors.times.pop();
    floors.values.pop();
  }
  const events = await detectLeaks(points, config);
  const half = Math.floor(floors.values.length / 2);
  return {
    samples: points.length,
    firstMs: first,
    spanMs: last - first,
    startBytes: medianOf(points.filter((p) => p.timestampMs < first + edgeMs).map((p) => p.bytes)),
    endBytes: medianOf(points.filter((p) => p.timestampMs > last - edgeMs).map((p) => p.bytes)),
    peakBytes: points.reduce((max, p) => Math.max(max, p.bytes), 0),
    floorSlopeBytesPerHour: theilSenSlope(floors.times, floors.values) * 3_600_000,
    floorTrendZ: mannKendall(floors.values).z,
    lateFloorSlopeBytesPerHour: theilSenSlope(floors.times, floors.values, half) * 3_600_000,
    floors: floors.values.length,
    events,
    leak: events.some((e) => e.kind === 'leak'),
  };
}

export const mb = (bytes: number) => (Number.isFinite(bytes) ? `${(bytes / 1e6).toFixed(1)} MB` : 'n/a');
export const mbPerHour = (bytesPerHour: number) => (Number.isFinite(bytesPerHour) ? `${(bytesPerHour / 1e6).toFixed(2)} MB/h` : 'n/a');

/** One line per series for the report. */
export function describeSeries(name: string, s: SeriesSummary): string {
  const verdict = s.leak
    ? `LEAK (${s.events
        .filter((e) => e.kind === 'leak')
        .map((e) => (e.kind === 'leak' ? `${mbPerHour(e.slopeBytesPerHour)} at +${((e.detectedAtMs - s.firstMs) / 60_000).toFixed(1)} min` : ''))
        .join(', ')})`
    : 'no leak';
  return (
    `${name.padEnd(22)} samples ${String(s.samples).padStart(6)}  start ${mb(s.startBytes).padStart(9)}  peak ${mb(s.peakBytes).padStart(9)}  ` +
    `end ${mb(s.endBytes).padStart(9)}  floor slope ${mbPerHour(s.floorSlopeBytesPerHour).padStart(11)} (MK z ${s.floorTrendZ.toFixed(2)}, ${s.floors} floors), ` +
    `2nd half ${mbPerHour(s.lateFloorSlopeBytesPerHour).padStart(11)}  ${verdict}`
  );
}
