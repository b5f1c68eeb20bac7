/**
 * Change points of a floor series. Two kinds matter to a leak detector:
 *
 * - A **step** (a model loaded or unloaded, a cache dropped): a level shift
 *   between neighbouring points, much larger than the local growth. The series
 *   is cut into segments at its steps and trends are measured within segments
 *   only, so a load is never read as growth, while a leak on either side of it
 *   still is.
 * - A **restart**: memory falls below everything it was in the preceding
 *   period and stays there. The process restarted (or freed what it grew):
 *   the window starts again from there, and a reported leak is cleared.
 */
import { median, medianInPlace, medianOfSorted } from './median.js';
import { HEAP, type Alloc } from './scratch.js';
import { theilSenSlope } from './theilSen.js';

/**
 * The steps of a series: `jumps[i]` is the level shift between the points
 * before i and the points from i on, when it is at least `thresholdBytes`;
 * 0 elsewhere. The level on each side is the median of up to `side` points
 * (so one noisy point is never a step, while a shift that persists is), and
 * the growth expected over the gap is taken out first: the mean of the
 * Theil-Sen slopes within `contextMs` on each side (each side on its own, so
 * the step does not bias them). A steady leak, however fast, has no steps,
 * also across a gap where points were left out. Of neighbouring candidates
 * only the largest is kept: one load is one step. The context slopes use
 * pairs at most `side` points apart, so another step nearby tilts them little.
 * Times must ascend (floors' do).
 */
