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

/**
 * Marks of the points already counted in a tie group (scratch, grown as
 * needed). The ties come out of the pair loop: it compares every pair within
 * a segment anyway, so the pairs that neither rise nor fall are known for
 * free, where the tie correction used to sort a copy of every segment.
 */
let counted = new Uint8Array(256);

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
  if (counted.length < end - start) counted = new Uint8Array(Math.max(end - start, 2 * counted.length));
  counted.fill(0, 0, end - start);
  while (from < end) {
    let to = from + 1;
    if (segments !== null) while (to < end && segments[to] === segments[from]) to++;
    else to = end;
    // Counted without branches (rising and falling pairs of noisy data come in no predictable order); a tie is a
    // pair neither rising nor falling. A tie group is counted once, with its size, by its first point: it finds
    // the rest of the group (later, equal values) and marks them. The term is that of the sorted-runs formula, in
    // integers (exact).
    let tieTerm = 0;
    for (let i = from; i < to - 1; i++) {
      const vi = values[i] as number;
      let up = 0;
      let down = 0;
      let j = i + 1;
      // four at a time: the loop's own test and jump cost as much as the comparisons
      for (; j + 3 < to; j += 4) {
        const a = values[j] as number;
        const b = values[j + 1] as number;
        const c = values[j + 2] as number;
        const d = values[j + 3] as number;
        up += +(a > vi) + +(b > vi) + +(c > vi) + +(d > vi);
        down += +(a < vi) + +(b < vi) + +(c < vi) + +(d < vi);
      }
      for (; j < to; j++) {
        const vj = values[j] as number;
        up += +(vj > vi);
        down += +(vj < vi);
      }
      s += up - down;
      if (up + down === to - 1 - i || counted[i - start] === 1) continue;
      let run = 1;
      for (let j = i + 1; j < to; j++) {
        if (values[j] === vi) {
          run++;
          counted[j - start] = 1;
        }
      }
      tieTerm += run * (run - 1) * (2 * run + 5);
    }
    const n = to - from;
    if (n >= 2) variance += (n * (n - 1) * (2 * n + 5) - tieTerm) / 18;
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
