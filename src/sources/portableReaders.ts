/**
 * Portable readers (macOS, Windows, Linux without /proc) built on
 * `systeminformation`.
 *
 * Why only a fallback: `si.processes()` spawns `ps` and friends and costs
 * ~460 ms CPU per call on the build machine, against well under 3 ms for the
 * /proc readers; `si.mem()` is cheap (0.45 ms). PSI, cgroup limits and PSS do
 * not exist here, so they are null.
 *
 * `systeminformation` is imported lazily so Linux hosts never pay its load time.
 */
import type { Systeminformation } from 'systeminformation';
import type { SystemMemory } from '../model.js';
import type { ProcessTableReader, RawProcess, SystemMemoryReader } from './readers.js';

/** The subset of `systeminformation` used here; injectable for tests. */
export interface SystemInformationApi {
  mem(): Promise<Pick<Systeminformation.MemData, 'total' | 'available' | 'swaptotal' | 'swapused'>>;
  processes(): Promise<{
    list: Array<
      Pick<Systeminformation.ProcessesProcessData, 'pid' | 'parentPid' | 'name' | 'command' | 'params' | 'memRss' | 'started'>
    >;
  }>;
  networkConnections(): Promise<
    Array<Pick<Systeminformation.NetworkConnectionsData, 'localPort' | 'state' | 'pid'>>
  >;
}

/** Options of the portable readers. */
export interface PortableReaderOptions {
  /** The systeminformation API; default the real module, loaded on first use. */
  systeminformation?: SystemInformationApi;
  /** How long `listeningPorts()` reuses its last result, in ms. Default 10000. */
  portCacheMs?: number;
  /** Clock for the port cache, in ms. Default `performance.now()`. */
  now?: () => number;
}

/**
 * Creates the systeminformation-based readers with the same shapes as the
 * Linux ones. `readSmaps` always resolves null (no PSS outside Linux);
 * `listeningPorts` is cached for `portCacheMs` because `si.networkConnections()`
 * spawns `lsof`/`netstat`.
 */
export function createPortableReaders(opts: PortableReaderOptions = {}): {
  system: SystemMemoryReader;
  processes: ProcessTableReader;
} {
  const portCacheMs = opts.portCacheMs ?? 10_000;
  const now = opts.now ?? (() => performance.now());
  let api: Promise<SystemInformationApi> | null = opts.systeminformation ? Promise.resolve(opts.systeminformation) : null;
  const si = (): Promise<SystemInformationApi> => (api ??= import('systeminformation'));
  let portCache: { atMs: number; ports: Map<number, number[]> } | null = null;

  return {
    system: {
      async read(): Promise<SystemMemory> {
        const m = await (await si()).mem();
        const availableBytes = Math.min(m.available, m.total);
        return {
          totalBytes: m.total,
          availableBytes,
          usedBytes: m.total - availableBytes,
          swapTotalBytes: m.swaptotal,
          swapUsedBytes: m.swapused,
          psi: null,
          physicalTotalBytes: m.total,
          cgroupLimitBytes: null,
        };
      },
    },
    processes: {
      async list(): Promise<RawProcess[]> {
        const { list } = await (await si()).processes();
        return list.map((p) => ({
          pid: p.pid,
          ppid: p.parentPid,
          name: p.name,
          cmdline: [p.command, p.params].filter((s) => s !== '').join(' '),
          startTimeTicks: startedMs(p.started),
          rssBytes: p.memRss * 1024,
        }));
      },
      async readSmaps(): Promise<null> {
        return null;
      },
      async listeningPorts(): Promise<Map<number, number[]>> {
        const at = now();
        if (portCache === null || at - portCache.atMs >= portCacheMs) {
          const connections = await (await si()).networkConnections();
          portCache = { atMs: at, ports: groupListening(connections) };
        }
        return new Map([...portCache.ports].map(([port, pids]) => [port, [...pids]]));
      },
    },
  };
}

function groupListening(
  connections: ReadonlyArray<Pick<Systeminformation.NetworkConnectionsData, 'localPort' | 'state' | 'pid'>>,
): Map<number, number[]> {
  const byPort = new Map<number, Set<number>>();
  for (const c of connections) {
    const port = Number(c.localPort);
    if (c.state !== 'LISTEN' || !Number.isInteger(port) || port <= 0 || !(c.pid > 0)) continue;
    let pids = byPort.get(port);
    if (pids === undefined) byPort.set(port, (pids = new Set()));
    pids.add(c.pid);
  }
  return new Map([...byPort].map(([port, pids]) => [port, [...pids].sort((a, b) => a - b)]));
}

/** `started` is local time like "2025-11-25 10:06:00"; 0 when absent or unparsable. */
function startedMs(started: string): number {
  const ms = Date.parse(started);
  return Number.isFinite(ms) ? ms : 0;
}
