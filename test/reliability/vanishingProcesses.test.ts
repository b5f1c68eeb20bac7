/**
 * Reliability: watched processes exit in the middle of a sample, between the
 * moment the process table is listed and the moment their PSS is read (the
 * kernel then answers ENOENT or ESRCH). That must never fail the sample.
 *
 * Deterministic first (a fixture /proc tree whose process directory is
 * removed right after the listing; readers that throw ENOENT/ESRCH), then
 * real: short-lived child processes exiting all the time while memtide
 * samples the real /proc and reads the PSS of every one of them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { configSchema, type MemtideConfig } from '../../src/app/configSchema.js';
import { createMemtide } from '../../src/app/memtide.js';
import { createSampler } from '../../src/sources/memorySampler.js';
import { createPlatformReaders, type PlatformReaders } from '../../src/sources/readers.js';
import type { EngineProblem } from '../../src/streams/engine.js';
import { stopAfterEach, tempDir } from '../support/lifecycle.js';
import { sleep } from '../support/wait.js';

const FIXTURES = path.resolve(import.meta.dirname, '../fixtures');
const tmp = tempDir('memtide-vanish-');
const children = new Set<ChildProcess>();
afterEach(() => {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
});
// Registered after the children's hook, so it runs before it (vitest runs after-hooks as a stack).
const { subscriptions, engines } = stopAfterEach();

const pssForAll = (): MemtideConfig => configSchema.parse({ sampling: { pss: 'all' } });

let copies = 0;
/**
 * A fresh copy of the fixture /proc tree in which pid 101 (ollama's child) has a
 * smaps_rollup too, so a second process has a PSS that must stay unaffected.
 */
function freshProc(): PlatformReaders & { root: string } {
  const root = path.join(tmp, `proc-${(copies += 1)}`);
  fs.cpSync(path.join(FIXTURES, 'proc-tree'), root, { recursive: true });
  fs.copyFileSync(path.join(root, '100/smaps_rollup'), path.join(root, '101/smaps_rollup'));
  return { root, ...createPlatformReaders({ platform: 'linux', procRoot: root, sysRoot: path.join(FIXTURES, 'sys-v1') }) };
}
const errnoError = (code: string) => Object.assign(new Error(`${code}: simulated`), { code });

/** Readers whose `list()` runs `afterList` once it has listed (the moment a process can vanish). */
function withHook(readers: PlatformReaders, hooks: { afterList?: () => void; readSmaps?: (pid: number) => Promise<never> | undefined }): PlatformReaders {
  return {
    ...readers,
    processes: {
      ...readers.processes,
      list: async () => {
        const listed = await readers.processes.list();
        hooks.afterList?.();
        return listed;
      },
      readSmaps: (pid) => hooks.readSmaps?.(pid) ?? readers.processes.readSmaps(pid),
    },
  };
}

describe('a watched process exits between the listing and the PSS read', () => {
  it('fixture /proc: its directory disappears after the listing; the sample succeeds, the process has no PSS', async () => {
    const readers = freshProc();
    const before = await createSampler({ readers }).sample(pssForAll());
    const ollamaBefore = before.processes.find((p) => p.pid === 100);
    expect(ollamaBefore, 'pid 100 (ollama, watched) is in the fixture').toMatchObject({ component: 'ollama' });
    expect(ollamaBefore!.pssBytes, 'its PSS is read while it lives').not.toBeNull();
    const otherBefore = before.processes.find((p) => p.pid === 101)?.pssBytes;
    expect(otherBefore).toEqual(expect.any(Number));

    const sampler = createSampler({ readers: withHook(readers, { afterList: () => fs.rmSync(path.join(readers.root, '100'), { recursive: true, force: true }) }) });
    const sample = await sampler.sample(pssForAll());
    expect(sample.processes.find((p) => p.pid === 100)).toMatchObject({ component: 'ollama', pssBytes: null, pssAnonBytes: null });
    // Listed when it was alive: it counts, with the RSS read then; only its PSS is missing.
    expect(sample.components.ollama).toMatchObject({ processCount: before.components.ollama!.processCount, rssBytes: before.components.ollama!.rssBytes, pssBytes: otherBefore });
    // The other processes are unaffected.
    expect(sample.processes.find((p) => p.pid === 101)?.pssBytes).toBe(otherBefore);
  });

  it.each(['ENOENT', 'ESRCH'])('a reader that throws %s for the PSS of a vanished pid does not fail the sample', async (code) => {
    const sampler = createSampler({ readers: withHook(freshProc(), { readSmaps: (pid) => (pid === 100 ? Promise.reject(errnoError(code)) : undefined) }) });
    const sample = await sampler.sample(pssForAll());
    expect(sample.processes.find((p) => p.pid === 100)?.pssBytes).toBeNull();
    expect(sample.processes.find((p) => p.pid === 101)?.pssBytes).toEqual(expect.any(Number));
  });

  it('other read failures (EMFILE: out of file descriptors) still fail the sample: they would empty every sample silently', async () => {
    const sampler = createSampler({ readers: withHook(freshProc(), { readSmaps: (pid) => (pid === 100 ? Promise.reject(errnoError('EMFILE')) : undefined) }) });
    await expect(sampler.sample(pssForAll())).rejects.toMatchObject({ code: 'EMFILE' });
  });
});

describe('real processes exiting while memtide samples /proc', () => {
  it('every sample succeeds while short-lived watched processes come and go', { timeout: 20_000 }, async () => {
    const sleepBin = ['/bin/sleep', '/usr/bin/sleep'].find((p) => fs.existsSync(p));
    if (!sleepBin) throw new Error('no sleep binary');
    const memtide = createMemtide({
      // Watch the children (their PSS is read every sample), sampled fast to hit exits mid-sample.
      config: { sampling: { intervalMs: 50, pss: 'watched' }, components: { rules: [{ component: 'churn', name: '^sleep$' }] } },
    });
    engines.push(memtide);
    const problems: EngineProblem[] = [];
    let samples = 0;
    let samplesWithChurn = 0;
    subscriptions.push(
      memtide.problems$.subscribe({ next: (p) => problems.push(p), error: (e: unknown) => problems.push({ source: 'sampling', error: e }) }),
      memtide.samples$.subscribe({
        next: (s) => {
          samples += 1;
          if ((s.components.churn?.processCount ?? 0) > 0) samplesWithChurn += 1;
        },
        error: (e: unknown) => problems.push({ source: 'sampling', error: e }),
      }),
    );

    // Keep ~3 children alive, each living 40-120 ms: processes exit all the time (gently: the machine is shared).
    let running = true;
    let spawned = 0;
    const launch = () => {
      if (!running) return;
      const child = spawn(sleepBin, [(0.04 + Math.random() * 0.08).toFixed(3)], { stdio: 'ignore' });
      spawned += 1;
      children.add(child);
      child.on('error', () => children.delete(child));
      child.on('exit', () => {
        children.delete(child);
        launch();
      });
    };
    for (let i = 0; i < 3; i += 1) launch();
    const start = samples;
    const deadline = Date.now() + 12_000;
    while ((samples - start < 20 || samplesWithChurn < 10) && Date.now() < deadline) await sleep(50);
    running = false;

    expect(problems, 'no sample failed').toEqual([]);
    expect(samples - start).toBeGreaterThanOrEqual(20);
    expect(samplesWithChurn, 'the samples did see the short-lived processes').toBeGreaterThanOrEqual(10);
    expect(spawned, 'processes did exit and were replaced during the run').toBeGreaterThan(10);
  });
});
