/**
 * The state `leakTrend` keeps for one component: the bucket being filled, a
 * ring of bucket floors (cut at known loads/unloads and restarts), the recent
 * verdicts and the leak being reported. Memory is bounded by the window
 * (windowMs / bucketMs floors, at most MAX_BOUNDARIES cuts), whatever the
 * sampling rate or how long memtide runs.
 */
import type { LeakCleared, LeakDetected, LeakEvent } from '../../model.js';
import { formatBytes, formatDuration } from '../../app/units.js';
import { BucketFloor, FloorRing } from './bucketMinima.js';
import { evaluateWindow, type EvaluationParams, type LeakPath } from './evaluateWindow.js';
import { normalUpperTail } from './mannKendall.js';
import { ScratchArena } from './scratch.js';

/** Everything one component's window needs, resolved from the config. */
export interface WindowSettings {
  bucketMs: number;
  evaluateEveryMs: number;
  persistence: number;
  resetSettleMs: number;
  gapResetMs: number;
  params: EvaluationParams;
}

interface Reported {
  detectedAtMs: number;
  /** Span the growth is re-checked on for the clear. */
  clearSpanMs: number;
  path: LeakPath;
}

const HOUR = 3_600_000;
const MAX_REMEMBERED = 40;
const MAX_BOUNDARIES = 64;
/** Below this Mann-Kendall z everywhere (two thirds of the standard threshold), a window is quiet. */
const QUIET_EVIDENCE = 2;
/** A quiet window is evaluated every this many evaluation intervals. */
const QUIET_SPACING = 3;
const PERSISTENT_FRACTION = 0.7;
/** One evaluation looked back on per this many evaluation intervals of the detection's span. */
const SPAN_PER_EVALUATION = 15;

export class ComponentWindow {
  private readonly bucket = new BucketFloor();
  private readonly ring: FloorRing;
  private times: Float64Array;
  private values: Float64Array;
  /** The arrays of this window's evaluations, reused from one evaluation to the next (tens of KiB for a 4-hour window). */
  private readonly arena = new ScratchArena();
  private lastSampleMs = Number.NaN;
  private settleUntilMs = -Infinity;
  private lastEvaluatedBucketMs = -Infinity;
  /** Quiet windows (no trend anywhere near significance) are evaluated less often: from this bucket on. */
  private nextEvaluationBucketMs = -Infinity;
  /** Recent verdicts, newest last (1 = leak), and their z; bounded. */
  private verdicts: number[] = [];
  private zs: number[] = [];
  private negatives = 0;
  private reported: Reported | null = null;
  /** Known loads/unloads and restarts inside the window: segment boundaries (bounded: older ones leave with the window). */
  private boundaries: number[] = [];

  constructor(
    readonly component: string,
    readonly bucketMs: number,
    readonly windowMs: number,
  ) {
    const capacity = Math.ceil(windowMs / bucketMs) + 2;
    this.ring = new FloorRing(capacity);
    this.times = new Float64Array(capacity);
    this.values = new Float64Array(capacity);
  }

  /** Carries a reported leak over from a window with another layout (config change). */
  adopt(previous: ComponentWindow): void {
    this.reported = previous.reported;
  }

  /** One sample of this component; appends the events it causes (none, a detection or a clear) to `events`. */
  sample(timestampMs: number, bytes: number, availableBytes: number | null, s: WindowSettings, events: LeakEvent[]): void {
    const last = this.lastSampleMs;
    if (!Number.isNaN(last) && (timestampMs < last || timestampMs - last > s.gapResetMs)) this.restart(timestampMs);
    this.lastSampleMs = timestampMs;
    if (timestampMs < this.settleUntilMs) return;
    const start = Math.floor(timestampMs / s.bucketMs) * s.bucketMs;
    if (this.bucket.count > 0 && start !== this.bucket.startMs) {
      const closed = this.bucket.startMs;
      this.ring.push(closed + s.bucketMs / 2, this.bucket.floor());
      this.bucket.reset(start);
      if (closed - this.lastEvaluatedBucketMs >= s.evaluateEveryMs && closed >= this.nextEvaluationBucketMs) {
        this.lastEvaluatedBucketMs = closed;
        const event = this.evaluate(timestampMs, availableBytes, s);
        if (event !== null) events.push(event);
      }
    }
    if (this.bucket.count === 0) this.bucket.reset(start);
    this.bucket.add(bytes);
  }

  /**
   * A known load/unload at `atMs`: the window is cut there (floors on either
   * side are never compared, but the history stays: a warm-up before it still
   * shows how it bends), the bucket under way is dropped and the next
   * resetSettleMs of samples are ignored while memory settles.
   */
  reset(atMs: number, s: WindowSettings): void {
    if (this.bucket.count > 0 && this.bucket.startMs + s.bucketMs > atMs) this.bucket.reset(Number.NaN);
    this.cut(atMs);
    this.settleUntilMs = Math.max(this.settleUntilMs, atMs + s.resetSettleMs);
    this.forget();
  }

