/**
 * The embedding API, `createMemtide()`, as a host application uses it: what
 * the default (embedded) mode does and does not do, the streams, independent
 * engines in one process, `stop()` releasing everything, and history flushed
 * on stop.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Subject, VirtualAction, VirtualTimeScheduler, type Subscription } from 'rxjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from './setup/build.js';
import { spawnTsx } from './support/tsxChild.js';
import { createMemtide, PRESSURE_LEVELS, type BatchHold, type Memtide, type MemorySample, type MemtideConfig, type PressureChange } from '../src/index.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let tmp: string;
const engines: Memtide[] = [];
const subscriptions: Subscription[] = [];

/** A clean environment: the developer's MEMTIDE_* settings must not leak into the engine. */
const ENV: NodeJS.ProcessEnv = {};

function create(options: Parameters<typeof createMemtide>[0] = {}): Memtide {
  const memtide = createMemtide({ env: ENV, ...options });
  engines.push(memtide);
  return memtide;
}

/** Collects the samples of `memtide` (the subscription is dropped after each test). */
function collect(memtide: Memtide): { samples: MemorySample[]; subscription: Subscription } {
  const samples: MemorySample[] = [];
  const subscription = memtide.samples$.subscribe((sample) => samples.push(sample));
  subscriptions.push(subscription);
  return { samples, subscription };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

const gaps = (samples: MemorySample[]) => samples.slice(1).map((s, i) => s.timestampMs - samples[i]!.timestampMs);

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memtide-embedding-'));
});

