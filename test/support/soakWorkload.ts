/**
 * A synthetic machine for the virtual-day soak: platform readers whose
 * numbers are a pure function of the (virtual) clock. Over a day it has
 * pressure episodes (a memory hog), a Meetily backend that leaks from hour 8
 * and is restarted at hour 16, Ollama models loading and unloading (a runner
 * process per model, with a KV-cache warm-up), whisper batches that free
 * their memory, a webview with a GC sawtooth, and idle system processes. The
 * engine's own process (`selfPid`) reports its real RSS.
 */
import type { SystemMemory } from '../../src/model.js';
import type { PlatformReaders, RawProcess, SmapsInfo } from '../../src/sources/readers.js';

const MB = 1_000_000;
const GIB = 1024 ** 3;
const MIN = 60_000;
const HOUR = 60 * MIN;
const TOTAL = 16 * GIB;

/** Deterministic noise in [-1, 1) from an integer (no state: any time can be read in any order). */
function noise(seed: number, i: number): number {
  let x = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) + Math.imul(i, 0xc2b2ae35)) | 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return (x >>> 0) / 2 ** 31 - 1;
}

/** What the workload schedules, in ms since the start of the day: the test checks the engine against it. */
export const WORKLOAD = {
  /** The backend's anonymous memory grows this fast from `leakStartMs` until its restart. */
  leakBytesPerHour: 60 * MB,
  leakStartMs: 8 * HOUR,
  backendRestartMs: 16 * HOUR,
  /** A model loads every 2 h (at :10) and unloads 50 min later. */
  modelPeriodMs: 2 * HOUR,
  modelLoadedMs: 50 * MIN,
  /** A whisper batch every 30 min: 400 MB over 3 min, freed 10 min after it began. */
  batchPeriodMs: 30 * MIN,
  /** Memory hog episodes (start, end, available fraction it leaves): pressure medium, high, critical, medium. */
  hogs: [
    [3 * HOUR, 4 * HOUR, 0.17],
    [9 * HOUR, 9.5 * HOUR, 0.12],
    [15 * HOUR, 17 * HOUR, 0.06],
    [21 * HOUR, 21.25 * HOUR, 0.18],
  ] as const,
} as const;

interface Proc extends RawProcess {
  pssBytes: number;
  pssAnonBytes: number | null;
}

export interface Workload {
  readers: PlatformReaders;
  /** The processes at `ms` since the start (for inspection). */
  processesAt(ms: number): Proc[];
}

/**
 * @param now the virtual clock (epoch ms)
 * @param startMs the start of the day on that clock
 * @param selfPid the engine's pid: its process reports the real RSS of this process
 */
