import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fc, test as propTest } from '@fast-check/vitest';
import { afterEach, describe, expect, it } from 'vitest';
import { createProcessTableReader, createSystemMemoryReader, readSystemMemory } from '../src/sources/linuxReaders.js';
import { createPortableReaders, type SystemInformationApi } from '../src/sources/portableReaders.js';
import {
  ProcfsParseError,
  parseCgroupInactiveFile,
  parseCgroupLimit,
  parseMeminfo,
  parseNetTcpListening,
  parseProcSelfCgroup,
  parsePsi,
  parseSmapsRollup,
  parseStat,
  parseStatusVmRss,
} from '../src/sources/procfs.js';
import { createPlatformReaders } from '../src/sources/readers.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
const PROC_TREE = join(FIXTURES, 'proc-tree');
const SYS_V1 = join(FIXTURES, 'sys-v1');
const SYS_V2 = join(FIXTURES, 'sys-v2');
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

const fixture = (name: string): string => readFileSync(join(FIXTURES, 'proc', name), 'utf8');

/** Expects `fn` to throw a ProcfsParseError whose message contains `fragment`. */
function expectParseError(fn: () => unknown, fragment: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ProcfsParseError);
  expect((caught as ProcfsParseError).code).toBe('MEMTIDE_ERR_PROCFS_PARSE');
  expect((caught as ProcfsParseError).message).toContain(fragment);
}

/** A /proc/PID/stat line with 52 fields, like the kernel writes it. */
function statLine(pid: number, comm: string, ppid: number, start: number, rss: number): string {
  const rest = Array.from({ length: 50 }, () => '0');
  rest[0] = 'S';
  rest[1] = String(ppid);
  rest[19] = String(start);
  rest[21] = String(rss);
  return `${pid} (${comm}) ${rest.join(' ')}\n`;
}

describe('parseMeminfo', () => {
  it('reads the real /proc/meminfo of the build machine (kB -> bytes)', () => {
    expect(parseMeminfo(fixture('meminfo.real'))).toEqual({
      memTotalBytes: 24684084 * 1024,
      memAvailableBytes: 24328780 * 1024,
      memFreeBytes: 24354404 * 1024,
      swapTotalBytes: 0,
      swapFreeBytes: 0,
    });
  });

  it('estimates MemAvailable as MemFree + Buffers + Cached when it is missing (truncated file, old kernel)', () => {
    const m = parseMeminfo(fixture('meminfo.truncated'));
    expect(m.memTotalBytes).toBe(8 * GiB);
    expect(m.memFreeBytes).toBe(1 * GiB);
    expect(m.memAvailableBytes).toBe(1 * GiB + 64 * MiB + 2 * GiB);
    expect(m.swapTotalBytes).toBe(0);
  });

  it('caps the estimate at MemTotal', () => {
    const m = parseMeminfo('MemTotal: 100 kB\nMemFree: 80 kB\nCached: 90 kB\n');
    expect(m.memAvailableBytes).toBe(100 * 1024);
  });

  it('throws a coded error naming the file and field when MemTotal is missing', () => {
    expectParseError(() => parseMeminfo(fixture('meminfo.no-memtotal')), '/proc/meminfo: missing field MemTotal');
  });

  it('throws naming the malformed MemTotal line', () => {
    expectParseError(() => parseMeminfo(fixture('meminfo.bad-memtotal')), 'MemTotal:        lots kB');
  });

  propTest.prop([fc.array(fc.string()), fc.nat({ max: 2 ** 40 }), fc.nat()])(
    'never throws on arbitrary extra lines when MemTotal is present',
    (lines, totalKb, at) => {
      const all = [...lines];
      all.splice(at % (lines.length + 1), 0, `MemTotal:  ${totalKb} kB`);
      const m = parseMeminfo(all.join('\n'));
      for (const v of Object.values(m)) expect(Number.isSafeInteger(v) && v >= 0).toBe(true);
      if (!lines.some((l) => l.includes('MemTotal:'))) expect(m.memTotalBytes).toBe(totalKb * 1024);
    },
  );
});

