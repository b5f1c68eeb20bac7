/**
 * Robust noise scale of a series: the MAD of its first differences, scaled to
 * a standard deviation of one point. Differencing removes any trend; the MAD
 * ignores the few differences that are steps or GC peaks.
 */
import { medianInPlace } from './median.js';

/** Standard deviation of the point-to-point noise of `values[0..n)` (0 with fewer than 3 points). */
export function robustNoiseScale(values: ArrayLike<number>, n: number): number {
  if (n < 3) return 0;
  const diffs = new Float64Array(n - 1);
  for (let i = 1; i < n; i++) diffs[i - 1] = (values[i] as number) - (values[i - 1] as number);
  const centre = medianInPlace(diffs.slice());
  for (let i = 0; i < diffs.length; i++) diffs[i] = Math.abs((diffs[i] as number) - centre);
  // 1.4826 turns a MAD into a standard deviation for normal noise; a difference of two points has sqrt(2) of it
  return (1.4826 * medianInPlace(diffs)) / Math.SQRT2;
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
  const residuals = new Float64Array(n);
  for (let i = start; i < end; i++) residuals[i - start] = (values[i] as number) - slope * (times[i] as number);
  let from = 0;
  while (from < n) {
    let to = from + 1;
    if (segments !== null) while (to < n && segments[start + to] === segments[start + from]) to++;
    else to = n;
    const centre = medianInPlace(residuals.slice(from, to));
    for (let i = from; i < to; i++) residuals[i] = Math.abs((residuals[i] as number) - centre);
    from = to;
  }
  return 1.4826 * medianInPlace(residuals);
}
