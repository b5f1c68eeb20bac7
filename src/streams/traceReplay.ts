/**
 * Replays a trace through the live engine's analysis in virtual time: the
 * clock is the trace's own timestamps, and timers the operators start (alert
 * group waits, repeats, recoveries) fire in order between the samples, as
 * they would have live. Hours of trace take milliseconds.
 */
import { Subject, VirtualTimeScheduler, of, type Subscription } from 'rxjs';
import type { MemtideConfig } from '../app/configSchema.js';
import type { Alert, ComponentUsage, LeakDetected, MemorySample, PressureLevel } from '../model.js';
import type { TraceSample } from '../sources/traceCsv.js';
import { memoryAnalysis } from './analysis.js';

export interface ReplayResult {
  leaks: Array<Pick<LeakDetected, 'component' | 'detectedAtMs' | 'slopeBytesPerHour' | 'confidence'>>;
  pressure: Array<{ atMs: number; level: PressureLevel }>;
  alerts: Alert[];
  /** Rows and samples read, and the trace's time span. */
  stats: { samples: number; rows: number; firstMs: number | null; lastMs: number | null };
}

/** A trace row group as the engine's sample (system memory only as far as the trace has it). */
export function sampleOfTrace(trace: TraceSample, system: { totalBytes: number; availableBytes: number }): MemorySample {
  const components: Record<string, ComponentUsage> = {};
  for (const [name, bytes] of trace.components) {
    components[name] = { rssBytes: bytes, pssBytes: null, pssAnonBytes: null, processCount: 1 };
  }
  return {
    timestampMs: trace.timestampMs,
    system: {
      totalBytes: system.totalBytes,
      availableBytes: system.availableBytes,
      usedBytes: Math.max(0, system.totalBytes - system.availableBytes),
      swapTotalBytes: 0,
      swapUsedBytes: 0,
      psi: null,
      physicalTotalBytes: system.totalBytes,
      cgroupLimitBytes: null,
    },
    components,
    processes: [],
    self: { pid: 0, rssBytes: 0, heapUsedBytes: 0, heapTotalBytes: 0, externalBytes: 0, arrayBuffersBytes: 0, sampleCpuMs: 0 },
  };
}

/**
 * The trace's sampling interval (median of the first gaps), so the replay
 * judges "sampling stalled" against the trace's own rate, not the live default.
 */
function traceInterval(first: readonly TraceSample[]): number | null {
  const gaps = first
    .slice(1)
    .map((sample, i) => sample.timestampMs - (first[i]?.timestampMs ?? sample.timestampMs))
    .filter((gap) => gap > 0)
    .sort((a, b) => a - b);
  return gaps.length ? (gaps[Math.floor(gaps.length / 2)] ?? null) : null;
}

/** Drives the analysis from an async sequence of trace samples; rejects on the first bad row (nothing partial). */
export async function replayTrace(trace: AsyncIterable<TraceSample>, config: MemtideConfig): Promise<ReplayResult> {
  const iterator = trace[Symbol.asyncIterator]();
  // Read a few samples before starting the clock: it must start at the trace's first timestamp
  // (timers started at subscription would otherwise run from 1970), and the interval is needed.
  const head: TraceSample[] = [];
  while (head.length < 9) {
    const next = await iterator.next();
    if (next.done) break;
    head.push(next.value);
  }
  const interval = traceInterval(head);
  const replayConfig: MemtideConfig = interval ? { ...config, sampling: { ...config.sampling, intervalMs: Math.max(50, interval) } } : config;

  const scheduler = new VirtualTimeScheduler();
  scheduler.frame = head[0]?.timestampMs ?? 0;
  const samples = new Subject<MemorySample>();
  const analysis = memoryAnalysis({ samples$: samples, config$: of(replayConfig), scheduler });
  const result: ReplayResult = { leaks: [], pressure: [], alerts: [], stats: { samples: 0, rows: 0, firstMs: null, lastMs: null } };
  let failure: unknown = null;
  const fail = (error: unknown) => (failure ??= error);
  const subscriptions: Subscription[] = [
    analysis.pressure$.subscribe({ next: (c) => result.pressure.push({ atMs: c.atMs, level: c.level }), error: fail }),
    analysis.leaks$.subscribe({
      next: (event) => {
        if (event.kind === 'leak') {
          const { component, detectedAtMs, slopeBytesPerHour, confidence } = event;
          result.leaks.push({ component, detectedAtMs, slopeBytesPerHour, confidence });
        }
      },
      error: fail,
    }),
    analysis.alerts$.subscribe({ next: (alert) => result.alerts.push(alert), error: fail }),
  ];
  // System memory as far as the trace has told it; unknown (total 0) until both rows have been seen.
  const seen = { totalBytes: 0, availableBytes: null as number | null };
  const feed = (row: TraceSample) => {
    // Timers due before this sample fire first, at their own times; then the clock stands at the sample.
    scheduler.maxFrames = row.timestampMs;
    scheduler.flush();
    scheduler.frame = row.timestampMs;
    if (row.totalBytes !== null) seen.totalBytes = row.totalBytes;
    if (row.availableBytes !== null) seen.availableBytes = row.availableBytes;
    const system = seen.availableBytes === null ? { totalBytes: 0, availableBytes: 0 } : { totalBytes: seen.totalBytes, availableBytes: seen.availableBytes };
    result.stats.samples += 1;
    result.stats.rows += row.components.size + (row.totalBytes !== null ? 1 : 0) + (row.availableBytes !== null ? 1 : 0);
    result.stats.firstMs ??= row.timestampMs;
    result.stats.lastMs = row.timestampMs;
    samples.next(sampleOfTrace(row, system));
    if (failure) throw failure;
  };
  try {
    for (const row of head) feed(row);
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) feed(next.value);
    samples.complete();
    if (failure) throw failure;
    return result;
  } finally {
    for (const subscription of subscriptions) subscription.unsubscribe();
    await iterator.return?.();
  }
}
