/**
 * Pure parsers for the Linux /proc and cgroup files memtide samples.
 *
 * Everything here is string in, data out: no I/O, so each parser is tested
 * against real files captured from a machine plus hand-made malformed ones,
 * and the I/O layer (`linuxReaders.ts`) stays a thin loop.
 *
 * Two error policies, on purpose:
 * - System-wide files (meminfo, PSI, cgroup values) throw {@link ProcfsParseError}
 *   when malformed: a bad format there is a bug or an unknown kernel, and
 *   sampling on made-up numbers would be worse than failing loudly.
 * - Per-process files (stat, status, smaps_rollup) return `null`: a process can
 *   exit while we read it and the kernel then hands us a short or empty file.
 *   That is normal life, never an error.
 */
import type { Psi } from '../model.js';

/** Error thrown when a system-wide /proc or cgroup file does not have the expected format. */
export class ProcfsParseError extends Error {
  readonly code = 'MEMTIDE_ERR_PROCFS_PARSE' as const;
  /** The file that was being parsed, e.g. `/proc/meminfo`. */
  readonly file: string;

  constructor(file: string, detail: string) {
    super(`${file}: ${detail}`);
    this.name = 'ProcfsParseError';
    this.file = file;
  }
}

/** Values of /proc/meminfo that memtide uses, in bytes. */
export interface Meminfo {
  memTotalBytes: number;
  memAvailableBytes: number;
  memFreeBytes: number;
  swapTotalBytes: number;
  swapFreeBytes: number;
}

const MEMINFO_LINE = /^([A-Za-z0-9_()]+):\s+(\d+)(?:\s+kB)?\s*$/;

/**
 * Parses /proc/meminfo (values are kB, returned as bytes).
 *
 * Why MemAvailable and not MemFree: MemFree ignores the page cache the kernel
 * can drop on demand, so a healthy machine looks "full" after reading a model
 * file. MemAvailable (kernel >= 3.14) is the kernel's own estimate of what can
 * be allocated without swapping; when it is missing we fall back to the
 * classic estimate MemFree + Buffers + Cached.
 *
 * Malformed or unknown lines are skipped (the kernel adds fields over time);
 * the first well-formed occurrence of a key wins. Only MemTotal is required:
 * without it there is no denominator for any percentage.
 *
 * @throws {ProcfsParseError} when no well-formed `MemTotal:` line exists.
 */
export function parseMeminfo(text: string): Meminfo {
  const kb = new Map<string, number>();
  let badMemTotalLine: string | null = null;
  for (const line of text.split('\n')) {
    const m = MEMINFO_LINE.exec(line);
    if (m === null) {
      if (badMemTotalLine === null && line.startsWith('MemTotal:')) badMemTotalLine = line;
      continue;
    }
    const key = m[1] as string;
    const value = Number(m[2]);
    if (!kb.has(key) && Number.isSafeInteger(value)) kb.set(key, value);
  }
  const memTotal = kb.get('MemTotal');
  if (memTotal === undefined) {
    throw new ProcfsParseError(
      '/proc/meminfo',
      badMemTotalLine === null
        ? 'missing field MemTotal'
        : `malformed field MemTotal in line ${JSON.stringify(badMemTotalLine)}`,
    );
  }
  const get = (key: string): number => kb.get(key) ?? 0;
  const memFree = get('MemFree');
  const memAvailable =
    kb.get('MemAvailable') ?? Math.min(memTotal, memFree + get('Buffers') + get('Cached'));
  return {
    memTotalBytes: memTotal * 1024,
    memAvailableBytes: memAvailable * 1024,
    memFreeBytes: memFree * 1024,
    swapTotalBytes: get('SwapTotal') * 1024,
    swapFreeBytes: get('SwapFree') * 1024,
  };
}

/**
 * Parses /proc/pressure/memory (PSI, kernel >= 4.20 with CONFIG_PSI).
 *
 * Why PSI: it measures the *consequence* of memory shortage (time tasks were
 * stalled waiting for memory), which available-bytes thresholds can only
 * guess at; systemd-oomd and Android lmkd act on it. `some` = at least one
 * task stalled, `full` = all non-idle tasks stalled. The `full` line was added
 * after `some` and is missing on the oldest PSI kernels: it then reads as 0.
 * Extra keys (like `total=`) are accepted and ignored.
 *
 * @throws {ProcfsParseError} when the `some` line is missing, or a line lacks
 *   a numeric avg10/avg60.
 */