describe('parsePsi', () => {
  it('reads the real idle /proc/pressure/memory', () => {
    expect(parsePsi(fixture('pressure-memory.real'))).toEqual({ someAvg10: 0, someAvg60: 0, fullAvg10: 0, fullAvg60: 0 });
  });

  it('reads some and full averages', () => {
    expect(parsePsi(fixture('pressure-memory.busy'))).toEqual({
      someAvg10: 42.17,
      someAvg60: 30.05,
      fullAvg10: 18.4,
      fullAvg60: 9.99,
    });
  });

  it('reads a missing full line (old kernels) as 0', () => {
    expect(parsePsi(fixture('pressure-memory.some-only'))).toEqual({
      someAvg10: 12.5,
      someAvg60: 3.25,
      fullAvg10: 0,
      fullAvg60: 0,
    });
  });

  it('throws on a garbage value, naming the field', () => {
    expectParseError(() => parsePsi(fixture('pressure-memory.garbage')), '"avg60=zero"');
  });

  it('throws on an unknown line and on a missing some line', () => {
    expectParseError(() => parsePsi('hello world\n'), 'unexpected line "hello world"');
    expectParseError(() => parsePsi('full avg10=1.00 avg60=2.00 avg300=0.00 total=1\n'), 'missing line "some"');
    expectParseError(() => parsePsi('some avg300=1.00 total=3\n'), 'missing avg10/avg60');
  });
});

describe('parseCgroupLimit / parseCgroupInactiveFile', () => {
  it('reads v2 "max" as unlimited and a v2 byte count as is', () => {
    expect(parseCgroupLimit(fixture('cgroup.v2-max'))).toBeNull();
    expect(parseCgroupLimit(fixture('cgroup.v2-limit'))).toBe(2 * GiB);
  });

  it('reads the v1 "unlimited" value (LONG_MAX page-aligned, >= 2^62) as null', () => {
    expect(parseCgroupLimit(fixture('cgroup.v1-huge'))).toBeNull();
    expect(parseCgroupLimit(String(2 ** 62 - 4096))).toBe(2 ** 62 - 4096);
  });

  it('throws a coded error on garbage', () => {
    expectParseError(() => parseCgroupLimit(fixture('cgroup.garbage')), '"unlimited"');
  });

  it('prefers v1 total_inactive_file (hierarchical) over inactive_file', () => {
    expect(parseCgroupInactiveFile('inactive_file 10\ntotal_inactive_file 30\n')).toBe(30);
    expect(parseCgroupInactiveFile('anon 5\ninactive_file 10\n')).toBe(10);
    expect(parseCgroupInactiveFile('anon 5\n')).toBeNull();
  });
});

describe('parseProcSelfCgroup', () => {
  it('reads the real hybrid (v1 memory + empty v2) file of the build machine', () => {
    expect(parseProcSelfCgroup(fixture('self-cgroup.real'))).toEqual({
      v2Path: '/',
      v1MemoryPath: '/process_api/060b13dc6938c60b0a89610b14876a4b',
    });
  });

  it('reads a pure v2 file', () => {
    expect(parseProcSelfCgroup(fixture('self-cgroup.v2'))).toEqual({
      v2Path: '/user.slice/user-1000.slice/session-2.scope',
      v1MemoryPath: null,
    });
  });

  it('finds memory in a combined v1 controller list and keeps colons inside paths', () => {
    expect(parseProcSelfCgroup(fixture('self-cgroup.v1-combined'))).toEqual({ v2Path: '/', v1MemoryPath: '/docker/abc123' });
    expect(parseProcSelfCgroup('0::/a:b/c\n')).toEqual({ v2Path: '/a:b/c', v1MemoryPath: null });
  });
});

