/**
 * One evaluation of one component's window of bucket floors: did it restart,
 * is it leaking now, has a reported leak stopped? Pure: the same floors and
 * parameters always give the same verdict. See docs/leaks.md for the why.
 */
import { findRestart, type Restart } from './changePoints.js';
import { median3 } from './envelope.js';
import { MIN_SPAN_POINTS, type Detection, type EvaluationParams } from './evaluationParams.js';
import { fastPath } from './fastPath.js';
import { firstAtOrAfter, floorsOf, type Floors } from './floors.js';
import { robustNoiseScale } from './noise.js';
import { ScratchArena, type Alloc } from './scratch.js';
import { confirmationLag, decelerating, standardPath } from './standardPath.js';
import { theilSenAtLeast } from './theilSen.js';
import { decimate } from './windowStats.js';

export type { Detection, EvaluationParams, LeakPath } from './evaluationParams.js';

export interface Verdict {
  /** The window restarted at this point (memory fell below everything before it and stayed there). */
  restart: (Restart & { atMs: number }) | null;
  /** The window shows a leak now (only looked for while no leak is reported). */
  detection: Detection | null;
  /** For a reported leak: true when growth stopped, false when it goes on, null when the window is too short to say. */
  stopped: boolean | null;
  /** The strongest trend evidence seen (largest Mann-Kendall z of any span or of the fast window; 0 when none). */
  evidence: number;
}

const NONE: Verdict = { restart: null, detection: null, stopped: null, evidence: 0 };

/** The arena of callers that bring none (tests, one-off evaluations); reset by every evaluation that uses it. */
const shared = new ScratchArena();

/**
 * Evaluates the floors `times/values[0..n)` (oldest first) at `nowMs`: a
 * restart first (after the latest boundary); then a detection when
 * `clearSpanMs` is null (no leak reported), or whether a reported leak's
 * growth stopped over the latest `clearSpanMs`. `boundaries` are the times of
 * known loads/unloads and of restarts found earlier, inside the window: floors
 * on either side of one are never compared. `arena`: where the evaluation's
 * arrays come from (a component window passes its own; it is reset here).
 * `knownNoise`: `robustNoiseScale` of these floors when the caller keeps it
 * (a window does, as floors come and go: see SortedDiffs), else null.
 */
export function evaluateWindow(
  times: Float64Array,
  values: Float64Array,
  n: number,
  nowMs: number,
  p: EvaluationParams,
  clearSpanMs: number | null = null,
  boundaries: readonly number[] = [],
  arena: ScratchArena = shared,
  knownNoise: number | null = null,
): Verdict {
  if (n < 4) return NONE;
  arena.reset();
  const origin = times[0] as number;
  const t = arena.float64Unzeroed(n);
  for (let i = 0; i < n; i++) t[i] = (times[i] as number) - origin;
  const now = nowMs - origin;
  // Levels relative to the first floor: whole bytes, so the differences are exact and a constant added to every
  // sample changes nothing at all (not even a rounding).
  const level = values[0] as number;
  const v = arena.float64Unzeroed(n);
  for (let i = 0; i < n; i++) v[i] = (values[i] as number) - level;
  // The floors carry the trend; their 3-point median (one odd bucket removed) is the robust reference for
  // restarts and excursions. Never estimate the noise on the median: it repeats values and hides the noise.
  const m = median3(v, n, arena.float64Unzeroed(n));
  const noise = knownNoise ?? robustNoiseScale(v, n);
  const threshold = Math.max(p.stepMinBytes, p.noiseMultiple * noise);

  // a restart is looked for after the latest boundary only (the one before it is already known)
  const lastBoundary = boundaries.length > 0 ? Math.max(...boundaries) - origin : -Infinity;
  let from = 0;
  while (from < n && (t[from] as number) < lastBoundary) from++;
  const restart = findRestart(t.subarray(from), m.subarray(from), n - from, 2 * p.batchToleranceMs, p.restartHoldMs, threshold);
  if (restart) return { restart: { ...restart, index: restart.index + from, atMs: times[restart.index + from] as number }, detection: null, stopped: null, evidence: 0 };

  const confirmedEnd = now - confirmationLag(p);
  const floors = floorsOf(t, v, m, n, confirmedEnd, p.batchToleranceMs, threshold, noise, boundaries.map((x) => x - origin), arena);
  if (clearSpanMs !== null) {
    // stopped: the recent growth fell below the floor, and the window would not report a leak now
    let stopped = growthStopped(floors, now, clearSpanMs, p, arena);
    if (stopped === true && detect(floors, now, confirmedEnd, noise, threshold, p, arena).detection !== null) stopped = false;
    return { restart: null, detection: null, stopped, evidence: 0 };
  }
  const { detection, evidence } = detect(floors, now, confirmedEnd, noise, threshold, p, arena);
  return { restart: null, detection, stopped: null, evidence };
}

/** The standard path, else the fast path (unless a confirmed span slows down: a warm-up). */
function detect(
  floors: Floors,
  now: number,
  confirmedEnd: number,
  noise: number,
  threshold: number,
  p: EvaluationParams,
  alloc: Alloc,
): { detection: Detection | null; evidence: number } {
  const { detection, spans } = standardPath(floors, now, confirmedEnd, noise, threshold, p, alloc);
  const spanEvidence = spans.reduce((max, s) => Math.max(max, s.z), 0);
  if (detection !== null || !p.fast.enabled) return { detection, evidence: Math.max(spanEvidence, detection?.z ?? 0) };
  const fast = fastPath(floors, now, p, threshold, alloc);
  const evidence = Math.max(spanEvidence, fast.z);
  return { detection: fast.detection !== null && !spans.some((s) => decelerating(s, p)) ? fast.detection : null, evidence };
}

/**
 * Whether the growth of a reported leak stopped: the slope of the floors of
 * the latest `clearSpanMs` (up to now, known excursions left out, within
 * segments) is below half the floor rate. null while the window is shorter.
 */
function growthStopped(floors: Floors, now: number, clearSpanMs: number, p: EvaluationParams, alloc: Alloc): boolean | null {
  if (floors.length < MIN_SPAN_POINTS || now - (floors.times[0] as number) < clearSpanMs) return null;
  const series = decimate(floors.times, floors.values, firstAtOrAfter(floors, now - clearSpanMs), floors.length, p.maxPoints, floors.segments, alloc);
  // only whether the slope reaches half the floor counts here (a leak reported is re-checked every minute)
  return series.length < 4 || !theilSenAtLeast(series.times, series.values, 0, series.length, series.segments, p.minRate / 2);
}
