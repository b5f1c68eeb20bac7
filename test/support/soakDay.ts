/**
 * The virtual-day soak, run in a child process of its own (so that the heap
 * it measures is the engine's, not vitest's, and so that it can force
 * garbage collection):
 *
 *   node --expose-gc --import tsx test/support/soakDay.ts '{"hours":24,"dbPath":"/tmp/x.db"}'
 *
 * The full engine (`createMemtide`, history to SQLite, alerts on) runs on a
 * virtual-time scheduler over the synthetic workload of soakWorkload.ts.
 * `createMemtide` stamps samples with the scheduler's clock, so sample times,
 * history retention and every timer agree. Every
 * `checkpointEveryMs` of virtual time it forces a full GC and records the
 * real heap, RSS, the number of samples still reachable (a
 * FinalizationRegistry counts the collected ones) and the scheduler's queue.
 * The last line of stdout is the JSON report (`SoakDayReport`).
 */
import Database from 'better-sqlite3';
import type { VirtualTimeScheduler } from 'rxjs';
import { createMemtide } from '../../src/app/memtide.js';
import type { Alert, LeakEvent, MemorySample, PressureChange } from '../../src/model.js';
import type { FlushResult } from '../../src/sinks/historySink.js';
import { syntheticWorkload } from './soakWorkload.js';
import { drain, virtualScheduler } from './virtualTime.js';

export interface SoakDayOptions {
  hours: number;
  intervalMs?: number;
  dbPath: string;
  checkpointEveryMs?: number;
  rawRetentionMs?: number;
  /** Positive control: the host keeps every sample (a leak the checks must see)... */
  retainSamples?: boolean;
  /** ...and this many bytes more with each (a steeper leak, found sooner). */
  retainExtraBytes?: number;
}

export interface Checkpoint {
  /** Virtual ms since the start. */
  atMs: number;
  heapUsedBytes: number;
  rssBytes: number;
  externalBytes: number;
  /** Samples emitted and not yet garbage-collected. */
  liveSamples: number;
  /** Configs (one per live edit), alert notifications and pressure changes emitted and not yet collected. */
  liveConfigs: number;
  liveAlerts: number;
  livePressureChanges: number;
  /** Actions queued on the virtual scheduler (timers). */
  scheduledActions: number;
}

export interface SoakDayReport {
  startMs: number;
  endMs: number;
  intervalMs: number;
  wallMs: number;
  samples: number;
  checkpoints: Checkpoint[];
  flushes: { count: number; samples: number; maxSamples: number; maxPressureEvents: number; retentionRuns: number; rawDeleted: number; lastRetentionAtMs: number | null };
  leaks: Array<LeakEvent & { relMs: number }>;
  alerts: { byKey: Record<string, number>; firing: string[] };
  pressure: { changes: number; levels: Record<string, number> };
  configPatches: number;
  problems: string[];
  db: Record<string, number>;
}

const options = JSON.parse(process.argv[2] ?? '{}') as SoakDayOptions;
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');
const intervalMs = options.intervalMs ?? 1000;
const checkpointEveryMs = options.checkpointEveryMs ?? 60_000;
const durationMs = options.hours * 3_600_000;

const scheduler = virtualScheduler();
// A Monday, midnight UTC: the engine's samples are stamped with the scheduler's clock.
const startMs = Date.UTC(2026, 0, 5);
scheduler.frame = startMs;

/** Runs scheduled actions up to `targetMs`, one at a time, letting promises settle between them. */
async function advanceTo(s: VirtualTimeScheduler, targetMs: number): Promise<void> {
  for (;;) {
    const next = s.actions[0];
    if (!next || next.delay > targetMs) break;
    s.actions.shift();
    s.frame = next.delay;
    const error: unknown = next.execute(next.state, next.delay);
    if (error) throw error;
    await drain();
  }
  s.frame = targetMs;
  await drain();
}

const workload = syntheticWorkload(() => scheduler.now(), startMs, process.pid);
const memtide = createMemtide({
  env: {},
  readers: workload.readers,
  scheduler,
  config: {
    sampling: { intervalMs },
    history: {
      enabled: true,
      path: options.dbPath,
      flushIntervalMs: 5_000,
      rawRetentionMs: options.rawRetentionMs ?? 6 * 3_600_000,
      retentionIntervalMs: 3_600_000,
    },
    alerts: { enabled: true, componentBudgets: { ollama: '2GB' } },
  },
});

/** Counts objects emitted per kind and those collected since (FinalizationRegistry). */
const emitted = { sample: 0, config: 0, alert: 0, pressure: 0 };
const collected = { sample: 0, config: 0, alert: 0, pressure: 0 };
type Kind = keyof typeof emitted;
const registry = new FinalizationRegistry<Kind>((kind) => {
  collected[kind] += 1;
});
const track = (kind: Kind, value: object) => {
  emitted[kind] += 1;
  registry.register(value, kind);
};
const live = (kind: Kind) => emitted[kind] - collected[kind];
const retained: Array<MemorySample | number[]> = [];
const flushes: SoakDayReport['flushes'] = { count: 0, samples: 0, maxSamples: 0, maxPressureEvents: 0, retentionRuns: 0, rawDeleted: 0, lastRetentionAtMs: null };
const leaks: SoakDayReport['leaks'] = [];
const alertCounts: Record<string, number> = {};
const firing = new Set<string>();
const levels: Record<string, number> = {};
let pressureChanges = 0;
const problems: string[] = [];

