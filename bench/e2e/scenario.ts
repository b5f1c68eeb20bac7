/**
 * The scripted meeting day of `npm run bench:e2e`, as data: what happens, in
 * which order, how long the idle gaps are, and how day time maps to bench
 * time. The same scenario drives both runs (Meetily's defaults, and memtide
 * governing); only the way Meetily's work is done differs.
 *
 * Time compression: one bench millisecond is `timeScale` milliseconds of the
 * day (30: a day minute lasts two seconds). Everything that is a *timer* is
 * scaled by the same factor: Ollama's keep_alive (5 min -> 10 s), memtide's
 * idle timeouts at optimization level aggressive (models.idleTimeoutMs
 * 30 s -> 1 s, pressureGraceMs, transcription.idleUnloadMs), the idle gaps, the rate at which live audio
 * arrives (a 30 s chunk every second) and the time a summary request takes
 * (48 s of a 3B model on a laptop CPU -> 1.6 s). What is *work* is not scaled:
 * whisper.cpp does its real work on every chunk, paced to a fixed slot of
 * day time per chunk (`whisperDayMsPerChunk`, 75 s: slower than the 30 s of
 * speech, so live transcription falls behind and a backlog builds, as on a
 * CPU-only laptop running a large whisper model); decoding runs at this
 * machine's full speed, and loading a model really allocates its bytes.
 */
import { PROFILE_ROWS } from '../../src/app/optimizationProfiles.js';
import { optimizationSchema } from '../../src/app/schema/optimization.js';
import type { FakeModelSpec } from '../../test/support/fakeOllamaModels.js';
import { modelSpec } from '../../test/support/fakeOllamaModels.js';

export interface ImportFileSpec {
  /** Length of the recording. */
  minutes: number;
  sampleRate: number;
  channels: number;
  /** A speech block starts every this many seconds (aligned to the 25 s segments)... */
  speechEverySeconds: number;
  /** ...and lasts this long; the rest of the recording is silence. */
  speechSeconds: number;
}

export type DayStep =
  | { kind: 'idle'; label: string; dayMinutes: number }
  /** A live meeting: recorded and transcribed as it happens, then summarized. */
  | { kind: 'meeting'; name: string; audioMinutes: number }
  /**
   * An imported recording: decoded, transcribed, then summarized. With
   * `whilePreviousSummary`, the import starts while the previous meeting's
   * summary is being generated (once its first request is answered, i.e. the
   * model is loaded), and runs alongside the rest of it.
   */
  | { kind: 'import'; name: string; file: ImportFileSpec; whilePreviousSummary?: boolean };

/** Optimization levels the memtide run can use (bench:e2e --level). */
export type BenchLevel = 'aggressive' | 'maximum';

export interface Scenario {
  name: string;
  /** memtide's optimization.level in the governed run; the timers below are its profile's. */
  level: BenchLevel;
  /**
   * What-if (bench:e2e --kv-cache q8_0): the governed run's Ollama is started
   * with this OLLAMA_KV_CACHE_TYPE and memtide's models.kvCacheType says so,
   * i.e. the user followed memtide's recommendation. Absent: f16, as Ollama ships.
   */
  governedKvCache?: 'q8_0';
  /** Day milliseconds per bench millisecond. */
  timeScale: number;
  /** The Ollama model Meetily summarizes with (the fake server's facts; its runner memory is allocated for real). */
  summaryModel: FakeModelSpec;
  /** Day time of one summary answer (generation) on the simulated machine. */
  answerDayMs: number;
  /**
   * Day time of prompt evaluation per prompt token at Ollama's num_batch 512
   * (a smaller batch is slower by promptSpeed of test/support/fakeOllamaModels.ts,
   * from the real llama.cpp: no slowdown measured down to 64).
   */
  promptDayMsPerToken: number;
  /** Tokens in each fake answer (the fake server's fixed answer length). */
  answerTokens: number;
  /** Model load time on the simulated machine, per GB of runner (day time; the real allocation adds its own). */
  loadDayMsPerGb: number;
  /** Ollama's OLLAMA_KEEP_ALIVE default. */
  ollamaKeepAliveDayMs: number;
  /** memtide's models.idleTimeoutMs at the run's optimization level (src/app/optimizationProfiles.ts). */
  memtideModelIdleDayMs: number;
  /** memtide's models.pressureGraceMs at that level. */
  memtidePressureGraceDayMs: number;
  /** memtide's transcription.idleUnloadMs at that level. */
  memtideWhisperIdleDayMs: number;
  /** memtide's optimization.batchYield.idleAfterMs (schema default; the aggressive and maximum profiles turn batchYield on). */
  batchIdleAfterDayMs: number;
  /** memtide's optimization.batchYield.maxHoldMs. */
  batchMaxHoldDayMs: number;
  /** Live chunks (Meetily: VAD segments; here 30 s in both runs, memtide's default chunk). */
  liveChunkSeconds: number;
  /** Import segments (Meetily splits speech at 25 s; memtide's audio.chunkSeconds is set to the same). */
  importChunkSeconds: number;
  whisperThreads: number;
  /**
   * Day time one whisper call takes on the simulated machine (0: as fast as
   * this machine runs it). Each call does its real work, then waits out the
   * rest of its slot: the day's timeline then does not depend on how busy
   * the shared build machine is, and both runs see the same one. A call
   * that needs longer than its slot simply takes longer (counted as an
   * overrun in the report).
   */
  whisperDayMsPerChunk: number;
  /** Real speech rate, for the length of the transcript Meetily summarizes. */
  speechWordsPerMinute: number;
  /** Ollama's default num_ctx (OLLAMA_CONTEXT_LENGTH), what `/v1` requests run at when nothing sets one. */
  ollamaDefaultNumCtx: number;
  steps: DayStep[];
}

