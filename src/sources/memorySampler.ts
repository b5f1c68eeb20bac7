/**
 * Takes one full sample: system memory, every process attributed to its
 * component, PSS for the watched ones, and the engine's own cost. All the
 * reading happens here; deciding what the numbers mean does not.
 */
import { readFileSync } from 'node:fs';
import type { MemtideConfig } from '../app/configSchema.js';
import type { ComponentUsage, EngineSelf, MemorySample, ProcessSample } from '../model.js';
import { OTHER, attributeComponents, knownComponents } from './attributeComponents.js';
import type { PlatformReaders, RawProcess, SmapsInfo } from './readers.js';

export interface SamplerOptions {
  readers: PlatformReaders;
  /** The engine's pid (default: this process). */
  selfPid?: number;
  /** Wall clock for timestamps (default Date.now). */
  now?: () => number;
}

export interface Sampler {
  sample(config: MemtideConfig): Promise<MemorySample>;
}

/** Reads each rule's pid file; unreadable or garbled files are simply absent. */
function readPidFiles(config: MemtideConfig): Map<string, number> {
  const out = new Map<string, number>();
  for (const rule of config.components.rules) {
    if (!rule.pidFile) continue;
    try {
      const pid = Number.parseInt(readFileSync(rule.pidFile, 'utf8').trim(), 10);
      if (Number.isInteger(pid) && pid > 0) out.set(rule.pidFile, pid);
    } catch {
      // The watched program is not running (no pid file yet): not an error.
    }
  }
  return out;
}

function emptyUsage(): ComponentUsage {
  return { rssBytes: 0, pssBytes: null, pssAnonBytes: null, processCount: 0 };
}

function totals(processes: readonly ProcessSample[], names: readonly string[]): Record<string, ComponentUsage> {
  const out: Record<string, ComponentUsage> = {};
  for (const name of names) out[name] = emptyUsage();
  for (const p of processes) {
    const usage = (out[p.component] ??= emptyUsage());
    usage.rssBytes += p.rssBytes;
    usage.processCount += 1;
    if (p.pssBytes !== null) usage.pssBytes = (usage.pssBytes ?? 0) + p.pssBytes;
    if (p.pssAnonBytes !== null) usage.pssAnonBytes = (usage.pssAnonBytes ?? 0) + p.pssAnonBytes;
  }
  return out;
}

function engineSelf(pid: number, cpuStart: NodeJS.CpuUsage): EngineSelf {
  const memory = process.memoryUsage();
  const cpu = process.cpuUsage(cpuStart);
  return {
    pid,
    rssBytes: memory.rss,
    heapUsedBytes: memory.heapUsed,
    heapTotalBytes: memory.heapTotal,
    externalBytes: memory.external,
    arrayBuffersBytes: memory.arrayBuffers,
    sampleCpuMs: (cpu.user + cpu.system) / 1000,
  };
}

export function createSampler(options: SamplerOptions): Sampler {
  const { readers } = options;
  const selfPid = options.selfPid ?? process.pid;
  const now = options.now ?? Date.now;
  return {
    async sample(config) {
      const cpuStart = process.cpuUsage();
      const timestampMs = now();
      const system = await readers.system.read();
      const raw = await readers.processes.list();
      const needsPorts = config.components.rules.some((r) => r.port !== undefined);
      const ports = needsPorts ? await readers.processes.listeningPorts() : undefined;
      const componentOf = attributeComponents(raw, config.components.rules, config.components.engine, {
        selfPid,
        pidFiles: readPidFiles(config),
        ...(ports ? { ports } : {}),
      });
      const processes = await Promise.all(
        raw.map((p) => toProcessSample(p, componentOf.get(p.pid) ?? OTHER, config, readers)),
      );
      return {
        timestampMs,
        system,
        components: totals(processes, knownComponents(config.components.rules, config.components.engine)),
        processes,
        self: engineSelf(selfPid, cpuStart),
      };
    },
  };
}

/**
 * Errors a per-process read may end in when the process exited after the
 * listing (the kernel answers ENOENT or ESRCH for a pid that is gone).
 */
const PROCESS_GONE = new Set(['ENOENT', 'ESRCH']);

/**
 * PSS of one listed process; null when it is not wanted, not available, or
 * the process exited since the listing. The built-in readers already answer
 * null then; a reader that throws ENOENT/ESRCH instead (an embedder's own)
 * must not fail the whole sample for one process that ended mid-sample.
 */
async function readPss(readers: PlatformReaders, pid: number): Promise<SmapsInfo | null> {
  try {
    return await readers.processes.readSmaps(pid);
  } catch (error) {
    if (PROCESS_GONE.has((error as NodeJS.ErrnoException | null)?.code ?? '')) return null;
    throw error;
  }
}

async function toProcessSample(p: RawProcess, component: string, config: MemtideConfig, readers: PlatformReaders): Promise<ProcessSample> {
  const mode = config.sampling.pss;
  // smaps_rollup costs ~0.3 ms a process: read it only where someone is watching.
  const wantPss = mode === 'all' || (mode === 'watched' && component !== OTHER);
  const smaps = wantPss ? await readPss(readers, p.pid) : null;
  return {
    pid: p.pid,
    ppid: p.ppid,
    name: p.name,
    component,
    rssBytes: p.rssBytes,
    pssBytes: smaps?.pssBytes ?? null,
    pssAnonBytes: smaps?.pssAnonBytes ?? null,
  };
}
