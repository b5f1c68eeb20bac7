/**
 * The memory report (`memtide report`): plain JSON data, so `renderJson` is
 * `JSON.stringify` and a saved report can be rendered again later.
 */
import type { ActionEntry, ActionSource } from '../../actionTypes.js';
import type { AlertKind, AlertSeverity, PressureChange, PressureLevel, Recommendation } from '../../model.js';

export type Trend = 'stable' | 'growing' | 'shrinking';

/** One point of a downsampled chart series: the average of the samples it stands for, with their extremes. */
export interface ChartPoint {
  /** Mean time of the samples in the point. */
  atMs: number;
  bytes: number;
  minBytes: number;
  maxBytes: number;
}

/** Statistics of one measure over the range; the average is weighted by samples (aggregates count their samples). */
export interface ByteStats {
  currentBytes: number;
  peakBytes: number;
  averageBytes: number;
  minBytes: number;
}

export interface ComponentReport {
  component: string;
  firstMs: number;
  lastMs: number;
  sampleCount: number;
  rss: ByteStats;
  /** Null when no point of the range had PSS. Aggregate points carry PSS averages only, so the PSS peak is a lower bound there. */
  pss: ByteStats | null;
  trend: Trend;
  /** Theil-Sen slope of RSS over the chart points; null when the range is too short to say (then the trend is `stable`). */
  slopeBytesPerHour: number | null;
  /** Kendall's tau of the chart points (-1..1): 1 when every later point is higher. Null with the slope. */
  steadiness: number | null;
  /** RSS, downsampled to at most `MAX_CHART_POINTS`. */
  series: ChartPoint[];
}

export interface SystemReport {
  sampleCount: number;
  /** Latest effective total (min(MemTotal, cgroup limit)); null without system samples. */
  totalBytes: number | null;
  available: ByteStats | null;
  /** Available memory, downsampled (min/max are the true extremes of each point). */
  series: ChartPoint[];
}

/** A stretch of time at one level; `null`: before the first known level. */
export interface PressureSegment {
  fromMs: number;
  toMs: number;
  level: PressureLevel | null;
}

export interface PressureReport {
  /** The span the time per level covers: the samples' span within the range (the range itself without samples). */
  fromMs: number;
  toMs: number;
  /** Level in force at `fromMs` (the last change before it), null when unknown. */
  initialLevel: PressureLevel | null;
  /** Changes in the range, oldest first, at most `MAX_LISTED`; the rest are counted in `eventsOmitted`. */
  events: PressureChange[];
  eventsOmitted: number;
  timeByLevelMs: Record<PressureLevel | 'unknown', number>;
  /** Level segments for the pressure band, at most `MAX_SEGMENTS` (later ones merge into the last). */
  segments: PressureSegment[];
}

/** A component that grew steadily over the range: a suspect, not a verdict (the live `leakTrend` detector decides leaks). */
export interface LeakSuspect {
  component: string;
  slopeBytesPerHour: number;
  steadiness: number;
  /** Current RSS minus the lowest chart point before it. */
  growthBytes: number;
  /** When system available memory (its current value) would be used up at this rate; null without system samples. */
  exhaustionAtMs: number | null;
}

export interface ReportAlert {
  atMs: number;
  key: string;
  kind: AlertKind;
  severity: AlertSeverity;
  status: 'firing' | 'resolved';
  component: string | null;
  title: string;
  message: string;
}

export interface AlertSummary {
  /** Notifications in the range, oldest first, at most `MAX_LISTED`. */
  listed: ReportAlert[];
  total: number;
  bySeverity: Record<AlertSeverity, number>;
  firing: number;
  resolved: number;
}

/** A ranked optimization suggestion: a recommendation plus the rule and the numbers behind it. */
export interface Suggestion extends Recommendation {
  rule: 'restart-leak-suspect' | 'restart-grown' | 'unload-idle-model' | 'lower-model-budget' | 'switch-preset' | 'budget';
  component: string | null;
  /** Why, in numbers taken from the report. */
  reason: string;
}

export type { ActionSource } from '../../actionTypes.js';

/**
 * One action of the coordinator or the model governor, executed or only
 * decided (observe-only), with memory before and after as the `actions` table
 * keeps it (the `target` component's chart gets the marker), plus the
 * measured change.
 */
export interface ReportAction extends ActionEntry {
  /** Target component before minus after (positive: memory freed); null unless both were measured. */
  freedBytes: number | null;
  /** Available memory after minus before (positive: more available); null unless both were measured. */
  availableChangeBytes: number | null;
}

/** Actions of one kind (and source) in the range. */
export interface ActionKindSummary {
  source: ActionSource;
  kind: string;
  count: number;
  executed: number;
  /** Memory freed in the target component, summed over the executed, measured, successful actions of this kind. */
  freedBytes: number;
}

export interface ActionSummary {
  /** The newest `MAX_LISTED` actions of the range, listed oldest first; earlier ones are counted in `total` only. */
  listed: ReportAction[];
  total: number;
  executed: number;
  /** Decided but not executed (observe-only): how often memtide would have acted. */
  notExecuted: number;
  /** Executed, and executing failed (`error`). */
  failed: number;
  undone: number;
  /** Executed without error and measured after: the actions the totals below sum. */
  measured: number;
  /** Σ of the positive `freedBytes` of the measured actions. */
  freedBytes: number;
  /** Σ of the negative `freedBytes` (as a positive number): target components that grew after the action (a model load, say). */
  grewBytes: number;
  /** Σ of `availableChangeBytes` of the measured actions. */
  availableChangeBytes: number;
  /** By count, largest first; at most `MAX_ACTION_KINDS` (the rest merge into kind `other`). */
  byKind: ActionKindSummary[];
}

export interface MemoryReport {
  /** 2 added `actions`. */
  version: 2;
  generatedAtMs: number;
  sinceMs: number;
  untilMs: number;
  trendThresholdBytesPerHour: number;
  /** By average footprint (PSS where present, else RSS), largest first. */
  components: ComponentReport[];
  system: SystemReport;
  pressure: PressureReport;
  leakSuspects: LeakSuspect[];
  alerts: AlertSummary;
  /** What the coordinator and the model governor did (or, observe-only, decided). */
  actions: ActionSummary;
  /** Largest expected saving first; suggestions without an estimate after. */
  suggestions: Suggestion[];
}
