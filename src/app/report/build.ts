/**
 * `buildReport`: one pass over each of the store's streamed queries
 * (components, system, pressure, alerts; actions in bounded pages), keeping
 * running statistics and bounded chart series only. Nothing reads a whole
 * range into memory.
 */
import type { PressureLevel } from '../../model.js';
import type { HistoryStore, TimeRange } from '../../sinks/historyStore.js';
import type { MemtideConfig } from '../configSchema.js';
import { readActions } from './actions.js';
import { Downsampler, RunningStats } from './series.js';
import { suggestionsFor } from './suggestions.js';
import { DEFAULT_TREND_THRESHOLD_BYTES_PER_HOUR, SUSPECT_STEADINESS, trendOf } from './trend.js';
import type {
  AlertSummary,
  ComponentReport,
  LeakSuspect,
  MemoryReport,
  PressureReport,
  PressureSegment,
  SystemReport,
} from './types.js';

/** Pressure changes, alerts and actions listed in a report; the rest are counted. */
export const MAX_LISTED = 200;
/** Segments of the pressure band; past it, later changes merge into the last segment, which shows the worst level. */
export const MAX_SEGMENTS = 1000;

const HOUR_MS = 3_600_000;

export interface BuildReportOptions {
  sinceMs: number;
  /** Exclusive end of the range; `nowMs` when omitted. */
  untilMs?: number | undefined;
  nowMs: number;
  config: MemtideConfig;
  /** |slope| above this is growing / shrinking. Default 10 MB/h. */
  trendThresholdBytesPerHour?: number;
}

export class ReportError extends Error {
  override readonly name = 'ReportError';
  constructor(
    /** RANGE: `since` is not before `until`. NO_HISTORY: the database file does not exist. */
    readonly code: 'MEMTIDE_ERR_REPORT_RANGE' | 'MEMTIDE_ERR_REPORT_NO_HISTORY',
    message: string,
  ) {
    super(message);
  }
}

export function buildReport(store: HistoryStore, options: BuildReportOptions): MemoryReport {
  const { sinceMs, nowMs, config } = options;
  const untilMs = options.untilMs ?? nowMs;
  if (!Number.isSafeInteger(sinceMs) || !Number.isSafeInteger(untilMs) || untilMs <= sinceMs) {
    throw new ReportError('MEMTIDE_ERR_REPORT_RANGE', `report range is empty: since ${sinceMs} must be before until ${untilMs}`);
  }
  const threshold = options.trendThresholdBytesPerHour ?? DEFAULT_TREND_THRESHOLD_BYTES_PER_HOUR;
  const range: Required<TimeRange> = { sinceMs, untilMs };
  const components = readComponents(store, range, threshold);
  const { system, firstMs, lastMs } = readSystem(store, range);
  const coverage = firstMs === null || lastMs === null ? { fromMs: sinceMs, toMs: Math.min(untilMs, nowMs) } : { fromMs: firstMs, toMs: lastMs };
  const pressure = readPressure(store, range, coverage);
  const alerts = readAlerts(store, range);
  const actions = readActions(store, range, MAX_LISTED);
  const leakSuspects = suspectsOf(components, system);
  const suggestions = suggestionsFor({ components, system, pressure, leakSuspects }, config);
  return {
    version: 2,
    generatedAtMs: nowMs,
    sinceMs,
    untilMs,
    trendThresholdBytesPerHour: threshold,
    components,
    system,
    pressure,
    leakSuspects,
    alerts,
    actions,
    suggestions,
  };
}

interface ComponentAccumulator {
  firstMs: number;
  lastMs: number;
  rss: RunningStats;
  pss: RunningStats;
  chart: Downsampler;
}

function readComponents(store: HistoryStore, range: Required<TimeRange>, threshold: number): ComponentReport[] {
  const byName = new Map<string, ComponentAccumulator>();
  for (const point of store.componentSeries(range)) {
    let acc = byName.get(point.component);
    if (!acc) {
      acc = { firstMs: point.timestampMs, lastMs: point.timestampMs, rss: new RunningStats(), pss: new RunningStats(), chart: new Downsampler() };
      byName.set(point.component, acc);
    }
    acc.lastMs = point.timestampMs;
    const weight = Math.max(1, point.sampleCount);
    acc.rss.add(point.rssBytes, point.rssMinBytes, point.rssMaxBytes, weight);
    if (point.pssBytes !== null) acc.pss.add(point.pssBytes, point.pssBytes, point.pssBytes, weight);
    acc.chart.add(point.timestampMs, point.rssBytes, point.rssMinBytes, point.rssMaxBytes, weight);
  }
  const reports: ComponentReport[] = [];
  for (const [component, acc] of byName) {
    const rss = acc.rss.result();
    if (!rss) continue;
    const series = acc.chart.points();
    reports.push({
      component,
      firstMs: acc.firstMs,
      lastMs: acc.lastMs,
      sampleCount: acc.rss.count,
      rss,
      pss: acc.pss.result(),
      ...trendOf(series, threshold),
      series,
    });
  }
  const footprint = (c: ComponentReport) => c.pss?.averageBytes ?? c.rss.averageBytes;
  return reports.sort((a, b) => footprint(b) - footprint(a) || (a.component < b.component ? -1 : 1));
}