export function findSteps(
  times: ArrayLike<number>,
  values: ArrayLike<number>,
  n: number,
  thresholdBytes: number,
  side = 4,
  contextMs = 15 * 60_000,
  alloc: Alloc = HEAP,
): Float64Array {
  const jumps = alloc.float64(n);
  // per position: the rate of its shift (every position), and for the candidates (below) the shift, then the excess
  // (0 elsewhere); only the excess is read where it was not written
  const rates = alloc.float64Unzeroed(n);
  const excess = alloc.float64(n);
  const gaps = alloc.float64Unzeroed(n);
  const candidates = alloc.int32Unzeroed(n);
  let count = 0;
  // The median of each run of `side` points, once: position i compares the run ending before it with the run
  // starting at it, so every full run is seen from two positions (this halves the medians, the bulk of the cost).
  const runs = Math.max(0, n - side + 1);
  const runValue = alloc.float64Unzeroed(runs);
  const runTime = alloc.float64Unzeroed(runs);
  for (let j = 0; j < runs; j++) runValue[j] = smallMedian(values, j, j + side);
  // times ascend: the median of a run is its middle (for four, the mean of the two middle ones: exactly what the
  // sum-minus-extremes of smallMedian gives for times in whole or halved milliseconds, as floors' are)
  for (let j = 0; j < runs; j++) runTime[j] = medianOfSorted(times, j, j + side);
  // positions before `last` have at least 2 points from them on (a level to compare with)
  const last = n >= 2 ? n - 1 : n;
  const halfThreshold = thresholdBytes / 2;
  const halfContext = contextMs / 2;
  for (let i = 1; i < last; i++) {
    const nb = i < side ? i : side;
    const na = n - i < side ? n - i : side;
    // the bulk (full runs on both sides) reads the medians computed above; the ends compute their shorter ones
    let shift: number;
    let gap: number;
    if (na === side && nb === side) {
      shift = (runValue[i] as number) - (runValue[i - side] as number);
      gap = (runTime[i] as number) - (runTime[i - side] as number);
    } else {
      const after = na === side ? (runValue[i] as number) : smallMedian(values, i, i + na);
      const before = nb === side ? (runValue[i - side] as number) : smallMedian(values, i - nb, i);
      const afterTime = na === side ? (runTime[i] as number) : medianOfSorted(times, i, i + na);
      const beforeTime = nb === side ? (runTime[i - side] as number) : medianOfSorted(times, i - nb, i);
      shift = after - before;
      gap = afterTime - beforeTime;
    }
    rates[i] = gap > 0 ? shift / gap : 0;
    // a small shift over a short gap is no step whatever the context: most positions end here
    if (Math.abs(shift) < halfThreshold && gap <= halfContext) continue;
    candidates[count++] = i;
    excess[i] = shift;
    gaps[i] = gap;
  }
  const outside = alloc.float64Unzeroed(6 * side + 2);
  for (let c = 0; c < count; c++) {
    const i = candidates[c] as number;
    const shift = excess[i] as number;
    const gap = gaps[i] as number;
    excess[i] = 0;
    // a steady trend shifts every position alike: compared with the positions just outside this one's reach,
    // a shift that is no different is no step (the full context below is the costly part)
    let outsideCount = 0;
    for (let k = Math.max(1, i - 3 * side); k < Math.min(last, i + 3 * side + 1); k++) if (Math.abs(k - i) > side) outside[outsideCount++] = rates[k] as number;
    if (outsideCount >= side && Math.abs(shift - medianInPlace(outside, 0, outsideCount) * gap) < thresholdBytes / 2) continue;
    let lo = i - 1;
    while (lo > 0 && (times[lo - 1] as number) >= (times[i - 1] as number) - contextMs) lo--;
    let hi = i + 1;
    while (hi < n && (times[hi] as number) <= (times[i] as number) + contextMs) hi++;
    // pairs at most `side` points apart: another step in the context straddles few of them
    const left = i - lo >= 3 ? theilSenSlope(times, values, lo, i, null, side) : Number.NaN;
    const right = hi - i >= 3 ? theilSenSlope(times, values, i, hi, null, side) : Number.NaN;
    // the mean of the finite side slopes (0 without any)
    const slope = Number.isFinite(left) ? (Number.isFinite(right) ? (0 + left + right) / 2 : 0 + left) : Number.isFinite(right) ? 0 + right : 0;
    const e = shift - slope * gap;
    if (Math.abs(e) >= thresholdBytes) excess[i] = e;
  }
  // non-maximum suppression: a shift is seen from every point near it; keep the largest, placed at the largest
  // single move of the same sign nearby (the medians of the windows can straddle the step by a point). Only
  // candidates can have an excess; they are visited in order, as every position used to be.
  for (let c = 0; c < count; c++) {
    const i = candidates[c] as number;
    const e = Math.abs(excess[i] as number);
    if (e === 0) continue;
    let largest = true;
    for (let k = Math.max(1, i - side); k <= Math.min(n - 1, i + side) && largest; k++) {
      const other = Math.abs(excess[k] as number);
      if (other > e || (other === e && k < i)) largest = false;
    }
    if (!largest) continue;
    const sign = Math.sign(excess[i] as number);
    let at = i;
    let move = -Infinity;
    for (let k = Math.max(1, i - side + 1); k <= Math.min(n - 1, i + side - 1); k++) {
      const m = sign * ((values[k] as number) - (values[k - 1] as number));
      if (m > move) {
        move = m;
        at = k;
      }
    }
    if (jumps[at] === 0) jumps[at] = excess[i] as number;
  }
  return jumps;
}

/** Median of `values[from..to)`; without allocating for up to 4 of them (the usual case). */
function smallMedian(values: ArrayLike<number>, from: number, to: number): number {
  const n = to - from;
  if (n > 4) return median(Array.from({ length: n }, (_, k) => values[from + k] as number));
  const a = values[from] as number;
  if (n === 1) return a;
  const b = values[from + 1] as number;
  if (n === 2) return (a + b) / 2;
  const c = values[from + 2] as number;
  if (n === 3) return Math.max(Math.min(a, b), Math.min(Math.max(a, b), c));
  const d = values[from + 3] as number;
  // the two middle values of four: the sum minus the smallest and the largest
  const lo = a < b ? a : b;
  const hi = a < b ? b : a;
  const lo2 = c < d ? c : d;
  const hi2 = c < d ? d : c;
  return (a + b + c + d - (lo < lo2 ? lo : lo2) - (hi > hi2 ? hi : hi2)) / 2;
}

