/**
 * Ranked optimization suggestions, computed from the report's own numbers.
 * Where the live recommendation rules (`operators/recommend.ts`) fit, they
 * are reused on a state built from the report, so a suggestion reads the same
 * as the alert that would carry it; history-only rules (memory held by the
 * model server over hours, a budget that would have kept the machine out of
 * high pressure) live here. A rule that does not apply yields nothing.
 */
import type { LeakDetected, MemorySample } from '../../model.js';
import {
  DEFAULT_MODEL_COMPONENT,
  raiseBudget,
  rankRecommendations,
  restartLeaking,
  setCommand,
  switchPreset,
  type RecommendState,
} from '../../operators/recommend.js';
import { resolveThresholds } from '../../operators/pressureThresholds.js';
import type { MemtideConfig } from '../configSchema.js';
import { formatBytes, formatDuration } from '../units.js';
import type { ChartPoint, ComponentReport, LeakSuspect, PressureReport, Suggestion, SystemReport } from './types.js';

const MIB = 1024 ** 2;
const GIB = 1024 ** 3;
/** The model server holds "large" memory at or above this (a loaded model); below it, it is the bare server. */
export const MODEL_HELD_BYTES = GIB;
/** Held for less than this in the range, and idle unloading would not have bought much. */
export const MODEL_HELD_MIN_MS = 30 * 60_000;
/** What the Ollama server holds without a model, when the range never shows it unloaded. */
export const MODEL_SERVER_BYTES = 128 * MIB;
/** Budgets are suggested in these steps. */
const BUDGET_STEP = 256 * MIB;

export interface SuggestionInput {
  components: readonly ComponentReport[];
  system: SystemReport;
  pressure: PressureReport;
  leakSuspects: readonly LeakSuspect[];
}

export function suggestionsFor(input: SuggestionInput, config: MemtideConfig): Suggestion[] {
  const steps: Suggestion[] = [
    ...input.leakSuspects.flatMap((s) => restartSuspect(input, s, config)),
    ...restartGrown(input),
    ...unloadHeldModel(input, config),
    ...pressureSteps(input, config),
    ...budgetSteps(input, config),
  ];
  const byAction = new Map(steps.map((s) => [s.action, s]));
  return rankRecommendations(steps).flatMap((r) => byAction.get(r.action) ?? []);
}

/** The lowest chart point at or before the end, the baseline a restart returns to. */
function lowestPoint(series: readonly ChartPoint[]): ChartPoint | null {
  return series.reduce<ChartPoint | null>((low, p) => (low === null || p.bytes < low.bytes ? p : low), null);
}

/** A `RecommendState` as the live rules see it, built from the report (RSS only: the trends follow RSS). */
function stateOf(input: SuggestionInput, config: MemtideConfig, nowMs: number, pssToo = false): RecommendState {
  const sample: MemorySample = {
    timestampMs: nowMs,
    system: {
      totalBytes: input.system.totalBytes ?? 0,
      availableBytes: input.system.available?.currentBytes ?? 0,
      usedBytes: 0,
      swapTotalBytes: 0,
      swapUsedBytes: 0,
      psi: null,
      physicalTotalBytes: input.system.totalBytes ?? 0,
      cgroupLimitBytes: null,
    },
    components: Object.fromEntries(
      input.components.map((c) => [
        c.component,
        { rssBytes: c.rss.currentBytes, pssBytes: pssToo ? (c.pss?.currentBytes ?? null) : null, pssAnonBytes: null, processCount: 1 },
      ]),
    ),
    processes: [],
    self: { pid: 0, rssBytes: 0, heapUsedBytes: 0, heapTotalBytes: 0, externalBytes: 0, arrayBuffersBytes: 0, sampleCpuMs: 0 },
  };
  return {
    nowMs,
    sample,
    pressure: null,
    models: [],
    leaks: [],
    baselines: {},
    preset: config.pressure.preset,
    componentBudgets: config.alerts.componentBudgets,
    sampling: { intervalMs: config.sampling.intervalMs, pss: config.sampling.pss },
    tunables: {},
  };
}