describe('parseStat', () => {
  it('reads the real /proc/self/stat', () => {
    expect(parseStat(fixture('self-stat.real'))).toEqual({
      pid: 4380,
      name: 'node',
      state: 'R',
      ppid: 4377,
      startTimeTicks: 49922,
      rssPages: 10106,
    });
  });

  it('takes comm from the first "(" to the LAST ")"', () => {
    expect(parseStat(fixture('stat.weird-comm'))).toEqual({
      pid: 4242,
      name: 'my (weird) proc',
      state: 'R',
      ppid: 77,
      startTimeTicks: 123456,
      rssPages: 2560,
    });
  });

  it('returns null (never throws) for truncated, empty or garbage text', () => {
    expect(parseStat(fixture('stat.truncated'))).toBeNull();
    expect(parseStat('')).toBeNull();
    expect(parseStat('400 (half-writ')).toBeNull();
    expect(parseStat(' (x) S 1')).toBeNull();
    expect(parseStat(statLine(1, 'x', 0, 5, 7).replace(' S ', ' S  '))).toBeNull();
  });

  propTest.prop([
    fc.integer({ min: 1, max: 4_194_304 }),
    fc.string({ unit: 'binary', maxLength: 64 }),
    fc.integer({ min: 0, max: 4_194_304 }),
    fc.nat({ max: Number.MAX_SAFE_INTEGER }),
    fc.nat({ max: 2 ** 40 }),
  ])('round-trips pid, comm (any characters), ppid, start time and rss', (pid, comm, ppid, start, rss) => {
    expect(parseStat(statLine(pid, comm, ppid, start, rss))).toEqual({
      pid,
      name: comm,
      state: 'S',
      ppid,
      startTimeTicks: start,
      rssPages: rss,
    });
  });
});

describe('parseSmapsRollup / parseStatusVmRss', () => {
  it('reads Pss and Pss_Anon from the real smaps_rollup', () => {
    expect(parseSmapsRollup(fixture('self-smaps_rollup.real'))).toEqual({ pssBytes: 38753 * 1024, pssAnonBytes: 6360 * 1024 });
  });

  it('reports Pss_Anon as null on kernels < 5.4, and null without a Pss line', () => {
    expect(parseSmapsRollup(fixture('smaps_rollup.no-pss-anon'))).toEqual({ pssBytes: 10 * MiB, pssAnonBytes: null });
    expect(parseSmapsRollup('')).toBeNull();
    expect(parseSmapsRollup('Pss_Anon: 12 kB\n')).toBeNull();
  });

  it('reads VmRSS from the real status, null for a kernel thread', () => {
    expect(parseStatusVmRss(fixture('self-status.real'))).toBe(40568 * 1024);
    expect(parseStatusVmRss(fixture('status.kernel-thread'))).toBeNull();
  });
});

describe('parseNetTcpListening', () => {
  it('reads the real /proc/net/tcp (one listener on 2024) and an empty tcp6', () => {
    expect(parseNetTcpListening(fixture('net-tcp.real'))).toEqual([{ port: 2024, inode: 640 }]);
    expect(parseNetTcpListening(fixture('net-tcp6.real'))).toEqual([]);
  });

  it('keeps only LISTEN (0A) sockets of tcp6 and skips garbage lines', () => {
    expect(parseNetTcpListening(fixture('net-tcp6.listen'))).toEqual([
      { port: 11434, inode: 5101 },
      { port: 8178, inode: 5102 },
    ]);
  });
});