afterEach(() => {
  for (const subscription of subscriptions.splice(0)) subscription.unsubscribe();
  for (const memtide of engines.splice(0)) memtide.stop();
});

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('createMemtide() in the default embedded mode', () => {
  it('keeps no history, writes nothing into the working directory and serves nothing', async () => {
    const cwd = fs.mkdtempSync(path.join(tmp, 'cwd-'));
    const previous = process.cwd();
    process.chdir(cwd);
    try {
      const memtide = create({ config: { sampling: { intervalMs: 50 } } });
      expect(memtide.config().history.enabled).toBe(false);
      expect(memtide.config().server.enabled).toBe(false);
      expect(memtide.history).toBeUndefined();
      const { samples } = collect(memtide);
      await sleep(300);
      expect(samples.length).toBeGreaterThanOrEqual(2);
      expect(process.getActiveResourcesInfo()).not.toContain('TCPServerWrap');
      memtide.stop();
      expect(fs.readdirSync(cwd)).toEqual([]);
    } finally {
      process.chdir(previous);
    }
  });

  it('samples$ emits at the configured interval', async () => {
    const memtide = create({ config: { sampling: { intervalMs: 100 } } });
    const { samples } = collect(memtide);
    await sleep(1_050);
    // ~11 samples (one at t=0, then every 100 ms); generous bounds for a loaded machine.
    expect(samples.length).toBeGreaterThanOrEqual(6);
    expect(samples.length).toBeLessThanOrEqual(14);
    const gap = median(gaps(samples));
    expect(gap).toBeGreaterThanOrEqual(80);
    expect(gap).toBeLessThanOrEqual(170);
    const sample = samples.at(-1)!;
    expect(sample.system.totalBytes).toBeGreaterThan(0);
    expect(sample.components).toHaveProperty(memtide.config().components.engine);
    expect(sample.self.pid).toBe(process.pid);
  });

  it("stamps samples with the injected scheduler's clock, so virtual time and sample times agree", async () => {
    const scheduler = new VirtualTimeScheduler(VirtualAction, 0);
    const memtide = create({ config: { sampling: { intervalMs: 1000 } }, scheduler });
    const { samples } = collect(memtide);
    for (let tick = 0; tick < 3; tick += 1) {
      // One virtual tick at a time: a sample's reads finish in real time before the next tick may start one.
      scheduler.maxFrames = tick * 1000;
      scheduler.flush();
      const deadline = Date.now() + 5000;
      while (samples.length <= tick && Date.now() < deadline) await sleep(10);
    }
    // Date.now() is ~1.8e12; the stamps are the virtual ticks.
    expect(samples.map((s) => s.timestampMs)).toEqual([0, 1000, 2000]);
  });

  it('pressure$ emits the first level', async () => {
    const memtide = create({ config: { sampling: { intervalMs: 100 } } });
    const changes: PressureChange[] = [];
    subscriptions.push(memtide.pressure$.subscribe((change) => changes.push(change)));
    const deadline = Date.now() + 2_000;
    while (changes.length === 0 && Date.now() < deadline) await sleep(20);
    expect(changes.length).toBeGreaterThanOrEqual(1);
    expect(changes[0]!.previous).toBeNull();
    expect(PRESSURE_LEVELS).toContain(changes[0]!.level);
    expect(Array.isArray(changes[0]!.reasons)).toBe(true);
  });

  it('config$ replays the config in force to every subscriber', async () => {
    const memtide = create({ config: { sampling: { intervalMs: 100 } } });
    await sleep(50);
    const seen: MemtideConfig[] = [];
    // Subscribed late, twice: each gets the current config at once.
    subscriptions.push(memtide.config$.subscribe((config) => seen.push(config)));
    subscriptions.push(memtide.config$.subscribe((config) => seen.push(config)));
    expect(seen).toHaveLength(2);
    expect(seen[0]!.sampling.intervalMs).toBe(100);
    expect(seen[1]).toBe(seen[0]);
    expect(memtide.config()).toBe(seen[0]);
  });

  it('two engines in one process keep their own rates, and stopping one leaves the other running', async () => {
    const fast = create({ config: { sampling: { intervalMs: 100 } } });
    const slow = create({ config: { sampling: { intervalMs: 300 } } });
    const a = collect(fast);
    const b = collect(slow);
    await sleep(1_250);
    expect(median(gaps(a.samples))).toBeLessThan(180);
    expect(median(gaps(b.samples))).toBeGreaterThanOrEqual(250);
    expect(median(gaps(b.samples))).toBeLessThan(450);
    expect(a.samples.length).toBeGreaterThan(1.6 * b.samples.length);

    a.subscription.unsubscribe();
    fast.stop();
    const before = b.samples.length;
    await sleep(700);
    expect(b.samples.length).toBeGreaterThanOrEqual(before + 1);
    expect(slow.config().sampling.intervalMs).toBe(300);
  });
});

/**
 * A host process that creates an engine, subscribes, stops it and then
 * reports `process.getActiveResourcesInfo()` before create, while running and
 * after stop. It runs in a fresh node (with tsx, over src/) because the
 * vitest worker keeps timers of its own that come and go.
 */
const HOST_SCRIPT = `
import { createHook } from 'node:async_hooks';
import { createMemtide } from ${JSON.stringify(path.join(REPO_ROOT, 'src/index.ts'))};
const [mode, configFile] = process.argv.slice(2);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const count = () => {
  const counts = {};
  for (const name of process.getActiveResourcesInfo()) counts[name] = (counts[name] ?? 0) + 1;
  return counts;
};
await sleep(50);
const before = count();
// Unref'd handles (the config watcher is persistent: false) are not in getActiveResourcesInfo(): track them too.
const live = new Map();
const hook = createHook({
  init: (id, type) => { if (type !== 'PROMISE') live.set(id, type); },
  destroy: (id) => live.delete(id),
}).enable();
const memtide = createMemtide({ env: {}, configFile });
let samples = 0;
let completed = false;
const subscriptions = [
  memtide.samples$.subscribe({ next: () => (samples += 1), complete: () => (completed = true) }),
  memtide.pressure$.subscribe(() => undefined),
  memtide.config$.subscribe(() => undefined),
];
await sleep(300);
const during = count();
const handlesDuring = [...new Set(live.values())];
if (mode === 'unsubscribe-first') for (const s of subscriptions) s.unsubscribe();
memtide.stop();
memtide.stop();
const atStop = samples;
const afterStop = count();
await sleep(300);
const settled = count();
// Destroy hooks run asynchronously (the last sleep's timer included): let them land.
for (let i = 0; i < 3; i += 1) await new Promise((resolve) => setImmediate(resolve));
hook.disable();
const leaked = [...live.values()].filter((type) => ['Timeout', 'FSEVENTWRAP', 'STATWATCHER', 'FSREQCALLBACK', 'FILEHANDLE', 'TCPSERVERWRAP', 'TCPWRAP'].includes(type));
process.stdout.write(JSON.stringify({ before, during, handlesDuring, afterStop, settled, leaked, samplesAfterStop: samples - atStop, completed, samples: atStop }) + '\\n');
// Nothing else is pending here: the process must now exit by itself.
`;