function restartSuspect(input: SuggestionInput, suspect: LeakSuspect, config: MemtideConfig): Suggestion[] {
  const component = input.components.find((c) => c.component === suspect.component);
  const low = component ? lowestPoint(component.series) : null;
  if (!component || !low) return [];
  const state = stateOf(input, config, component.lastMs);
  const leak: LeakDetected = {
    kind: 'leak',
    component: suspect.component,
    detectedAtMs: component.lastMs,
    slopeBytesPerHour: suspect.slopeBytesPerHour,
    confidence: suspect.steadiness,
    projectedExhaustionMs: suspect.exhaustionAtMs,
  };
  const step = restartLeaking({ ...state, baselines: { [suspect.component]: { bytes: low.bytes, atMs: low.atMs } } }, leak);
  return [
    {
      ...step,
      rule: 'restart-leak-suspect',
      component: suspect.component,
      reason: `RSS grew steadily at ${formatBytes(suspect.slopeBytesPerHour)}/h (Theil-Sen slope, Kendall tau ${suspect.steadiness.toFixed(2)}) from ${formatBytes(low.bytes)} to ${formatBytes(component.rss.currentBytes)}.`,
    },
  ];
}

/** The component with the highest average among those that grew without being leak suspects (steps, warm-ups). */
function restartGrown(input: SuggestionInput): Suggestion[] {
  const suspects = new Set(input.leakSuspects.map((s) => s.component));
  const grown = input.components
    .filter((c) => c.trend === 'growing' && !suspects.has(c.component))
    .sort((a, b) => b.rss.averageBytes - a.rss.averageBytes)[0];
  const low = grown ? lowestPoint(grown.series) : null;
  if (!grown || !low || grown.rss.currentBytes <= low.bytes) return [];
  const growth = grown.rss.currentBytes - low.bytes;
  return [
    {
      action: `Restart ${grown.component} when it is not needed: it grew ${formatBytes(growth)} since ${new Date(low.atMs).toISOString()} (in steps, not steadily); a restart gives that back.`,
      expectedSavingBytes: growth,
      rule: 'restart-grown',
      component: grown.component,
      reason: `Highest average (${formatBytes(grown.rss.averageBytes)}) of the components that grew; the growth was not steady (Kendall tau ${(grown.steadiness ?? 0).toFixed(2)}), so it is not a leak suspect.`,
    },
  ];
}

/** Time-weighted: each point stands until the next; the last one for the median gap. */
function durations(series: readonly ChartPoint[]): number[] {
  const gaps = series.slice(1).map((p, i) => p.atMs - (series[i] as ChartPoint).atMs);
  const sorted = [...gaps].sort((a, b) => a - b);
  const typical = sorted[Math.floor(sorted.length / 2)] ?? 0;
  return [...gaps, typical];
}

