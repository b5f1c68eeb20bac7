/**
 * Statistics of one window of floor points, decimated to a bounded number of
 * points so an evaluation costs the same whatever the sampling rate and the
 * window length. Points carry a segment id (segments are cut at steps); every
 * statistic compares points within a segment only.
 */
import { mannKendall } from './mannKendall.js';
import { medianInPlace, medianOfSorted, selectInPlace } from './median.js';
import { residualScale } from './noise.js';
import { HEAP, Scratch, type Alloc } from './scratch.js';
import { theilSenSlope } from './theilSen.js';

// Leaf temporaries (a group's values while its lower half is selected; a bulge's residuals): they hold nothing
// between calls.
const groupScratch = new Scratch();
const residualScratch = new Scratch();
const copyScratch = new Scratch();
const runScratch = new Scratch();

/** A compact series: times (ms, relative to any origin), values (bytes) and a non-decreasing segment id per point. */
export interface Series {
  times: Float64Array;
  values: Float64Array;
  segments: Int32Array;
  length: number;
}

/**
 * Mean of `values[0..n)` without its lowest and highest value (from 4 values
 * on): nearly as efficient as the mean on Gaussian noise (a median wastes a
 * third of the information), still untroubled by one odd floor.
 */
export function trimmedMean(values: ArrayLike<number>, n: number): number {
  let sum = 0;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = values[i] as number;
    sum += v;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return n >= 4 ? (sum - lo - hi) / (n - 2) : sum / n;
}

/**
 * Mean of the lower half of `values[0..n)` (from 4 values on; fewer: their
 * trimmed mean). A group of floors sits above memory's true floor by GC
 * remnants (a sawtooth slower than a bucket) and noise; the lower half keeps
 * the floor and drops the remnants, while still averaging the noise.
 */
export function lowerHalfMean(values: Float64Array, n: number): number {
  if (n < 4) return trimmedMean(values, n);
  // reorders values[0..n): the lower half ends up in front
  const k = Math.ceil(n / 2);
  selectInPlace(values, 0, n, k - 1);
  let sum = 0;
  for (let i = 0; i < k; i++) sum += values[i] as number;
  return sum / k;
}

/**
 * The points of `[start, end)` in at most `maxPoints` points: runs of
 * consecutive points of one segment are replaced by the mean of their lower
 * half at their median time (averages of neighbours are also less noisy).
 * Each segment keeps a share of the points in proportion to its length, at
 * least one. Times must be ascending (floors are).
 */
export function decimate(
  times: ArrayLike<number>,
  values: ArrayLike<number>,
  start: number,
  end: number,
  maxPoints: number,
  segments: ArrayLike<number> | null = null,
  alloc: Alloc = HEAP,
): Series {
  const n = Math.max(0, end - start);
  // two passes over the runs of one segment (count, then fill), so nothing but the result is allocated; the
  // first notes where each run ends
  const runEnds = runScratch.take(n);
  let runs = 0;
  let total = 0;
  for (let from = start; from < end; ) {
    const to = runEnd(segments, from, end);
    runEnds[runs++] = to;
    total += groupsOf(to - from, n, maxPoints);
    from = to;
  }
  const out: Series = { times: alloc.float64Unzeroed(total), values: alloc.float64Unzeroed(total), segments: alloc.int32Unzeroed(total), length: total };
  let g = 0;
  let from = start;
  for (let run = 0; run < runs; run++) {
    const to = runEnds[run] as number;
    const len = to - from;
    const groups = groupsOf(len, n, maxPoints);
    let a = from;
    for (let k = 0; k < groups; k++) {
      const b = from + Math.floor(((k + 1) * len) / groups);
      const size = b - a;
      if (size === 1) {
        out.times[g] = times[a] as number;
        out.values[g] = values[a] as number;
      } else {
        // times ascend: their median is the middle one (no selection)
        out.times[g] = medianOfSorted(times, a, b);
        if (size < 4) {
          // lowerHalfMean of fewer than 4 values is their plain mean (summed as trimmedMean sums): no copy needed
          let sum = 0;
          for (let i = a; i < b; i++) sum += values[i] as number;
          out.values[g] = sum / size;
        } else {
          const group = groupScratch.take(size);
          for (let i = a; i < b; i++) group[i - a] = values[i] as number;
          out.values[g] = lowerHalfMean(group, size);
        }
      }
      out.segments[g] = run;
      g++;
      a = b;
    }
    from = to;
  }
  return out;
}

/** The end of the run of one segment that starts at `from` (the whole range without segments). */
function runEnd(segments: ArrayLike<number> | null, from: number, end: number): number {
  if (segments === null) return end;
  let to = from + 1;
  while (to < end && segments[to] === segments[from]) to++;
  return to;
}

