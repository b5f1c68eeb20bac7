/**
 * The standard path: a leak is growth that is significant (Mann-Kendall) and
 * above the floor rate (Theil-Sen) over a span of confirmed floors within the
 * current segment, that no step explains, that does not slow down (a warm-up
 * does), that goes on in the newer floors (a batch's plateau or its freeing
 * does not), in a segment old enough for a warm-up to have bent.
 */
import { MIN_SPAN_POINTS, type Detection, type EvaluationParams } from './evaluationParams.js';
import { findSteps } from './changePoints.js';
import { firstAtOrAfter, type Floors } from './floors.js';
import { robustNoiseScale } from './noise.js';
import { mannKendall } from './mannKendall.js';
import { medianInPlace, medianOfSorted } from './median.js';
import { HEAP, Scratch, type Alloc } from './scratch.js';
import { theilSenSlope } from './theilSen.js';
import { bulge, decimate, fitSlope, halves, hingeSlope, lastSegmentStart, slowsDown, type Halves, type Series, type SlopeFit } from './windowStats.js';

const SPAN_RATIO = 1.5;
const HOUR = 3_600_000;
const RATE_TOLERANCE = 0.15;
/** A level shift this many noise deviations high is looked at as a possible step (cuts need 5). */
const STEP_NOISE_MULTIPLE = 3;
/** Cut at that step, a leak keeps at least this much trend (blocked Mann-Kendall z). */
const STEP_RESIDUAL_Z = 2;
/** Floors noisier than this (standard deviation) keep a segment young for longer. */
const YOUNG_NOISE_REFERENCE_BYTES = 10e6;

/**
 * How old a floor must be to count as evidence: three quarters of the batch
 * tolerance. The newer floors must continue the trend ({@link continues}): a
 * batch's plateau or its freeing falls short of it, a ramp still under way
 * rises far above it, so a batch freed within the tolerance is never a leak.
 */
export function confirmationLag(p: EvaluationParams): number {
  return (p.batchToleranceMs * 3) / 4;
}

/** One span of the confirmed floors, decimated; the slope fit and the deceleration test are computed when needed. */
export interface Span {
  spanMs: number;
  series: Series;
  z: number;
  fit?: SlopeFit;
  decelerating?: boolean;
}

function fitOf(span: Span): SlopeFit {
  // the span's Mann-Kendall z is that of its whole series: known already
  span.fit ??= fitSlope(span.series, 0, span.series.length, span.z);
  return span.fit;
}

/**
 * Spans of the confirmed floors ending at `confirmedEnd`, growing by 1.5x from
 * minSpanMs up to all of them (at most windowMs - tolerance), plus the current
 * segment whole.
 */
function standardSpans(c: Series, confirmedEnd: number, p: EvaluationParams, segmentAge: number, alloc: Alloc): Span[] {
  if (c.length < MIN_SPAN_POINTS) return [];
  const available = Math.min(confirmedEnd - (c.times[0] as number), p.windowMs - p.batchToleranceMs);
  if (available < p.minSpanMs) return [];
  const lengths: number[] = [];
  for (let s = p.minSpanMs; s < available; s *= SPAN_RATIO) lengths.push(s);
  if (lengths.length === 0 || available - (lengths.at(-1) as number) > 0.1 * available) lengths.push(available);
  if (segmentAge >= p.minSpanMs && segmentAge < available * 0.95 && !lengths.some((l) => Math.abs(l - segmentAge) < 0.05 * segmentAge)) {
    lengths.push(segmentAge);
    lengths.sort((a, b) => a - b);
  }
  const spans: Span[] = [];
  for (const spanMs of lengths) {
    const start = firstAtOrAfter(c, confirmedEnd - spanMs);
    if (c.length - start < MIN_SPAN_POINTS) continue;
    const series = decimate(c.times, c.values, start, c.length, p.maxPoints, c.segments, alloc);
    spans.push({ spanMs, series, z: mannKendall(series.values, 0, series.length, series.segments).z });
  }
  return spans;
}

/**
 * Whether a span's growth slows down: its second half against its first, or
 * its middle bulging above its line (a saturating curve); each over the span
 * and within its last segment alone (a warm-up that began at a model load:
 * the first half of the span is then mostly the flat time before the load).
 */
