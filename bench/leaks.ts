/**
 * `npm run bench:leaks`: memtide's leak detector (`leakTrend`, default config)
 * against the anchor baselines, in one run on the same labelled traces
 * (bench/support/leakTraces.ts: 8 h at 10 s, tuning set and hold-out set).
 *
 * Baselines (each evaluated every 5 minutes; the first alarm counts):
 * - memwatch: node-memwatch's rule, "heap after full GC rises 5 times in a
 *   row", approximated with 2-minute bucket minima rising 5 times in a row.
 * - least squares: slope of a least-squares line over the last hour of raw
 *   samples >= 10 MB/h.
 * - MK + Theil-Sen (2 h): Mann-Kendall p < 0.05 (two-sided) and Theil-Sen slope
 *   >= 10 MB/h over the last 2 h of 1-minute medians.
 *
 * Scoring per trace: a trace without a leak is a false positive (FP) if any
 * alarm is raised, else a true negative (TN); a trace with a leak whose first
 * alarm comes before the leak started is a false positive (early alarm), one
 * with an alarm at or after the start a true positive (TP), else a false
 * negative (FN). Detection delay: first alarm at or after the start, minus the
 * start (for restart traces detected only after the restart: minus the time
 * growth resumed).
 *
 * `LEAK_HOLDOUT_SEED=n` draws another hold-out set (other seeds, same ranges).
 *
 * Targets (memtide, on both sets; exit 1 if any is missed): zero false
 * positives; every leak trace detected; 10 MB/h within 4 h (max); 30 MB/h at
 * a median <= 60 min; 100 MB/h median <= 40 min; 600 MB/h median <= 30 min.
 */
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { Subject, from, map } from 'rxjs';
import { leaksSchema } from '../src/app/schema/leaks.js';
import type { LeakDetected, LeakEvent } from '../src/model.js';
import { leakTrend, type LeakReset } from '../src/operators/leakTrend.js';
import { mannKendall } from '../src/operators/trend/mannKendall.js';
import { medianInPlace } from '../src/operators/trend/median.js';
import { theilSenSlope } from '../src/operators/trend/theilSen.js';
import { HOLDOUT, MB, TUNE, traceCount, traces, type LeakTrace, type SetParams, type TraceSet } from './support/leakTraces.js';

const MINUTE = 60_000;
const HOUR = 3_600_000;
const RATES = [10, 30, 100, 600].map((r) => r * MB);
const TARGETS: Record<number, { stat: 'median' | 'max'; minutes: number }> = {
  [10 * MB]: { stat: 'max', minutes: 240 },
  [30 * MB]: { stat: 'median', minutes: 60 },
  [100 * MB]: { stat: 'median', minutes: 40 },
  [600 * MB]: { stat: 'median', minutes: 30 },
};

/** The first alarm times of a detector on a trace (memtide: also its full event list). */
interface Run {
  alarms: number[];
  events?: LeakEvent[];
}
type Detector = { name: string; run: (trace: LeakTrace) => Run };

const config = leaksSchema.parse({});
let memtideCpuUs = 0;
let memtideSamples = 0;

function runMemtide(trace: LeakTrace): Run {
  const resets$ = new Subject<LeakReset>();
  const events: LeakEvent[] = [];
  let next = 0;
  const cpu = process.cpuUsage();
  from(Array.from({ length: trace.times.length }, (_, i) => i))
    .pipe(
      map((i) => {
        const at = trace.times[i] as number;
        // the governor's load/unload events arrive in time order between the samples
        while (next < trace.resets.length && (trace.resets[next] as number) <= at) resets$.next({ component: 'c', atMs: trace.resets[next++] as number });
        return { timestampMs: at, components: { c: trace.values[i] as number }, availableBytes: trace.available[i] as number };
      }),
      leakTrend(config, resets$),
    )
    .subscribe({ next: (e) => events.push(e), error: (e: unknown) => { throw e; } });
  const used = process.cpuUsage(cpu);
  memtideCpuUs += used.user + used.system;
  memtideSamples += trace.times.length;
  return { alarms: events.filter((e): e is LeakDetected => e.kind === 'leak').map((e) => e.detectedAtMs), events };
}

/** Evaluation times of the baselines: every 5 minutes from the start of the trace. */
function* every5min(trace: LeakTrace): Generator<{ at: number; end: number }> {
  let end = 0;
  for (let at = trace.startMs + 5 * MINUTE; at <= (trace.times[trace.times.length - 1] as number); at += 5 * MINUTE) {
    while (end < trace.times.length && (trace.times[end] as number) <= at) end++;
    yield { at, end };
  }
}