interface HostReport {
  before: Record<string, number>;
  during: Record<string, number>;
  /** async_hooks resource types alive while running. */
  handlesDuring: string[];
  afterStop: Record<string, number>;
  settled: Record<string, number>;
  /** Timers, watchers and fs requests created after "before" and not destroyed by "settled". */
  leaked: string[];
  samplesAfterStop: number;
  completed: boolean;
  samples: number;
  exitedByItself: boolean;
}

async function runHost(mode: 'unsubscribe-first' | 'still-subscribed'): Promise<HostReport> {
  const dir = fs.mkdtempSync(path.join(tmp, 'host-'));
  const script = path.join(dir, 'host.mjs');
  const configFile = path.join(dir, 'memtide.json');
  fs.writeFileSync(script, HOST_SCRIPT);
  fs.writeFileSync(configFile, JSON.stringify({ sampling: { intervalMs: 50 } }));
  const run = spawnTsx(script, [mode, configFile]); // embedded mode writes nothing
  const exited = run.closed.then(() => true);
  try {
    // The report comes ~0.7 s after start (plus tsx's start-up); then the process should end.
    const reported = await waitUntil(() => run.stdout().includes('\n'), 10_000);
    if (!reported) throw new Error(`the host script reported nothing; stderr:\n${run.stderr()}`);
    const exitedByItself = await Promise.race([exited, sleep(2_000).then(() => false)]);
    return { ...(JSON.parse(run.stdout()) as Omit<HostReport, 'exitedByItself'>), exitedByItself };
  } finally {
    run.kill();
  }
}

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}

describe('stop()', () => {
  it('releases every timer and watcher: resources return to what they were before create()', async () => {
    const report = await runHost('unsubscribe-first');
    expect(report.samples).toBeGreaterThanOrEqual(2);
    expect(report.during.Timeout ?? 0).toBeGreaterThan(report.before.Timeout ?? 0);
    expect(report.handlesDuring, 'the config file watcher is seen while running').toContain('FSEVENTWRAP');
    // Timers and the config watcher go synchronously; an fs read in flight may land a little later.
    expect(report.afterStop.Timeout ?? 0).toBe(report.before.Timeout ?? 0);
    expect(report.settled).toEqual(report.before);
    expect(report.leaked).toEqual([]);
    expect(report.samplesAfterStop).toBe(0);
    expect(report.exitedByItself, 'the host process exits once memtide is stopped').toBe(true);
  });

  it('may be called twice, and before any sample', () => {
    const memtide = create({ config: { sampling: { intervalMs: 100 } } });
    memtide.stop();
    expect(() => memtide.stop()).not.toThrow();
    const withHistory = create({ config: { history: { enabled: true, path: path.join(tmp, 'twice.db'), flushIntervalMs: 100 } } });
    withHistory.stop();
    expect(() => withHistory.stop()).not.toThrow();
  });

  // KNOWN BUG (reported to the lead): stop() only drops the engine's own subscriptions.
  // A host subscription to samples$ keeps the shared timer and the /proc reads alive:
  // samples keep arriving after stop(), samples$ never completes, and the process
  // cannot exit. Remove `.fails` once stop() completes the streams.
  it('stops sampling and completes samples$ even while the host is still subscribed', async () => {
    const report = await runHost('still-subscribed');
    expect(report.samplesAfterStop, 'samples after stop()').toBe(0);
    expect(report.completed, 'samples$ completed on stop()').toBe(true);
    expect(report.settled).toEqual(report.before);
    expect(report.leaked).toEqual([]);
    expect(report.exitedByItself).toBe(true);
  });
});

