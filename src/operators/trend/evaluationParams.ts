/** The resolved numeric parameters of one evaluation (from the `leaks` config section) and what it finds. */

/** Rates are bytes per ms, times ms, sizes bytes. */
export interface EvaluationParams {
  bucketMs: number;
  windowMs: number;
  minSpanMs: number;
  batchToleranceMs: number;
  minRate: number;
  /** One-sided Mann-Kendall z the standard path needs. */
  z: number;
  /** A slope whose upper bound (slope + rateZ * error) stays below the floor is not a leak. */
  rateZ: number;
  decelerationRatio: number;
  decelerationZ: number;
  stepMinBytes: number;
  /** Steps, excursions and restarts must exceed this many noise standard deviations. */
  noiseMultiple: number;
  restartHoldMs: number;
  /** Spans are decimated to at most this many points (bounded cost per evaluation). */
  maxPoints: number;
  fast: {
    enabled: boolean;
    windowMs: number;
    minRate: number;
    z: number;
    floorSpanMs: number;
    /** The window is cut in this many parts; each must grow at segmentFraction of the window's slope. */
    segments: number;
    segmentFraction: number;
  };
}

export type LeakPath = 'fast' | 'standard';

export interface Detection {
  path: LeakPath;
  /** Theil-Sen slope, bytes per ms. */
  slope: number;
  /** Mann-Kendall z of the window the detection rests on. */
  z: number;
  spanMs: number;
}

/** Fewer points than this make no span. */
export const MIN_SPAN_POINTS = 6;