/** node-memwatch: minima of 2-minute buckets rising 5 times in a row. */
function runMemwatch(trace: LeakTrace): Run {
  const minima: number[] = [];
  const alarms: number[] = [];
  let bucket = Number.NaN;
  let lowest = Infinity;
  for (let i = 0; i < trace.times.length; i++) {
    const at = trace.times[i] as number;
    const b = Math.floor(at / (2 * MINUTE));
    if (b !== bucket) {
      if (!Number.isNaN(bucket)) {
        minima.push(lowest);
        const last6 = minima.slice(-6);
        if (last6.length === 6 && last6.every((v, j) => j === 0 || v > (last6[j - 1] as number))) alarms.push(at);
      }
      bucket = b;
      lowest = Infinity;
    }
    lowest = Math.min(lowest, trace.values[i] as number);
  }
  return { alarms };
}

/** Least-squares slope over the last hour of raw samples >= 10 MB/h. */
function runLeastSquares(trace: LeakTrace): Run {
  const alarms: number[] = [];
  for (const { at, end } of every5min(trace)) {
    if (at - trace.startMs < HOUR) continue;
    let begin = end;
    while (begin > 0 && (trace.times[begin - 1] as number) > at - HOUR) begin--;
    let mt = 0;
    let mv = 0;
    for (let i = begin; i < end; i++) {
      mt += (trace.times[i] as number) - at;
      mv += trace.values[i] as number;
    }
    mt /= end - begin;
    mv /= end - begin;
    let sxy = 0;
    let sxx = 0;
    for (let i = begin; i < end; i++) {
      const dt = (trace.times[i] as number) - at - mt;
      sxy += dt * ((trace.values[i] as number) - mv);
      sxx += dt * dt;
    }
    if ((sxy / sxx) * HOUR >= 10 * MB) alarms.push(at);
  }
  return { alarms };
}

/** Mann-Kendall (p < 0.05 two-sided) + Theil-Sen >= 10 MB/h over the last 2 h of 1-minute medians. */
function runMannKendall(trace: LeakTrace): Run {
  const minuteTimes: number[] = [];
  const minuteValues: number[] = [];
  const scratch = new Float64Array(64);
  for (let i = 0; i < trace.times.length; ) {
    const minute = Math.floor((trace.times[i] as number) / MINUTE);
    let k = 0;
    while (i < trace.times.length && Math.floor((trace.times[i] as number) / MINUTE) === minute) scratch[k++] = trace.values[i++] as number;
    minuteTimes.push(minute * MINUTE + MINUTE / 2);
    minuteValues.push(medianInPlace(scratch, 0, k));
  }
  const alarms: number[] = [];
  let end = 0;
  for (const { at } of every5min(trace)) {
    if (at - trace.startMs < 2 * HOUR) continue;
    while (end < minuteTimes.length && (minuteTimes[end] as number) <= at) end++;
    let begin = end;
    while (begin > 0 && (minuteTimes[begin - 1] as number) > at - 2 * HOUR) begin--;
    if (Math.abs(mannKendall(minuteValues, begin, end).z) < 1.96) continue;
    if (theilSenSlope(minuteTimes, minuteValues, begin, end) * HOUR >= 10 * MB) alarms.push(at);
  }
  return { alarms };
}

const DETECTORS: Detector[] = [
  { name: 'memtide', run: runMemtide },
  { name: 'memwatch (5 rising minima)', run: runMemwatch },
  { name: 'least squares 1 h >= 10 MB/h', run: runLeastSquares },
  { name: 'MK + Theil-Sen 2 h', run: runMannKendall },
];

interface Outcome {
  trace: Pick<LeakTrace, 'id' | 'scenario' | 'leakRateBytesPerHour' | 'noiseSigmaBytes'>;
  kind: 'TP' | 'FP' | 'FN' | 'TN';
  delayMin: number | null;
  /** memtide only: |reported slope - true| / true at the first detection. */
  slopeError?: number;
  /** memtide only, restart traces: leak, clear at or after the restart, leak again after growth resumed. */
  redetected?: boolean;
  /** memtide only: clears while the leak was still growing (not at a restart). */
  spuriousClears?: number;
}