describe('history in embedded mode', () => {
  it('writes every emitted sample, the last batch flushed by stop()', async () => {
    const dbFile = path.join(tmp, 'e.db');
    const memtide = create({ config: { sampling: { intervalMs: 100 }, history: { enabled: true, path: dbFile, flushIntervalMs: 100 } } });
    expect(memtide.history).toBeDefined();
    const flushed: number[] = [];
    subscriptions.push(memtide.flushes$.subscribe((flush) => flushed.push(flush.samples)));
    const { samples, subscription } = collect(memtide);
    await sleep(350);
    // Synchronously: nothing can be emitted between the two calls.
    memtide.stop();
    subscription.unsubscribe();
    expect(samples.length).toBeGreaterThanOrEqual(2);
    expect(flushed.reduce((a, b) => a + b, 0)).toBe(samples.length);

    const db = new Database(dbFile, { readonly: true });
    try {
      const system = db.prepare('SELECT timestamp_ms AS t FROM system_samples ORDER BY timestamp_ms').all() as { t: number }[];
      expect(system.map((r) => r.t)).toEqual(samples.map((s) => s.timestampMs));
      const perComponent = db.prepare('SELECT count(DISTINCT timestamp_ms) AS n FROM component_samples').get() as { n: number };
      expect(perComponent.n).toBe(samples.length);
      const engine = db.prepare("SELECT count(*) AS n FROM component_samples WHERE component = 'engine'").get() as { n: number };
      expect(engine.n).toBe(samples.length);
      const pressure = db.prepare('SELECT count(*) AS n FROM pressure_events').get() as { n: number };
      expect(pressure.n).toBe(1);
    } finally {
      db.close();
    }
  });
});

describe('batchHold$ (batch transcription yields to the summary model)', () => {
  it('replays { hold: false } without a coordinator; follows an attached source by changes; released when it ends; completes on stop', () => {
    const memtide = create({ config: { sampling: { intervalMs: 1_000 } } });
    const seen: BatchHold[] = [];
    let completed = false;
    subscriptions.push(memtide.batchHold$.subscribe({ next: (h) => seen.push(h), error: (e: unknown) => expect.fail(String(e)), complete: () => (completed = true) }));
    expect(seen).toEqual([{ hold: false, reason: expect.stringContaining('no coordinator'), atMs: expect.any(Number) }]);
    const source = new Subject<BatchHold>();
    memtide.attachBatchHold(source);
    source.next({ atMs: 1, hold: false, reason: 'nothing busy' });
    source.next({ atMs: 2, hold: true, reason: 'Ollama busy' });
    source.next({ atMs: 3, hold: true, reason: 'still busy' });
    expect(seen.map((h) => h.hold)).toEqual([false, true]);
    // A late subscriber (an import starting now) sees the hold at once.
    const late: boolean[] = [];
    memtide.batchHold$.subscribe({ next: (h) => late.push(h.hold), error: () => undefined }).unsubscribe();
    expect(late).toEqual([true]);
    source.complete();
    expect(seen.at(-1)).toMatchObject({ hold: false, reason: expect.stringContaining('ended') });
    memtide.stop();
    expect(completed).toBe(true);
  });
});