describe('createSystemMemoryReader (fixture trees)', () => {
  it('applies the smallest v1 limit among the cgroup and its ancestors, minus reclaimable cache', () => {
    const reader = createSystemMemoryReader({ procRoot: PROC_TREE, sysRoot: SYS_V1 });
    expect(reader.cgroupDirs).toEqual([
      `${SYS_V1}/fs/cgroup/memory/app.slice/memtide.service`,
      `${SYS_V1}/fs/cgroup/memory/app.slice`,
      `${SYS_V1}/fs/cgroup/memory`,
    ]);
    // app.slice: limit 6 GiB, usage 5 GiB - 512 MiB inactive file = 4.5 GiB -> 1.5 GiB headroom < MemAvailable 4 GiB.
    expect(reader.read()).toEqual({
      totalBytes: 6 * GiB,
      availableBytes: 1.5 * GiB,
      usedBytes: 4.5 * GiB,
      swapTotalBytes: 2 * GiB,
      swapUsedBytes: 512 * MiB,
      psi: { someAvg10: 5, someAvg60: 2.5, fullAvg10: 1.25, fullAvg60: 0.5 },
      physicalTotalBytes: 8 * GiB,
      cgroupLimitBytes: 6 * GiB,
    });
  });

  it('prefers cgroup v2 memory.max when the unified hierarchy has the memory controller', () => {
    const m = readSystemMemory({ procRoot: PROC_TREE, sysRoot: SYS_V2 });
    // app: limit 2 GiB, usage 1.5 GiB - 256 MiB inactive file -> 0.75 GiB headroom; user.slice is "max".
    expect(m).toMatchObject({ totalBytes: 2 * GiB, availableBytes: 0.75 * GiB, usedBytes: 1.25 * GiB, cgroupLimitBytes: 2 * GiB });
  });

  it('uses meminfo alone when no cgroup files exist, and PSI null when absent', () => {
    const tree = copyTree(PROC_TREE);
    rmSync(join(tree, 'pressure'), { recursive: true });
    const m = readSystemMemory({ procRoot: tree, sysRoot: join(tree, 'no-sys') });
    expect(m).toEqual({
      totalBytes: 8 * GiB,
      availableBytes: 4 * GiB,
      usedBytes: 4 * GiB,
      swapTotalBytes: 2 * GiB,
      swapUsedBytes: 512 * MiB,
      psi: null,
      physicalTotalBytes: 8 * GiB,
      cgroupLimitBytes: null,
    });
  });

  it('finds v2 files under the hybrid unified/ mount', () => {
    const sys = copyTree(SYS_V1);
    write(join(sys, 'fs/cgroup/unified/user.slice/app/memory.max'), '1073741824\n');
    write(join(sys, 'fs/cgroup/unified/user.slice/app/memory.current'), '536870912\n');
    const m = readSystemMemory({ procRoot: PROC_TREE, sysRoot: sys });
    expect(m).toMatchObject({ totalBytes: 1 * GiB, availableBytes: 512 * MiB, cgroupLimitBytes: 1 * GiB });
  });

  it('resolves the cgroup files once but re-reads their values every sample', () => {
    const sys = copyTree(SYS_V1);
    const reader = createSystemMemoryReader({ procRoot: PROC_TREE, sysRoot: sys });
    expect(reader.read().cgroupLimitBytes).toBe(6 * GiB);
    write(join(sys, 'fs/cgroup/memory/app.slice/memory.limit_in_bytes'), String(7 * GiB));
    // A v2 limit appearing later is not picked up by this reader: the path was resolved at creation.
    write(join(sys, 'fs/cgroup/user.slice/app/memory.max'), String(1 * GiB));
    const second = reader.read();
    expect(second.cgroupLimitBytes).toBe(7 * GiB);
    expect(second.availableBytes).toBe(2.5 * GiB);
    expect(createSystemMemoryReader({ procRoot: PROC_TREE, sysRoot: sys }).read().cgroupLimitBytes).toBe(1 * GiB);
  });

  it('throws the coded parse error when meminfo has no MemTotal', () => {
    const tree = copyTree(PROC_TREE);
    write(join(tree, 'meminfo'), 'MemFree: 1 kB\n');
    expectParseError(() => readSystemMemory({ procRoot: tree, sysRoot: SYS_V1 }), 'MemTotal');
  });

  it.runIf(process.platform === 'linux')('reads this machine without throwing and with consistent numbers', () => {
    const m = readSystemMemory();
    expect(m.totalBytes).toBeGreaterThan(0);
    expect(m.usedBytes + m.availableBytes).toBe(m.totalBytes);
    expect(m.totalBytes).toBeLessThanOrEqual(m.physicalTotalBytes);
  });
});