function readSystem(store: HistoryStore, range: Required<TimeRange>): { system: SystemReport; firstMs: number | null; lastMs: number | null } {
  const available = new RunningStats();
  const chart = new Downsampler();
  let totalBytes: number | null = null;
  let firstMs: number | null = null;
  let lastMs: number | null = null;
  for (const point of store.systemSeries(range)) {
    firstMs ??= point.timestampMs;
    lastMs = point.timestampMs;
    totalBytes = point.totalBytes;
    const weight = Math.max(1, point.sampleCount);
    available.add(point.availableBytes, point.availableMinBytes, point.availableMaxBytes, weight);
    chart.add(point.timestampMs, point.availableBytes, point.availableMinBytes, point.availableMaxBytes, weight);
  }
  return { system: { sampleCount: available.count, totalBytes, available: available.result(), series: chart.points() }, firstMs, lastMs };
}

function readPressure(store: HistoryStore, range: Required<TimeRange>, coverage: { fromMs: number; toMs: number }): PressureReport {
  const { fromMs, toMs } = coverage;
  let initialLevel: PressureLevel | null = null;
  // Pressure changes are few (they follow the aggregate retention): reading those before the span finds the level in force.
  for (const change of store.pressureEvents({ sinceMs: Number.MIN_SAFE_INTEGER, untilMs: fromMs })) initialLevel = change.level;

  const timeByLevelMs: PressureReport['timeByLevelMs'] = { unknown: 0, low: 0, medium: 0, high: 0, critical: 0 };
  const segments: PressureSegment[] = [];
  const events: PressureReport['events'] = [];
  let eventsOmitted = 0;
  let level = initialLevel;
  let segmentStart = fromMs;
  const close = (endMs: number) => {
    if (endMs <= segmentStart) return;
    timeByLevelMs[level ?? 'unknown'] += endMs - segmentStart;
    pushSegment(segments, { fromMs: segmentStart, toMs: endMs, level });
    segmentStart = endMs;
  };
  for (const change of store.pressureEvents(range)) {
    if (events.length < MAX_LISTED) events.push(change);
    else eventsOmitted++;
    if (change.atMs < fromMs || change.atMs >= toMs) continue;
    close(change.atMs);
    level = change.level;
  }
  close(toMs);
  return { fromMs, toMs, initialLevel, events, eventsOmitted, timeByLevelMs, segments };
}

const RANK: Record<PressureLevel | 'unknown', number> = { unknown: -1, low: 0, medium: 1, high: 2, critical: 3 };

function pushSegment(segments: PressureSegment[], segment: PressureSegment): void {
  const last = segments.at(-1);
  if (last && last.level === segment.level && last.toMs === segment.fromMs) {
    last.toMs = segment.toMs;
  } else if (last && segments.length >= MAX_SEGMENTS) {
    last.toMs = segment.toMs;
    if (RANK[segment.level ?? 'unknown'] > RANK[last.level ?? 'unknown']) last.level = segment.level;
  } else {
    segments.push(segment);
  }
}

function readAlerts(store: HistoryStore, range: Required<TimeRange>): AlertSummary {
  const summary: AlertSummary = { listed: [], total: 0, bySeverity: { info: 0, warning: 0, critical: 0 }, firing: 0, resolved: 0 };
  for (const alert of store.alerts(range)) {
    summary.total++;
    summary.bySeverity[alert.severity]++;
    summary[alert.status]++;
    if (summary.listed.length < MAX_LISTED) {
      const { atMs, key, kind, severity, status, component, title, message } = alert;
      summary.listed.push({ atMs, key, kind, severity, status, component, title, message });
    }
  }
  return summary;
}

function suspectsOf(components: readonly ComponentReport[], system: SystemReport): LeakSuspect[] {
  const suspects: LeakSuspect[] = [];
  for (const c of components) {
    if (c.trend !== 'growing' || c.slopeBytesPerHour === null || c.steadiness === null || c.steadiness < SUSPECT_STEADINESS) continue;
    const lowest = Math.min(...c.series.map((p) => p.bytes));
    const available = system.available?.currentBytes;
    suspects.push({
      component: c.component,
      slopeBytesPerHour: c.slopeBytesPerHour,
      steadiness: c.steadiness,
      growthBytes: Math.max(0, c.rss.currentBytes - lowest),
      exhaustionAtMs: available === undefined ? null : Math.round(c.lastMs + (available / c.slopeBytesPerHour) * HOUR_MS),
    });
  }
  return suspects.sort((a, b) => b.slopeBytesPerHour - a.slopeBytesPerHour);
}
