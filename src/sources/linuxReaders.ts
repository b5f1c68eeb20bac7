/**
 * Linux readers: the I/O around the pure parsers of `procfs.ts`.
 *
 * Why synchronous reads: /proc files are generated in memory by the kernel
 * on read; nothing ever blocks on a disk. An async `fs.readFile` costs a
 * libuv threadpool round trip, several allocations and a promise per file,
 * which is more CPU than the read itself, and a sample touches ~100 files.
 * Measured here (2 cores, Node 20, ~75 processes): readdir 0.04 ms,
 * readFileSync of every /proc/PID/stat 0.45 ms, meminfo 0.005 ms,
 * one smaps_rollup 0.2-0.3 ms (see docs/benchmarks.md for the whole sample).
 *
 * Why roots are options: tests point `procRoot`/`sysRoot` at fixture trees.
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { LRUCache } from 'lru-cache';
import type { SystemMemory } from '../model.js';
import {
  parseCgroupInactiveFile,
  parseCgroupLimit,
  parseMeminfo,
  parseNetTcpListening,
  parseProcSelfCgroup,
  parsePsi,
  parseSmapsRollup,
  parseStat,
  parseStatusVmRss,
} from './procfs.js';
import type { ProcessTableReader, RawProcess, SmapsInfo, SystemMemoryReader } from './readers.js';

export type { RawProcess, SmapsInfo } from './readers.js';

/** Options of the Linux readers. All optional. */
export interface LinuxReaderOptions {
  /** Root of procfs. Default `/proc`. */
  procRoot?: string;
  /** Root of sysfs (cgroups are under `<sysRoot>/fs/cgroup`). Default `/sys`. */
  sysRoot?: string;
  /** Bytes per page for `/proc/PID/stat` rss. Default: detected from /proc/self (4 KiB on x86-64; 16/64 KiB on some arm64 kernels). */
  pageSize?: number;
  /** Max cached command lines. Default 4096. */
  cmdlineCacheSize?: number;
  /** How long `listeningPorts()` reuses its last scan, in ms. Default 10000. */
  portCacheMs?: number;
  /** Clock for the port cache, in ms. Default `performance.now()` (monotonic). */
  now?: () => number;
}

/** Synchronous system memory reader (the Linux implementation). */
export interface SyncSystemMemoryReader {
  read(): SystemMemory;
  /** The cgroup directories whose limits apply, leaf first (resolved once at creation). */
  readonly cgroupDirs: readonly string[];
}

/** Synchronous process table reader (the Linux implementation). */
export interface SyncProcessTableReader {
  list(): RawProcess[];
  readSmaps(pid: number): SmapsInfo | null;
  listeningPorts(): Map<number, number[]>;
}

/** Error codes that mean "the process went away or is not ours": skip it, silently. */
const VANISHED = new Set(['ENOENT', 'ESRCH', 'EACCES', 'EPERM', 'ENOTDIR', 'EINVAL']);

/**
 * Error codes of /proc/pressure/memory that mean "this kernel has no PSI"
 * (no file, or `psi=0` on the command line): it cannot appear without a
 * reboot, so it is not tried again. Anything else (EACCES under a sandbox
 * or a hidepid remount, EIO) may pass and is tried again at the next sample.
 */
const PSI_ABSENT = new Set(['ENOENT', 'EOPNOTSUPP', 'ENOTSUP']);

/**
 * A system-wide file or directory (`/proc/meminfo`, the `/proc` listing)
 * could not be read. Without it there is no sample: the sampler fails, the
 * engine reports the problem and tries again at the next interval.
 */
export class ProcfsReadError extends Error {
  readonly code = 'MEMTIDE_ERR_PROCFS_READ' as const;
  /** The file or directory that could not be read. */
  readonly file: string;
  /** The errno code (`EACCES`, `EIO`, ...), null when the failure had none. */
  readonly errno: string | null;

  constructor(file: string, cause: unknown) {
    const errno = (cause as NodeJS.ErrnoException | null)?.code ?? null;
    super(`cannot read ${file}: ${errno ?? (cause instanceof Error ? cause.message : String(cause))}`, { cause });
    this.name = 'ProcfsReadError';
    this.file = file;
    this.errno = errno;
  }
}

/** `read()`, with a failure turned into a {@link ProcfsReadError} naming `file`. */
function mustRead<T>(file: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    throw new ProcfsReadError(file, err);
  }
}

const DEFAULT_PORT_CACHE_MS = 10_000;
const DEFAULT_CMDLINE_CACHE = 4096;
/** Command lines longer than this are cut: attribution only needs the head, and it bounds the cache. */
const MAX_CMDLINE_CHARS = 4096;