function unloadHeldModel(input: SuggestionInput, config: MemtideConfig): Suggestion[] {
  const model = input.components.find((c) => c.component === DEFAULT_MODEL_COMPONENT);
  const low = model ? lowestPoint(model.series) : null;
  if (!model || !low) return [];
  const floor = low.bytes < MODEL_HELD_BYTES ? low.bytes : MODEL_SERVER_BYTES;
  const spans = durations(model.series);
  let heldMs = 0;
  let heldByteMs = 0;
  model.series.forEach((p, i) => {
    if (p.bytes < MODEL_HELD_BYTES) return;
    const ms = spans[i] ?? 0;
    heldMs += ms;
    heldByteMs += (p.bytes - floor) * ms;
  });
  if (heldMs < MODEL_HELD_MIN_MS || heldByteMs <= 0) return [];
  const saving = Math.round(heldByteMs / heldMs);
  const timeout = config.models.idleTimeoutMs;
  const next = timeout > 60_000 ? 60_000 : timeout > 30_000 ? 30_000 : null;
  const span = spans.reduce((a, b) => a + b, 0);
  const step: Suggestion = {
    action:
      next === null
        ? `Route Meetily's model requests through \`memtide proxy\` so idle ${model.component} models unload: it held about ${formatBytes(saving)} of models for ${formatDuration(heldMs)}.`
        : `Unload idle ${model.component} models sooner (models.idleTimeoutMs from ${formatDuration(timeout)} to ${formatDuration(next)}): it held about ${formatBytes(saving)} of models for ${formatDuration(heldMs)}.`,
    expectedSavingBytes: saving,
    rule: 'unload-idle-model',
    component: model.component,
    reason: `${model.component} was at or above ${formatBytes(MODEL_HELD_BYTES)} for ${formatDuration(heldMs)} of ${formatDuration(span)} (average ${formatBytes(saving)} above ${formatBytes(floor)}); the saving is an upper bound: the history does not say whether the models were idle.`,
  };
  if (next !== null) step.command = setCommand('models.idleTimeoutMs', `${next / 1000}s`);
  return [step];
}

function budgetText(bytes: number): string {
  return bytes % GIB === 0 ? `${bytes / GIB}GiB` : `${bytes / MIB}MiB`;
}

function pressureSteps(input: SuggestionInput, config: MemtideConfig): Suggestion[] {
  const { timeByLevelMs } = input.pressure;
  const severeMs = timeByLevelMs.high + timeByLevelMs.critical;
  const total = input.system.totalBytes;
  if (severeMs <= 0 || total === null || total <= 0) return [];
  const severe = `${formatDuration(severeMs)} at high or critical pressure (critical ${formatDuration(timeByLevelMs.critical)})`;
  const steps: Suggestion[] = [];
  const state = stateOf(input, config, input.pressure.toMs);
  const preset = switchPreset(state);
  if (preset) steps.push({ ...preset, rule: 'switch-preset', component: null, reason: severe });

  const highPercent = resolveThresholds(config.pressure, total).thresholds.high.availablePercent;
  const model = input.components.find((c) => c.component === DEFAULT_MODEL_COMPONENT);
  const lowest = input.system.available?.minBytes;
  if (typeof highPercent !== 'number' || !model || lowest === undefined) return steps;
  const shortfall = Math.round((highPercent / 100) * total - lowest);
  if (shortfall <= 0) return steps;
  const current = config.models.budgetBytes ?? model.rss.peakBytes;
  const budget = Math.floor((Math.min(current, model.rss.peakBytes) - shortfall) / BUDGET_STEP) * BUDGET_STEP;
  if (budget < BUDGET_STEP) return steps;
  steps.push({
    action: `Lower the model budget to ${formatBytes(budget)} (models.budgetBytes): available memory fell ${formatBytes(shortfall)} below the high line (${highPercent}% of ${formatBytes(total)}), and ${model.component} peaked at ${formatBytes(model.rss.peakBytes)}.`,
    command: setCommand('models.budgetBytes', budgetText(budget)),
    expectedSavingBytes: Math.min(shortfall, model.rss.peakBytes),
    rule: 'lower-model-budget',
    component: model.component,
    reason: `${severe}; lowest available ${formatBytes(lowest)}.`,
  });
  return steps;
}

function budgetSteps(input: SuggestionInput, config: MemtideConfig): Suggestion[] {
  const state = stateOf(input, config, input.pressure.toMs, true);
  return input.components.flatMap((c) => {
    const step = raiseBudget(state, c.component);
    const budget = config.alerts.componentBudgets[c.component];
    return step && budget !== undefined
      ? [{ ...step, rule: 'budget' as const, component: c.component, reason: `Now ${formatBytes(c.pss?.currentBytes ?? c.rss.currentBytes)}, over its budget of ${formatBytes(budget)}; peak ${formatBytes(c.rss.peakBytes)} RSS.` }]
      : [];
  });
}
