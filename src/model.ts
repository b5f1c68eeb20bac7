/**
 * The data that flows through memtide: samples in, pressure levels out.
 * Everything here is plain JSON-serialisable data so a sample can be logged,
 * stored, replayed from a trace and sent to the dashboard unchanged.
 */

/** Pressure levels, from calm to "the OOM killer is next". Ordered. */
export const PRESSURE_LEVELS = ['low', 'medium', 'high', 'critical'] as const;
/** One of {@link PRESSURE_LEVELS}: `low`, `medium`, `high`, `critical` (docs/pressure.md). */
export type PressureLevel = (typeof PRESSURE_LEVELS)[number];

/** Rank of a level (low = 0 ... critical = 3), for comparisons. */
export function levelRank(level: PressureLevel): number {
  return PRESSURE_LEVELS.indexOf(level);
}

/** Linux pressure stall information for memory, in percent of wall time stalled. */
export interface Psi {
  someAvg10: number;
  someAvg60: number;
  fullAvg10: number;
  fullAvg60: number;
}

/** System-wide memory. `totalBytes` is the effective total: min(MemTotal, cgroup limit). */
export interface SystemMemory {
  /** Effective total: min(MemTotal, cgroup limit). */
  totalBytes: number;
  /** MemAvailable (reclaimable page cache counts as available), capped by the cgroup's remaining room. */
  availableBytes: number;
  /** `totalBytes - availableBytes`. */
  usedBytes: number;
  swapTotalBytes: number;
  swapUsedBytes: number;
  /** null where the kernel has no PSI (non-Linux, old kernels, PSI disabled). */
  psi: Psi | null;
  /** MemTotal of the machine, before the cgroup limit is applied. */
  physicalTotalBytes: number;
  /** The memory limit of the engine's own cgroup, null when unlimited or unknown. */
  cgroupLimitBytes: number | null;
}

/** One process, attributed to a component. */
export interface ProcessSample {
  pid: number;
  /** Parent pid (component attribution follows ancestors). */
  ppid: number;
  /** Process name (Linux `comm`, at most 15 characters). */
  name: string;
  /** Component the attribution rules gave it (docs/components.md), `other` when none matched. */
  component: string;
  /** Resident set size. */
  rssBytes: number;
  /** Proportional set size (shared pages shared out); null when not read or not readable. */
  pssBytes: number | null;
  /** Anonymous part of PSS: what a leak grows (mapped model weights are file pages). */
  pssAnonBytes: number | null;
}

/** Per-component totals over its processes. */
export interface ComponentUsage {
  rssBytes: number;
  /** Sum of PSS over the processes where it was read; null if none had PSS. */
  pssBytes: number | null;
  /** Sum of anonymous PSS where read (what leak trends follow: file pages are reclaimable); null if none. */
  pssAnonBytes: number | null;
  /** Processes attributed to the component in this sample. */
  processCount: number;
}

/** The engine's own cost and V8 heap (also the host's, when embedded). */
export interface EngineSelf {
  /** The engine's process (the host's, when embedded). */
  pid: number;
  /** Fields of `process.memoryUsage()` at the time of the sample. */
  rssBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  externalBytes: number;
  arrayBuffersBytes: number;
  /** CPU time (user + system) spent taking this sample, in milliseconds. */
  sampleCpuMs: number;
}

/** One observation of the machine. */
export interface MemorySample {
  /** When the sample was taken (epoch milliseconds). */
  timestampMs: number;
  system: SystemMemory;
  /** Totals per component name (`ollama`, `audio`, `frontend`, `backend`, `engine`, `other`, or your rules' names). */
  components: Record<string, ComponentUsage>;
  /** Every process read, attributed to its component. */
  processes: ProcessSample[];
  /** The engine's own memory and the CPU time this sample cost. */
  self: EngineSelf;
}

/** Emitted by `classifyPressure` when the level changes (and once at start). */
export interface PressureChange {
  /** Timestamp of the sample that changed the level. */
  atMs: number;
  /** The level now in force. */
  level: PressureLevel;
  /** The level before; null for the first emission. */
  previous: PressureLevel | null;
  /** Which signals put the level where it is, e.g. `available 8.1% <= 10%`. */
  reasons: string[];
}

/** `leakTrend`: a component's memory grows steadily (not a step, not a warm-up, not a batch). */
export interface LeakDetected {
  kind: 'leak';
  component: string;
  detectedAtMs: number;
  /** Robust (Theil-Sen) growth rate over the evaluation window. */
  slopeBytesPerHour: number;
  /** 0..1: how sure the detector is (trend test strength and persistence). */
  confidence: number;
  /** When the growth would exhaust available memory at this rate; null if never/unknown. */
  projectedExhaustionMs: number | null;
}