export function parsePsi(text: string): Psi {
  const file = '/proc/pressure/memory';
  const seen = new Map<string, { avg10: number; avg60: number }>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    const [kind, ...pairs] = line.split(/\s+/);
    if (kind !== 'some' && kind !== 'full') {
      throw new ProcfsParseError(file, `unexpected line ${JSON.stringify(raw)}`);
    }
    const values = new Map<string, number>();
    for (const pair of pairs) {
      const eq = pair.indexOf('=');
      const value = eq > 0 && eq < pair.length - 1 ? Number(pair.slice(eq + 1)) : Number.NaN;
      if (!Number.isFinite(value) || value < 0) {
        throw new ProcfsParseError(file, `malformed field ${JSON.stringify(pair)} in line ${JSON.stringify(raw)}`);
      }
      values.set(pair.slice(0, eq), value);
    }
    const avg10 = values.get('avg10');
    const avg60 = values.get('avg60');
    if (avg10 === undefined || avg60 === undefined) {
      throw new ProcfsParseError(file, `missing avg10/avg60 in line ${JSON.stringify(raw)}`);
    }
    seen.set(kind, { avg10, avg60 });
  }
  const some = seen.get('some');
  if (some === undefined) throw new ProcfsParseError(file, 'missing line "some"');
  const full = seen.get('full') ?? { avg10: 0, avg60: 0 };
  return { someAvg10: some.avg10, someAvg60: some.avg60, fullAvg10: full.avg10, fullAvg60: full.avg60 };
}

/** cgroup v1 reports "no limit" as a huge page-aligned number near 2^63; anything this large is unlimited. */
const V1_UNLIMITED_THRESHOLD = 2 ** 62;

/**
 * Parses a cgroup memory value file: v2 `memory.max` / `memory.current`, v1
 * `memory.limit_in_bytes` / `memory.usage_in_bytes`.
 *
 * Why the threshold: v1 has no "max" keyword; an unlimited group reports
 * LONG_MAX rounded down to the page size (9223372036854771712 here), which is
 * not even exactly representable as a JS number. Anything >= 2^62 (4 EiB) is
 * treated as unlimited.
 *
 * @returns bytes, or null for "max" / unlimited.
 * @throws {ProcfsParseError} when the value is neither a number nor "max".
 */
export function parseCgroupLimit(text: string): number | null {
  const value = text.trim();
  if (value === 'max') return null;
  if (!/^\d+$/.test(value)) {
    throw new ProcfsParseError('cgroup memory file', `expected a byte count or "max", got ${JSON.stringify(value)}`);
  }
  const n = Number(value);
  return n >= V1_UNLIMITED_THRESHOLD ? null : n;
}

/**
 * Reads the reclaimable inactive page cache from a cgroup `memory.stat`
 * (v1 `total_inactive_file`, hierarchical, preferred; else `inactive_file`,
 * which is hierarchical in v2).
 *
 * Why: `memory.current` / `memory.usage_in_bytes` include page cache, so a
 * group that just read a 1.5 GB model file looks nearly full although the
 * kernel will drop that cache before OOM-killing anyone. Subtracting the
 * inactive file cache is what `docker stats` does.
 *
 * @returns bytes, or null when the field is absent.
 */
export function parseCgroupInactiveFile(text: string): number | null {
  let plain: number | null = null;
  for (const line of text.split('\n')) {
    const sp = line.indexOf(' ');
    if (sp < 0) continue;
    const key = line.slice(0, sp);
    if (key !== 'total_inactive_file' && key !== 'inactive_file') continue;
    const n = Number(line.slice(sp + 1));
    if (!Number.isSafeInteger(n) || n < 0) continue;
    if (key === 'total_inactive_file') return n;
    plain ??= n;
  }
  return plain;
}

/** The engine's own cgroup paths, relative to the hierarchy's mount point. */
export interface ProcSelfCgroup {
  /** Path in the unified (v2) hierarchy (line `0::/path`), null if none. */
  v2Path: string | null;
  /** Path in the v1 hierarchy that has the `memory` controller, null if none. */
  v1MemoryPath: string | null;
}

/**
 * Parses /proc/self/cgroup (`hierarchy-ID:controller-list:path` per line).
 *
 * Why both: on hybrid systems (like the build machine, and many distros
 * before 2021) the unified hierarchy exists but the memory controller lives
 * in v1, so the limit must be looked up in v1 even though a v2 path exists.
 * The path itself may contain ':' (only the first two colons separate fields).
 */
export function parseProcSelfCgroup(text: string): ProcSelfCgroup {
  let v2Path: string | null = null;
  let v1MemoryPath: string | null = null;
  for (const line of text.split('\n')) {
    const c1 = line.indexOf(':');
    const c2 = c1 < 0 ? -1 : line.indexOf(':', c1 + 1);
    if (c2 < 0) continue;
    const id = line.slice(0, c1);
    const controllers = line.slice(c1 + 1, c2);
    const path = line.slice(c2 + 1).trim();
    if (path === '') continue;
    if (id === '0' && controllers === '') v2Path ??= path;
    else if (controllers.split(',').includes('memory')) v1MemoryPath ??= path;
  }
  return { v2Path, v1MemoryPath };
}

/** The fields of /proc/PID/stat that memtide uses. */
export interface ProcStat {
  pid: number;
  /** `comm`: executable name truncated to 15 bytes by the kernel; may contain spaces and parentheses. */
  name: string;
  state: string;
  ppid: number;
  /** Start time in clock ticks since boot: with the pid, identifies a process across pid reuse. */
  startTimeTicks: number;
  rssPages: number;
}

