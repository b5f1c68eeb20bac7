/**
 * Memory of every process of a run, several times a second, with memtide's
 * own Linux readers (src/sources/linuxReaders.ts): the process table from
 * /proc/PID/stat, and PSS from /proc/PID/smaps_rollup where it is readable
 * (RSS otherwise; the report says which). A run's processes are its root
 * processes and all their descendants, attributed to the root's component,
 * except the fake Ollama's memory child, which is the model runner.
 */
import { createProcessTableReader } from '../../src/sources/linuxReaders.js';

export interface Root {
  pid: number;
  component: string;
}

export interface Sample {
  atMs: number;
  /** Bytes per component (PSS where readable, else RSS). */
  components: Record<string, number>;
  total: number;
  /** The same processes' RSS (shared pages counted in every process). */
  rssTotal: number;
}

export interface SamplerResult {
  samples: Sample[];
  /** Processes read with PSS / with RSS only (over all samples). */
  pssReads: number;
  rssReads: number;
  /** Largest number of processes in one sample. */
  maxProcesses: number;
}

export interface ProcessSampler {
  /** Adds a root (a process started after the sampler). */
  addRoot(root: Root): void;
  stop(): SamplerResult;
}

export function startProcessSampler(roots: Root[], options: { intervalMs: number; runnerComponent: string; runnerPattern: RegExp }): ProcessSampler {
  const table = createProcessTableReader();
  const current = [...roots];
  const samples: Sample[] = [];
  let pssReads = 0;
  let rssReads = 0;
  let maxProcesses = 0;

  const tick = () => {
    const atMs = Date.now();
    const processes = table.list();
    const children = new Map<number, number[]>();
    for (const p of processes) {
      const list = children.get(p.ppid) ?? [];
      list.push(p.pid);
      children.set(p.ppid, list);
    }
    const byPid = new Map(processes.map((p) => [p.pid, p]));
    const components: Record<string, number> = {};
    let rssTotal = 0;
    let counted = 0;
    const seen = new Set<number>();
    for (const root of current) {
      const stack = [root.pid];
      while (stack.length > 0) {
        const pid = stack.pop()!;
        if (seen.has(pid)) continue;
        seen.add(pid);
        const proc = byPid.get(pid);
        if (!proc) continue;
        stack.push(...(children.get(pid) ?? []));
        const smaps = table.readSmaps(pid);
        const bytes = smaps?.pssBytes ?? proc.rssBytes;
        if (smaps) pssReads += 1;
        else rssReads += 1;
        rssTotal += proc.rssBytes;
        const component = options.runnerPattern.test(proc.cmdline) ? options.runnerComponent : root.component;
        components[component] = (components[component] ?? 0) + bytes;
        counted += 1;
      }
    }
    maxProcesses = Math.max(maxProcesses, counted);
    samples.push({ atMs, components, total: Object.values(components).reduce((a, b) => a + b, 0), rssTotal });
  };

  tick();
  const timer = setInterval(tick, options.intervalMs);
  return {
    addRoot(root) {
      current.push(root);
      tick();
    },
    stop() {
      clearInterval(timer);
      tick();
      return { samples, pssReads, rssReads, maxProcesses };
    },
  };
}

export interface SeriesStats {
  peak: number;
  peakAtMs: number;
  /** Time-weighted mean: each sample holds until the next one. */
  mean: number;
  durationMs: number;
}

export function seriesStats(samples: readonly Sample[], value: (s: Sample) => number): SeriesStats {
  let peak = 0;
  let peakAtMs = samples[0]?.atMs ?? 0;
  let area = 0;
  for (let i = 0; i < samples.length; i += 1) {
    const s = samples[i]!;
    const v = value(s);
    if (v > peak) {
      peak = v;
      peakAtMs = s.atMs;
    }
    const next = samples[i + 1];
    if (next) area += v * (next.atMs - s.atMs);
  }
  const durationMs = samples.length > 1 ? samples.at(-1)!.atMs - samples[0]!.atMs : 0;
  return { peak, peakAtMs, mean: durationMs > 0 ? area / durationMs : (samples[0] ? value(samples[0]) : 0), durationMs };
}