function score(trace: LeakTrace, run: Run): Outcome {
  const base = { trace: { id: trace.id, scenario: trace.scenario, leakRateBytesPerHour: trace.leakRateBytesPerHour, noiseSigmaBytes: trace.noiseSigmaBytes } };
  const start = trace.leakStartMs;
  if (start === null) return { ...base, kind: run.alarms.length > 0 ? 'FP' : 'TN', delayMin: null };
  if (run.alarms.some((a) => a < start)) return { ...base, kind: 'FP', delayMin: null };
  const first = run.alarms.find((a) => a >= start);
  if (first === undefined) return { ...base, kind: 'FN', delayMin: null };
  const restart = trace.restartAtMs;
  const from = restart !== null && first >= restart ? (trace.resumeAtMs as number) : start;
  const outcome: Outcome = { ...base, kind: 'TP', delayMin: (first - from) / MINUTE };
  if (run.events) {
    const rate = trace.leakRateBytesPerHour as number;
    const leaks = run.events.filter((e): e is LeakDetected => e.kind === 'leak');
    outcome.slopeError = Math.abs((leaks.find((l) => l.detectedAtMs === first)?.slopeBytesPerHour ?? 0) - rate) / rate;
    const clears = run.events.filter((e) => e.kind === 'clear');
    outcome.spuriousClears = clears.filter((c) => restart === null || c.atMs < restart).length;
    if (restart !== null) {
      const resume = trace.resumeAtMs as number;
      outcome.redetected =
        leaks.some((l) => l.detectedAtMs < restart) && clears.some((c) => c.atMs >= restart) && leaks.some((l) => l.detectedAtMs >= resume);
    }
  }
  return outcome;
}

const quantile = (values: number[], q: number): number => {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
};
const median = (values: number[]) => {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};
const fmt = (x: number, digits = 0) => (Number.isFinite(x) ? x.toFixed(digits) : '—');

interface SetResult {
  set: TraceSet;
  outcomes: Map<string, Outcome[]>;
  seconds: Map<string, number>;
}

function runSet(set: TraceSet, params: SetParams): SetResult {
  const outcomes = new Map<string, Outcome[]>(DETECTORS.map((d) => [d.name, []]));
  const seconds = new Map<string, number>(DETECTORS.map((d) => [d.name, 0]));
  for (const trace of traces(set, params)) {
    for (const detector of DETECTORS) {
      const t0 = performance.now();
      const run = detector.run(trace);
      seconds.set(detector.name, (seconds.get(detector.name) as number) + (performance.now() - t0) / 1000);
      (outcomes.get(detector.name) as Outcome[]).push(score(trace, run));
    }
  }
  return { set, outcomes, seconds };
}