/**
 * Parses /proc/PID/stat (fields per proc(5): 1 pid, 2 comm, 3 state, 4 ppid,
 * 22 starttime, 24 rss in pages).
 *
 * Why first '(' to LAST ')': comm is user-controlled (`prctl(PR_SET_NAME)`)
 * and may contain spaces and ')', so splitting on spaces is wrong; everything
 * after the last ')' is numeric and safe to split.
 *
 * @returns null when the text is short or malformed (the process may have
 *   vanished mid-read); never throws.
 */
export function parseStat(text: string): ProcStat | null {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 1 || close < open) return null;
  const pid = toInt(text.slice(0, open).trim());
  const rest = text.slice(close + 1).trim().split(' ');
  // rest[0] is field 3 (state), so field n is rest[n - 3].
  const state = rest[0];
  const ppid = toInt(rest[1]);
  const startTimeTicks = toInt(rest[19]);
  const rssPages = toInt(rest[21]);
  if (state === undefined || !/^[A-Za-z]$/.test(state) || pid === null || ppid === null) return null;
  if (startTimeTicks === null || rssPages === null) return null;
  return { pid, name: text.slice(open + 1, close), state, ppid, startTimeTicks, rssPages };
}

/** Proportional set sizes from /proc/PID/smaps_rollup, in bytes. */
export interface SmapsRollup {
  pssBytes: number;
  /** null on kernels < 5.4, which do not split PSS into anon/file/shmem. */
  pssAnonBytes: number | null;
}

/**
 * Parses /proc/PID/smaps_rollup (kernel >= 4.14).
 *
 * Why PSS: RSS counts a shared page fully in every process mapping it, so
 * summing RSS over Meetily + its WebKit children double-counts; PSS shares
 * each page out between its users. Why Pss_Anon: model weights are mmapped
 * file pages (reclaimable, and a load is a step, not a leak); a leak grows
 * anonymous memory, so leak detection watches Pss_Anon.
 *
 * @returns null when there is no `Pss:` line (empty file from a vanished
 *   process, or a kernel thread); never throws.
 */
export function parseSmapsRollup(text: string): SmapsRollup | null {
  const pss = kbField(text, 'Pss');
  if (pss === null) return null;
  const anon = kbField(text, 'Pss_Anon');
  return { pssBytes: pss * 1024, pssAnonBytes: anon === null ? null : anon * 1024 };
}

/**
 * Parses `VmRSS` from /proc/PID/status, in bytes.
 *
 * Why: status is the cheapest per-process file carrying RSS in kB (no page
 * size needed). @returns null when absent (kernel threads, zombies) or malformed.
 */
export function parseStatusVmRss(text: string): number | null {
  const kb = kbField(text, 'VmRSS');
  return kb === null ? null : kb * 1024;
}

/** A listening TCP socket from /proc/net/tcp or /proc/net/tcp6. */
export interface ListeningSocket {
  port: number;
  /** Socket inode: matched against `/proc/PID/fd/*` links `socket:[INODE]` to find the owner. */
  inode: number;
}

/** TCP_LISTEN in the kernel's `st` column. */
const TCP_LISTEN = '0A';

/**
 * Parses /proc/net/tcp or /proc/net/tcp6 and keeps sockets in LISTEN state.
 *
 * Why: memtide attributes servers (Ollama on 11434, whisper-server on 8178,
 * uvicorn on 5167) to components by port when their names are generic
 * (`python`, `main`). The file has no pids, only socket inodes.
 * Columns: `sl local_address rem_address st ... uid timeout inode`;
 * local_address is `HEXIP:HEXPORT` (IPv4 8 hex digits, IPv6 32).
 * Lines that do not parse are skipped; never throws.
 */
export function parseNetTcpListening(text: string): ListeningSocket[] {
  const out: ListeningSocket[] = [];
  for (const line of text.split('\n')) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 10 || cols[3] !== TCP_LISTEN) continue;
    const local = cols[1] as string;
    const colon = local.lastIndexOf(':');
    if (colon < 0) continue;
    const portHex = local.slice(colon + 1);
    const inodeText = cols[9] as string;
    if (!/^[0-9A-Fa-f]{1,4}$/.test(portHex) || !/^\d+$/.test(inodeText)) continue;
    const inode = Number(inodeText);
    if (inode === 0) continue;
    out.push({ port: Number.parseInt(portHex, 16), inode });
  }
  return out;
}

/** Strict decimal non-negative integer (`Number('')` would be 0), else null. */
function toInt(text: string | undefined): number | null {
  if (text === undefined || !/^\d{1,16}$/.test(text)) return null;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : null;
}

/** Value of a `Key:   123 kB` line, in kB; null when absent or malformed. */
function kbField(text: string, key: string): number | null {
  const prefix = `${key}:`;
  let from = 0;
  while (from < text.length) {
    const at = text.indexOf(prefix, from);
    if (at < 0) return null;
    if (at === 0 || text.charCodeAt(at - 1) === 10 /* \n */) {
      const end = text.indexOf('\n', at);
      const m = /^\s*(\d+)(?:\s+kB)?\s*$/.exec(text.slice(at + prefix.length, end < 0 ? undefined : end));
      if (m === null) return null;
      const n = Number(m[1]);
      return Number.isSafeInteger(n) ? n : null;
    }
    from = at + prefix.length;
  }
  return null;
}