/** One cgroup level whose memory limit may bind. */
interface CgroupLevel {
  dir: string;
  limitFile: string;
  usageFile: string;
  statFile: string;
}

/**
 * Creates a system memory reader. The engine's cgroup and the files that hold
 * its limit are resolved ONCE here (reading /proc/self/cgroup and probing
 * sysfs every sample would double the cost); each `read()` re-reads only the
 * values, so a limit changed at runtime (`systemctl set-property`) is seen.
 *
 * Effective memory:
 * - `totalBytes = min(MemTotal, limit)`, the smallest limit over the engine's
 *   cgroup and its ancestors (systemd puts limits on slices, not on leaves).
 * - `availableBytes = min(MemAvailable, limit - (usage - inactive file cache))`
 *   per limited level. The inactive file cache is subtracted because cgroup
 *   usage counts page cache the kernel drops before any OOM kill.
 * - PSI is null when /proc/pressure/memory is absent or unreadable. Absent
 *   (no CONFIG_PSI: ENOENT; `psi=0`: EOPNOTSUPP) cannot change without a
 *   reboot, so it is not tried again; unreadable (EACCES, EIO) is null for
 *   that sample only and tried again at the next one.
 *
 * Lookup order: cgroup v2 `<sysRoot>/fs/cgroup/<path>/memory.max`, then the
 * hybrid mount `<sysRoot>/fs/cgroup/unified/<path>`, then v1
 * `<sysRoot>/fs/cgroup/memory/<path>/memory.limit_in_bytes` and its
 * ancestors up to the mount's root (inside containers the path from
 * /proc/self/cgroup often does not exist and the root is the container's).
 *
 * @throws {ProcfsParseError} from `read()` when meminfo, PSI or a cgroup value is malformed.
 * @throws {ProcfsReadError} from `read()` when meminfo cannot be read (e.g. EACCES).
 */
export function createSystemMemoryReader(opts: LinuxReaderOptions = {}): SyncSystemMemoryReader {
  const procRoot = trimSlash(opts.procRoot ?? '/proc');
  const levels = resolveCgroupLevels(procRoot, trimSlash(opts.sysRoot ?? '/sys'));
  const meminfoPath = `${procRoot}/meminfo`;
  const psiPath = `${procRoot}/pressure/memory`;
  let psiSupported = true;

  const readPsi = (): SystemMemory['psi'] => {
    if (!psiSupported) return null;
    let text: string;
    try {
      text = readFileSync(psiPath, 'utf8');
    } catch (err) {
      // Only a kernel without PSI is final; an unreadable file (EACCES, EIO) gives null for this sample only.
      if (PSI_ABSENT.has((err as NodeJS.ErrnoException | null)?.code ?? '')) psiSupported = false;
      return null;
    }
    return parsePsi(text);
  };

  return {
    cgroupDirs: levels.map((l) => l.dir),
    read(): SystemMemory {
      const mem = parseMeminfo(mustRead(meminfoPath, () => readFileSync(meminfoPath, 'utf8')));
      const psi = readPsi();
      let limit: number | null = null;
      let headroom = Number.POSITIVE_INFINITY;
      for (const level of levels) {
        const levelLimit = readCgroupValue(level.limitFile);
        if (levelLimit === null) continue;
        limit = limit === null ? levelLimit : Math.min(limit, levelLimit);
        const usage = readCgroupUsage(level);
        if (usage !== null) headroom = Math.min(headroom, Math.max(0, levelLimit - usage));
      }
      const totalBytes = limit === null ? mem.memTotalBytes : Math.min(mem.memTotalBytes, limit);
      const availableBytes = Math.min(mem.memAvailableBytes, headroom, totalBytes);
      return {
        totalBytes,
        availableBytes,
        usedBytes: totalBytes - availableBytes,
        swapTotalBytes: mem.swapTotalBytes,
        swapUsedBytes: Math.max(0, mem.swapTotalBytes - mem.swapFreeBytes),
        psi,
        physicalTotalBytes: mem.memTotalBytes,
        cgroupLimitBytes: limit,
      };
    },
  };
}

/** One-shot convenience: resolves the cgroup and reads once. Prefer {@link createSystemMemoryReader} in loops. */
export function readSystemMemory(opts: LinuxReaderOptions = {}): SystemMemory {
  return createSystemMemoryReader(opts).read();
}