describe('createProcessTableReader (fixture tree)', () => {
  it('lists numeric entries, skipping vanished (no stat) and torn (bad stat) processes', () => {
    const list = createProcessTableReader({ procRoot: PROC_TREE }).list();
    expect(list.sort((a, b) => a.pid - b.pid)).toEqual([
      { pid: 1, ppid: 0, name: 'systemd', cmdline: '/sbin/init splash', startTimeTicks: 5, rssBytes: 3000 * 4096 },
      { pid: 2, ppid: 0, name: 'kthreadd', cmdline: '', startTimeTicks: 5, rssBytes: 0 },
      { pid: 100, ppid: 1, name: 'ollama', cmdline: '/usr/local/bin/ollama serve', startTimeTicks: 1000, rssBytes: 100 * MiB },
      {
        pid: 101,
        ppid: 100,
        name: 'ollama',
        cmdline: '/usr/local/bin/ollama runner --model /models/blobs/sha256-abc --ctx-size 2048',
        startTimeTicks: 2000,
        rssBytes: 4 * GiB,
      },
      { pid: 200, ppid: 2, name: 'my (weird) proc', cmdline: '', startTimeTicks: 3000, rssBytes: 0 },
    ]);
  });

  it('uses the configured page size', () => {
    const list = createProcessTableReader({ procRoot: PROC_TREE, pageSize: 16384 }).list();
    expect(list.find((p) => p.pid === 100)?.rssBytes).toBe(25600 * 16384);
  });

  it('caches cmdline by pid + start time + comm', () => {
    const tree = copyTree(PROC_TREE);
    const reader = createProcessTableReader({ procRoot: tree });
    reader.list();
    write(join(tree, '100/cmdline'), 'changed\0');
    expect(reader.list().find((p) => p.pid === 100)?.cmdline).toBe('/usr/local/bin/ollama serve');
    // Same pid, new start time: a different process reusing the pid.
    write(join(tree, '100/stat'), statLine(100, 'ollama', 1, 9999, 10));
    expect(reader.list().find((p) => p.pid === 100)?.cmdline).toBe('changed');
    // Same pid and start time, new comm: the process exec'd another program.
    write(join(tree, '100/cmdline'), 'whisper-server\0-m\0x.bin\0');
    write(join(tree, '100/stat'), statLine(100, 'whisper-server', 1, 9999, 10));
    expect(reader.list().find((p) => p.pid === 100)?.cmdline).toBe('whisper-server -m x.bin');
  });

  it('reads smaps_rollup, null for an empty file or a vanished process', () => {
    const reader = createProcessTableReader({ procRoot: PROC_TREE });
    expect(reader.readSmaps(100)).toEqual({ pssBytes: 38753 * 1024, pssAnonBytes: 6360 * 1024 });
    expect(reader.readSmaps(200)).toBeNull();
    expect(reader.readSmaps(300)).toBeNull();
    expect(reader.readSmaps(99999)).toBeNull();
  });

  it('maps listening ports to pids through fd socket links, cached for portCacheMs', () => {
    const tree = copyTree(PROC_TREE);
    link(tree, 100, 3, 'socket:[5001]');
    link(tree, 101, 4, 'socket:[5001]'); // shared listening socket (forked worker)
    link(tree, 100, 5, 'socket:[5003]'); // established, not listening
    link(tree, 100, 6, '/dev/null');
    link(tree, 1, 7, 'socket:[5002]');
    let clock = 0;
    const reader = createProcessTableReader({ procRoot: tree, now: () => clock });
    const expected = new Map([
      [11434, [100, 101]],
      [8178, [1]],
    ]);
    expect(reader.listeningPorts()).toEqual(expected);
    link(tree, 200, 3, 'socket:[5002]');
    clock = 9_999;
    expect(reader.listeningPorts()).toEqual(expected);
    clock = 10_000;
    expect(reader.listeningPorts()).toEqual(
      new Map([
        [11434, [100, 101]],
        [8178, [1, 200]],
      ]),
    );
  });

  it('returns a copy of the cached port map', () => {
    const tree = copyTree(PROC_TREE);
    link(tree, 1, 7, 'socket:[5002]');
    const reader = createProcessTableReader({ procRoot: tree, now: () => 0 });
    reader.listeningPorts().get(8178)?.push(42);
    expect(reader.listeningPorts().get(8178)).toEqual([1]);
  });

  it.runIf(process.platform === 'linux')('lists this machine, including its own process with its command line', () => {
    const me = createProcessTableReader().list().find((p) => p.pid === process.pid);
    expect(me?.ppid).toBe(process.ppid);
    expect(me?.cmdline).toContain('node');
    expect(me?.rssBytes).toBeGreaterThan(0);
  });
});

