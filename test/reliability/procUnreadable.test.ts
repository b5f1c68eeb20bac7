/**
 * Reliability: /proc becomes unreadable while memtide runs (a sandbox, a
 * `hidepid` remount, a security module denying reads).
 *
 * The tests run as root on CI machines, where chmod cannot make a file
 * unreadable, so `node:fs` is wrapped: reads of the paths in `denied` throw
 * the errno error the kernel would give (EACCES, or ENOENT for a kernel
 * without PSI). Everything else is the real code on the fixture /proc tree:
 * the Linux readers, the sampler, the engine, the alert pipeline.
 */
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createMemtide } from '../../src/app/memtide.js';
import type { Alert } from '../../src/model.js';
import { ProcfsReadError, createProcessTableReader, createSystemMemoryReader } from '../../src/sources/linuxReaders.js';
import { createPlatformReaders } from '../../src/sources/readers.js';
import type { EngineProblem } from '../../src/streams/engine.js';
import { stopAfterEach } from '../support/lifecycle.js';
import { sleep, waitFor } from '../support/wait.js';

/** path -> errno code its reads fail with. */
const denied = vi.hoisted(() => new Map<string, string>());

vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const guard = (syscall: string, target: unknown) => {
    const code = denied.get(String(target));
    if (code === undefined) return;
    const text = code === 'EACCES' ? 'permission denied' : 'no such file or directory';
    throw Object.assign(new Error(`${code}: ${text}, ${syscall} '${String(target)}'`), { code, syscall, path: String(target) });
  };
  const readFileSync = ((file: unknown, ...rest: unknown[]) => {
    guard('open', file);
    return (fs.readFileSync as (...args: unknown[]) => unknown)(file, ...rest);
  }) as typeof fs.readFileSync;
  const readdirSync = ((dir: unknown, ...rest: unknown[]) => {
    guard('scandir', dir);
    return (fs.readdirSync as (...args: unknown[]) => unknown)(dir, ...rest);
  }) as typeof fs.readdirSync;
  return { ...fs, default: { ...fs, readFileSync, readdirSync }, readFileSync, readdirSync };
});

const FIXTURES = path.resolve(import.meta.dirname, '../fixtures');
const PROC = path.join(FIXTURES, 'proc-tree');
const SYS = path.join(FIXTURES, 'sys-v1');
const MEMINFO = `${PROC}/meminfo`;
const PSI = `${PROC}/pressure/memory`;
const { subscriptions, engines } = stopAfterEach();
const WAIT = { pollMs: 10 };

afterEach(() => denied.clear()); // registered after stopAfterEach, so it runs before it (vitest runs after-hooks as a stack)

describe('Linux readers with /proc files unreadable', () => {
  it('meminfo: a ProcfsReadError naming the file and the errno, and a normal read once it is readable again', () => {
    const reader = createSystemMemoryReader({ procRoot: PROC, sysRoot: SYS });
    denied.set(MEMINFO, 'EACCES');
    let thrown: unknown;
    try {
      reader.read();
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ProcfsReadError);
    expect(thrown).toMatchObject({ code: 'MEMTIDE_ERR_PROCFS_READ', file: MEMINFO, errno: 'EACCES', message: `cannot read ${MEMINFO}: EACCES` });
    denied.delete(MEMINFO);
    expect(reader.read().totalBytes).toBeGreaterThan(0);
  });

  it('PSI: unreadable (EACCES) is null for that read only; absent (ENOENT: no PSI in this kernel) is not tried again', () => {
    const reader = createSystemMemoryReader({ procRoot: PROC, sysRoot: SYS });
    expect(reader.read().psi).not.toBeNull();
    denied.set(PSI, 'EACCES');
    expect(reader.read().psi).toBeNull();
    denied.delete(PSI);
    expect(reader.read().psi, 'PSI comes back once readable').not.toBeNull();

    const noPsi = createSystemMemoryReader({ procRoot: PROC, sysRoot: SYS });
    denied.set(PSI, 'ENOENT');
    expect(noPsi.read().psi).toBeNull();
    denied.delete(PSI);
    expect(noPsi.read().psi, 'a kernel without PSI does not grow one').toBeNull();
  });

  it('process table: an unreadable /proc listing is a ProcfsReadError; an unreadable smaps_rollup is skipped (null)', () => {
    const table = createProcessTableReader({ procRoot: PROC });
    expect(table.readSmaps(100)).not.toBeNull();
    denied.set(`${PROC}/100/smaps_rollup`, 'EACCES');
    expect(table.readSmaps(100)).toBeNull();
    denied.set(PROC, 'EACCES');
    expect(() => table.list()).toThrow(ProcfsReadError);
    denied.delete(PROC);
    expect(table.list().map((p) => p.pid)).toContain(100);
  });
});

describe('the engine while /proc/meminfo is unreadable', () => {
  it('reports each failed sample, raises the engine-health alert (sampling stalled), keeps going and recovers', async () => {
    const memtide = createMemtide({
      config: {
        sampling: { intervalMs: 50 },
        // Stalled after 3 missed intervals; no group wait or recovery delay, so the episode fits in a second.
        alerts: { groupWaitMs: 0, recoveryDelayMs: 0, engine: { stallIntervals: 3 } },
      },
      readers: createPlatformReaders({ platform: 'linux', procRoot: PROC, sysRoot: SYS }),
    });
    engines.push(memtide);
    let samples = 0;
    const problems: EngineProblem[] = [];
    const alerts: Alert[] = [];
    const streamErrors: unknown[] = [];
    subscriptions.push(
      memtide.samples$.subscribe({ next: () => (samples += 1), error: (e: unknown) => streamErrors.push(e) }),
      memtide.problems$.subscribe({ next: (p) => problems.push(p), error: (e: unknown) => streamErrors.push(e) }),
      memtide.alerts$.subscribe({ next: (a) => alerts.push(a), error: (e: unknown) => streamErrors.push(e) }),
      memtide.pressure$.subscribe({ error: (e: unknown) => streamErrors.push(e) }),
    );
    await waitFor('samples', () => samples >= 2, WAIT);

    denied.set(MEMINFO, 'EACCES');
    await waitFor('three failed samples reported', () => problems.length >= 3, WAIT);
    const stalled = await waitFor('the engine-health alert', () => alerts.find((a) => a.key === 'engine:stalled' && a.status === 'firing'), WAIT);
    expect(stalled).toMatchObject({ kind: 'engine', severity: 'critical', title: 'memtide sampling stalled' });
    const duringOutage = samples;
    await sleep(150);
    expect(samples, 'no sample is made up while meminfo cannot be read').toBe(duringOutage);
    for (const problem of problems) {
      expect(problem.source).toBe('sampling');
      expect(problem.error).toBeInstanceOf(ProcfsReadError);
      expect((problem.error as ProcfsReadError).errno).toBe('EACCES');
    }

    denied.delete(MEMINFO);
    await waitFor('samples again', () => samples >= duringOutage + 2, WAIT);
    const resumed = await waitFor('the recovery notice', () => alerts.find((a) => a.key === 'engine:stalled' && a.status === 'resolved'), WAIT);
    expect(resumed.title).toBe('memtide sampling resumed');
    const problemsAfter = problems.length;
    await sleep(150);
    expect(problems.length, 'no more problems once readable').toBe(problemsAfter);
    expect(streamErrors).toEqual([]);
  });
});
