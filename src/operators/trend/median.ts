/**
 * Medians without sorting: Hoare's quickselect, in place on a scratch array.
 * The trend helpers call these thousands of times per evaluation, so they
 * work on typed arrays and never allocate when given a scratch buffer.
 */

/** Moves the k-th smallest of `a[lo..hi)` to index k (partially reordering that range) and returns it. */
export function selectInPlace(a: Float64Array, lo: number, hi: number, k: number): number {
  if (!(lo <= k && k < hi)) throw new RangeError(`k=${k} outside [${lo}, ${hi})`);
  let left = lo;
  let right = hi - 1;
  while (right > left) {
    // median of three as the pivot keeps sorted input (common: a leak) from going quadratic
    const mid = (left + right) >>> 1;
    const x = a[left] as number;
    const y = a[mid] as number;
    const z = a[right] as number;
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y;
    let i = left;
    let j = right;
    while (i <= j) {
      while ((a[i] as number) < pivot) i++;
      while ((a[j] as number) > pivot) j--;
      if (i <= j) {
        const t = a[i] as number;
        a[i] = a[j] as number;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) right = j;
    else if (k >= i) left = i;
    else break;
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

/** Median of a list of numbers (copied; the input is left alone). NaN when empty. */
export function median(values: ArrayLike<number>): number {
  return medianInPlace(Float64Array.from(values));
}
