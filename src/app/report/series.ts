/**
 * Bounded, streaming summaries of a time series: running statistics and a
 * downsampler that never holds more than `maxPoints` points however long the
 * range is. The report reads a month of history through these, one point at
 * a time, so its memory does not grow with the history.
 */
import type { ByteStats, ChartPoint } from './types.js';

/** Points per chart: enough for a 900-pixel-wide SVG, few enough for an O(n²) Theil-Sen. */
export const MAX_CHART_POINTS = 300;

interface Bin {
  /** Bin number on the grid `origin + index * width`. */
  index: number;
  weight: number;
  /** Sum of (time - origin) * weight: relative times keep the sum exact far longer. */
  timeSum: number;
  sum: number;
  min: number;
  max: number;
}

/**
 * Adaptive time bins: starts 1 ms wide and doubles the width (merging bin
 * pairs) whenever more than `maxPoints` bins exist. Bins stay aligned to the
 * first point, so merging is exact. Expects points in time order (as the
 * store streams them); a point earlier than the last bin is merged into it.
 */
export class Downsampler {
  private bins: Bin[] = [];
  private origin: number | null = null;
  private width = 1;

  constructor(private readonly maxPoints = MAX_CHART_POINTS) {
    if (!Number.isInteger(maxPoints) || maxPoints < 2) throw new RangeError(`maxPoints must be an integer >= 2, got ${maxPoints}`);
  }

  add(atMs: number, value: number, min = value, max = value, weight = 1): void {
    const origin = (this.origin ??= atMs);
    const index = Math.max(0, Math.floor((atMs - origin) / this.width));
    const last = this.bins.at(-1);
    if (last && index <= last.index) {
      mergeInto(last, { index, weight, timeSum: (atMs - origin) * weight, sum: value * weight, min, max });
      return;
    }
    this.bins.push({ index, weight, timeSum: (atMs - origin) * weight, sum: value * weight, min, max });
    while (this.bins.length > this.maxPoints) this.coarsen();
  }

  points(): ChartPoint[] {
    const origin = this.origin ?? 0;
    return this.bins.map((b) => ({
      atMs: Math.round(origin + b.timeSum / b.weight),
      bytes: Math.round(b.sum / b.weight),
      minBytes: b.min,
      maxBytes: b.max,
    }));
  }

  private coarsen(): void {
    this.width *= 2;
    const merged: Bin[] = [];
    for (const bin of this.bins) {
      const index = Math.floor(bin.index / 2);
      const last = merged.at(-1);
      if (last && last.index === index) mergeInto(last, bin);
      else merged.push({ ...bin, index });
    }
    this.bins = merged;
  }
}

function mergeInto(target: Bin, bin: Bin): void {
  target.weight += bin.weight;
  target.timeSum += bin.timeSum;
  target.sum += bin.sum;
  target.min = Math.min(target.min, bin.min);
  target.max = Math.max(target.max, bin.max);
}

/** Current / peak / average / minimum of a measure, in O(1) memory. */
export class RunningStats {
  private weight = 0;
  private sum = 0;
  private min = Number.POSITIVE_INFINITY;
  private max = Number.NEGATIVE_INFINITY;
  private current = 0;

  /** `value` is the average of `weight` samples whose extremes were `min` and `max`. */
  add(value: number, min = value, max = value, weight = 1): void {
    this.weight += weight;
    this.sum += value * weight;
    this.min = Math.min(this.min, min);
    this.max = Math.max(this.max, max);
    this.current = value;
  }

  get count(): number {
    return this.weight;
  }

  /** Null before the first value. */
  result(): ByteStats | null {
    if (this.weight === 0) return null;
    return { currentBytes: this.current, peakBytes: this.max, averageBytes: Math.round(this.sum / this.weight), minBytes: this.min };
  }
}
