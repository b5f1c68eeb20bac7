/**
 * Mann-Kendall trend test: S counts the pairs that rise minus the pairs that
 * fall; under "no trend" S is approximately normal with the variance below
 * (corrected for ties). Rank-based, so it does not care how large the noise
 * is, only whether the order of the values is random.
 *
 * With `segments` (a non-decreasing segment id per point) it is the blocked
 * test: S and its variance are summed over the segments, so a step between
 * segments (a model load) is never read as a trend.
 */

export interface MannKendallResult {
  /** Concordant minus discordant pairs. */
  s: number;
  /** Variance of S under no trend, tie-corrected. */
  variance: number;
  /** Continuity-corrected standard score; 0 when the variance is 0 (all values tied). */
  z: number;
}

let scratch = new Float64Array(256);

function varianceOf(values: ArrayLike<number>, start: number, end: number): number {
  const n = end - start;
  if (n < 2) return 0;
  // tie groups: sort a copy and count runs of equal values
  if (scratch.length < n) scratch = new Float64Array(Math.max(n, 2 * scratch.length));
  const sorted = scratch.subarray(0, n);
  for (let k = 0; k < n; k++) sorted[k] = values[start + k] as number;
  sorted.sort();
  let tieTerm = 0;
  let run = 1;
  for (let k = 1; k <= n; k++) {
    if (k < n && sorted[k] === sorted[k - 1]) run++;
    else {
      if (run > 1) tieTerm += run * (run - 1) * (2 * run + 5);
      run = 1;
    }
  }
  return (n * (n - 1) * (2 * n + 5) - tieTerm) / 18;
}

/** Mann-Kendall S, its variance and z for `values[start..end)` (in time order), pairs within segments. O(n²). */
export function mannKendall(
  values: ArrayLike<number>,
  start = 0,
  end = values.length,
  segments: ArrayLike<number> | null = null,
): MannKendallResult {
  let s = 0;
  let variance = 0;
  let from = start;
  while (from < end) {
    let to = from + 1;
    if (segments !== null) while (to < end && segments[to] === segments[from]) to++;
    else to = end;
    for (let i = from; i < to - 1; i++) {
      const vi = values[i] as number;
      for (let j = i + 1; j < to; j++) {
        const vj = values[j] as number;
        if (vj > vi) s++;
        else if (vj < vi) s--;
      }
    }
    variance += varianceOf(values, from, to);
    from = to;
  }
  const z = variance <= 0 ? 0 : s > 0 ? (s - 1) / Math.sqrt(variance) : s < 0 ? (s + 1) / Math.sqrt(variance) : 0;
  return { s, variance, z };
}

/**
 * Upper tail of the standard normal, P(Z > z) (Abramowitz-Stegun 7.1.26 on
 * erfc, absolute error < 1.5e-7: plenty for a significance threshold).
 */
export function normalUpperTail(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  const erfc = poly * Math.exp(-x * x);
  return z >= 0 ? erfc / 2 : 1 - erfc / 2;
}

/** The z whose upper tail is p (bisection on {@link normalUpperTail}; p in (0, 1)). */
export function normalQuantileUpper(p: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`p must be in (0, 1), got ${p}`);
  let lo = -10;
  let hi = 10;
  for (let i = 0; i < 80; i++) {
    const mid = (lo + hi) / 2;
    if (normalUpperTail(mid) > p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}
