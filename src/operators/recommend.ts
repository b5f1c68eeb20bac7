/**
 * Recommendations: pure functions from the state memtide sees to concrete
 * steps. Every step names what to act on (a component, a model, a setting)
 * and the numbers that justify it, and a rule that does not apply returns
 * nothing: no idle model, no unload advice; no leak, no restart advice.
 * Steps are ranked by the memory they are expected to free; steps whose
 * saving cannot be estimated (a preset switch frees nothing, it only alerts
 * earlier) come after, in rule order.
 */
import type { PresetName } from '../app/configSchema.js';
import { formatBytes, formatDuration } from '../app/units.js';
import {
  levelRank,
  type ComponentUsage,
  type LeakDetected,
  type LoadedModel,
  type MemorySample,
  type PressureLevel,
  type Recommendation,
} from '../model.js';
import { OLLAMA_DEFAULT_NUM_BATCH } from './models/modelMemory.js';
import { PRESET_THRESHOLDS, presetFor } from './pressureThresholds.js';

/**
 * Settings of other features that recommendations may change. A feature that
 * is absent (not configured, or not in this build) is simply left out, and no
 * recommendation names it.
 */
export interface Tunables {
  /** Component whose processes hold the Ollama models (default `ollama`). */
  modelComponent?: string;
  /** Transcription workers configured now, and the component their memory is attributed to. */
  transcription?: { concurrency: number; component: string };
  /** A low-memory mode switch: its config key and whether it is on. */
  lowMemoryMode?: { setting: string; enabled: boolean };
  /** The Ollama server's KV cache type as configured (`models.kvCacheType`); unknown: no advice about it. */
  kvCacheType?: 'f16' | 'q8_0' | 'q4_0';
  /** `models.numBatch` as configured (null: Ollama's default 512); unknown: no advice about it. */
  numBatch?: number | null;
}

/** The num_batch advised: a quarter of llama.cpp's compute buffer of Ollama's 512, measured no slower (bench/llamacpp). */
const ADVISED_NUM_BATCH = 128;

/** Where a component's current growth started: its lowest usage since it (re)started or a model was (un)loaded. */
export interface GrowthBaseline {
  bytes: number;
  atMs: number;
}

/** Everything the rules read. Built by `alertConditions`; plain data, so tests craft it directly. */
export interface RecommendState {
  nowMs: number;
  sample: MemorySample | null;
  pressure: PressureLevel | null;
  models: readonly LoadedModel[];
  /** Leaks currently reported by `leakTrend`. */
  leaks: readonly LeakDetected[];
  /** Per component, see {@link GrowthBaseline}. */
  baselines: Readonly<Record<string, GrowthBaseline>>;
  /** `pressure.preset` as configured. */
  preset: 'auto' | PresetName;
  /** `alerts.componentBudgets`. */
  componentBudgets: Readonly<Record<string, number>>;
  /** `sampling` settings, for the engine's own cost. */
  sampling: { intervalMs: number; pss: 'watched' | 'all' | 'off' };
  tunables: Tunables;
}

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;
/** Ollama's default context is 2048 (4096 on recent versions): advising below it makes no sense. */
const MIN_CONTEXT = 4096;
/** Sampling should cost at most this fraction of one core. */
const SAMPLING_CPU_SHARE = 0.05;

export const DEFAULT_MODEL_COMPONENT = 'ollama';

/**
 * The bytes a leak grows: anonymous PSS when read (model weights are mapped
 * file pages, reclaimable, and would hide or fake a trend), else PSS, else
 * RSS. Baselines use the same measure, so growth compares like with like.
 */
export function growthBytesOf(usage: ComponentUsage): number {
  return usage.pssAnonBytes ?? usage.pssBytes ?? usage.rssBytes;
}

/** What a component costs the machine: PSS when read (shared pages shared out), else RSS. */
export function footprintOf(usage: ComponentUsage): number {
  return usage.pssBytes ?? usage.rssBytes;
}

/**
 * A duration in whole minutes: the text of a recommendation (and so of its
 * condition) then changes once a minute, not with every sample.
 */