describe('portable readers (fake systeminformation)', () => {
  let netCalls = 0;
  const fakeSi: SystemInformationApi = {
    mem: async () => ({ total: 16 * GiB, available: 6 * GiB, swaptotal: 4 * GiB, swapused: 1 * GiB }),
    processes: async () => ({
      list: [
        { pid: 10, parentPid: 1, name: 'ollama', command: '/usr/bin/ollama', params: 'serve', memRss: 2048, started: '2025-01-02 03:04:05' },
        { pid: 11, parentPid: 10, name: 'kworker', command: '', params: '', memRss: 0, started: '' },
      ],
    }),
    networkConnections: async () => {
      netCalls++;
      return [
        { localPort: '11434', state: 'LISTEN', pid: 10 },
        { localPort: '11434', state: 'LISTEN', pid: 10 },
        { localPort: '8178', state: 'ESTABLISHED', pid: 12 },
        { localPort: '5167', state: 'LISTEN', pid: 0 },
      ];
    },
  };

  it('maps si.mem() to SystemMemory with psi and cgroup null', async () => {
    const { system } = createPortableReaders({ systeminformation: fakeSi });
    expect(await system.read()).toEqual({
      totalBytes: 16 * GiB,
      availableBytes: 6 * GiB,
      usedBytes: 10 * GiB,
      swapTotalBytes: 4 * GiB,
      swapUsedBytes: 1 * GiB,
      psi: null,
      physicalTotalBytes: 16 * GiB,
      cgroupLimitBytes: null,
    });
  });

  it('maps si.processes() (memRss in KB) and has no smaps', async () => {
    const { processes } = createPortableReaders({ systeminformation: fakeSi });
    expect(await processes.list()).toEqual([
      { pid: 10, ppid: 1, name: 'ollama', cmdline: '/usr/bin/ollama serve', startTimeTicks: Date.parse('2025-01-02 03:04:05'), rssBytes: 2 * MiB },
      { pid: 11, ppid: 10, name: 'kworker', cmdline: '', startTimeTicks: 0, rssBytes: 0 },
    ]);
    expect(await processes.readSmaps(10)).toBeNull();
  });

  it('keeps LISTEN entries with a pid, cached for portCacheMs', async () => {
    netCalls = 0;
    let clock = 0;
    const { processes } = createPortableReaders({ systeminformation: fakeSi, now: () => clock, portCacheMs: 1000 });
    expect(await processes.listeningPorts()).toEqual(new Map([[11434, [10]]]));
    clock = 999;
    await processes.listeningPorts();
    expect(netCalls).toBe(1);
    clock = 1000;
    await processes.listeningPorts();
    expect(netCalls).toBe(2);
  });
});

describe('createPlatformReaders', () => {
  it('picks Linux when /proc/meminfo is readable', async () => {
    const r = createPlatformReaders({ platform: 'linux', procRoot: PROC_TREE, sysRoot: SYS_V1 });
    expect(r.kind).toBe('linux');
    expect((await r.system.read()).cgroupLimitBytes).toBe(6 * GiB);
    expect((await r.processes.list()).map((p) => p.pid).sort((a, b) => a - b)).toEqual([1, 2, 100, 101, 200]);
  });

  it('falls back to portable without a readable meminfo, or off Linux', async () => {
    const noProc = createPlatformReaders({ platform: 'linux', procRoot: join(FIXTURES, 'nope'), systeminformation: fakeSiMinimal() });
    expect(noProc.kind).toBe('portable');
    expect((await noProc.system.read()).psi).toBeNull();
    expect(createPlatformReaders({ platform: 'darwin', systeminformation: fakeSiMinimal() }).kind).toBe('portable');
  });
});

// ---- helpers for temporary trees

const temps: string[] = [];
afterEach(() => {
  for (const dir of temps.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function copyTree(src: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'memtide-procfs-'));
  temps.push(dir);
  cpSync(src, dir, { recursive: true });
  return dir;
}

function write(file: string, text: string): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
}

function link(procRoot: string, pid: number, fd: number, target: string): void {
  mkdirSync(join(procRoot, String(pid), 'fd'), { recursive: true });
  symlinkSync(target, join(procRoot, String(pid), 'fd', String(fd)));
}

function fakeSiMinimal(): SystemInformationApi {
  return {
    mem: async () => ({ total: 100, available: 40, swaptotal: 0, swapused: 0 }),
    processes: async () => ({ list: [] }),
    networkConnections: async () => [],
  };
}
