/**
 * Robust noise scale of a series: the MAD of its first differences, scaled to
 * a standard deviation of one point. Differencing removes any trend; the MAD
 * ignores the few differences that are steps or GC peaks.
 */
import { medianInPlace } from './median.js';
import { Scratch } from './scratch.js';

// Leaf temporaries (a median reorders its input): these functions return a number and keep nothing.
const first = new Scratch();
const second = new Scratch();

/** Standard deviation of the point-to-point noise of `values[0..n)` (0 with fewer than 3 points). */
export function robustNoiseScale(values: ArrayLike<number>, n: number): number {
  if (n < 3) return 0;
  const diffs = first.take(n - 1);
  const copy = second.take(n - 1);
  for (let i = 1; i < n; i++) {
    const d = (values[i] as number) - (values[i - 1] as number);
    diffs[i - 1] = d;
    copy[i - 1] = d;
  }
  const centre = medianInPlace(copy, 0, n - 1);
  for (let i = 0; i < n - 1; i++) diffs[i] = Math.abs((diffs[i] as number) - centre);
  // 1.4826 turns a MAD into a standard deviation for normal noise; a difference of two points has sqrt(2) of it
  return (1.4826 * medianInPlace(diffs, 0, n - 1)) / Math.SQRT2;
}

/**
 * Robust scale (1.4826 MAD) of the residuals of `values[start..end)` around
 * lines of slope `slope`, one intercept (the median) per segment.
 */
export function residualScale(
  times: ArrayLike<number>,
  values: ArrayLike<number>,
  start: number,
  end: number,
  slope: number,
  segments: ArrayLike<number> | null = null,
): number {
  const n = end - start;
  if (n < 3) return 0;
  const residuals = first.take(n);
  const copy = second.take(n);
  for (let i = start; i < end; i++) {
    const r = (values[i] as number) - slope * (times[i] as number);
    residuals[i - start] = r;
    copy[i - start] = r;
  }
  let from = 0;
  while (from < n) {
    let to = from + 1;
    if (segments !== null) while (to < n && segments[start + to] === segments[start + from]) to++;
    else to = n;
    // the median of a copy (a median does not depend on the order it reorders its input into)
    const centre = medianInPlace(copy, from, to);
    for (let i = from; i < to; i++) residuals[i] = Math.abs((residuals[i] as number) - centre);
    from = to;
  }
  return 1.4826 * medianInPlace(residuals, 0, n);
}

/**
 * The point-to-point differences of a window of floors, kept in order as
 * floors come and go, so that {@link robustNoiseScale} of the window is read
 * off them instead of selected twice from scratch at every evaluation (one
 * floor arrives and one leaves between two evaluations; the other 238
 * differences are the same).
 *
 * The same number exactly, not an approximation: medians are order
 * statistics, and a difference of two whole-byte floors is the difference of
 * their levels relative to any whole-byte origin (what an evaluation uses).
 * With a floor that is not a whole number (or beyond 2^52) that no longer
 * holds to the last bit: {@link scale} then returns null and the evaluation
 * computes it.
 */
export class SortedDiffs {
  private sorted: Float64Array;
  private count = 0;
  /** Floors (not differences) in the window that are not exact whole numbers. */
  private inexact = 0;

  constructor(capacity: number) {
    this.sorted = new Float64Array(Math.max(1, capacity));
  }

  /** A floor entered the window (after `previous`, the last one, if any). */
  enter(value: number, previous: number | null): void {
    if (!exactFloor(value)) this.inexact++;
    if (previous !== null) this.insert(value - previous);
  }

  /** The first floor left the window (`next` the one after it, if any). */
  leave(value: number, next: number | null): void {
    if (!exactFloor(value)) this.inexact--;
    if (next !== null) this.remove(next - value);
  }

  clear(): void {
    this.count = 0;
    this.inexact = 0;
  }

  /** `robustNoiseScale` of the window's floors; null when it cannot be told exactly from the differences. */
  scale(): number | null {
    if (this.inexact > 0) return null;
    const m = this.count;
    // robustNoiseScale needs 3 points (2 differences)
    if (m < 2) return 0;
    const s = this.sorted;
    const upper = m >> 1;
    const centre = m % 2 === 1 ? (s[upper] as number) : ((s[upper - 1] as number) + (s[upper] as number)) / 2;
    // the deviations |d - centre|, smallest first: walking out from the centre on both sides at once
    let right = upper;
    while (right > 0 && (s[right - 1] as number) >= centre) right--;
    let left = right - 1;
    let previous = 0;
    let current = 0;
    for (let k = 0; k <= upper; k++) {
      previous = current;
      const below = left >= 0 ? centre - (s[left] as number) : Infinity;
      const above = right < m ? (s[right] as number) - centre : Infinity;
      if (below <= above) {
        current = below;
        left--;
      } else {
        current = above;
        right++;
      }
    }
    const mad = m % 2 === 1 ? current : (previous + current) / 2;
    return (1.4826 * mad) / Math.SQRT2;
  }

  private insert(d: number): void {
    if (this.count === this.sorted.length) {
      const grown = new Float64Array(2 * this.sorted.length);
      grown.set(this.sorted);
      this.sorted = grown;
    }
    const at = lowerBound(this.sorted, this.count, d);
    this.sorted.copyWithin(at + 1, at, this.count);
    this.sorted[at] = d;
    this.count++;
  }

  private remove(d: number): void {
    const at = lowerBound(this.sorted, this.count, d);
    // always present: it was inserted from the same two floors (a NaN difference never matches: it sits last)
    const index = at < this.count && this.sorted[at] === d ? at : this.count - 1;
    this.sorted.copyWithin(index, index + 1, this.count);
    this.count--;
  }
}

/** Whole bytes within the range where differences and shifted levels are exact. */
function exactFloor(value: number): boolean {
  return Number.isInteger(value) && Math.abs(value) <= 2 ** 52;
}

/** Index of the first of the ascending `a[0..n)` that is not below `x`. */
function lowerBound(a: Float64Array, n: number, x: number): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((a[mid] as number) < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