const MINUTE = 60_000;

/** llama3.2:3b, Q4_K_M (2.0 GB GGUF; shapes from its GGUF header): a summary model that fits 8 GB laptops. */
export const LLAMA_3B = modelSpec({
  name: 'llama3.2:3b',
  quantization: 'Q4_K_M',
  arch: 'llama',
  parameterCount: 3.21e9,
  blockCount: 28,
  headCount: 24,
  headCountKv: 8,
  embeddingLength: 3072,
  contextLength: 131_072,
  fileSizeBytes: 2.02e9,
});

/** A tiny model for the smoke run (its runner is ~0.7 GB). */
export const TINY_MODEL = modelSpec({
  name: 'qwen2.5:0.5b',
  quantization: 'Q4_K_M',
  arch: 'qwen2',
  parameterCount: 494e6,
  blockCount: 24,
  headCount: 14,
  headCountKv: 2,
  embeddingLength: 896,
  contextLength: 32_768,
  fileSizeBytes: 398e6,
});

/** The value an optimization profile gives `path` (undefined: no such row). */
const profileValue = (level: BenchLevel, path: string) => PROFILE_ROWS.find((row) => row.path === path)?.profiles[level].value;

/** A number of an optimization profile; null where the profile leaves the setting to the server (e.g. models.numBatch at basic). */
export function profileNumber(level: BenchLevel, path: string): number | null {
  const value = profileValue(level, path);
  if (typeof value !== 'number' && value !== null) throw new Error(`optimization profile "${level}" has no number for ${path}`);
  return value;
}

/** A switch of an optimization profile (e.g. transcription.childProcess). */
export function profileSwitch(level: BenchLevel, path: string): boolean {
  const value = profileValue(level, path);
  if (typeof value !== 'boolean') throw new Error(`optimization profile "${level}" has no switch for ${path}`);
  return value;
}

/** A timer of an optimization profile, in day milliseconds (the runner gets it scaled: see runnerProcess.ts). */
export function profileTimer(level: BenchLevel, path: string): number {
  const value = profileNumber(level, path);
  if (value === null) throw new Error(`optimization profile "${level}" has no timer for ${path}`);
  return value;
}

/** The memtide run at another optimization level: its profile's timers, scaled like the rest. */
export function atLevel(scenario: Scenario, level: BenchLevel): Scenario {
  return {
    ...scenario,
    level,
    memtideModelIdleDayMs: profileTimer(level, 'models.idleTimeoutMs'),
    memtidePressureGraceDayMs: profileTimer(level, 'models.pressureGraceMs'),
    memtideWhisperIdleDayMs: profileTimer(level, 'transcription.idleUnloadMs'),
  };
}

/** The schema's batchYield timers (the profiles set only `enabled`). */
const BATCH_YIELD_DEFAULTS = optimizationSchema.parse({}).batchYield;

const COMMON = {
  timeScale: 30,
  // A laptop CPU with llama3.2:3b: ~100 prompt tokens/s, so a 2472-token Meetily chunk reads in ~25 s and the
  // whole request takes ~50 s (before prompt evaluation was modelled, every request took a flat 48 s).
  answerDayMs: 24_000,
  promptDayMsPerToken: 10,
  answerTokens: 8,
  loadDayMsPerGb: 1000,
  ollamaKeepAliveDayMs: 5 * MINUTE,
  level: 'aggressive',
  memtideModelIdleDayMs: profileTimer('aggressive', 'models.idleTimeoutMs'),
  memtidePressureGraceDayMs: profileTimer('aggressive', 'models.pressureGraceMs'),
  memtideWhisperIdleDayMs: profileTimer('aggressive', 'transcription.idleUnloadMs'),
  batchIdleAfterDayMs: BATCH_YIELD_DEFAULTS.idleAfterMs,
  batchMaxHoldDayMs: BATCH_YIELD_DEFAULTS.maxHoldMs,
  liveChunkSeconds: 30,
  importChunkSeconds: 25,
  whisperThreads: 2,
  // 75 s per 30 s chunk: a CPU-only laptop running Meetily's large-v3-turbo is about this slow.
  whisperDayMsPerChunk: 75_000,
  speechWordsPerMinute: 150,
  ollamaDefaultNumCtx: 4096,
} satisfies Partial<Scenario>;