  /** Ends a reported leak without a sample (the component was ignored or detection switched off). */
  drop(atMs: number, reason: string): LeakCleared | null {
    if (this.reported === null) return null;
    this.reported = null;
    return { kind: 'clear', component: this.component, atMs, reason };
  }

  private restart(fromMs: number): void {
    this.ring.dropBefore(fromMs);
    this.boundaries = [];
    this.bucket.reset(Number.NaN);
    this.lastEvaluatedBucketMs = -Infinity;
    this.nextEvaluationBucketMs = -Infinity;
    this.forget();
  }

  /** Adds a boundary (kept in time order, the newest MAX_BOUNDARIES). */
  private cut(atMs: number): void {
    if (this.boundaries.includes(atMs)) return;
    this.boundaries.push(atMs);
    this.boundaries.sort((a, b) => a - b);
    if (this.boundaries.length > MAX_BOUNDARIES) this.boundaries.shift();
  }

  private forget(): void {
    this.verdicts = [];
    this.zs = [];
  }

  private remember(verdict: number, z: number): void {
    this.verdicts.push(verdict);
    this.zs.push(z);
    if (this.verdicts.length > MAX_REMEMBERED) {
      this.verdicts.shift();
      this.zs.shift();
    }
  }

  private evaluate(nowMs: number, availableBytes: number | null, s: WindowSettings): LeakEvent | null {
    const n = this.ring.copyTo(this.times, this.values);
    if (n > 0) this.boundaries = this.boundaries.filter((b) => b > (this.times[0] as number));
    const verdict = evaluateWindow(this.times, this.values, n, nowMs, s.params, this.reported?.clearSpanMs ?? null, this.boundaries, this.arena, this.ring.diffs.scale());
    if (verdict.restart) {
      // the history stays, cut at the restart: a warm-up still bending before it keeps showing its bend
      this.cut(verdict.restart.atMs);
      this.forget();
      this.negatives = 0;
      return this.drop(nowMs, `memory fell by ${formatBytes(verdict.restart.dropBytes)} below its floor (restart or unload)`);
    }
    if (this.reported !== null) {
      if (verdict.stopped === true) {
        this.negatives++;
        if (this.negatives >= s.persistence) {
          const since = formatDuration(nowMs - this.reported.detectedAtMs);
          this.negatives = 0;
          return this.drop(nowMs, `growth stopped (reported ${since} ago)`);
        }
      } else if (verdict.stopped === false) this.negatives = 0;
      return null;
    }
    const { detection } = verdict;
    this.remember(detection === null ? 0 : 1, detection?.z ?? 0);
    if (detection === null) {
      // no trend anywhere near significance and nothing pending: it cannot turn into a report within a few
      // evaluations, so the next ones are spaced out (cost: a quiet component is evaluated a third as often)
      if (verdict.evidence < QUIET_EVIDENCE && !this.verdicts.includes(1)) this.nextEvaluationBucketMs = this.lastEvaluatedBucketMs + QUIET_SPACING * s.evaluateEveryMs;
      return null;
    }
    const required = Math.min(MAX_REMEMBERED, requiredPositives(detection.spanMs, s));
    if (this.verdicts.length < required) return null;
    const recent = this.verdicts.slice(-required);
    const positives = recent.reduce((a, v) => a + v, 0);
    if (positives < Math.ceil(PERSISTENT_FRACTION * required)) return null;
    const zs = this.zs.slice(-required).filter((_, i) => recent[i] === 1);
    const zMean = zs.reduce((a, z) => a + z, 0) / zs.length;
    this.forget();
    this.reported = {
      detectedAtMs: nowMs,
      // the growth is re-checked over twice the span it was found on, at least twice the batch tolerance
      clearSpanMs: Math.min(Math.max(2 * detection.spanMs, 2 * s.params.batchToleranceMs), s.params.windowMs),
      path: detection.path,
    };
    const zThreshold = detection.path === 'fast' ? s.params.fast.z : s.params.z;
    const leak: LeakDetected = {
      kind: 'leak',
      component: this.component,
      detectedAtMs: nowMs,
      slopeBytesPerHour: Math.round(detection.slope * HOUR),
      // the mean z of the persistent run against the threshold: 0.84 at the bare threshold, towards 1 above it
      confidence: round3(1 - normalUpperTail(zMean - zThreshold + 1)),
      projectedExhaustionMs: availableBytes !== null && detection.slope > 0 ? Math.round(nowMs + availableBytes / detection.slope) : null,
    };
    return leak;
  }
}

/**
 * Evaluations looked back on before a report: `persistence`, and at least
 * one per 15 evaluation intervals of the span the detection rests on (8 for a
 * 2-hour span); PERSISTENT_FRACTION of them (all of the first 3) must be
 * positive, the latest included. The window slides
 * by one bucket per evaluation, so evaluations of a long span are far from
 * independent: a chance excursion of a 2-hour span lasts many minutes, a real
 * leak only grows stronger (while one noisy veto now and then may interrupt it).
 */
function requiredPositives(spanMs: number, s: WindowSettings): number {
  return Math.max(s.persistence, Math.ceil(spanMs / (SPAN_PER_EVALUATION * s.evaluateEveryMs)));
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