/**
 * Creates a process table reader over `<procRoot>/<pid>/...`.
 *
 * - `list()` reads `stat` of every numeric entry (name, ppid, start time, rss)
 *   and the command line. Command lines are cached by
 *   `pid:startTime:comm`: re-reading ~100 cmdline files per sample would
 *   double the cost, a new process with a reused pid has another start time,
 *   and an `exec` (same pid and start time) changes comm.
 * - `readSmaps(pid)` reads `smaps_rollup` (costly: the kernel walks every
 *   mapping, 0.2-0.3 ms for a small process), so only for watched processes.
 * - `listeningPorts()` maps LISTEN sockets of /proc/net/tcp{,6} to pids by
 *   scanning every `/proc/PID/fd` link (thousands of syscalls), so it only
 *   runs when called and its result is reused for `portCacheMs`.
 *
 * A process that vanishes, or is not ours to read (ENOENT, ESRCH, EACCES,
 * malformed file), is skipped silently, also between `list()` and
 * `readSmaps()`; other I/O errors (EMFILE, ...) throw, since they would
 * silently empty every sample. An unreadable `/proc` listing throws
 * {@link ProcfsReadError}.
 */
/**
 * Page size without a native call: our own resident size in kB (status VmRSS)
 * divided by the same in pages (statm), snapped to the sizes kernels use.
 * Read back to back, the two differ by a few pages at most.
 */
export function detectPageSize(procRoot = '/proc'): number {
  try {
    const statm = readFileSync(`${procRoot}/self/statm`, 'utf8').split(' ');
    const residentPages = Number(statm[1]);
    const vmRss = parseStatusVmRss(readFileSync(`${procRoot}/self/status`, 'utf8'));
    if (!vmRss || !(residentPages > 0)) return 4096;
    const estimate = vmRss / residentPages;
    return [4096, 16384, 65536].reduce((best, size) => (Math.abs(size - estimate) < Math.abs(best - estimate) ? size : best));
  } catch {
    return 4096;
  }
}

export function createProcessTableReader(opts: LinuxReaderOptions = {}): SyncProcessTableReader {
  const procRoot = trimSlash(opts.procRoot ?? '/proc');
  const pageSize = opts.pageSize ?? detectPageSize(procRoot);
  const portCacheMs = opts.portCacheMs ?? DEFAULT_PORT_CACHE_MS;
  const now = opts.now ?? (() => performance.now());
  const cmdlines = new LRUCache<string, string>({ max: opts.cmdlineCacheSize ?? DEFAULT_CMDLINE_CACHE });
  let portCache: { atMs: number; ports: Map<number, number[]> } | null = null;

  const readCmdline = (pid: string, key: string): string | null => {
    const cached = cmdlines.get(key);
    if (cached !== undefined) return cached;
    const raw = readOrNull(`${procRoot}/${pid}/cmdline`);
    if (raw === null) return null;
    const cmdline = raw.split('\0').filter((arg) => arg !== '').join(' ').slice(0, MAX_CMDLINE_CHARS);
    cmdlines.set(key, cmdline);
    return cmdline;
  };

  return {
    list(): RawProcess[] {
      const out: RawProcess[] = [];
      for (const entry of mustRead(procRoot, () => readdirSync(procRoot))) {
        if (!isPidEntry(entry)) continue;
        const statText = readOrNull(`${procRoot}/${entry}/stat`);
        const stat = statText === null ? null : parseStat(statText);
        if (stat === null) continue;
        const cmdline = readCmdline(entry, `${entry}:${stat.startTimeTicks}:${stat.name}`);
        if (cmdline === null) continue;
        out.push({
          pid: stat.pid,
          ppid: stat.ppid,
          name: stat.name,
          cmdline,
          startTimeTicks: stat.startTimeTicks,
          rssBytes: stat.rssPages * pageSize,
        });
      }
      return out;
    },

    readSmaps(pid: number): SmapsInfo | null {
      const text = readOrNull(`${procRoot}/${pid}/smaps_rollup`);
      return text === null ? null : parseSmapsRollup(text);
    },

    listeningPorts(): Map<number, number[]> {
      const at = now();
      if (portCache === null || at - portCache.atMs >= portCacheMs) {
        portCache = { atMs: at, ports: scanListeningPorts(procRoot) };
      }
      return new Map([...portCache.ports].map(([port, pids]) => [port, [...pids]]));
    },
  };
}

/** The Linux readers behind the async {@link SystemMemoryReader} / {@link ProcessTableReader} interface. */
export function createLinuxReaders(opts: LinuxReaderOptions = {}): {
  system: SystemMemoryReader;
  processes: ProcessTableReader;
} {
  const system = createSystemMemoryReader(opts);
  const table = createProcessTableReader(opts);
  return {
    system: { read: async () => system.read() },
    processes: {
      list: async () => table.list(),
      readSmaps: async (pid) => table.readSmaps(pid),
      listeningPorts: async () => table.listeningPorts(),
    },
  };
}

