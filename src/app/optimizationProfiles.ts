/**
 * Optimization profiles: what `optimization.level` and `optimization.lowMemory`
 * mean in concrete settings. Each profile is a config fragment layered just
 * above the schema defaults and below everything the user writes (code
 * options, file, environment, flags, runtime patches), so a setting written
 * explicitly always wins and the level only moves what was left at its default.
 *
 * `basic` equals the schema defaults (existing users see no change);
 * `aggressive` and `maximum` tighten step by step; `lowMemory` is `maximum`
 * plus one request and one chunk at a time, slower sampling and dashboard
 * updates and the smallest caches. The table below is the single source: the
 * config loader applies it and docs/optimization.md is generated from it
 * (`npm run docs:config`), with the reason of every value.
 */
import type { ConfigLayer, MemtideConfig, MemtideConfigInput } from './config.js';
import type { OptimizationConfig } from './schema/optimization.js';

/** The four profiles, from loosest to tightest. */
export const PROFILE_NAMES = ['basic', 'aggressive', 'maximum', 'lowMemory'] as const;
export type ProfileName = (typeof PROFILE_NAMES)[number];

/** A value of a profile, in the config's canonical units (ms, bytes, seconds, counts). */
export type ProfileValue = number | boolean | null;

/** One profile's value of a setting, and why. */
export interface ProfileChoice {
  value: ProfileValue;
  /** One line: why this value for this profile. */
  why: string;
}

/** How a value is shown in the docs. */
export type ProfileUnit = 'ms' | 'bytes' | 'seconds' | 'count' | 'factor' | 'tokens' | 'switch';

/** One setting every profile gives a value to. */
export interface ProfileRow {
  /** Dotted config path. */
  path: string;
  unit: ProfileUnit;
  /**
   * Which way of this setting costs less memory (or memory-related work):
   * `lower` for timeouts, budgets, queues and caches; `higher` for intervals.
   * A tighter profile never moves a setting the other way (tested).
   */
  saves: 'lower' | 'higher';
  profiles: Record<ProfileName, ProfileChoice>;
  /**
   * A user setting the profile value must not contradict: when `conflicts`
   * holds for the config the user's layers resolve to, the profile leaves
   * this setting alone (it shows up as shadowed by that user setting). This is
   * what keeps a profile from ever making a valid user config invalid.
   */
  yieldsTo?: { path: string; conflicts(user: MemtideConfig, value: ProfileValue): boolean };
}

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const MIB = 1024 ** 2;

/** The same choice for `maximum` and `lowMemory` (low-memory mode is maximum plus its own rows). */
const asMaximum = (value: ProfileValue, why: string): Pick<Record<ProfileName, ProfileChoice>, 'maximum' | 'lowMemory'> => ({
  maximum: { value, why },
  lowMemory: { value, why: `As maximum: ${why.charAt(0).toLowerCase()}${why.slice(1)}` },
});

/** Whisper works on 16 kHz samples; the schema compares chunk and overlap in whole samples. */
const samples = (seconds: number) => Math.round(seconds * 16_000);