/** Points a run of `len` keeps out of `n` decimated to `maxPoints`: all of them when they fit, else its share (at least one). */
function groupsOf(len: number, n: number, maxPoints: number): number {
  return n <= maxPoints ? len : Math.max(1, Math.floor((len * maxPoints) / n));
}

export interface SlopeFit {
  /** Theil-Sen slope, bytes per ms. */
  slope: number;
  /** Approximate standard error of the slope (robust residual scale, least-squares formula). */
  standardError: number;
  /** Robust scale of the residuals around the fitted lines (the noise of one point). */
  scale: number;
  /** Mann-Kendall z of the values. */
  z: number;
  points: number;
}

/** Sum over segments of the squared time spread: what the least-squares slope error divides by. */
function timeSpread(series: Series, start: number, end: number): number {
  let spread = 0;
  for (let from = start; from < end; ) {
    let to = from + 1;
    while (to < end && series.segments[to] === series.segments[from]) to++;
    let mean = 0;
    for (let i = from; i < to; i++) mean += series.times[i] as number;
    mean /= to - from;
    for (let i = from; i < to; i++) spread += ((series.times[i] as number) - mean) ** 2;
    from = to;
  }
  return spread;
}

/**
 * Slope, its standard error and the Mann-Kendall z of `series[start..end)`,
 * pairs within segments. `z`: that z when the caller already has it (a span's
 * test), so it is not computed twice.
 */
export function fitSlope(series: Series, start = 0, end = series.length, z: number | null = null): SlopeFit {
  const points = end - start;
  if (points < 3) return { slope: Number.NaN, standardError: Number.POSITIVE_INFINITY, scale: Number.NaN, z: 0, points };
  const slope = theilSenSlope(series.times, series.values, start, end, series.segments);
  if (!Number.isFinite(slope)) return { slope, standardError: Number.POSITIVE_INFINITY, scale: Number.NaN, z: 0, points };
  const scale = residualScale(series.times, series.values, start, end, slope, series.segments);
  const spread = timeSpread(series, start, end);
  const standardError = spread > 0 ? scale / Math.sqrt(spread) : Number.POSITIVE_INFINITY;
  return { slope, standardError, scale, z: z ?? mannKendall(series.values, start, end, series.segments).z, points };
}

export interface Halves {
  first: SlopeFit;
  second: SlopeFit;
}

/**
 * Least-squares slope (one intercept per segment) and its standard error. Not
 * robust, on purpose: comparing halves, the few steep points at the start of
 * a warm-up are what matters, and Theil-Sen's median would outvote them. The
 * points are floors with excursions already left out.
 */
export function leastSquaresSlope(series: Series, start = 0, end = series.length): SlopeFit {
  const points = end - start;
  let sxy = 0;
  let sxx = 0;
  for (let from = start; from < end; ) {
    let to = from + 1;
    while (to < end && series.segments[to] === series.segments[from]) to++;
    let mt = 0;
    let mv = 0;
    for (let i = from; i < to; i++) {
      mt += series.times[i] as number;
      mv += series.values[i] as number;
    }
    mt /= to - from;
    mv /= to - from;
    for (let i = from; i < to; i++) {
      const dt = (series.times[i] as number) - mt;
      sxy += dt * ((series.values[i] as number) - mv);
      sxx += dt * dt;
    }
    from = to;
  }
  if (!(sxx > 0) || points < 3) return { slope: Number.NaN, standardError: Number.POSITIVE_INFINITY, scale: Number.NaN, z: 0, points };
  const slope = sxy / sxx;
  const scale = residualScale(series.times, series.values, start, end, slope, series.segments);
  return { slope, standardError: scale / Math.sqrt(sxx), scale, z: Number.NaN, points };
}

/** Least-squares slopes of the first and the second half (by time) of `series[start..end)`; null with fewer than 4 points in a half. */
export function halves(series: Series, start = 0, end = series.length): Halves | null {
  if (end - start < 8) return null;
  const mid = ((series.times[start] as number) + (series.times[end - 1] as number)) / 2;
  let split = start;
  while (split < end && (series.times[split] as number) < mid) split++;
  if (split - start < 4 || end - split < 4) return null;
  return { first: leastSquaresSlope(series, start, split), second: leastSquaresSlope(series, split, end) };
}

/** Index of the first point of the last segment of a series. */
export function lastSegmentStart(series: Series): number {
  let from = series.length - 1;
  while (from > 0 && series.segments[from - 1] === series.segments[series.length - 1]) from--;
  return Math.max(0, from);
}

/**
 * True when growth slows down significantly: the later slope is below `ratio`
 * times the earlier one and the gap is more than `z` standard errors. This is
 * how a cache warming up (an exponential approach to a plateau) differs from a
 * leak (a straight line).
 */