function report(result: SetResult, params: SetParams): string[] {
  const failures: string[] = [];
  const lines: string[] = [];
  const n = traceCount(params);
  const negatives = (result.outcomes.get('memtide') as Outcome[]).filter((o) => o.trace.leakRateBytesPerHour === null).length;
  lines.push(`### ${result.set === 'tune' ? 'Tuning set' : 'Hold-out set'}: ${n} traces (${negatives} without a leak, ${n - negatives} with), noise σ ${params.noiseSigmas.map((s) => s / MB).join(' / ')} MB`, '');
  lines.push(
    `| detector | TP | FP | FN | TN | FP rate (no-leak traces) | ${RATES.map((r) => `${r / MB} MB/h: found, median / max min`).join(' | ')} |`,
    `|---|---:|---:|---:|---:|---:|${RATES.map(() => '---:').join('|')}|`,
  );
  for (const detector of DETECTORS) {
    const os_ = result.outcomes.get(detector.name) as Outcome[];
    const count = (k: Outcome['kind']) => os_.filter((o) => o.kind === k).length;
    const negFp = os_.filter((o) => o.trace.leakRateBytesPerHour === null && o.kind === 'FP').length;
    const cells = RATES.map((rate) => {
      const of = os_.filter((o) => o.trace.leakRateBytesPerHour === rate);
      const delays = of.filter((o) => o.kind === 'TP').map((o) => o.delayMin as number);
      return `${delays.length}/${of.length}, ${fmt(median(delays))} / ${fmt(delays.length ? Math.max(...delays) : Number.NaN)}`;
    });
    lines.push(`| ${detector.name} | ${count('TP')} | ${count('FP')} | ${count('FN')} | ${count('TN')} | ${fmt((100 * negFp) / negatives, 1)}% | ${cells.join(' | ')} |`);
  }
  lines.push('');
  // where the baselines' false positives come from
  const scenarios = [...new Set((result.outcomes.get('memtide') as Outcome[]).map((o) => o.trace.scenario))];
  lines.push(`False positives by scenario (traces flagged / traces):`, '', `| detector | ${scenarios.join(' | ')} |`, `|---|${scenarios.map(() => '---:').join('|')}|`);
  for (const detector of DETECTORS) {
    const os_ = result.outcomes.get(detector.name) as Outcome[];
    lines.push(`| ${detector.name} | ${scenarios.map((s) => { const of = os_.filter((o) => o.trace.scenario === s); return `${of.filter((o) => o.kind === 'FP').length}/${of.length}`; }).join(' | ')} |`);
  }
  lines.push('');
  // memtide extras and the ratios against the best baseline
  const mine = result.outcomes.get('memtide') as Outcome[];
  const extras = RATES.map((rate) => {
    const of = mine.filter((o) => o.trace.leakRateBytesPerHour === rate && o.kind === 'TP');
    const restarts = mine.filter((o) => o.trace.leakRateBytesPerHour === rate && o.trace.scenario === 'leak-restart');
    return `${rate / MB} MB/h: slope error median ${fmt(100 * median(of.map((o) => o.slopeError as number)))}% (p90 ${fmt(100 * quantile(of.map((o) => o.slopeError as number), 0.9))}%), re-detected after restart ${restarts.filter((o) => o.redetected).length}/${restarts.length}, clears while still leaking ${of.reduce((a, o) => a + (o.spuriousClears ?? 0), 0)}`;
  });
  lines.push('memtide details:', '', ...extras.map((e) => `- ${e}`), '');
  const mk = result.outcomes.get('MK + Theil-Sen 2 h') as Outcome[];
  const ratio = (rate: number) => {
    const a = median(mk.filter((o) => o.trace.leakRateBytesPerHour === rate && o.kind === 'TP').map((o) => o.delayMin as number));
    const b = median(mine.filter((o) => o.trace.leakRateBytesPerHour === rate && o.kind === 'TP').map((o) => o.delayMin as number));
    return `${rate / MB} MB/h ${fmt(a / b, 1)}x`;
  };
  lines.push(`Median delay, MK + Theil-Sen 2 h / memtide: ${RATES.map(ratio).join(', ')}.`, '');
  for (const line of lines) console.log(line);

  // targets
  const fp = mine.filter((o) => o.kind === 'FP');
  if (fp.length > 0) failures.push(`${result.set}: ${fp.length} false positive(s): ${fp.map((o) => o.trace.id).join(', ')}`);
  const fn = mine.filter((o) => o.kind === 'FN');
  if (fn.length > 0) failures.push(`${result.set}: ${fn.length} leak(s) never detected: ${fn.map((o) => o.trace.id).join(', ')}`);
  for (const rate of RATES) {
    const target = TARGETS[rate] as { stat: 'median' | 'max'; minutes: number };
    const delays = mine.filter((o) => o.trace.leakRateBytesPerHour === rate && o.kind === 'TP').map((o) => o.delayMin as number);
    const value = target.stat === 'median' ? median(delays) : Math.max(...delays);
    if (!(value <= target.minutes)) failures.push(`${result.set}: ${rate / MB} MB/h ${target.stat} delay ${fmt(value)} min > ${target.minutes} min`);
  }
  return failures;
}

const wall0 = performance.now();
console.log(`# bench:leaks — ${new Date().toISOString()}, node ${process.version}, ${os.cpus().length} cores`, '');
const failures: string[] = [];
const timings: string[] = [];
// LEAK_HOLDOUT_SEED=n draws another hold-out set (same parameter ranges, other seeds)
const holdout: SetParams = { ...HOLDOUT, seedBase: Number(process.env.LEAK_HOLDOUT_SEED ?? HOLDOUT.seedBase) };
for (const [set, params] of [['tune', TUNE], ['holdout', holdout]] as const) {
  const result = runSet(set, params);
  failures.push(...report(result, params));
  timings.push(`${set}: ${[...result.seconds].map(([name, s]) => `${name} ${s.toFixed(1)} s`).join(', ')}`);
}
console.log(`memtide CPU: ${fmt(memtideCpuUs / memtideSamples, 2)} µs per sample (${memtideSamples} samples at 10 s, 1-minute buckets, evaluated every minute, quiet windows every third).`);
console.log(`Wall time: ${timings.join('; ')}; total ${((performance.now() - wall0) / 1000).toFixed(0)} s.`, '');
if (failures.length > 0) {
  console.log('TARGETS MISSED:');
  for (const f of failures) console.log(`- ${f}`);
  process.exit(1);
}
console.log('OK: zero false positives, every leak found; 10 MB/h within 4 h, 30 MB/h median <= 60 min, 100 MB/h <= 40 min, 600 MB/h <= 30 min, on both sets.');
