/**
 * Medians without sorting: quickselect, in place on a scratch array.
 * The trend helpers call these thousands of times per evaluation, so they
 * work on typed arrays and never allocate when given a scratch buffer.
 */

/** Ranges up to this long are finished by insertion sort (fewer moves than more partitioning). */
const SMALL = 16;

/**
 * Moves the k-th smallest of `a[lo..hi)` to index k and returns it; every
 * value left of k (within the range) is then at most it, every value right
 * of it at least it. The partition is branch-free (values move by arithmetic
 * on the comparison): noisy data is compared in no predictable order, and a
 * mispredicted branch per element cost more than the moves.
 */
export function selectInPlace(a: Float64Array, lo: number, hi: number, k: number): number {
  if (!(lo <= k && k < hi)) throw new RangeError(`k=${k} outside [${lo}, ${hi})`);
  let left = lo;
  let right = hi - 1;
  while (right - left >= SMALL) {
    // median of three as the pivot keeps sorted input (common: a leak) from going quadratic
    const x = a[left] as number;
    const y = a[(left + right) >>> 1] as number;
    const z = a[right] as number;
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y;
    // values below the pivot to the front: [left, below)
    let below = left;
    for (let i = left; i <= right; i++) {
      const v = a[i] as number;
      const less = +(v < pivot);
      a[i] = a[below] as number;
      a[below] = v;
      below += less;
    }
    if (k < below) {
      right = below - 1;
      continue;
    }
    // then the values equal to it: [below, equal) (runs of equal values, common in floors, end the search at once)
    let equal = below;
    for (let i = below; i <= right; i++) {
      const v = a[i] as number;
      const same = +(v === pivot);
      a[i] = a[equal] as number;
      a[equal] = v;
      equal += same;
    }
    if (k < equal) return pivot;
    // no progress only for a pivot equal to nothing (NaN): the insertion sort below ends it
    if (equal === left) break;
    left = equal;
  }
  for (let i = left + 1; i <= right; i++) {
    const v = a[i] as number;
    let j = i - 1;
    while (j >= left && (a[j] as number) > v) {
      a[j + 1] = a[j] as number;
      j--;
    }
    a[j + 1] = v;
  }
  return a[k] as number;
}

/** Median of `a[lo..hi)` (mean of the two middle values for an even count); reorders that range. NaN when empty. */
export function medianInPlace(a: Float64Array, lo = 0, hi = a.length): number {
  const n = hi - lo;
  if (n <= 0) return Number.NaN;
  const upper = lo + (n >> 1);
  const hiMid = selectInPlace(a, lo, hi, upper);
  if (n % 2 === 1) return hiMid;
  // after selection every element left of `upper` is <= hiMid: the lower middle is their maximum
  let loMid = -Infinity;
  for (let i = lo; i < upper; i++) if ((a[i] as number) > loMid) loMid = a[i] as number;
  return (loMid + hiMid) / 2;
}

/**
 * Median of `a[lo..hi)` when that range is already in ascending order (times):
 * the middle value, or the mean of the two middle values, exactly what
 * {@link medianInPlace} would return, without a copy or a selection.
 */
export function medianOfSorted(a: ArrayLike<number>, lo: number, hi: number): number {
  const n = hi - lo;
  if (n <= 0) return Number.NaN;
  const upper = lo + (n >> 1);
  return n % 2 === 1 ? (a[upper] as number) : ((a[upper - 1] as number) + (a[upper] as number)) / 2;
}

/** Median of a list of numbers (copied; the input is left alone). NaN when empty. */
export function median(values: ArrayLike<number>): number {
  return medianInPlace(Float64Array.from(values));
}