export function slowsDown(earlier: SlopeFit, later: SlopeFit, ratio: number, z: number): boolean {
  if (!(earlier.slope > 0)) return false;
  const gap = earlier.slope - (Number.isFinite(later.slope) ? later.slope : 0);
  const error = Math.hypot(earlier.standardError, later.standardError);
  return later.slope < ratio * earlier.slope && gap > z * error;
}

/**
 * How much a series bulges above its straight line in the middle: the median
 * residual (around `slope`, one intercept per segment) of the middle third of
 * `series[start..end)` minus the mean of the first and last thirds', with its
 * standard error. Positive and significant: the curve bends down (a warm-up
 * saturating); about 0: a straight line (a leak); negative: it bends up (a
 * leak that started inside the span). Levels, not slopes: far more power than
 * comparing the slopes of two halves. null with fewer than 3 points a third.
 */
export function bulge(series: Series, slope: number, start = 0, end = series.length): { bulge: number; error: number } | null {
  const n = end - start;
  if (n < 9) return null;
  const residuals = residualScratch.take(n);
  const copy = copyScratch.take(n);
  for (let i = start; i < end; i++) residuals[i - start] = (series.values[i] as number) - slope * (series.times[i] as number);
  // one intercept per segment: the median residual of the segment (of a copy: a median reorders its input, and
  // does not depend on the order)
  for (let from = 0; from < n; ) {
    let to = from + 1;
    while (to < n && series.segments[start + to] === series.segments[start + from]) to++;
    for (let i = from; i < to; i++) copy[i] = residuals[i] as number;
    const centre = medianInPlace(copy, from, to);
    for (let i = from; i < to; i++) residuals[i] = (residuals[i] as number) - centre;
    from = to;
  }
  const t0 = series.times[start] as number;
  const span = (series.times[end - 1] as number) - t0;
  // the thirds by time, each gathered in the copy (in time order: the first third, then the middle, the last)
  const third = (i: number): number => Math.min(2, Math.floor((3 * ((series.times[start + i] as number) - t0)) / (span || 1)));
  let at = 0;
  for (let k = 0; k < 3; k++) for (let i = 0; i < n; i++) if (third(i) === k) copy[at++] = residuals[i] as number;
  let c1 = 0;
  let c2 = 0;
  for (let i = 0; i < n; i++) {
    const k = third(i);
    if (k === 0) c1++;
    else if (k === 1) c2++;
  }
  const c3 = n - c1 - c2;
  if (c1 < 3 || c2 < 3 || c3 < 3) return null;
  const first = medianInPlace(copy, 0, c1);
  const middle = medianInPlace(copy, c1, c1 + c2);
  const last = medianInPlace(copy, c1 + c2, n);
  for (let i = 0; i < n; i++) copy[i] = Math.abs(residuals[i] as number);
  const scale = 1.4826 * medianInPlace(copy, 0, n);
  // a median of k points has about 1.25 sigma / sqrt(k) of error
  const e1 = (1.2533 * scale) / Math.sqrt(c1);
  const e2 = (1.2533 * scale) / Math.sqrt(c2);
  const e3 = (1.2533 * scale) / Math.sqrt(c3);
  return { bulge: middle - (first + last) / 2, error: Math.sqrt(e2 * e2 + (e1 * e1 + e3 * e3) / 4) };
}

/**
 * Slope of the best "flat, then a straight line" fit of `series[start..end)`
 * (least squares, continuous at the onset; the onset is tried at every point
 * but the last 3). For growth that began inside the window: the plain slope
 * of the window averages in the flat part. NaN with fewer than 5 points.
 */
export function hingeSlope(series: Series, start = 0, end = series.length): number {
  const n = end - start;
  if (n < 5) return Number.NaN;
  let best = Number.NaN;
  let bestError = Infinity;
  for (let j = start; j <= end - 4; j++) {
    const onset = series.times[j] as number;
    // v = a + s * max(0, t - onset): least squares on the regressors (1, x)
    let sx = 0;
    let sy = 0;
    let sxx = 0;
    let sxy = 0;
    for (let i = start; i < end; i++) {
      const x = Math.max(0, (series.times[i] as number) - onset);
      const y = series.values[i] as number;
      sx += x;
      sy += y;
      sxx += x * x;
      sxy += x * y;
    }
    const det = n * sxx - sx * sx;
    if (!(det > 0)) continue;
    const s = (n * sxy - sx * sy) / det;
    const a = (sy - s * sx) / n;
    let error = 0;
    for (let i = start; i < end; i++) {
      const r = (series.values[i] as number) - a - s * Math.max(0, (series.times[i] as number) - onset);
      error += r * r;
    }
    if (error < bestError) {
      bestError = error;
      best = s;
    }
  }
  return best;
}
