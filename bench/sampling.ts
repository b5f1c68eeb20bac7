/**
 * `npm run bench:sampling`: what one memtide sample costs on Linux, against
 * the obvious library alternatives, measured in one run on the same process
 * table.
 *
 * - Spawns `sleep 600` children until at least 100 processes exist (killed at
 *   exit, also on error or Ctrl-C).
 * - CPU per call = `process.cpuUsage()` delta + the delta of the children's
 *   CPU (`cutime + cstime` of /proc/self/stat, USER_HZ = 100), because
 *   `si.processes()` does most of its work in spawned `ps`/`cat` processes.
 * - `si.processes()` answers from a cache when called again within 500 ms,
 *   so its calls are spaced 600 ms apart (the pause is not measured).
 * - Prints a Markdown table of medians; exits 1 if our full sample's median
 *   CPU exceeds the 3 ms budget.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import * as si from 'systeminformation';
import { createProcessTableReader, createSystemMemoryReader } from '../src/sources/linuxReaders.js';

const MIN_PROCESSES = 100;
const WATCHED = 5;
const BUDGET_CPU_MS = 3;
const USER_HZ = 100;

/** pidusage ships no types; this is the part used here. */
type Pidusage = (pids: number[]) => Promise<Record<string, { memory: number }>>;
const pidusage = createRequire(import.meta.url)('pidusage') as Pidusage;

interface Row {
  name: string;
  n: number;
  cpuMs: number;
  wallMs: number;
}

const children: ChildProcess[] = [];

function killChildren(): void {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

function pidCount(): number {
  return readdirSync('/proc').filter((e) => /^\d+$/.test(e)).length;
}

/** CPU ms of waited-for children so far (fields 16 + 17 of /proc/self/stat). */
function childrenCpuMs(): number {
  const text = readFileSync('/proc/self/stat', 'utf8');
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return ((Number(rest[13]) + Number(rest[14])) * 1000) / USER_HZ;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Median CPU and wall ms per call of `fn`; `gapMs` pauses (unmeasured) between calls. */
async function measure(name: string, n: number, warmup: number, fn: () => unknown, gapMs = 0): Promise<Row> {
  const pause = (): Promise<void> | undefined =>
    gapMs > 0 ? new Promise((resolve) => setTimeout(resolve, gapMs)) : undefined;
  for (let i = 0; i < warmup; i++) {
    await fn();
    await pause();
  }
  const cpu: number[] = [];
  const wall: number[] = [];
  for (let i = 0; i < n; i++) {
    await pause();
    const c0 = process.cpuUsage();
    const k0 = childrenCpuMs();
    const t0 = performance.now();
    await fn();
    const t1 = performance.now();
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000 + (childrenCpuMs() - k0));
    wall.push(t1 - t0);
  }
  return { name, n, cpuMs: median(cpu), wallMs: median(wall) };
}

async function spawnSleepers(): Promise<void> {
  const needed = Math.max(WATCHED - 1, MIN_PROCESSES - pidCount() + 2);
  for (let i = 0; i < needed; i++) {
    const child = spawn('sleep', ['600'], { stdio: 'ignore' });
    child.on('error', (err) => {
      throw err;
    });
    children.push(child);
  }
  // Let every child exec `sleep` so the table is stable while measuring.
  await new Promise((resolve) => setTimeout(resolve, 300));
}

const fmt = (ms: number): string => (ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(3));

async function main(): Promise<number> {
  if (process.platform !== 'linux') throw new Error('bench:sampling needs Linux (/proc)');
  await spawnSleepers();

  const system = createSystemMemoryReader();
  const table = createProcessTableReader();
  const watched = [process.pid, ...children.slice(0, WATCHED - 1).map((c) => c.pid as number)];
  const fullSample = (): number => {
    system.read();
    const list = table.list();
    for (const pid of watched) table.readSmaps(pid);
    return list.length;
  };
  const processCount = fullSample();
  const allPids = (): number[] => table.list().map((p) => p.pid);

  const rows: Row[] = [];
  const ours = await measure('ours: system + process list + smaps x5', 200, 20, fullSample);
  rows.push(ours);
  rows.push(await measure('  of which readSystemMemory', 200, 20, () => system.read()));
  rows.push(await measure('  of which process list (cmdline cached)', 200, 20, () => table.list()));
  rows.push(await measure('  of which smaps_rollup x5', 200, 20, () => watched.map((pid) => table.readSmaps(pid))));
  rows.push(
    await measure('ours, cold (new readers: cgroup resolve + all cmdlines)', 20, 2, () => {
      createSystemMemoryReader().read();
      createProcessTableReader().list();
    }),
  );
  let pids = allPids();
  rows.push(
    await measure(`pidusage(all ${pids.length} pids), one call`, 20, 2, async () => {
      try {
        await pidusage(pids);
      } catch {
        pids = allPids(); // a process exited meanwhile: pidusage fails the whole call
      }
    }),
  );
  // si.processes() returns its previous result when called again within 500 ms: space the calls.
  rows.push(await measure('si.processes()', 5, 1, () => si.processes(), 600));

  const lines = [
    `date: ${new Date().toISOString()}, node ${process.version}, ${os.cpus().length} cores, kernel ${os.release()}, ${processCount} processes (${children.length} spawned sleeps), ${watched.length} watched`,
    '',
    '| call | N | median CPU ms | median wall ms | CPU ratio (baseline / ours) | wall ratio |',
    '|---|---:|---:|---:|---:|---:|',
    ...rows.map((r) => {
      const baseline = r.name.startsWith('pidusage') || r.name.startsWith('si.');
      const ratio = (a: number, b: number): string => (baseline ? `${(a / b).toFixed(1)}x` : '');
      return `| ${r.name} | ${r.n} | ${fmt(r.cpuMs)} | ${fmt(r.wallMs)} | ${ratio(r.cpuMs, ours.cpuMs)} | ${ratio(r.wallMs, ours.wallMs)} |`;
    }),
  ];
  console.log(lines.join('\n'));
  if (ours.cpuMs > BUDGET_CPU_MS) {
    console.error(`\nFAIL: our median CPU per sample ${ours.cpuMs.toFixed(3)} ms exceeds the ${BUDGET_CPU_MS} ms budget`);
    return 1;
  }
  console.log(`\nOK: our median CPU per sample ${ours.cpuMs.toFixed(3)} ms <= ${BUDGET_CPU_MS} ms budget`);
  return 0;
}

process.on('exit', killChildren);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killChildren();
    process.exit(130);
  });
}

main()
  .then((code) => {
    process.exitCode = code;
  })
  .catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(killChildren);
