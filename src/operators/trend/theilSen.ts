/**
 * Theil-Sen slope: the median of the slopes of all pairs of points. Robust
 * (a quarter of the points can be arbitrary without moving it far) and, unlike
 * least squares, not dragged by a GC spike or a batch still in memory.
 *
 * With `segments` (a non-decreasing segment id per point), only pairs within
 * the same segment count: a series cut at its steps (a model load) gives the
 * slope of the segments, never of the step between them.
 */
import { medianInPlace } from './median.js';

let scratch = new Float64Array(1024);

/** Segment ends of the last call (scratch: the pair loop needs them only while it runs). */
let endsScratch = new Int32Array(256);

/** The index after the last point of the segment of each point. */
export function segmentEnds(segments: ArrayLike<number> | null, start: number, end: number, ends: Int32Array = new Int32Array(end)): Int32Array {
  let next = end;
  for (let i = end - 1; i >= start; i--) {
    if (segments !== null && i + 1 < end && segments[i + 1] !== segments[i]) next = i + 1;
    ends[i] = next;
  }
  return ends;
}

/**
 * Median pairwise slope of `(times[i], values[i])` for i in [start, end), in
 * value units per time unit, over pairs within a segment and at most `maxLag`
 * points apart (a short lag keeps a step inside the range from tilting the
 * slope: few pairs straddle it). Pairs with equal times are skipped. NaN
 * without any pair. O(n²): callers keep n small (the detector decimates a
 * window to a bounded number of points).
 */
export function theilSenSlope(
  times: ArrayLike<number>,
  values: ArrayLike<number>,
  start = 0,
  end = values.length,
  segments: ArrayLike<number> | null = null,
  maxLag = Infinity,
): number {
  const n = end - start;
  const pairs = (n * (n - 1)) / 2;
  if (pairs <= 0) return Number.NaN;
  if (scratch.length < pairs) scratch = new Float64Array(Math.max(pairs, scratch.length * 2));
  if (segments !== null && endsScratch.length < end) endsScratch = new Int32Array(Math.max(end, 2 * endsScratch.length));
  const ends = segments === null ? null : segmentEnds(segments, start, end, endsScratch);
  let count = 0;
  for (let i = start; i < end; i++) {
    const ti = times[i] as number;
    const vi = values[i] as number;
    const last = Math.min(ends === null ? end : (ends[i] as number), i + 1 + maxLag);
    for (let j = i + 1; j < last; j++) {
      const dt = (times[j] as number) - ti;
      if (dt !== 0) scratch[count++] = ((values[j] as number) - vi) / dt;
    }
  }
  return count === 0 ? Number.NaN : medianInPlace(scratch, 0, count);
}

/**
 * Whether {@link theilSenSlope} of the same points is at least `bound`,
 * mostly without its median: the pair slopes below the bound are counted,
 * and the median is selected only when the bound falls between the two
 * middle slopes. (A reported leak is re-checked every minute against the
 * floor rate, and a count costs a fraction of a selection.) False without
 * any pair, as NaN is at least nothing.
 */
export function theilSenAtLeast(
  times: ArrayLike<number>,
  values: ArrayLike<number>,
  start: number,
  end: number,
  segments: ArrayLike<number> | null,
  bound: number,
): boolean {
  const n = end - start;
  const pairs = (n * (n - 1)) / 2;
  if (pairs <= 0 || Number.isNaN(bound)) return false;
  if (scratch.length < pairs) scratch = new Float64Array(Math.max(pairs, scratch.length * 2));
  if (segments !== null && endsScratch.length < end) endsScratch = new Int32Array(Math.max(end, 2 * endsScratch.length));
  const ends = segments === null ? null : segmentEnds(segments, start, end, endsScratch);
  let count = 0;
  let below = 0;
  for (let i = start; i < end; i++) {
    const ti = times[i] as number;
    const vi = values[i] as number;
    const last = ends === null ? end : (ends[i] as number);
    for (let j = i + 1; j < last; j++) {
      const dt = (times[j] as number) - ti;
      if (dt === 0) continue;
      const slope = ((values[j] as number) - vi) / dt;
      scratch[count++] = slope;
      below += +(slope < bound);
    }
  }
  if (count === 0) return false;
  // the median is the middle slope (odd count) or the mean of the two middle ones: at least the bound when at
  // most that many slopes are below it; below it when both middle slopes are (the mean of two values under a
  // bound stays under it, the mean of two at or over it stays at or over it, rounding included)
  const upper = count >> 1;
  if (count % 2 === 1) return below <= upper;
  if (below <= upper - 1) return true;
  if (below >= upper + 1) return false;
  return medianInPlace(scratch, 0, count) >= bound;
}
