/**
 * The platform-neutral interface of memtide's sources, and the factory that
 * picks an implementation: Linux /proc readers where /proc is readable, the
 * systeminformation-based portable readers everywhere else.
 *
 * Why Promises: the portable readers are inherently async (they spawn `ps`,
 * `vm_stat`, ...). The Linux readers read /proc synchronously (cheaper) and
 * simply resolve at once, so callers write one code path.
 */
import { readFileSync } from 'node:fs';
import type { SystemMemory } from '../model.js';
import { createLinuxReaders, type LinuxReaderOptions } from './linuxReaders.js';
import { createPortableReaders, type PortableReaderOptions } from './portableReaders.js';

/** One process as read from the OS, before attribution to a component. */
export interface RawProcess {
  pid: number;
  ppid: number;
  /** Short executable name (Linux `comm`, at most 15 bytes). */
  name: string;
  /** Full command line joined by spaces; empty for kernel threads and zombies. */
  cmdline: string;
  /**
   * Start time token. Linux: clock ticks since boot (`/proc/PID/stat` field 22).
   * Portable: milliseconds since the epoch, or 0 when unknown. Together with the
   * pid it tells a process apart from a later one that reused its pid.
   */
  startTimeTicks: number;
  rssBytes: number;
}

/** PSS of one process, in bytes. */
export interface SmapsInfo {
  pssBytes: number;
  /** Anonymous PSS: what a leak grows. null where the kernel does not report it (< 5.4). */
  pssAnonBytes: number | null;
}

/** Reads system-wide memory, cgroup limit applied. */
export interface SystemMemoryReader {
  read(): Promise<SystemMemory>;
}

/** Reads the process table and per-process details. */
export interface ProcessTableReader {
  /** All processes visible now. Processes that vanish while being read are left out. */
  list(): Promise<RawProcess[]>;
  /** PSS of one process; null when unsupported, not permitted, or the process is gone. */
  readSmaps(pid: number): Promise<SmapsInfo | null>;
  /** Listening TCP port -> owning pids (sorted, unique). Cached by the implementation: expensive. */
  listeningPorts(): Promise<Map<number, number[]>>;
}

/** Both readers, plus which implementation was chosen. */
export interface PlatformReaders {
  kind: 'linux' | 'portable';
  system: SystemMemoryReader;
  processes: ProcessTableReader;
}

/** Options for {@link createPlatformReaders}: the union of both implementations' options. */
export interface PlatformReaderOptions extends LinuxReaderOptions, PortableReaderOptions {
  /** Overrides `process.platform` (tests). */
  platform?: NodeJS.Platform;
}

/**
 * Picks the Linux /proc readers when running on Linux and `<procRoot>/meminfo`
 * is readable (not the case in some sandboxes, or with /proc not mounted),
 * else the portable systeminformation readers.
 *
 * Why probe meminfo instead of trusting the platform: a Linux container
 * without /proc still runs Node; falling back keeps memtide working there,
 * only slower.
 */
export function createPlatformReaders(opts: PlatformReaderOptions = {}): PlatformReaders {
  const platform = opts.platform ?? process.platform;
  if (platform === 'linux' && canRead(`${opts.procRoot ?? '/proc'}/meminfo`)) {
    return { kind: 'linux', ...createLinuxReaders(opts) };
  }
  return { kind: 'portable', ...createPortableReaders(opts) };
}

function canRead(path: string): boolean {
  try {
    readFileSync(path, 'utf8');
    return true;
  } catch {
    return false;
  }
}