/**
 * A meeting morning: a stand-up; a design review long enough for Meetily to
 * chunk its summary (4 requests back to back), and while that summary is
 * being generated the user imports a long recording; a 1:1; 10-minute gaps;
 * then 6 minutes of the rest of the day, so Ollama's last keep_alive ends
 * inside the measured window.
 */
export const MEETING_DAY: Scenario = {
  name: 'meeting morning',
  ...COMMON,
  summaryModel: LLAMA_3B,
  steps: [
    { kind: 'idle', label: 'Meetily open, before the stand-up', dayMinutes: 3 },
    { kind: 'meeting', name: 'stand-up', audioMinutes: 5 },
    { kind: 'idle', label: 'gap', dayMinutes: 10 },
    { kind: 'meeting', name: 'design review', audioMinutes: 12 },
    {
      kind: 'import',
      name: 'workshop recording',
      // 60 min at 48 kHz stereo (what a meeting recorder writes), 5 min of it speech: 12 segments
      // of 25 s, one every 5 min. The whole file is decoded either way; the speech is kept short
      // because whisper time on a shared 2-core VM is the bench's budget (more speech adds the same
      // whisper work to both runs, and held segment copies only to Meetily's).
      file: { minutes: 60, sampleRate: 48_000, channels: 2, speechEverySeconds: 300, speechSeconds: 25 },
      whilePreviousSummary: true,
    },
    { kind: 'idle', label: 'gap', dayMinutes: 10 },
    { kind: 'meeting', name: '1:1', audioMinutes: 4 },
    { kind: 'idle', label: 'rest of the day', dayMinutes: 6 },
  ],
};

/**
 * Seconds, not minutes (test/e2e.smoke.test.ts): one live chunk, one 25 s
 * import segment, and 1 day minute at the end: memtide's idle unload (30 s
 * at level aggressive) happens inside the window, Ollama's 5 minutes do not.
 */
export const SMOKE_DAY: Scenario = {
  name: 'smoke',
  ...COMMON,
  whisperDayMsPerChunk: 0,
  summaryModel: TINY_MODEL,
  steps: [
    { kind: 'meeting', name: 'smoke meeting', audioMinutes: 0.5 },
    { kind: 'import', name: 'smoke recording', file: { minutes: 0.5, sampleRate: 48_000, channels: 2, speechEverySeconds: 30, speechSeconds: 25 } },
    { kind: 'idle', label: 'tail', dayMinutes: 1 },
  ],
};

/** Bench milliseconds of `dayMs` of the day. */
export const benchMs = (scenario: Scenario, dayMs: number): number => dayMs / scenario.timeScale;

/** Speech blocks of an import file, in seconds: [start, end), only those entirely inside the file. */
export function speechBlocks(file: ImportFileSpec): Array<[number, number]> {
  const blocks: Array<[number, number]> = [];
  for (let start = 0; start + file.speechSeconds <= file.minutes * 60; start += file.speechEverySeconds) blocks.push([start, start + file.speechSeconds]);
  return blocks;
}

/** Transcript segments a step must produce (the functionality check). */
export function expectedTranscripts(scenario: Scenario, step: DayStep): number {
  if (step.kind === 'meeting') return Math.ceil((step.audioMinutes * 60) / scenario.liveChunkSeconds);
  if (step.kind === 'import') return speechBlocks(step.file).reduce((n, [a, b]) => n + Math.ceil((b - a) / scenario.importChunkSeconds), 0);
  return 0;
}

/** Minutes of speech a step's transcript covers. */
export function speechMinutes(scenario: Scenario, step: DayStep): number {
  if (step.kind === 'meeting') return step.audioMinutes;
  if (step.kind === 'import') return speechBlocks(step.file).reduce((n, [a, b]) => n + (b - a), 0) / 60;
  return 0;
}

/** One line per step, for the report. */
export function describeScenario(scenario: Scenario): string[] {
  return scenario.steps.map((step) => {
    if (step.kind === 'idle') return `idle ${step.dayMinutes} min (${step.label})`;
    if (step.kind === 'meeting') return `meeting "${step.name}": ${step.audioMinutes} min live, ${expectedTranscripts(scenario, step)} chunks of ${scenario.liveChunkSeconds} s, then its summary`;
    const f = step.file;
    return `import "${step.name}"${step.whilePreviousSummary ? ' (started while the previous summary is being generated, after its first answer)' : ''}: ${f.minutes} min WAV ${f.sampleRate / 1000} kHz ${f.channels === 2 ? 'stereo' : `${f.channels} ch`} 16-bit, ${speechMinutes(scenario, step)} min speech in ${expectedTranscripts(scenario, step)} segments of ${scenario.importChunkSeconds} s, then its summary`;
  });
}