export function syntheticWorkload(now: () => number, startMs: number, selfPid: number): Workload {
  const idle: Proc[] = [
    { pid: 1, ppid: 0, name: 'systemd', cmdline: '/sbin/init', startTimeTicks: 1, rssBytes: 12 * MB, pssBytes: 8 * MB, pssAnonBytes: 4 * MB },
    ...Array.from({ length: 18 }, (_, i): Proc => ({
      pid: 400 + i,
      ppid: 1,
      name: ['sshd', 'dbus-daemon', 'pipewire', 'gnome-shell', 'Xorg', 'NetworkManager'][i % 6]!,
      cmdline: `/usr/bin/idle-${i}`,
      startTimeTicks: 100 + i,
      rssBytes: (20 + 7 * i) * MB,
      pssBytes: (12 + 5 * i) * MB,
      pssAnonBytes: (6 + 3 * i) * MB,
    })),
  ];

  function processesAt(t: number): Proc[] {
    const second = Math.floor(t / 1000);
    const list: Proc[] = [...idle];
    const self = process.memoryUsage.rss();
    list.push({ pid: selfPid, ppid: 1, name: 'node', cmdline: 'node memtide', startTimeTicks: 50, rssBytes: self, pssBytes: self, pssAnonBytes: null });

    // Meetily: the app, its webview (GC sawtooth, 40 s period) and the Python backend (the leak).
    list.push({ pid: 100, ppid: 1, name: 'meetily', cmdline: '/opt/meetily/meetily', startTimeTicks: 200, rssBytes: 140 * MB, pssBytes: 110 * MB, pssAnonBytes: 60 * MB });
    const saw = ((t % 40_000) / 40_000) * 80 * MB;
    const web = 300 * MB + saw + 3 * MB * noise(1, second);
    list.push({ pid: 110, ppid: 100, name: 'WebKitWebProcess', cmdline: '/usr/lib/webkit/WebKitWebProcess', startTimeTicks: 210, rssBytes: web + 90 * MB, pssBytes: web + 40 * MB, pssAnonBytes: web });
    const restarted = t >= WORKLOAD.backendRestartMs;
    const leaked = restarted ? 0 : (Math.max(0, t - WORKLOAD.leakStartMs) / HOUR) * WORKLOAD.leakBytesPerHour;
    const backend = 250 * MB + leaked + 4 * MB * noise(2, second);
    list.push({
      pid: restarted ? 121 : 120,
      ppid: 100,
      name: 'python3',
      cmdline: 'python3 -u main.py --port 5167',
      startTimeTicks: restarted ? 9_000_000 : 220,
      rssBytes: backend + 50 * MB,
      pssBytes: backend + 30 * MB,
      pssAnonBytes: backend,
    });

    // Ollama: the server, and a runner per loaded model (weights are mapped file pages: RSS, not anonymous PSS).
    list.push({ pid: 200, ppid: 1, name: 'ollama', cmdline: '/usr/local/bin/ollama serve', startTimeTicks: 300, rssBytes: 90 * MB, pssBytes: 80 * MB, pssAnonBytes: 70 * MB });
    const cycle = Math.floor(t / WORKLOAD.modelPeriodMs);
    const inCycle = t - cycle * WORKLOAD.modelPeriodMs - 10 * MIN;
    if (inCycle >= 0 && inCycle < WORKLOAD.modelLoadedMs) {
      const weights = (cycle % 2 ? 4.7 : 2.0) * GIB;
      const kv = 600 * MB * (1 - Math.exp(-inCycle / (2 * MIN))) + 5 * MB * noise(3, second);
      list.push({
        pid: 1000 + cycle,
        ppid: 200,
        name: 'ollama_llama_se',
        cmdline: `/usr/local/bin/ollama runner --model blob-${cycle % 2}`,
        startTimeTicks: 10_000 + cycle,
        rssBytes: weights + 200 * MB + kv,
        pssBytes: weights + 150 * MB + kv,
        pssAnonBytes: 150 * MB + kv,
      });
    }

    // whisper-server: a batch every 30 min, 400 MB allocated over 3 min, freed 10 min after it began.
    const inBatch = t % WORKLOAD.batchPeriodMs;
    const batch = inBatch < 10 * MIN ? Math.min(1, inBatch / (3 * MIN)) * 400 * MB : 0;
    const whisper = 180 * MB + batch + 2 * MB * noise(4, second);
    list.push({ pid: 300, ppid: 1, name: 'whisper-server', cmdline: 'whisper-server -m ggml-base.en.bin', startTimeTicks: 400, rssBytes: whisper + 150 * MB, pssBytes: whisper + 140 * MB, pssAnonBytes: whisper });

    // A memory hog (some other program) during the pressure episodes: it takes what leaves `fraction` available.
    for (const [from, to, fraction] of WORKLOAD.hogs) {
      if (t >= from && t < to) {
        const bytes = Math.max(0, TOTAL - usedBy(list) - fraction * TOTAL);
        list.push({ pid: 900, ppid: 1, name: 'stress-ng', cmdline: 'stress-ng --vm 1', startTimeTicks: 50_000 + from / 1000, rssBytes: bytes, pssBytes: bytes, pssAnonBytes: bytes });
      }
    }
    return list;
  }

  /** Memory in use: the processes' PSS plus the kernel, caches that cannot be dropped and the rest. */
  const usedBy = (procs: readonly Proc[]) => procs.reduce((sum, p) => sum + p.pssBytes, 0) + 2.5 * GIB;
  const byPid = new Map<number, Proc>();
  // The sampler reads the system, then the process list, at one time: build the list once per time.
  let cached: { t: number; procs: Proc[] } | undefined;
  const at = (t: number) => (cached?.t === t ? cached.procs : (cached = { t, procs: processesAt(t) }).procs);
  const readers: PlatformReaders = {
    kind: 'linux',
    system: {
      async read(): Promise<SystemMemory> {
        const t = now() - startMs;
        const used = usedBy(at(t));
        const availableBytes = Math.max(64 * MB, TOTAL - used);
        const hogging = WORKLOAD.hogs.some(([from, to]) => t >= from && t < to);
        const psi = hogging ? 12 + 3 * noise(5, Math.floor(t / 1000)) : 0;
        return {
          totalBytes: TOTAL,
          availableBytes,
          usedBytes: TOTAL - availableBytes,
          swapTotalBytes: 0,
          swapUsedBytes: 0,
          psi: { someAvg10: psi, someAvg60: psi, fullAvg10: psi / 4, fullAvg60: psi / 4 },
          physicalTotalBytes: TOTAL,
          cgroupLimitBytes: null,
        };
      },
    },
    processes: {
      async list(): Promise<RawProcess[]> {
        const procs = at(now() - startMs);
        byPid.clear();
        for (const p of procs) byPid.set(p.pid, p);
        return procs.map(({ pid, ppid, name, cmdline, startTimeTicks, rssBytes }) => ({ pid, ppid, name, cmdline, startTimeTicks, rssBytes }));
      },
      async readSmaps(pid: number): Promise<SmapsInfo | null> {
        const p = byPid.get(pid);
        // The engine reads its own smaps like any other process; here it has none (its RSS is real, its PSS is not).
        if (!p || p.pid === selfPid) return null;
        return { pssBytes: p.pssBytes, pssAnonBytes: p.pssAnonBytes };
      },
      async listeningPorts(): Promise<Map<number, number[]>> {
        return new Map();
      },
    },
  };
  return { readers, processesAt };
}
