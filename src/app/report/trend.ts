/**
 * The trend of a downsampled series: Theil-Sen slope (robust to GC spikes
 * and single outliers) against a threshold, plus Kendall's tau as a measure
 * of how steady the growth is (a leak climbs point after point; a step or a
 * sawtooth does not).
 */
import { theilSenSlope } from '../../operators/trend/theilSen.js';
import type { ChartPoint, Trend } from './types.js';

/** The floor rate for leaks: slower than this is "stable". */
export const DEFAULT_TREND_THRESHOLD_BYTES_PER_HOUR = 10_000_000;
/** Fewer points or a shorter span than this says nothing about a trend. */
export const MIN_TREND_POINTS = 5;
export const MIN_TREND_SPAN_MS = 30 * 60_000;
/** Kendall's tau a growing component needs to be a leak suspect: a mid-range step alone gives about 0.5. */
export const SUSPECT_STEADINESS = 0.6;

const HOUR_MS = 3_600_000;

export interface TrendResult {
  trend: Trend;
  slopeBytesPerHour: number | null;
  steadiness: number | null;
}

export function trendOf(points: readonly ChartPoint[], thresholdBytesPerHour: number): TrendResult {
  const first = points[0];
  const last = points.at(-1);
  if (!first || !last || points.length < MIN_TREND_POINTS || last.atMs - first.atMs < MIN_TREND_SPAN_MS) {
    return { trend: 'stable', slopeBytesPerHour: null, steadiness: null };
  }
  const hours = points.map((p) => (p.atMs - first.atMs) / HOUR_MS);
  const values = points.map((p) => p.bytes);
  const slope = theilSenSlope(hours, values);
  const slopeBytesPerHour = Number.isFinite(slope) ? Math.round(slope) : 0;
  const trend: Trend =
    slopeBytesPerHour > thresholdBytesPerHour ? 'growing' : slopeBytesPerHour < -thresholdBytesPerHour ? 'shrinking' : 'stable';
  return { trend, slopeBytesPerHour, steadiness: kendallTau(values) };
}

/** (concordant - discordant) / pairs over the points in order; ties count as neither. */
export function kendallTau(values: readonly number[]): number {
  let score = 0;
  for (let i = 0; i < values.length; i++) {
    const vi = values[i] as number;
    for (let j = i + 1; j < values.length; j++) score += Math.sign((values[j] as number) - vi);
  }
  const pairs = (values.length * (values.length - 1)) / 2;
  return pairs === 0 ? 0 : Math.round((score / pairs) * 1000) / 1000;
}
