/**
 * Envelopes of a floor series: running minima over a time span (monotone
 * deque, O(n)) and a 3-point median that removes a single odd bucket.
 */
import { HEAP, type Alloc } from './scratch.js';

/**
 * `out[i] = min(values[j])` over the points j >= i with `times[j] <= times[i] + horizonMs`
 * (truncated at the end of the series). A value above `out[i]` is memory that
 * was given back within the horizon: an excursion (a batch, a GC peak), not
 * growth.
 */
export function forwardMin(times: ArrayLike<number>, values: ArrayLike<number>, n: number, horizonMs: number, out: Float64Array, alloc: Alloc = HEAP): Float64Array {
  const deque = alloc.int32Unzeroed(n);
  let head = 0;
  let tail = 0;
  for (let i = n - 1; i >= 0; i--) {
    const v = values[i] as number;
    while (tail > head && (values[deque[tail - 1] as number] as number) >= v) tail--;
    deque[tail++] = i;
    const limit = (times[i] as number) + horizonMs;
    while ((times[deque[head] as number] as number) > limit) head++;
    out[i] = values[deque[head] as number] as number;
  }
  return out;
}

/** `out[i] = min(values[j])` over the points j <= i with `times[j] >= times[i] - spanMs`. */
export function trailingMin(times: ArrayLike<number>, values: ArrayLike<number>, n: number, spanMs: number, out: Float64Array, alloc: Alloc = HEAP): Float64Array {
  const deque = alloc.int32Unzeroed(n);
  let head = 0;
  let tail = 0;
  for (let i = 0; i < n; i++) {
    const v = values[i] as number;
    while (tail > head && (values[deque[tail - 1] as number] as number) >= v) tail--;
    deque[tail++] = i;
    const limit = (times[i] as number) - spanMs;
    while ((times[deque[head] as number] as number) < limit) head++;
    out[i] = values[deque[head] as number] as number;
  }
  return out;
}

/** Median of each point and its two neighbours; the two end points are kept as they are. */
export function median3(values: ArrayLike<number>, n: number, out: Float64Array): Float64Array {
  for (let i = 0; i < n; i++) {
    if (i === 0 || i === n - 1) {
      out[i] = values[i] as number;
      continue;
    }
    const a = values[i - 1] as number;
    const b = values[i] as number;
    const c = values[i + 1] as number;
    out[i] = a < b ? (b < c ? b : a < c ? c : a) : a < c ? a : b < c ? c : b;
  }
  return out;
}