const subscriptions = [
  memtide.samples$.subscribe({
    next: (sample) => {
      track('sample', sample);
      if (options.retainSamples) retained.push(sample);
      if (options.retainExtraBytes) retained.push(new Array<number>(Math.ceil(options.retainExtraBytes / 8)).fill(emitted.sample));
    },
    error: (e: unknown) => problems.push(`samples: ${String(e)}`),
  }),
  memtide.flushes$.subscribe({
    next: (f: FlushResult) => {
      flushes.count += 1;
      flushes.samples += f.samples;
      flushes.maxSamples = Math.max(flushes.maxSamples, f.samples);
      flushes.maxPressureEvents = Math.max(flushes.maxPressureEvents, f.pressureEvents);
      if (f.retention) {
        flushes.retentionRuns += 1;
        flushes.rawDeleted += f.retention.rawDeleted;
        flushes.lastRetentionAtMs = f.atMs - startMs;
      }
    },
    error: (e: unknown) => problems.push(`flushes: ${String(e)}`),
  }),
  memtide.leaks$.subscribe({ next: (e: LeakEvent) => leaks.push({ ...e, relMs: (e.kind === 'leak' ? e.detectedAtMs : e.atMs) - startMs }), error: (e: unknown) => problems.push(`leaks: ${String(e)}`) }),
  memtide.alerts$.subscribe({
    next: (a: Alert) => {
      track('alert', a);
      const key = `${a.key} ${a.status}`;
      alertCounts[key] = (alertCounts[key] ?? 0) + 1;
      if (a.status === 'firing') firing.add(a.key);
      else firing.delete(a.key);
    },
    error: (e: unknown) => problems.push(`alerts: ${String(e)}`),
  }),
  memtide.pressure$.subscribe({
    next: (c: PressureChange) => {
      track('pressure', c);
      pressureChanges += 1;
      levels[c.level] = (levels[c.level] ?? 0) + 1;
    },
    error: (e: unknown) => problems.push(`pressure: ${String(e)}`),
  }),
  memtide.config$.subscribe({ next: (config) => track('config', config), error: (e: unknown) => problems.push(`config: ${String(e)}`) }),
  memtide.problems$.subscribe({ next: (p) => problems.push(`${p.source}: ${String(p.error)}`), error: () => undefined }),
];

const checkpoints: Checkpoint[] = [];
async function checkpoint(): Promise<void> {
  // A full collection; the finalizers it queues run as tasks (a sample collected now is counted by the next checkpoint at the latest).
  gc!();
  await drain();
  const memory = process.memoryUsage();
  checkpoints.push({
    atMs: scheduler.now() - startMs,
    heapUsedBytes: memory.heapUsed,
    rssBytes: memory.rss,
    externalBytes: memory.external,
    liveSamples: live('sample'),
    liveConfigs: live('config'),
    liveAlerts: live('alert'),
    livePressureChanges: live('pressure'),
    scheduledActions: scheduler.actions.length,
  });
}

const wallStart = performance.now();
let configPatches = 0;
for (let t = 0; t <= durationMs; t += checkpointEveryMs) {
  await advanceTo(scheduler, startMs + t);
  await checkpoint();
  // A live config edit every virtual hour (the settings page): config subscribers must not pile up.
  if (t > 0 && t % 3_600_000 === 0) {
    memtide.patchConfig({ pressure: { dwellMs: configPatches % 2 ? 30_000 : 31_000 } }, 'soak');
    configPatches += 1;
  }
}
const endMs = scheduler.now();
memtide.stop();
for (const s of subscriptions) s.unsubscribe();
const wallMs = performance.now() - wallStart;

const db = new Database(options.dbPath, { readonly: true });
const count = (sql: string) => Number((db.prepare(sql).get() as { n: number | null }).n ?? 0);
const dbCounts = {
  systemSamples: count('SELECT count(*) AS n FROM system_samples'),
  componentSamples: count('SELECT count(*) AS n FROM component_samples'),
  components: count('SELECT count(DISTINCT component) AS n FROM component_samples'),
  firstRawMs: count('SELECT min(timestamp_ms) AS n FROM system_samples') - startMs,
  lastRawMs: count('SELECT max(timestamp_ms) AS n FROM system_samples') - startMs,
  systemBuckets: count('SELECT count(*) AS n FROM system_buckets'),
  systemBucketSamples: count('SELECT sum(sample_count) AS n FROM system_buckets'),
  fullSystemBuckets: count(`SELECT count(*) AS n FROM system_buckets WHERE sample_count = ${60_000 / intervalMs}`),
  componentBuckets: count('SELECT count(*) AS n FROM component_buckets'),
  engineBucketSamples: count("SELECT sum(sample_count) AS n FROM component_buckets WHERE component = 'engine'"),
  pressureEvents: count('SELECT count(*) AS n FROM pressure_events'),
  alerts: count('SELECT count(*) AS n FROM alerts'),
  leakAlerts: count("SELECT count(*) AS n FROM alerts WHERE kind = 'leak'"),
};
db.close();

const report: SoakDayReport = {
  startMs,
  endMs,
  intervalMs,
  wallMs,
  samples: emitted.sample,
  checkpoints,
  flushes,
  leaks,
  alerts: { byKey: alertCounts, firing: [...firing] },
  pressure: { changes: pressureChanges, levels },
  configPatches,
  problems,
  db: dbCounts,
};
process.stdout.write(`${JSON.stringify(report)}\n`);