export function decelerating(span: Span, p: EvaluationParams): boolean {
  if (span.decelerating !== undefined) return span.decelerating;
  const z = p.decelerationZ;
  const slows = (h: Halves | null) => h !== null && slowsDown(h.first, h.second, p.decelerationRatio, z);
  const bends = (series: Series, start: number): boolean => {
    const slope = theilSenSlope(series.times, series.values, start, series.length, series.segments);
    if (!(slope > 0)) return false;
    const b = bulge(series, slope, start);
    if (b === null) return false;
    // material: a visible part of the growth over the span, not a wrinkle of a straight line
    const growth = slope * ((series.times[series.length - 1] as number) - (series.times[start] as number));
    return b.bulge > z * b.error && b.bulge > ((1 - p.decelerationRatio) / 2) * growth;
  };
  const from = lastSegmentStart(span.series);
  span.decelerating =
    slows(halves(span.series)) || bends(span.series, 0) || (from > 0 && (slows(halves(span.series, from)) || bends(span.series, from)));
  return span.decelerating;
}

/**
 * Whether the rise of a span is a step too small to have been cut as one (a
 * few tens of MB at once, then flat): a level shift of more than 3 noise
 * deviations inside the span that makes up at least half of its rise, after
 * which, cut there, the span no longer shows a trend (blocked Mann-Kendall z
 * below STEP_RESIDUAL_Z). A leak cut anywhere keeps rising on both sides.
 */
function explainedByStep(span: Span, fit: SlopeFit, p: EvaluationParams, alloc: Alloc): boolean {
  const { series } = span;
  const n = series.length;
  const rise = fit.slope * ((series.times[n - 1] as number) - (series.times[0] as number));
  if (!(rise > 0)) return false;
  const jumps = findSteps(series.times, series.values, n, Math.max(p.stepMinBytes / 4, STEP_NOISE_MULTIPLE * robustNoiseScale(series.values, n)), undefined, undefined, alloc);
  let at = -1;
  for (let i = 1; i < n; i++) if ((jumps[i] as number) > 0 && (at < 0 || (jumps[i] as number) > (jumps[at] as number))) at = i;
  if (at < 0 || (jumps[at] as number) < rise / 2) return false;
  const cut = alloc.int32Unzeroed(n);
  for (let i = 0; i < n; i++) cut[i] = (series.segments[i] as number) * 2 + (i >= at ? 1 : 0);
  return mannKendall(series.values, 0, n, cut).z < STEP_RESIDUAL_Z;
}

/**
 * Slope plausibly at or above the floor: at least half of it, and either
 * within RATE_TOLERANCE of it (floors of rising memory read a few percent
 * low) or its upper error bound reaching it (noisy floors).
 */
function rateAbove(fit: SlopeFit, floor: number, rateZ: number): boolean {
  return fit.slope >= floor / 2 && (fit.slope >= (1 - RATE_TOLERANCE) * floor || fit.slope + rateZ * fit.standardError >= floor);
}

/**
 * Slow growth needs a long span: the span must have grown by at least one
 * hour's worth of the floor rate (10 MB at 10 MB/h). The tail of a warm-up
 * grows slowly and looks straight over a short span; over the hour or more a
 * slow rate needs, its bend shows.
 */
function grewEnough(span: Span, fit: SlopeFit, p: EvaluationParams): boolean {
  const covered = (span.series.times[span.series.length - 1] as number) - (span.series.times[0] as number);
  return fit.slope * covered >= p.minRate * HOUR;
}

/**
 * Caches fill up after a start: growth in a segment that began at a step (a
 * model load), at a restart, a known load/unload or the window's start (the
 * process started, a gap) is what a warm-up looks like. It is trusted once
 * the segment is 2 x batchToleranceMs old, long enough for a warm-up to bend;
 * longer (up to twice that) when the floors are noisier than 10 MB, because
 * the bend takes longer to show through noise. (The fast path has its own,
 * stricter shape tests.)
 */
function young(segmentStart: number, now: number, noise: number, p: EvaluationParams): boolean {
  const noisier = Math.min(2, Math.max(1, noise / YOUNG_NOISE_REFERENCE_BYTES));
  return now - segmentStart < 2 * noisier * p.batchToleranceMs;
}

/**
 * Whether the growth of a span goes on in the floors after it (not yet
 * confirmed). It does not when memory now falls short of where the span's
 * line says it should be (a warm-up flattening out while the confirmation
 * waits): "now" is the median of the floors of the last half tolerance that
 * are not known excursions, at their median time; the shortfall must be below
 * decelerationRatio of the expected growth and more than decelerationZ
 * standard errors. It cannot be told, so the evaluation waits, while a newer
 * floor is far above the line (a batch still in memory, a load not yet
 * confirmed) or while fewer than 4 recent floors over half that time are
 * left (a batch just freed).
 */
