/**
 * Prometheus metrics of one engine, on a registry of its own.
 *
 * prom-client's global default registry is process-wide state: two engines
 * in one process (or memtide embedded in a host that uses prom-client too)
 * would throw "metric already registered" or mix their values. Every
 * `createMetrics()` makes a `new Registry()` and registers everything there,
 * prom-client's default process metrics included (with the `memtide_` prefix,
 * so a host that serves its own unprefixed `process_*` / `nodejs_*` metrics
 * can merge registries without a name clash, and every series memtide emits
 * shares one namespace). The defaults add what a fleet dashboard expects of
 * any Node process (CPU, RSS, heap spaces, event-loop lag, GC pauses); their
 * GC observer and event-loop histogram are prom-client's and stay enabled
 * until the process exits (prom-client offers no way to stop them), which is
 * why `defaultMetrics: false` exists for embedders who create many engines.
 *
 * Gauges are filled when scraped (`collect`) from the latest sample and the
 * providers, so a component or model that went away stops being reported;
 * counters and the sample-cost histogram follow the event streams.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { Subscription, type Observable } from 'rxjs';
import { PRESSURE_LEVELS, levelRank, type Alert, type LoadedModel, type MemorySample, type PressureChange } from '../model.js';
import type { HistoryCacheStats } from './historyQueryCache.js';

/** Something memtide did (governor unloads, coordinator steps), counted by kind and whether it was executed. */
export interface ActionEvent {
  kind: string;
  /** False in observe-only mode: decided and recorded, not executed. */
  executed: boolean;
}

export interface MetricsSources {
  samples$: Observable<MemorySample>;
  pressure$: Observable<PressureChange>;
  /** Loaded models (`memtide_models_loaded_bytes`) and the governor's actions. */
  governor?: { list(): readonly LoadedModel[]; readonly actions$?: Observable<ActionEvent> };
  /** Other actions to count (e.g. the optimization coordinator's). */
  actions$?: Observable<ActionEvent>;
  /** Alert notifications (firing, repeats, recoveries). */
  alerts$?: Observable<Alert>;
  /** Audio waiting for transcription. */
  transcription?: { queuedSamples(): number };
  historyCache?: { stats(): HistoryCacheStats };
  /** prom-client's default process metrics, prefixed `memtide_` (default true). */
  defaultMetrics?: boolean;
  /** Called when an event stream fails (metrics then stop following it). */
  onError?: (error: unknown) => void;
}

export interface MemtideMetrics {
  readonly registry: Registry;
  /** `text/plain; version=0.0.4; charset=utf-8` */
  readonly contentType: string;
  /** True once a sample arrived: before that the memory gauges would read 0, which is not true. */
  ready(): boolean;
  /** The exposition text. */
  render(): Promise<string>;
  /** Stops following the streams and empties the registry. */
  close(): void;
}

/** Seconds of CPU one sample costs: ~1 ms on a quiet Linux box, more with PSS for many processes or the portable readers. */
const SAMPLE_CPU_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
const ALERT_KINDS = ['pressure', 'leak', 'exhaustion', 'budget', 'engine'] as const;
const SEVERITIES = ['info', 'warning', 'critical'] as const;