/** The profiles, setting by setting. Values were chosen for an 8 GB laptop running Meetily, Ollama and whisper. */
export const PROFILE_ROWS: readonly ProfileRow[] = [
  {
    path: 'models.idleTimeoutMs',
    unit: 'ms',
    saves: 'lower',
    profiles: {
      basic: { value: MINUTE, why: "Schema default: a fifth of Ollama's 5 min keep_alive, and it still covers the gap between a summary and its title request." },
      aggressive: { value: 30 * SECOND, why: 'The model goes half a minute after the last request; a summary burst (chunk requests back to back) still shares one load.' },
      ...asMaximum(15 * SECOND, 'Gaps inside a Meetily summary burst are well under a second, so 15 s still keeps a burst on one load; a later follow-up pays one reload.'),
    },
  },
  {
    path: 'models.pressureGraceMs',
    unit: 'ms',
    saves: 'lower',
    profiles: {
      basic: { value: 15 * SECOND, why: 'Schema default: at high pressure idle models go after 15 s instead of the idle timeout.' },
      aggressive: { value: 10 * SECOND, why: 'At high pressure an idle model goes after 10 s.' },
      ...asMaximum(5 * SECOND, 'At high pressure memory is worth more than a warm model; 5 s still bridges the gaps inside a burst.'),
    },
  },
  {
    path: 'models.budgetScale',
    unit: 'factor',
    saves: 'lower',
    profiles: {
      basic: { value: 1, why: "Schema default: the preset's model budget as is (8gb: 4.5 GiB, gemma3:4b or llama3.2:3b fits)." },
      aggressive: { value: 0.8, why: '3.6 GiB on the 8gb preset: llama3.2:3b (2.8 GiB) fits, gemma3:4b (4.3 GiB) no longer does; set models.budgetBytes to keep it.' },
      ...asMaximum(0.65, '2.9 GiB on the 8gb preset: one 3B-class model (llama3.2:3b, 2.8 GiB at 4k context), never two models at once.'),
    },
  },
  {
    path: 'models.maxContext',
    unit: 'tokens',
    saves: 'lower',
    profiles: {
      basic: { value: 4096, why: "Schema default, Ollama's own default: no request gets more context than Ollama would give it." },
      aggressive: {
        value: 4096,
        why: "Unchanged: Meetily chunks its transcripts to the context /api/show advertises, so 2048 would triple its summary requests (bench:e2e: 22 instead of 7 in a day), each with its own answer to generate, so summaries arrive later, to save 270 MB of KV cache; a q8_0 KV cache on the server saves as much without more requests.",
      },
      ...asMaximum(
        2048,
        "Halves the KV cache chosen for free memory (about 224 MiB less for llama3.2:3b at f16); a longer prompt still gets the size it needs. Meetily chunks its transcripts to the smaller context /api/show then advertises: more summary requests, the model loaded longer.",
      ),
    },
  },
  {
    path: 'models.answerReserveTokens',
    unit: 'tokens',
    saves: 'lower',
    profiles: {
      basic: { value: 1024, why: 'Schema default: room for a long answer on top of the prompt estimate.' },
      aggressive: { value: 1024, why: 'Unchanged: at a 4096 context Meetily still gets 2472-token chunks.' },
      ...asMaximum(512, "Meetily chunks its transcript to maxContext minus this (minus its own 600): at 2048, 512 keeps its chunks at 936 tokens, and the estimate's ~40% overcount of English prompts leaves the answer more room than that."),
    },
  },
  {
    path: 'models.numBatch',
    unit: 'tokens',
    saves: 'lower',
    profiles: {
      basic: { value: null, why: "Schema default: Ollama's own num_batch (512)." },
      aggressive: {
        value: 128,
        why: "llama.cpp's compute buffer scales with the batch: for llama3.2:3b 262.5 MiB at Ollama's 512, 65.6 MiB at 128, and the runner's RSS 154 MiB lower after a 3000-token prompt, with prompts read no slower (bench/llamacpp: the real llama.cpp, CPU).",
      },
      ...asMaximum(128, 'As aggressive: 64 would save another 31 MiB of RSS only (bench/llamacpp), and tiny batches are where CPUs without AMX slow down.'),
    },
  },
  {
    path: 'models.maxConcurrent',
    unit: 'count',
    saves: 'lower',
    profiles: {
      basic: { value: 4, why: 'Schema default: Ollama itself runs one request per model at a time (OLLAMA_NUM_PARALLEL 1) and queues the rest.' },
      aggressive: { value: 4, why: 'Unchanged: only low-memory mode limits requests in flight.' },
      maximum: { value: 4, why: 'Unchanged: only low-memory mode limits requests in flight.' },
      lowMemory: { value: 1, why: 'One request at a time: a second request can never load a second model next to the first.' },
    },
  },
  {
    path: 'transcription.maxConcurrent',
    unit: 'count',
    saves: 'lower',
    profiles: {
      basic: { value: 1, why: 'Schema default: each concurrent chunk loads its own whisper model copy, so one suits a 2-core laptop.' },
      aggressive: { value: 1, why: 'Unchanged: already one chunk (one model copy) at a time.' },
      ...asMaximum(1, 'One chunk, one whisper model copy.'),
    },
  },
  {
    path: 'transcription.childProcess',
    unit: 'switch',
    saves: 'higher',
    profiles: {
      basic: { value: false, why: 'Schema default: whisper.cpp copies on worker threads of this process.' },
      aggressive: {
        value: true,
        why: "Each whisper copy in a process of its own: an unload returns everything, where a thread's freed memory partly stays in the allocator (100-200 MB after each unload in bench:e2e).",
      },
      ...asMaximum(true, 'Each whisper copy in a process of its own: an unload returns everything.'),
    },
  },
  {
    path: 'transcription.highConcurrency',
    unit: 'count',
    saves: 'lower',
    profiles: {
      basic: { value: null, why: 'Schema default: half of maxConcurrent at high pressure, at least 1.' },
      aggressive: { value: 1, why: 'One chunk at high pressure, even when you raise transcription.maxConcurrent.' },
      ...asMaximum(1, 'One chunk at high pressure, even when you raise transcription.maxConcurrent.'),
    },
  },
  {
    path: 'transcription.maxQueuedChunks',
    unit: 'count',
    saves: 'lower',
    profiles: {
      basic: { value: 2, why: 'Schema default: two 30 s chunks decoded ahead (about 1-2 MB each).' },
      aggressive: { value: 2, why: 'Unchanged: a queued chunk is only 1-2 MB.' },
      maximum: { value: 1, why: 'One chunk decoded ahead: decoding runs about 1000x real time, so the transcriber never waits for it.' },
      lowMemory: { value: 1, why: 'One chunk at a time: one decoded ahead, one being transcribed.' },
    },
  },
  {
    path: 'transcription.idleUnloadMs',
    unit: 'ms',
    saves: 'lower',
    profiles: {
      basic: { value: 5 * MINUTE, why: 'Schema default: the in-process whisper model stays loaded between files.' },
      aggressive: { value: 2 * MINUTE, why: 'The whisper model goes 2 min after the last chunk.' },
      ...asMaximum(MINUTE, 'Still two 30 s chunk periods, so live audio never reloads the model between chunks.'),
    },
  },
  {
    path: 'optimization.batchYield.enabled',
    unit: 'switch',
    // On holds batch transcription while the models are busy: less memory at once.
    saves: 'higher',
    profiles: {
      basic: { value: false, why: 'Schema default: imports and re-transcriptions start at once, as before, even next to a resident summary model.' },
      aggressive: {
        value: true,
        why: 'Batch transcription waits while Ollama works or a model is resident (at most 15 min at a stretch), so whisper and the 3.5 GB summary runner are not in memory at once; live meetings are never held.',
      },
      ...asMaximum(true, 'Batch transcription waits for the summary model and whisper unloads meanwhile: the meeting-day peak of docs/benchmarks.md is the two at once.'),
    },
  },
  {
    path: 'audio.chunkSeconds',
    unit: 'seconds',
    saves: 'lower',
    profiles: {
      basic: { value: 30, why: "Schema default: whisper.cpp's own 30 s window." },
      aggressive: { value: 30, why: 'Unchanged: whisper.cpp pads every chunk to a 30 s window, so shorter chunks cost CPU for about 1 MB saved each.' },
      maximum: { value: 20, why: 'A third less audio held per chunk; each chunk still costs a full 30 s encoder pass, so CPU per audio second rises by half.' },
      lowMemory: {
        value: 15,
        why: 'Half the audio per chunk at twice the encoder passes (2.1 s per chunk on 2 threads here, still 7x real time); never below 10 s, where words lose their context.',
      },
    },
    // An overlap the user wrote must stay shorter than the chunk; the profile never shortens a chunk below it.
    yieldsTo: { path: 'audio.overlapSeconds', conflicts: (user, value) => samples(user.audio.overlapSeconds) >= samples(Number(value)) },
  },
  {
    path: 'server.historyCacheBytes',
    unit: 'bytes',
    saves: 'lower',
    profiles: {
      basic: { value: 16 * MIB, why: 'Schema default: finished /api/history answers are kept for repeated dashboard ranges.' },
      aggressive: { value: 8 * MIB, why: 'Half the cache; a miss only re-reads SQLite.' },
      maximum: { value: 4 * MIB, why: 'A quarter of the cache; a miss only re-reads SQLite.' },
      lowMemory: { value: MIB, why: 'Smallest caches in low-memory mode: a few recent answers; a miss only re-reads SQLite.' },
    },
  },
  {
    path: 'sampling.intervalMs',
    unit: 'ms',
    saves: 'higher',
    profiles: {
      basic: { value: SECOND, why: 'Schema default: pressure is seen within a second.' },
      aggressive: { value: SECOND, why: 'Unchanged: the coordinator needs pressure within a second to act in time.' },
      maximum: { value: SECOND, why: 'Unchanged: the coordinator needs pressure within a second to act in time.' },
      lowMemory: { value: 2 * SECOND, why: 'Half the sampling work and history rows; pressure is still seen within 2 s (levels dwell 30 s).' },
    },
  },
  {
    path: 'server.updateIntervalMs',
    unit: 'ms',
    saves: 'higher',
    profiles: {
      basic: { value: SECOND, why: 'Schema default: one live update of each kind a second to the dashboard.' },
      aggressive: { value: SECOND, why: 'Unchanged: one update a second costs the page little.' },
      maximum: { value: 2 * SECOND, why: "Half the dashboard's chart work; the latest value is always sent." },
      lowMemory: { value: 5 * SECOND, why: 'A fifth of the updates; the latest value is always sent, so nothing shown is stale by more than 5 s.' },
    },
  },
];

