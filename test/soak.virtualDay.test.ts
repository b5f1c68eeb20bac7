/**
 * Soak: a virtual day of the full engine. `createMemtide()` with fixture
 * readers (test/support/soakWorkload.ts: pressure episodes, a leaking
 * backend restarted later, Ollama models loading and unloading, whisper
 * batches, a webview's GC sawtooth) on a virtual-time scheduler, history to a
 * SQLite file, alerts on, samples every second for 24 virtual hours (86 401
 * samples). It runs in a child process (test/support/soakDay.ts) started with
 * --expose-gc, so that the heap measured is the engine's alone and can be
 * measured after a full collection.
 *
 * The engine must not leak by its own detector: the real heap after GC,
 * taken every 2 virtual minutes, goes through `leakTrend` as the `engine`
 * component with the default `leaks` config; the engine's live detector
 * watches the process's real RSS the whole day. A positive control (the
 * host keeps every sample and a little more: 2.5 virtual hours) shows that
 * the heap check, the engine's own detector and the retained-sample count
 * each do fail on a leak.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultLeaksConfig, summarize, type Point, type SeriesSummary } from '../scripts/soak/analysis.js';
import type { SoakDayOptions, SoakDayReport } from './support/soakDay.js';
import { WORKLOAD } from './support/soakWorkload.js';
import { spawnTsx } from './support/tsxChild.js';

const HOUR = 3_600_000;
const MIN = 60_000;
const MB = 1_000_000;
/** Components with a rule or the engine's: the store writes a row for each, every sample. */
const COMPONENTS = 6;

let tmp: string;

async function runDay(options: Omit<SoakDayOptions, 'dbPath'>, name: string): Promise<SoakDayReport> {
  const dbPath = path.join(tmp, `${name}.db`);
  const run = spawnTsx('test/support/soakDay.ts', [JSON.stringify({ ...options, dbPath })], { nodeArgs: ['--expose-gc'] });
  const code = await run.closed;
  if (code !== 0) throw new Error(`the soak child (${name}) exited ${code}:\n${run.stderr()}`);
  return JSON.parse(run.stdout().trim().split('\n').at(-1)!) as SoakDayReport;
}

const heapOf = (r: SoakDayReport): Point[] => r.checkpoints.map((c) => ({ timestampMs: r.startMs + c.atMs, bytes: c.heapUsedBytes }));
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
/** Median heap over [fromMs, toMs) of the run. */
const heapBetween = (r: SoakDayReport, fromMs: number, toMs: number) =>
  median(r.checkpoints.filter((c) => c.atMs >= fromMs && c.atMs < toMs).map((c) => c.heapUsedBytes));

let day: SoakDayReport;
let control: SoakDayReport;
let dayHeap: SeriesSummary;
let controlHeap: SeriesSummary;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memtide-soak-day-'));
  [day, control] = await Promise.all([
    runDay({ hours: 24, intervalMs: 1000, checkpointEveryMs: 2 * MIN }, 'day'),
    // The control keeps every sample and 8 kB more with it: about 45 MB/h of heap, 55 MB/h of RSS.
    runDay({ hours: 2.5, intervalMs: 1000, checkpointEveryMs: 2 * MIN, retainSamples: true, retainExtraBytes: 8_000 }, 'control'),
  ]);
  dayHeap = await summarize(heapOf(day), defaultLeaksConfig());
  controlHeap = await summarize(heapOf(control), defaultLeaksConfig());
  const mbOf = (b: number) => `${(b / MB).toFixed(2)} MB`;
  process.stdout.write(
    `virtual day: ${day.samples} samples in ${(day.wallMs / 1000).toFixed(1)} s; heap after GC ${mbOf(dayHeap.startBytes)} -> peak ${mbOf(dayHeap.peakBytes)} -> ${mbOf(dayHeap.endBytes)}, ` +
      `floor slope ${(dayHeap.floorSlopeBytesPerHour / MB).toFixed(3)} MB/h; RSS ${mbOf(day.checkpoints[0]!.rssBytes)} -> ${mbOf(day.checkpoints.at(-1)!.rssBytes)}; ` +
      `control: heap ${mbOf(controlHeap.startBytes)} -> ${mbOf(controlHeap.endBytes)}, leak ${JSON.stringify(controlHeap.events)}\n`,
  );
}, 600_000);

afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('soak: a virtual day of the full engine at 1 s sampling', () => {
  it('ran the whole day without a problem', () => {
    expect(day.problems).toEqual([]);
    expect(day.endMs - day.startMs).toBe(24 * HOUR);
    expect(day.samples).toBe(24 * 3600 + 1);
    expect(day.configPatches).toBe(24);
  });

  it("the real heap after GC, as the engine component, is no leak to leakTrend; a host keeping every sample is one", () => {
    expect(dayHeap.samples).toBe(24 * 30 + 1);
    expect(dayHeap.events, 'leak events on the heap of the day').toEqual([]);
    // The control: the same measurement and detector do report a leak.
    expect(controlHeap.leak).toBe(true);
    expect(controlHeap.floorSlopeBytesPerHour).toBeGreaterThan(defaultLeaksConfig().minHourlyGrowthBytes);
  });

  it('the heap stops growing once warm: hour 2 to the last hour adds less than 4 MB (50 bytes a sample)', () => {
    // Measured: about 1 MB, all of it V8's own (compiled code, feedback vectors of paths first taken later in the day).
    const growth = heapBetween(day, 23 * HOUR, 24 * HOUR + 1) - heapBetween(day, HOUR, 2 * HOUR);
    expect(growth).toBeLessThan(4 * MB);
    const controlGrowth = heapBetween(control, HOUR, 2 * HOUR) - heapBetween(control, 0, HOUR);
    expect(controlGrowth, 'the control grows past the bound within an hour').toBeGreaterThan(4 * MB);
  });

  it("the engine's live detector, watching the process's real RSS all day, reports no leak of itself", () => {
    expect(day.leaks.filter((e) => e.component === 'engine')).toEqual([]);
    expect(Object.keys(day.alerts.byKey).filter((key) => key.includes('engine'))).toEqual([]);
    // The control's engine does leak, and its own detector says so.
    expect(control.leaks.filter((e) => e.kind === 'leak').map((e) => e.component)).toEqual(['engine']);
    expect(control.alerts.byKey['leak:engine firing']).toBe(1);
  });

  it('keeps no sample beyond the pending history batch, no old config, alert or level, and a fixed number of timers', () => {
    // Samples still reachable after a full GC: the replayed latest and the current flush batch (5 s at 1 s),
    // far below the 120 samples between two checkpoints.
    const maxOf = (key: 'liveSamples' | 'liveConfigs' | 'liveAlerts' | 'livePressureChanges') => Math.max(...day.checkpoints.map((c) => c[key]));
    expect(maxOf('liveSamples')).toBeLessThanOrEqual(25);
    expect(control.checkpoints.at(-1)!.liveSamples, 'the control keeps them all').toBeGreaterThan(0.9 * control.samples);
    // 24 live edits: the config in force and the one createMemtide started with (it compares against it) stay, not every old one.
    expect(maxOf('liveConfigs')).toBeLessThanOrEqual(3);
    // 35 notifications and 9 level changes over the day: only the latest per alert key / the current level stay.
    expect(maxOf('liveAlerts')).toBeLessThanOrEqual(4);
    expect(maxOf('livePressureChanges')).toBeLessThanOrEqual(2);
    // Timers on the scheduler: sampling, history flush, alert timers; the same at the end as after an hour.
    const actions = day.checkpoints.map((c) => c.scheduledActions);
    expect(Math.max(...actions)).toBeLessThanOrEqual(6);
    const late = day.checkpoints.filter((c) => c.atMs >= 20 * HOUR).map((c) => c.scheduledActions);
    const early = day.checkpoints.filter((c) => c.atMs >= HOUR && c.atMs < 5 * HOUR).map((c) => c.scheduledActions);
    expect(Math.max(...late)).toBeLessThanOrEqual(Math.max(...early));
    // The history buffer is one flush interval of samples, never more.
    expect(day.flushes.maxSamples).toBe(5);
    expect(day.flushes.samples).toBe(day.samples);
  });

  it('history holds the expected rows after retention (raw: 6 h) and aggregation (1 min)', () => {
    // Retention runs at the first flush (5 s) and then at the first flush an hour after the last run.
    expect(day.flushes.retentionRuns).toBe(24);
    const lastRetention = 23 * HOUR + 5_000;
    expect(day.flushes.lastRetentionAtMs).toBe(lastRetention);
    const cut = lastRetention - 6 * HOUR;
    const rawSamples = (24 * HOUR - cut) / 1000 + 1;
    expect(day.db).toMatchObject({
      systemSamples: rawSamples, // 25 196
      componentSamples: COMPONENTS * rawSamples,
      components: COMPONENTS,
      firstRawMs: cut,
      lastRawMs: 24 * HOUR,
      // Aggregates outlive the raw rows: every minute of the day, 60 samples each, plus the last sample's minute.
      systemBuckets: 24 * 60 + 1,
      fullSystemBuckets: 24 * 60,
      systemBucketSamples: day.samples,
      componentBuckets: COMPONENTS * (24 * 60 + 1),
      engineBucketSamples: day.samples,
      pressureEvents: day.pressure.changes,
      alerts: Object.values(day.alerts.byKey).reduce((a, b) => a + b, 0),
    });
    // Deleted: every sample before the cut, a system row and a row per component each.
    expect(day.flushes.rawDeleted).toBe((cut / 1000) * (COMPONENTS + 1));
  });

  it('finds the injected leak, clears it at the restart, and reports nothing else', () => {
    const leak = day.leaks.find((e) => e.kind === 'leak');
    expect(leak).toMatchObject({ component: 'backend' });
    if (leak?.kind !== 'leak') throw new Error('no leak reported');
    expect(leak.relMs).toBeGreaterThan(WORKLOAD.leakStartMs);
    expect(leak.relMs - WORKLOAD.leakStartMs, 'found within 90 minutes').toBeLessThan(90 * MIN);
    expect(Math.abs(leak.slopeBytesPerHour / WORKLOAD.leakBytesPerHour - 1)).toBeLessThan(0.3);
    const clear = day.leaks.find((e) => e.kind === 'clear');
    expect(clear).toMatchObject({ component: 'backend' });
    expect(clear!.relMs - WORKLOAD.backendRestartMs).toBeGreaterThanOrEqual(0);
    expect(clear!.relMs - WORKLOAD.backendRestartMs).toBeLessThan(15 * MIN);
    // Steps (models), a KV warm-up, batches, the sawtooth, pressure: none is a leak.
    expect(day.leaks).toHaveLength(2);
    expect(day.alerts.byKey['leak:backend firing']).toBeGreaterThanOrEqual(1);
    expect(day.alerts.byKey['leak:backend resolved']).toBe(1);
    expect(day.db.leakAlerts).toBe(day.alerts.byKey['leak:backend firing']! + 1);
  });

  it('follows the pressure episodes and the model budget, and ends the day with nothing firing', () => {
    // low -> medium -> low -> high -> low -> critical -> low -> medium -> low
    expect(day.pressure.changes).toBe(1 + 2 * WORKLOAD.hogs.length);
    expect(day.pressure.levels).toEqual({ low: 5, medium: 2, high: 1, critical: 1 });
    expect(day.alerts.byKey['pressure firing']).toBe(WORKLOAD.hogs.length);
    expect(day.alerts.byKey['pressure resolved']).toBe(WORKLOAD.hogs.length);
    // Every model (12 loads) is over the 2 GB ollama budget while loaded.
    expect(day.alerts.byKey['budget:ollama firing']).toBe(12);
    expect(day.alerts.byKey['budget:ollama resolved']).toBe(12);
    expect(day.alerts.firing).toEqual([]);
  });
});