export function createMetrics(sources: MetricsSources): MemtideMetrics {
  const registry = new Registry();
  const registers = [registry];
  const onError = sources.onError ?? (() => undefined);
  let latest: MemorySample | undefined;
  let level: PressureChange['level'] | undefined;
  const firing = new Map<string, Alert>();
  const subscriptions = new Subscription();

  // -- memory, from the latest sample ---------------------------------------
  const perComponent = (name: string, help: string, value: (usage: MemorySample['components'][string]) => number | null) =>
    new Gauge({
      name,
      help,
      labelNames: ['component'],
      registers,
      collect() {
        this.reset();
        for (const [component, usage] of Object.entries(latest?.components ?? {})) {
          const v = value(usage);
          if (v !== null) this.set({ component }, v);
        }
      },
    });
  perComponent('memtide_component_rss_bytes', 'Resident set size of the processes of a component.', (u) => u.rssBytes);
  perComponent('memtide_component_pss_bytes', 'Proportional set size of a component (shared pages shared out); absent where not read.', (u) => u.pssBytes);
  perComponent('memtide_component_processes', 'Processes attributed to a component.', (u) => u.processCount);

  const fromSample = (name: string, help: string, value: (sample: MemorySample) => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        if (latest) this.set(value(latest));
      },
    });
  fromSample('memtide_system_available_bytes', 'Memory available for new work (MemAvailable, capped by the cgroup limit).', (s) => s.system.availableBytes);
  fromSample('memtide_system_total_bytes', 'Effective total memory: min(MemTotal, cgroup limit).', (s) => s.system.totalBytes);
  fromSample('memtide_swap_used_bytes', 'Swap in use.', (s) => s.system.swapUsedBytes);
  fromSample('memtide_engine_rss_bytes', "memtide's own resident set size (the host's, when embedded).", (s) => s.self.rssBytes);
  fromSample('memtide_engine_heap_used_bytes', "memtide's V8 heap in use (the host's, when embedded).", (s) => s.self.heapUsedBytes);
  // Registered with the first sample that has PSI: where the kernel has none, a 0 would claim "no stalls".
  let psi: Gauge | undefined;
  const sampleCpu = new Histogram({
    name: 'memtide_sample_cpu_seconds',
    help: 'CPU time (user + system) spent taking one sample.',
    buckets: SAMPLE_CPU_BUCKETS,
    registers,
  });

  // -- pressure ---------------------------------------------------------------
  new Gauge({
    name: 'memtide_pressure_level',
    help: 'Memory pressure level: 0 low, 1 medium, 2 high, 3 critical.',
    registers,
    collect() {
      if (level) this.set(levelRank(level));
    },
  });
  new Gauge({
    name: 'memtide_pressure_level_info',
    help: 'The pressure level as a state set: 1 for the current level, 0 for the others.',
    labelNames: ['level'],
    registers,
    collect() {
      this.reset();
      if (level) for (const name of PRESSURE_LEVELS) this.set({ level: name }, name === level ? 1 : 0);
    },
  });

  // -- models, alerts, actions, transcription, history cache (when provided) ----
  const { governor, transcription, historyCache } = sources;
  if (governor) {
    new Gauge({
      name: 'memtide_models_loaded_bytes',
      help: 'Bytes of each model loaded in Ollama (as /api/ps reports, or the governor estimates before it does).',
      labelNames: ['model'],
      registers,
      collect() {
        this.reset();
        for (const model of governor.list()) this.set({ model: model.name }, model.sizeBytes);
      },
    });
  }
  const actions = new Counter({ name: 'memtide_actions_total', help: 'Actions decided, by kind and whether they were executed.', labelNames: ['kind', 'executed'], registers });
  for (const actions$ of [governor?.actions$, sources.actions$]) {
    if (!actions$) continue;
    subscriptions.add(
      actions$.subscribe({
        next: (action) => actions.inc({ kind: action.kind, executed: String(action.executed) }),
        error: onError,
      }),
    );
  }
  if (sources.alerts$) {
    new Gauge({
      name: 'memtide_alerts_firing',
      help: 'Alert conditions firing now, by kind and severity.',
      labelNames: ['kind', 'severity'],
      registers,
      collect() {
        this.reset();
        // Every known combination, 0 included: an alert rule on `> 0` needs the series to exist.
        for (const kind of ALERT_KINDS) for (const severity of SEVERITIES) this.set({ kind, severity }, 0);
        for (const alert of firing.values()) this.inc({ kind: alert.kind, severity: alert.severity });
      },
    });
    const notifications = new Counter({
      name: 'memtide_alerts_total',
      help: 'Alert notifications sent (first, repeats and recoveries), by kind, severity and status.',
      labelNames: ['kind', 'severity', 'status'],
      registers,
    });
    subscriptions.add(
      sources.alerts$.subscribe({
        next: (alert) => {
          notifications.inc({ kind: alert.kind, severity: alert.severity, status: alert.status });
          if (alert.status === 'firing') firing.set(alert.key, alert);
          else firing.delete(alert.key);
        },
        error: onError,
      }),
    );
  }
  if (transcription) {
    new Gauge({
      name: 'memtide_transcription_queue_samples',
      help: 'Audio samples (16 kHz) waiting for transcription.',
      registers,
      collect() {
        this.set(transcription.queuedSamples());
      },
    });
  }
  if (historyCache) {
    // Counters follow the cache's own counts: each scrape adds what happened since the last.
    const seen = { hits: 0, misses: 0, evictions: 0 };
    for (const key of ['hits', 'misses', 'evictions'] as const) {
      new Counter({
        name: `memtide_history_cache_${key}_total`,
        help: `History query cache ${key}.`,
        registers,
        collect() {
          const now = historyCache.stats()[key];
          if (now > seen[key]) this.inc(now - seen[key]);
          seen[key] = now;
        },
      });
    }
    new Gauge({
      name: 'memtide_history_cache_bytes',
      help: 'Bytes held by the history query cache (its budget is server.historyCacheBytes).',
      registers,
      collect() {
        this.set(historyCache.stats().bytes);
      },
    });
  }

  if (sources.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'memtide_' });

  subscriptions.add(
    sources.samples$.subscribe({
      next: (sample) => {
        latest = sample;
        sampleCpu.observe(sample.self.sampleCpuMs / 1000);
        const stall = sample.system.psi;
        if (stall) {
          psi ??= new Gauge({
            name: 'memtide_psi_some_avg10',
            help: 'Linux PSI: percent of the last 10 s some task stalled on memory.',
            registers,
            collect() {
              if (latest?.system.psi) this.set(latest.system.psi.someAvg10);
            },
          });
        }
      },
      error: onError,
    }),
  );
  subscriptions.add(sources.pressure$.subscribe({ next: (change) => (level = change.level), error: onError }));

  return {
    registry,
    contentType: registry.contentType,
    ready: () => latest !== undefined,
    render: () => registry.metrics(),
    close() {
      subscriptions.unsubscribe();
      registry.clear();
    },
  };
}
