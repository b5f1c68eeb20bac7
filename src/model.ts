/**
 * The data that flows through memtide: samples in, pressure levels out.
 * Everything here is plain JSON-serialisable data so a sample can be logged,
 * stored, replayed from a trace and sent to the dashboard unchanged.
 */

/** Pressure levels, from calm to "the OOM killer is next". Ordered. */
export const PRESSURE_LEVELS = ['low', 'medium', 'high', 'critical'] as const;
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
  totalBytes: number;
  availableBytes: number;
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
  ppid: number;
  name: string;
  component: string;
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
  processCount: number;
}

/** The engine's own cost and V8 heap (also the host's, when embedded). */
export interface EngineSelf {
  pid: number;
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
  timestampMs: number;
  system: SystemMemory;
  components: Record<string, ComponentUsage>;
  processes: ProcessSample[];
  self: EngineSelf;
}

/** Emitted by `classifyPressure` when the level changes (and once at start). */
export interface PressureChange {
  atMs: number;
  level: PressureLevel;
  previous: PressureLevel | null;
  /** Which signals put the level where it is, e.g. `available 8.1% <= 10%`. */
  reasons: string[];
}