/** What `optimization.observeOnly: true` adds to whichever profile is in force. */
export const OBSERVE_ONLY_SETTINGS: ReadonlyArray<{ path: string; value: ProfileValue; why: string }> = [
  { path: 'models.observeOnly', value: true, why: 'so a gradual rollout covers the model governor too: it decides and records, but changes nothing' },
];

/** The profile the user's settings select, plus whether observe-only is on. */
export interface ProfileSelection {
  name: ProfileName;
  observeOnly: boolean;
}

/** Low-memory mode wins over the level: it is maximum plus its own settings. */
export function selectProfile(optimization: Pick<OptimizationConfig, 'level' | 'lowMemory' | 'observeOnly'>): ProfileSelection {
  return { name: optimization.lowMemory ? 'lowMemory' : optimization.level, observeOnly: optimization.observeOnly };
}

/** The origin of profile values in errors and explanations. */
export const profileOrigin = (name: ProfileName): string => `optimization profile ${name}`;

/** One setting of a selected profile, and (when it stands aside) the user setting it yields to. */
export interface ProfileSetting {
  path: string;
  value: ProfileValue;
  why: string;
  /** Set when the profile leaves this setting alone because of a user setting at this path. */
  yieldsTo?: string;
}

/** Every setting of the selection; `user` (the user's layers resolved) decides which yield to a conflicting user setting. */
export function profileSettings(selection: ProfileSelection, user?: MemtideConfig): ProfileSetting[] {
  const settings: ProfileSetting[] = PROFILE_ROWS.map((row) => {
    const { value, why } = row.profiles[selection.name];
    const yields = user !== undefined && row.yieldsTo?.conflicts(user, value) === true;
    return yields && row.yieldsTo ? { path: row.path, value, why, yieldsTo: row.yieldsTo.path } : { path: row.path, value, why };
  });
  if (selection.observeOnly) settings.push(...OBSERVE_ONLY_SETTINGS.map((s) => ({ ...s })));
  return settings;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

/** `{ a: { b: value } }` for `a.b`, merged into `out`. */
function put(out: JsonObject, path: string, value: Json): void {
  const keys = path.split('.');
  let node = out;
  keys.slice(0, -1).forEach((key) => {
    const next = node[key];
    node = typeof next === 'object' && next !== null && !Array.isArray(next) ? next : (node[key] = {});
  });
  node[keys[keys.length - 1] as string] = value;
}

/** A selection as a config fragment (settings that yield to the user are left out). */
export function profileFragment(selection: ProfileSelection, user?: MemtideConfig): MemtideConfigInput {
  const out: JsonObject = {};
  for (const setting of profileSettings(selection, user)) if (!setting.yieldsTo) put(out, setting.path, setting.value);
  return out as MemtideConfigInput;
}

/** The profile layer for the config the user's layers resolve to; it goes just above the defaults. */
export function profileLayer(user: MemtideConfig): ConfigLayer {
  const selection = selectProfile(user.optimization);
  return { origin: profileOrigin(selection.name), values: profileFragment(selection, user) as ConfigLayer['values'] };
}

/** A profile value the effective config does not have, because a user setting took its place. */
export interface ProfileShadow {
  path: string;
  /** The value in force (yours), in canonical units. */
  yours: unknown;
  /** What the selected profile would have set. */
  profile: ProfileValue;
  /** Where your value comes from (file, MEMTIDE_* variable, flag, runtime patch), when known. */
  origin?: string;
}

/** The value at a dotted path of a config. */
export function valueAt(config: unknown, path: string): unknown {
  let node = config;
  for (const key of path.split('.')) {
    if (typeof node !== 'object' || node === null || !Object.hasOwn(node, key)) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/**
 * The profile settings that are not in force in `effective`: only a user
 * setting above the profile (or one the profile yields to) can cause that,
 * so this works from the effective config alone. `originOf`, when given,
 * names the layer of the user setting responsible.
 */
export function profileShadowsIn(effective: MemtideConfig, originOf?: (path: string) => string): ProfileShadow[] {
  const shadows: ProfileShadow[] = [];
  for (const setting of profileSettings(selectProfile(effective.optimization), effective)) {
    const yours = valueAt(effective, setting.path);
    if (JSON.stringify(yours) === JSON.stringify(setting.value)) continue;
    const shadow: ProfileShadow = { path: setting.path, yours, profile: setting.value };
    if (originOf) shadow.origin = originOf(setting.yieldsTo ?? setting.path);
    shadows.push(shadow);
  }
  return shadows;
}
