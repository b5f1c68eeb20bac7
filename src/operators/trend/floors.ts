/**
 * The floors an evaluation looks at: bucket floors without excursions (memory
 * given back within the batch tolerance: a batch, a long GC cycle), cut into
 * segments at steps and at known loads/unloads.
 */
import { findSteps, keepOutsideTransitions, segmentsAt } from './changePoints.js';
import { forwardMin, trailingMin } from './envelope.js';
import { MIN_SPAN_POINTS } from './evaluationParams.js';
import { HEAP, type Alloc } from './scratch.js';
import type { Series } from './windowStats.js';

/** Neighbours of an excursion more than this many noise deviations above the returned level belong to it. */
const GROW_NOISE_MULTIPLE = 2;

/** Floors without excursions, in segments; the first `confirmed` of them are old enough to be evidence. */
export interface Floors extends Series {
  confirmed: number;
}

/**
 * Excursions, by hysteresis: a point more than `seed` above the level memory
 * returned to is one, and so are its neighbours more than `grow` above it (the
 * foot of a batch's ramp, the shoulders of a long GC cycle), spreading until
 * a point is within `grow`. Plain noise rarely passes `grow` next to a seed.
 */
export function excursions(b: ArrayLike<number>, returned: ArrayLike<number>, n: number, seed: number, grow: number, alloc: Alloc = HEAP): Uint8Array {
  const flag = alloc.uint8(n);
  // every point is pushed at most once (it is flagged when pushed): n entries are enough
  const stack = alloc.int32Unzeroed(n);
  let top = 0;
  for (let i = 0; i < n; i++) {
    if ((b[i] as number) - (returned[i] as number) > seed) {
      flag[i] = 1;
      stack[top++] = i;
    }
  }
  while (top > 0) {
    const i = stack[--top] as number;
    for (let k = i - 1; k <= i + 1; k += 2) {
      if (k < 0 || k >= n || flag[k]) continue;
      if ((b[k] as number) - (returned[k] as number) > grow) {
        flag[k] = 1;
        stack[top++] = k;
      }
    }
  }
  return flag;
}

/**
 * The floors `b` (times `t`) that are not excursions: above the level memory
 * returned to within `toleranceMs` (from `m`, the floors' 3-point median;
 * near the end only what is already known to have been given back). Cut into
 * segments at steps and at `boundaries` (known loads/unloads: no pair across
 * them is ever compared, whatever the size of the jump), without the points
 * caught half-way through a step. The first `confirmed` are at or before
 * `confirmedEnd`.
 */
export function floorsOf(
  t: Float64Array,
  b: Float64Array,
  m: Float64Array,
  n: number,
  confirmedEnd: number,
  toleranceMs: number,
  threshold: number,
  noise: number,
  boundaries: readonly number[],
  alloc: Alloc = HEAP,
): Floors {
  const returned = forwardMin(t, m, n, toleranceMs, alloc.float64Unzeroed(n), alloc);
  const excursion = excursions(b, returned, n, threshold, Math.min(threshold, GROW_NOISE_MULTIPLE * noise), alloc);
  const ct = alloc.float64Unzeroed(n);
  const cv = alloc.float64Unzeroed(n);
  let cn = 0;
  for (let i = 0; i < n; i++) {
    if (excursion[i]) continue;
    ct[cn] = t[i] as number;
    cv[cn] = b[i] as number;
    cn++;
  }
  const cut = findSteps(ct, cv, cn, threshold, undefined, undefined, alloc);
  for (const at of boundaries) {
    let i = 0;
    while (i < cn && (ct[i] as number) < at) i++;
    if (i > 0 && i < cn && cut[i] === 0) cut[i] = Number.MIN_VALUE;
  }
  const segments = segmentsAt(cut, cn, alloc);
  const keep = keepOutsideTransitions(ct, cv, segments, cn, threshold, undefined, alloc);
  let dropped = 0;
  for (let i = 0; i < cn; i++) dropped += keep[i] ? 0 : 1;
  if (dropped === 0) {
    // nothing caught half-way through a step (the usual case): the floors are the arrays already made
    let confirmed = 0;
    while (confirmed < cn && (ct[confirmed] as number) <= confirmedEnd) confirmed++;
    return { times: ct, values: cv, segments, length: cn, confirmed };
  }
  // written up to `length` (the kept floors), read no further
  const out: Floors = { times: alloc.float64Unzeroed(cn), values: alloc.float64Unzeroed(cn), segments: alloc.int32Unzeroed(cn), length: 0, confirmed: 0 };
  for (let i = 0; i < cn; i++) {
    if (!keep[i]) continue;
    const k = out.length++;
    out.times[k] = ct[i] as number;
    out.values[k] = cv[i] as number;
    out.segments[k] = segments[i] as number;
    if ((ct[i] as number) <= confirmedEnd) out.confirmed = k + 1;
  }
  return out;
}

/** Index of the first point at or after `fromMs` (times ascending: a binary search; `length` when there is none). */
export function firstAtOrAfter(series: Series, fromMs: number): number {
  let lo = 0;
  let hi = series.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    // negated, so that a NaN bound finds no point (as a scan from the end would)
    if (!((series.times[mid] as number) >= fromMs)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * The running minimum (over `floorSpanMs`) of the floors from `fromMs` on, in
 * segments cut where it steps and where the floors were cut (steps, known
 * loads/unloads, restarts), with the number of cuts; null with too few points.
 * GC cycles up to floorSpanMs long leave no trace in it.
 */
export function runningFloor(floors: Floors, fromMs: number, floorSpanMs: number, threshold: number, alloc: Alloc = HEAP): (Series & { steps: number }) | null {
  const start = firstAtOrAfter(floors, fromMs);
  const len = floors.length - start;
  if (len < MIN_SPAN_POINTS) return null;
  // the first points of the window have their history too: the minimum runs from floorSpanMs before them (what
  // lies further back cannot reach any point of the window)
  const from = firstAtOrAfter(floors, (floors.times[start] as number) - floorSpanMs);
  const low = trailingMin(floors.times.subarray(from), floors.values.subarray(from), floors.length - from, floorSpanMs, alloc.float64Unzeroed(floors.length - from), alloc);
  const times = floors.times.subarray(start, floors.length);
  const values = low.subarray(start - from, floors.length - from);
  // cut where the running minimum steps, and wherever the floors were cut (steps, known loads, restarts)
  const cut = findSteps(times, values, len, threshold, undefined, undefined, alloc);
  for (let i = 1; i < len; i++) if (floors.segments[start + i] !== floors.segments[start + i - 1] && cut[i] === 0) cut[i] = Number.MIN_VALUE;
  const segments = segmentsAt(cut, len, alloc);
  return { times, values, segments, length: len, steps: segments[len - 1] as number };
}