/** Segment id of each point: a new segment starts at every step. */
export function segmentsAt(jumps: ArrayLike<number>, n: number, alloc: Alloc = HEAP): Int32Array {
  const segments = alloc.int32Unzeroed(n);
  let id = 0;
  for (let i = 0; i < n; i++) {
    if (i > 0 && jumps[i] !== 0) id++;
    segments[i] = id;
  }
  return segments;
}

/**
 * Points caught in the middle of a step (a load spread over two buckets: one
 * floor half-way up) sit at the edge of a segment, far from its level. Returns
 * 0 for such edge points (more than `thresholdBytes` from where the next
 * `side` points of their segment put them, their trend included), 1 for the
 * points to keep.
 */
export function keepOutsideTransitions(
  times: ArrayLike<number>,
  values: ArrayLike<number>,
  segments: Int32Array,
  n: number,
  thresholdBytes: number,
  side = 4,
  alloc: Alloc = HEAP,
): Uint8Array {
  const keep = alloc.uint8(n).fill(1);
  const t = alloc.float64Unzeroed(side);
  const v = alloc.float64Unzeroed(side);
  for (let i = 0; i < n; i++) {
    // only edges made by a step: the two ends of the whole series are no transition
    const first = i > 0 && segments[i - 1] !== segments[i];
    const last = i < n - 1 && segments[i + 1] !== segments[i];
    if (!first && !last) continue;
    for (let pass = 0; pass < 2; pass++) {
      // forwards from the first point of a segment, backwards from the last (both for a one-point segment)
      const direction = pass === 0 ? (first ? 1 : 0) : last ? -1 : 0;
      if (direction === 0) continue;
      let count = 0;
      for (let k = i + direction; k >= 0 && k < n && segments[k] === segments[i] && count < side; k += direction) {
        t[count] = times[k] as number;
        v[count] = values[k] as number;
        count++;
      }
      if (count < 2) continue;
      const slope = theilSenSlope(t, v, 0, count);
      for (let k = 0; k < count; k++) v[k] = (v[k] as number) - slope * ((t[k] as number) - (times[i] as number));
      if (Math.abs((values[i] as number) - medianInPlace(v, 0, count)) > thresholdBytes) keep[i] = 0;
    }
  }
  return keep;
}

export interface Restart {
  /** Index of the first point after the fall. */
  index: number;
  /** How far the level fell: the floor before minus the highest point after. */
  dropBytes: number;
}

/**
 * The latest restart in the series: a point i where every value in
 * [times[i], times[i] + holdMs] is at least `thresholdBytes` below every value
 * in [times[i] - beforeMs, times[i]). Only points whose hold period and
 * before period are complete are considered (a brief dip is not a restart,
 * and neither is the end of a batch whose start fell out of the window). A batch that frees
 * its memory returns to the level before it, a GC trough to the troughs
 * before it: neither falls below the preceding floor. null when there is none.
 */
export function findRestart(times: ArrayLike<number>, values: ArrayLike<number>, n: number, beforeMs: number, holdMs: number, thresholdBytes: number): Restart | null {
  if (n < 2) return null;
  const lastTime = times[n - 1] as number;
  for (let i = n - 1; i >= 1; i--) {
    const ti = times[i] as number;
    if (ti + holdMs > lastTime) continue;
    if (ti - beforeMs < (times[0] as number)) break;
    // only a point lower than its predecessor can start a fall
    if ((values[i] as number) >= (values[i - 1] as number) - thresholdBytes) continue;
    let after = -Infinity;
    for (let k = i; k < n && (times[k] as number) <= ti + holdMs; k++) after = Math.max(after, values[k] as number);
    let before = Infinity;
    for (let k = i - 1; k >= 0 && (times[k] as number) >= ti - beforeMs; k--) before = Math.min(before, values[k] as number);
    if (after <= before - thresholdBytes) return { index: i, dropBytes: before - after };
  }
  return null;
}
