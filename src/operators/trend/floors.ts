/**
 * The floors an evaluation looks at: bucket floors without excursions (memory
 * given back within the batch tolerance: a batch, a long GC cycle), cut into
 * segments at steps and at known loads/unloads.
 */
import { findSteps, keepOutsideTransitions, segmentsAt } from './changePoints.js';
import { forwardMin, trailingMin } from './envelope.js';
import { MIN_SPAN_POINTS } from './evaluationParams.js';
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
export function excursions(b: ArrayLike<number>, returned: ArrayLike<number>, n: number, seed: number, grow: number): Uint8Array {
  const flag = new Uint8Array(n);
  const stack: number[] = [];
  for (let i = 0; i < n; i++) {
    if ((b[i] as number) - (returned[i] as number) > seed) {
      flag[i] = 1;
      stack.push(i);
    }
  }
  while (stack.length > 0) {
    const i = stack.pop() as number;
    for (const k of [i - 1, i + 1]) {
      if (k < 0 || k >= n || flag[k]) continue;
      if ((b[k] as number) - (returned[k] as number) > grow) {
        flag[k] = 1;
        stack.push(k);
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
): Floors {
  const returned = forwardMin(t, m, n, toleranceMs, new Float64Array(n));
  const excursion = excursions(b, returned, n, threshold, Math.min(threshold, GROW_NOISE_MULTIPLE * noise));
  const ct = new Float64Array(n);
  const cv = new Float64Array(n);
  let cn = 0;
  for (let i = 0; i < n; i++) {
    if (excursion[i]) continue;
    ct[cn] = t[i] as number;
    cv[cn] = b[i] as number;
    cn++;
  }
  const cut = findSteps(ct, cv, cn, threshold);
  for (const at of boundaries) {
    let i = 0;
    while (i < cn && (ct[i] as number) < at) i++;
    if (i > 0 && i < cn && cut[i] === 0) cut[i] = Number.MIN_VALUE;
  }
  const segments = segmentsAt(cut, cn);
  const keep = keepOutsideTransitions(ct, cv, segments, cn, threshold);
  const out: Floors = { times: new Float64Array(cn), values: new Float64Array(cn), segments: new Int32Array(cn), length: 0, confirmed: 0 };
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

/** Index of the first point at or after `fromMs`. */
export function firstAtOrAfter(series: Series, fromMs: number): number {
  let start = series.length;
  while (start > 0 && (series.times[start - 1] as number) >= fromMs) start--;
  return start;
}

/**
 * The running minimum (over `floorSpanMs`) of the floors from `fromMs` on, in
 * segments cut where it steps and where the floors were cut (steps, known
 * loads/unloads, restarts), with the number of cuts; null with too few points.
 * GC cycles up to floorSpanMs long leave no trace in it.
 */
export function runningFloor(floors: Floors, fromMs: number, floorSpanMs: number, threshold: number): (Series & { steps: number }) | null {
  const start = firstAtOrAfter(floors, fromMs);
  const len = floors.length - start;
  if (len < MIN_SPAN_POINTS) return null;
  // over the whole series, then cut: the first points of the window have their history too
  const low = trailingMin(floors.times, floors.values, floors.length, floorSpanMs, new Float64Array(floors.length));
  const times = floors.times.slice(start, floors.length);
  const values = low.slice(start, floors.length);
  // cut where the running minimum steps, and wherever the floors were cut (steps, known loads, restarts)
  const cut = findSteps(times, values, len, threshold);
  for (let i = 1; i < len; i++) if (floors.segments[start + i] !== floors.segments[start + i - 1] && cut[i] === 0) cut[i] = Number.MIN_VALUE;
  const segments = segmentsAt(cut, len);
  return { times, values, segments, length: len, steps: segments[len - 1] as number };
}