/** `leakTrend`: a previously reported leak stopped (growth ended or the process restarted). */
export interface LeakCleared {
  kind: 'clear';
  component: string;
  atMs: number;
  /** Why, e.g. growth stopped, or the process restarted. */
  reason: string;
}

/** What `leakTrend` emits: a leak reported, or a reported leak cleared (once per episode each). */
export type LeakEvent = LeakDetected | LeakCleared;

/** A model the governor knows about (from /api/ps and the proxy's own traffic). */
export interface LoadedModel {
  /** Ollama model tag, e.g. `llama3.1:8b`. */
  name: string;
  /** Bytes Ollama reports (`/api/ps` size), or the governor's estimate before it does. */
  sizeBytes: number;
  /** Part of `sizeBytes` in GPU memory (`/api/ps` size_vram); RAM held is the difference. */
  sizeVramBytes: number;
  /** The `num_ctx` it was loaded with; null when unknown. */
  contextLength: number | null;
  /** Requests to this model now in flight through the proxy. */
  inFlight: number;
  /** Last time a request to it finished; null while in use. */
  idleSinceMs: number | null;
  /** Pinned models are not unloaded for idleness, budget or high pressure (docs/governor.md). */
  pinned: boolean;
  /** When Ollama itself would unload it (`/api/ps` expires_at); null when unknown or never. */
  expiresAtMs: number | null;
}

/** Alert severities, from least to most severe. */
export const ALERT_SEVERITIES = ['info', 'warning', 'critical'] as const;
/** One of {@link ALERT_SEVERITIES}. */
export type AlertSeverity = (typeof ALERT_SEVERITIES)[number];
/** What an alert is about (the table of kinds is in docs/alerts.md). */
export type AlertKind = 'pressure' | 'leak' | 'exhaustion' | 'budget' | 'engine';

/** One concrete thing the user (or memtide) can do, computed from the state. */
export interface Recommendation {
  /** What to do, in one sentence naming the component / model / setting. */
  action: string;
  /** A command to run or a config change to make, when there is one. */
  command?: string;
  /** Bytes this is expected to free, when known. */
  expectedSavingBytes?: number;
}

/** An alert notification (a condition firing, repeating or resolving). */
export interface Alert {
  /** Stable key of the condition, e.g. `leak:ollama` or `pressure`. */
  key: string;
  kind: AlertKind;
  severity: AlertSeverity;
  /** `firing` for the first notification and repeats, `resolved` once the condition has stayed clear. */
  status: 'firing' | 'resolved';
  /** The component it is about; null for system-wide conditions (pressure). */
  component: string | null;
  /** When this notification was sent. */
  atMs: number;
  /** When this condition started firing. */
  sinceMs: number;
  /** 0 for the first notification, 1.. for repeats. */
  repeat: number;
  /** One line, e.g. `ollama over its memory budget`. */
  title: string;
  /** The numbers behind it, e.g. `ollama uses 6.2 GiB (PSS), 1.2 GiB over its 5.0 GiB budget.` */
  message: string;
  /** Steps ranked by expected saving; empty on `resolved`. */
  recommendations: Recommendation[];
}

/** 16 kHz mono 16-bit PCM, the format whisper.cpp wants, cut into bounded chunks. */
export interface AudioChunk {
  /** Where the audio came from (file path, or a label for a stream/upload). */
  source: string;
  /** 0-based position of the chunk in its source. */
  index: number;
  /** Sample-accurate bounds in the resampled stream: start = firstSample / 16, end = (lastSample + 1) / 16. */
  startMs: number;
  /** Sample-accurate end (exclusive), in milliseconds of the resampled stream. */
  endMs: number;
  /** Index of the first sample of the chunk in the whole resampled stream. */
  firstSample: number;
  sampleRate: 16000;
  /** The chunk's own buffer (never a view into a shared one). */
  samples: Int16Array;
  /** True for the last chunk of its source. */
  last: boolean;
}

/** One transcribed chunk, as written to transcript.jsonl. */
export interface TranscriptSegment {
  /** The input file (or upload name) the chunk came from. */
  file: string;
  /** Chunk bounds in milliseconds from the start of the audio. */
  startMs: number;
  endMs: number;
  /** The transcriber's text for the chunk. */
  text: string;
}