function scanListeningPorts(procRoot: string): Map<number, number[]> {
  const portByInode = new Map<number, number>();
  for (const file of ['tcp', 'tcp6']) {
    const text = readOrNull(`${procRoot}/net/${file}`);
    if (text === null) continue;
    for (const s of parseNetTcpListening(text)) portByInode.set(s.inode, s.port);
  }
  const pidsByPort = new Map<number, Set<number>>();
  if (portByInode.size === 0) return new Map();
  for (const entry of mustRead(procRoot, () => readdirSync(procRoot))) {
    if (!isPidEntry(entry)) continue;
    const fdDir = `${procRoot}/${entry}/fd`;
    const fds = listOrNull(fdDir);
    if (fds === null) continue;
    for (const fd of fds) {
      const link = linkOrNull(`${fdDir}/${fd}`);
      if (link === null || !link.startsWith('socket:[')) continue;
      const port = portByInode.get(Number(link.slice(8, -1)));
      if (port === undefined) continue;
      let pids = pidsByPort.get(port);
      if (pids === undefined) pidsByPort.set(port, (pids = new Set()));
      pids.add(Number(entry));
    }
  }
  return new Map([...pidsByPort].map(([port, pids]) => [port, [...pids].sort((a, b) => a - b)]));
}

function resolveCgroupLevels(procRoot: string, sysRoot: string): CgroupLevel[] {
  const selfText = readOrNull(`${procRoot}/self/cgroup`);
  const self = selfText === null ? { v2Path: null, v1MemoryPath: null } : parseProcSelfCgroup(selfText);
  const base = `${sysRoot}/fs/cgroup`;
  if (self.v2Path !== null) {
    for (const mount of [base, `${base}/unified`]) {
      const levels = existingLevels(mount, self.v2Path, 'memory.max', 'memory.current');
      if (levels.length > 0) return levels;
    }
  }
  return existingLevels(`${base}/memory`, self.v1MemoryPath ?? '/', 'memory.limit_in_bytes', 'memory.usage_in_bytes');
}

/** The cgroup directory of `path` under `mount` and its ancestors up to `mount`, where `limitName` exists. */
function existingLevels(mount: string, path: string, limitName: string, usageName: string): CgroupLevel[] {
  const segments = path.split('/').filter((s) => s !== '' && s !== '.');
  // A path outside our cgroup namespace shows up as "/../.."; only the mount's root is then ours.
  const parts = segments.includes('..') ? [] : segments;
  const levels: CgroupLevel[] = [];
  for (let depth = parts.length; depth >= 0; depth--) {
    const dir = [mount, ...parts.slice(0, depth)].join('/');
    const limitFile = `${dir}/${limitName}`;
    if (readOrNull(limitFile) === null) continue;
    levels.push({ dir, limitFile, usageFile: `${dir}/${usageName}`, statFile: `${dir}/memory.stat` });
  }
  return levels;
}

/** A cgroup value in bytes; null when unlimited or when the file went away (cgroup removed). */
function readCgroupValue(file: string): number | null {
  const text = readOrNull(file);
  return text === null ? null : parseCgroupLimit(text);
}

/** Usage of a cgroup minus its reclaimable inactive page cache; null when unreadable. */
function readCgroupUsage(level: CgroupLevel): number | null {
  const usage = readCgroupValue(level.usageFile);
  if (usage === null) return null;
  const stat = readOrNull(level.statFile);
  const inactiveFile = stat === null ? null : parseCgroupInactiveFile(stat);
  return Math.max(0, usage - (inactiveFile ?? 0));
}

function isPidEntry(name: string): boolean {
  const c = name.charCodeAt(0);
  return c >= 48 && c <= 57 && /^\d+$/.test(name);
}

function trimSlash(root: string): string {
  return root.length > 1 && root.endsWith('/') ? root.slice(0, -1) : root;
}

/** Runs an fs call; "vanished/not permitted" errors become null, anything else is rethrown. */
function orNull<T>(read: () => T): T | null {
  try {
    return read();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException | null)?.code;
    if (code !== undefined && VANISHED.has(code)) return null;
    throw err;
  }
}

function readOrNull(path: string): string | null {
  return orNull(() => readFileSync(path, 'utf8'));
}

function listOrNull(path: string): string[] | null {
  return orNull(() => readdirSync(path));
}

function linkOrNull(path: string): string | null {
  return orNull(() => readlinkSync(path));
}