export function roughDuration(ms: number): string {
  return ms < 60_000 ? 'under a minute' : formatDuration(Math.floor(ms / 60_000) * 60_000);
}

const BINARY_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;

/** A measured amount of memory, rounded for a text: see {@link roughBytes}. */
export interface RoughBytes {
  /** The rounded amount in bytes (what the text says; also the saving a step reports). */
  bytes: number;
  /** `22 MiB`, `510 MiB`, `1.5 GiB`. */
  text: string;
}

/**
 * An amount of memory to two significant digits, in the binary unit
 * `formatBytes` picks: "22 MiB", "510 MiB", "1.5 GiB". Measured amounts
 * (memory in use, growth since a baseline, a worker's share) move with every
 * sample; a text carrying all their digits, and so the condition built from
 * it, would change with every sample and never dedupe. Rounded, like
 * durations to whole minutes, it changes only when the amount really moves
 * (by a few percent). Amounts that do not move (a budget from the config, a
 * model's size) keep `formatBytes`' three digits.
 */
export function roughBytes(bytes: number): RoughBytes {
  let value = Math.abs(bytes);
  let unit = 0;
  while (value >= 1024 && unit < BINARY_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  // two significant digits: tenths below 10 (whole bytes below a KiB), units below 100, tens above
  const rounded = value < 10 && unit > 0 ? Math.round(value * 10) / 10 : value < 100 ? Math.round(value) : Math.round(value / 10) * 10;
  const sign = bytes < 0 ? -1 : 1;
  return {
    bytes: sign * Math.round(rounded * 1024 ** unit),
    text: `${sign < 0 ? '-' : ''}${rounded < 10 && unit > 0 ? rounded.toFixed(1) : String(rounded)} ${BINARY_UNITS[unit]}`,
  };
}

/** `in the last 4h10m` / `in under a minute`. */
function inTheLast(ms: number): string {
  return ms < 60_000 ? 'in under a minute' : `in the last ${roughDuration(ms)}`;
}

/** `--set` assignment for a config change; values that are not plain words are JSON-quoted. */
export function setCommand(key: string, value: string | number | boolean): string {
  const text = String(value);
  return `--set ${key}=${typeof value === 'string' && !/^[\w.:/-]+$/.test(text) ? JSON.stringify(text) : text}`;
}

/** A model name as one shell word. */
function shellWord(text: string): string {
  return /^[\w.:/@-]+$/.test(text) ? text : `'${text.replaceAll("'", "'\\''")}'`;
}

/** RAM a model holds: what Ollama reports minus the part in VRAM (unloading frees that RAM). */
export function modelRamBytes(model: LoadedModel): number {
  return Math.max(0, model.sizeBytes - model.sizeVramBytes);
}

function isIdle(model: LoadedModel): boolean {
  return model.inFlight === 0 && model.idleSinceMs !== null && !model.pinned;
}

/**
 * Unload the largest idle, unpinned model (by the RAM it holds). None when no
 * model is idle or the idle ones live entirely in VRAM.
 */
export function unloadIdleModel(state: RecommendState): Recommendation | null {
  const candidates = state.models.filter((m) => isIdle(m) && modelRamBytes(m) > 0);
  if (candidates.length === 0) return null;
  const best = candidates.reduce((a, b) => (modelRamBytes(b) > modelRamBytes(a) || (modelRamBytes(b) === modelRamBytes(a) && b.name < a.name) ? b : a));
  const saving = modelRamBytes(best);
  const idleFor = state.nowMs - (best.idleSinceMs ?? state.nowMs);
  return {
    action: `Unload the idle model ${best.name} (idle for ${roughDuration(idleFor)}): frees about ${formatBytes(saving)}.`,
    command: `memtide models unload ${shellWord(best.name)}`,
    expectedSavingBytes: saving,
  };
}

/**
 * Restart a leaking component. The saving is its growth since the baseline
 * (what a restart gives back); without a baseline the step still names the
 * rate, with no saving.
 */
export function restartLeaking(state: RecommendState, leak: LeakDetected): Recommendation {
  const usage = state.sample?.components[leak.component];
  const baseline = state.baselines[leak.component];
  const rate = `${formatBytes(leak.slopeBytesPerHour)}/h`;
  const growth = usage && baseline ? growthBytesOf(usage) - baseline.bytes : 0;
  // rounded first: growth that rounds to nothing is no saving to name
  const grown = roughBytes(growth);
  if (grown.bytes > 0 && baseline) {
    return {
      action: `Restart ${leak.component}: it grew ${grown.text} ${inTheLast(state.nowMs - baseline.atMs)} (leaking about ${rate}); a restart gives that back.`,
      expectedSavingBytes: grown.bytes,
    };
  }
  return { action: `Restart ${leak.component}: it is leaking about ${rate}.` };
}

/** Lower `transcription.maxConcurrent` by one worker; the saving is one worker's share of the component. */
export function lowerTranscriptionConcurrency(state: RecommendState): Recommendation | null {
  const t = state.tunables.transcription;
  if (!t || t.concurrency <= 1) return null;
  const next = t.concurrency - 1;
  const usage = state.sample?.components[t.component];
  const perWorker = usage ? roughBytes(footprintOf(usage) / t.concurrency).bytes : 0;
  const recommendation: Recommendation = {
    action:
      perWorker > 0
        ? `Lower transcription.maxConcurrent from ${t.concurrency} to ${next}: each worker holds about ${roughBytes(perWorker).text} of ${t.component}.`
        : `Lower transcription.maxConcurrent from ${t.concurrency} to ${next}: one whisper worker fewer holds one model copy and its buffers less.`,
    command: setCommand('transcription.maxConcurrent', next),
  };
  if (perWorker > 0) recommendation.expectedSavingBytes = perWorker;
  return recommendation;
}

/**
 * Switch a fixed preset that does not fit the machine: a preset for a larger
 * machine alerts too late (its lines are lower), one for a smaller machine too
 * early. None for `auto` (it always fits).
 */
export function switchPreset(state: RecommendState): Recommendation | null {
  if (state.preset === 'auto' || !state.sample) return null;
  const total = state.sample.system.totalBytes;
  const fit = presetFor(total);
  if (fit === state.preset) return null;
  const configured = PRESET_THRESHOLDS[state.preset].critical.availablePercent;
  const fitting = PRESET_THRESHOLDS[fit].critical.availablePercent;
  const when = (fitting ?? 0) > (configured ?? 0) ? 'too late' : 'too early';
  return {
    action: `Switch pressure.preset from ${state.preset} to ${fit}: this machine has ${formatBytes(total)} (effective), so the ${state.preset} lines (critical at ${configured}% available) alert ${when}; ${fit} is critical at ${fitting}%.`,
    command: setCommand('pressure.preset', fit),
  };
}

/**
 * Halve the context of the loaded model with the largest one (above 4096
 * tokens): the KV cache grows linearly with the context, so this roughly
 * halves it. The cache size is not reported separately, so no saving.
 */
export function shrinkContext(state: RecommendState): Recommendation | null {
  const candidates = state.models.filter((m) => m.contextLength !== null && m.contextLength > MIN_CONTEXT);
  if (candidates.length === 0) return null;
  const best = candidates.reduce((a, b) => ((b.contextLength ?? 0) > (a.contextLength ?? 0) ? b : a));
  const context = best.contextLength ?? 0;
  const next = Math.max(MIN_CONTEXT, Math.floor(context / 2));
  return {
    action: `Lower the context of ${best.name} from ${context} to ${next} tokens (num_ctx): its KV cache, which grows with the context, halves.`,
  };
}

/**
 * An f16 KV cache (Ollama's default) is twice the size of q8_0 at the same
 * context, with a quality loss llama.cpp measures as negligible; unlike a
 * smaller context it costs no extra requests from clients that chunk their
 * prompts to the context (Meetily). It is a server setting memtide cannot
 * apply, so the advice says where it goes. Only while a model is loaded.
 */
export function quantizeKvCache(state: RecommendState): Recommendation | null {
  if (state.tunables.kvCacheType !== 'f16' || state.models.length === 0) return null;
  const largest = state.models.reduce((a, b) => (b.sizeBytes > a.sizeBytes ? b : a));
  return {
    action: `Start Ollama with OLLAMA_FLASH_ATTENTION=1 and OLLAMA_KV_CACHE_TYPE=q8_0, then set models.kvCacheType to q8_0: the KV cache of ${largest.name}${largest.contextLength ? ` (${largest.contextLength} tokens)` : ''} and of every model loaded after it halves.`,
    command: setCommand('models.kvCacheType', 'q8_0'),
  };
}

/**
 * A smaller `num_batch`: llama.cpp's compute buffer scales with it (for
 * llama3.2:3b 262 MiB at Ollama's 512, 66 MiB at 128, and ~150 MB less
 * resident), and prompts were measured no slower. memtide applies it itself
 * through the proxy, so the advice is a memtide setting. Each loaded model
 * reloads once on its next request, so only while a model is loaded and the
 * batch is above the advised one.
 */
export function smallerBatch(state: RecommendState): Recommendation | null {
  const batch = state.tunables.numBatch;
  if (batch === undefined || state.models.length === 0 || (batch !== null && batch <= ADVISED_NUM_BATCH)) return null;
  return {
    action: `Set models.numBatch to ${ADVISED_NUM_BATCH} (now ${batch ?? "Ollama's 512"}): llama.cpp's compute buffer of every model shrinks to ${Math.round((100 * ADVISED_NUM_BATCH) / (batch ?? OLLAMA_DEFAULT_NUM_BATCH))}% (about 150 MB less resident for a 3B model), and prompts were measured no slower; each loaded model reloads once on its next request.`,
    command: setCommand('models.numBatch', ADVISED_NUM_BATCH),
  };
}

/** Turn the low-memory mode on, when the build has one and it is off. */
export function enableLowMemoryMode(state: RecommendState): Recommendation | null {
  const mode = state.tunables.lowMemoryMode;
  if (!mode || mode.enabled) return null;
  return { action: `Enable low-memory mode (${mode.setting}).`, command: setCommand(mode.setting, true) };
}

/** The budget a component needs now (10% headroom, rounded up to 256 MiB): the last resort when the budget is simply too small. */
export function raiseBudget(state: RecommendState, component: string): Recommendation | null {
  const usage = state.sample?.components[component];
  const budget = state.componentBudgets[component];
  if (!usage || budget === undefined || footprintOf(usage) <= budget) return null;
  const step = 256 * MIB;
  const next = Math.ceil((footprintOf(usage) * 1.1) / step) * step;
  const text = next % GIB === 0 ? `${next / GIB}GiB` : `${next / MIB}MiB`;
  return {
    action: `If ${component} needs this much, raise alerts.componentBudgets.${component} from ${formatBytes(budget)} to ${formatBytes(next)}.`,
    command: setCommand(`alerts.componentBudgets.${component}`, text),
  };
}

/** When sampling itself is expensive: read PSS only for watched components, and sample less often. */
export function cheaperSampling(state: RecommendState): Recommendation[] {
  const cpuMs = state.sample?.self.sampleCpuMs;
  if (cpuMs === undefined) return [];
  const steps: Recommendation[] = [];
  if (state.sampling.pss === 'all') {
    steps.push({
      action: `Set sampling.pss to watched: reading PSS of every process (~0.3 ms each, ${state.sample?.processes.length ?? 0} processes) is most of the ${cpuMs} ms a sample costs.`,
      command: setCommand('sampling.pss', 'watched'),
    });
  }
  const share = cpuMs / state.sampling.intervalMs;
  if (share > SAMPLING_CPU_SHARE) {
    const next = Math.ceil(cpuMs / SAMPLING_CPU_SHARE / 1000) * 1000;
    steps.push({
      action: `Raise sampling.intervalMs from ${formatDuration(state.sampling.intervalMs)} to ${formatDuration(next)}: a sample costs ${cpuMs} ms of CPU, ${Math.round(share * 100)}% of a core.`,
      command: setCommand('sampling.intervalMs', `${next / 1000}s`),
    });
  }
  return steps;
}

/** Key of the engine process's own RSS baseline in `RecommendState.baselines` (`:` cannot occur in a component name). */
export function selfBaselineKey(engineComponent: string): string {
  return `${engineComponent}:self`;
}

/** Restart the process hosting memtide when its own memory grew: the saving is the growth since its low point. */
export function restartEngine(state: RecommendState, engineComponent: string): Recommendation | null {
  const self = state.sample?.self;
  if (!self) return null;
  const leak = state.leaks.find((l) => l.component === engineComponent);
  if (leak) return restartLeaking(state, leak);
  const baseline = state.baselines[selfBaselineKey(engineComponent)];
  const growth = baseline ? self.rssBytes - baseline.bytes : 0;
  const grown = roughBytes(growth);
  if (grown.bytes <= 0 || !baseline) return null;
  return {
    action: `Restart the process hosting memtide (pid ${self.pid}): its RSS grew ${grown.text} ${inTheLast(state.nowMs - baseline.atMs)}.`,
    expectedSavingBytes: grown.bytes,
  };
}

/** Stable ranking: expected saving, largest first; unknown savings after, in their original order. Duplicate actions are dropped. */
export function rankRecommendations(steps: readonly (Recommendation | null | undefined)[]): Recommendation[] {
  const seen = new Set<string>();
  const unique: Recommendation[] = [];
  for (const step of steps) {
    if (!step || seen.has(step.action)) continue;
    seen.add(step.action);
    unique.push(step);
  }
  return unique
    .map((step, index) => ({ step, index }))
    .sort((a, b) => (b.step.expectedSavingBytes ?? -1) - (a.step.expectedSavingBytes ?? -1) || a.index - b.index)
    .map(({ step }) => step);
}

/** Memory pressure: free memory where it can be freed, and fix what makes pressure worse. */
export function recommendForPressure(state: RecommendState): Recommendation[] {
  const severe = state.pressure !== null && levelRank(state.pressure) >= levelRank('high');
  return rankRecommendations([
    unloadIdleModel(state),
    ...state.leaks.map((leak) => restartLeaking(state, leak)),
    severe ? lowerTranscriptionConcurrency(state) : null,
    severe ? shrinkContext(state) : null,
    severe ? quantizeKvCache(state) : null,
    severe ? smallerBatch(state) : null,
    severe ? enableLowMemoryMode(state) : null,
    switchPreset(state),
  ]);
}

/** A leak: restart the component (the saving is its growth). */
export function recommendForLeak(state: RecommendState, leak: LeakDetected): Recommendation[] {
  return rankRecommendations([restartLeaking(state, leak)]);
}

/** Memory will run out: restart the leaking component; unloading an idle model buys time. */
export function recommendForExhaustion(state: RecommendState, leak: LeakDetected): Recommendation[] {
  return rankRecommendations([restartLeaking(state, leak), unloadIdleModel(state)]);
}

/** A component over its budget: what shrinks that component, then raising the budget. */
export function recommendForBudget(state: RecommendState, component: string): Recommendation[] {
  const modelComponent = state.tunables.modelComponent ?? DEFAULT_MODEL_COMPONENT;
  const leak = state.leaks.find((l) => l.component === component);
  return rankRecommendations([
    component === modelComponent ? unloadIdleModel(state) : null,
    leak ? restartLeaking(state, leak) : null,
    state.tunables.transcription?.component === component ? lowerTranscriptionConcurrency(state) : null,
    component === modelComponent ? shrinkContext(state) : null,
    component === modelComponent ? quantizeKvCache(state) : null,
    component === modelComponent ? smallerBatch(state) : null,
    raiseBudget(state, component),
  ]);
}

/** memtide's own health. */
export function recommendForEngine(state: RecommendState, check: 'rss' | 'heap' | 'cpu' | 'stalled', engineComponent: string): Recommendation[] {
  switch (check) {
    case 'rss':
    case 'heap':
      return rankRecommendations([restartEngine(state, engineComponent)]);
    case 'cpu':
      return rankRecommendations(cheaperSampling(state));
    case 'stalled':
      // The cause is outside what memtide measured (it has no fresh sample); the message names the numbers.
      return [];
  }
}