function continues(span: Span, fit: SlopeFit, floors: Floors, now: number, confirmedEnd: number, noise: number, threshold: number, p: EvaluationParams): boolean {
  const series = span.series;
  const from = lastSegmentStart(series);
  if (series.length - from < 3) return true;
  const offsets = offsetScratch.take(series.length - from);
  for (let i = from; i < series.length; i++) offsets[i - from] = (series.values[i] as number) - fit.slope * (series.times[i] as number);
  const intercept = medianInPlace(offsets, 0, series.length - from);
  for (let i = floors.confirmed; i < floors.length; i++) {
    const time = floors.times[i] as number;
    const value = floors.values[i] as number;
    if (value - (intercept + fit.slope * time) > threshold) return false;
  }
  // the recent floors: the last half tolerance, at least 4 buckets
  const recentMs = Math.max(p.batchToleranceMs / 2, 4 * p.bucketMs);
  const first = firstAtOrAfter(floors, now - recentMs);
  const count = floors.length - first;
  if (count < 4 || (floors.times[floors.length - 1] as number) - (floors.times[first] as number) < recentMs / 2) return false;
  // floors' times ascend: their median is the middle one; the values are selected on a copy
  const atTime = medianOfSorted(floors.times, first, floors.length);
  const recent = offsetScratch.take(count);
  for (let i = first; i < floors.length; i++) recent[i - first] = floors.values[i] as number;
  const expectedGrowth = fit.slope * (atTime - confirmedEnd);
  const growth = medianInPlace(recent, 0, count) - (intercept + fit.slope * confirmedEnd);
  if (!(expectedGrowth > 0 && growth < p.decelerationRatio * expectedGrowth)) return true;
  // the recent floors are single floors, with the noise of the window; the span's points may be medians of several
  const error = Math.hypot(fit.standardError * (atTime - confirmedEnd), noise / Math.sqrt(count), fit.scale / Math.sqrt(series.length - from));
  return expectedGrowth - growth <= p.decelerationZ * error;
}

/** Temporaries of {@link continues} (offsets from the line, then the recent floors). */
const offsetScratch = new Scratch();

/**
 * The slope to report for a detection on `spans[detected]`: that span may
 * reach back before the leak began (flat floors first, then growth: its slope
 * is too low). Of the spans no longer than it and within the segment that are
 * significant too, the longest whose second half does not grow significantly
 * faster than its first: one that lies within the growth. When the growth
 * began inside all of them: the hinge fit (flat, then growth) of the
 * detecting span.
 */
function reportedSlope(spans: Span[], detected: number, segmentAge: number, p: EvaluationParams): number {
  for (let k = detected; k >= 0; k--) {
    const span = spans[k] as Span;
    if (span.spanMs > segmentAge + 1 || !(span.z >= p.z)) continue;
    const h = halves(span.series);
    if (h === null || !slowsDown(h.second, h.first, p.decelerationRatio, p.decelerationZ)) return fitOf(span).slope;
  }
  const span = spans[detected] as Span;
  const hinge = hingeSlope(span.series);
  return Number.isFinite(hinge) && hinge > 0 ? hinge : fitOf(span).slope;
}

/**
 * The standard path over the confirmed floors (`floors.confirmed` of them,
 * ending at `confirmedEnd`), longest span first. `spans` are returned too:
 * the fast path is vetoed by their deceleration.
 */
export function standardPath(
  floors: Floors,
  now: number,
  confirmedEnd: number,
  noise: number,
  threshold: number,
  p: EvaluationParams,
  alloc: Alloc = HEAP,
): { detection: Detection | null; spans: Span[] } {
  const confirmed: Series = { ...floors, length: floors.confirmed };
  if (confirmed.length === 0) return { detection: null, spans: [] };
  // the analysis restarts at change points: a detection rests on the current segment alone (the deceleration
  // veto still looks across segments, where the history of a warm-up helps)
  const segmentStart = confirmed.times[lastSegmentStart(confirmed)] as number;
  const segmentAge = confirmedEnd - segmentStart;
  const spans = standardSpans(confirmed, confirmedEnd, p, segmentAge, alloc);
  if (young(segmentStart, now, noise, p)) return { detection: null, spans };
  for (let k = spans.length - 1; k >= 0; k--) {
    const span = spans[k] as Span;
    if (span.spanMs > segmentAge + 1 || !(span.z >= p.z)) continue;
    const fit = fitOf(span);
    if (!rateAbove(fit, p.minRate, p.rateZ) || !grewEnough(span, fit, p)) continue;
    if (explainedByStep(span, fit, p, alloc)) continue;
    if (spans.some((s) => decelerating(s, p))) continue;
    if (!continues(span, fit, floors, now, confirmedEnd, noise, threshold, p)) continue;
    return { detection: { path: 'standard', slope: reportedSlope(spans, k, segmentAge, p), z: fit.z, spanMs: span.spanMs }, spans };
  }
  return { detection: null, spans };
}
