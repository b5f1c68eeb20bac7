/**
 * `/metrics`: parsed with a strict exposition-format parser
 * (test/support/promParse.ts). Names, types, labels and values against a
 * known sample; counters following the event streams; two engines in one
 * process with registries of their own; and the real runner's endpoint.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { BehaviorSubject, Subject } from 'rxjs';
import { register as globalRegistry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createMemtide } from '../src/app/memtide.js';
import { startServer } from '../src/app/server.js';
import { metricsRoutes } from '../src/app/routes/metrics.js';
import { historyRoutes } from '../src/app/routes/history.js';
import { createHistoryQueryCache } from '../src/sinks/historyQueryCache.js';
import { createMetrics, type ActionEvent, type MemtideMetrics } from '../src/sinks/metrics.js';
import { silentLogger } from '../src/sinks/logger.js';
import type { Alert, LoadedModel, MemorySample, PressureChange } from '../src/model.js';
import { parsePrometheusText, PromParseError, type PromFamily } from './support/promParse.js';

const MIB = 1024 * 1024;

function sample(overrides: { timestampMs?: number; psi?: boolean; ollamaPss?: number | null; cpuMs?: number } = {}): MemorySample {
  return {
    timestampMs: overrides.timestampMs ?? 1_700_000_000_000,
    system: {
      totalBytes: 8192 * MIB,
      availableBytes: 2048 * MIB,
      usedBytes: 6144 * MIB,
      swapTotalBytes: 1024 * MIB,
      swapUsedBytes: 100 * MIB,
      psi: overrides.psi === false ? null : { someAvg10: 12.5, someAvg60: 3, fullAvg10: 1.25, fullAvg60: 0 },
      physicalTotalBytes: 16384 * MIB,
      cgroupLimitBytes: 8192 * MIB,
    },
    components: {
      ollama: { rssBytes: 4000 * MIB, pssBytes: overrides.ollamaPss === undefined ? 3900 * MIB : overrides.ollamaPss, pssAnonBytes: null, processCount: 2 },
      'web-ui': { rssBytes: 300 * MIB, pssBytes: null, pssAnonBytes: null, processCount: 5 },
      engine: { rssBytes: 60 * MIB, pssBytes: 55 * MIB, pssAnonBytes: 40 * MIB, processCount: 1 },
    },
    processes: [],
    self: { pid: 42, rssBytes: 60 * MIB, heapUsedBytes: 20 * MIB, heapTotalBytes: 30 * MIB, externalBytes: 0, arrayBuffersBytes: 0, sampleCpuMs: overrides.cpuMs ?? 3 },
  };
}

const models: LoadedModel[] = [
  { name: 'llama3.1:8b', sizeBytes: 5_000 * MIB, sizeVramBytes: 0, contextLength: 8192, inFlight: 0, idleSinceMs: 1, pinned: false, expiresAtMs: null },
  { name: 'gemma3:1b "q4"', sizeBytes: 800 * MIB, sizeVramBytes: 0, contextLength: 4096, inFlight: 1, idleSinceMs: null, pinned: true, expiresAtMs: null },
];

function alert(key: string, kind: Alert['kind'], severity: Alert['severity'], status: Alert['status']): Alert {
  return { key, kind, severity, status, component: null, atMs: 1, sinceMs: 1, repeat: 0, title: key, message: key, recommendations: [] };
}

const opened: MemtideMetrics[] = [];
afterEach(() => {
  for (const metrics of opened.splice(0)) metrics.close();
});

function setup(options: { defaultMetrics?: boolean } = {}) {
  const samples = new Subject<MemorySample>();
  const pressure = new BehaviorSubject<PressureChange>({ atMs: 1, level: 'high', previous: 'medium', reasons: ['available 10% <= 10%'] });
  const actions = new Subject<ActionEvent>();
  const alerts = new Subject<Alert>();
  const cache = createHistoryQueryCache({ maxBytes: 4096 });
  let queued = 48_000;
  const metrics = createMetrics({
    samples$: samples,
    pressure$: pressure,
    governor: { list: () => models, actions$: actions },
    alerts$: alerts,
    transcription: { queuedSamples: () => queued },
    historyCache: cache,
    defaultMetrics: options.defaultMetrics ?? false,
  });
  opened.push(metrics);
  return { samples, pressure, actions, alerts, cache, metrics, setQueued: (n: number) => (queued = n) };
}

async function scrape(metrics: MemtideMetrics): Promise<Map<string, PromFamily>> {
  return parsePrometheusText(await metrics.render());
}

/** The value of the one sample of `family` whose labels include `labels`. */
function value(families: Map<string, PromFamily>, family: string, labels: Record<string, string> = {}, sampleName = family): number | undefined {
  const found = families.get(family)?.samples.filter((s) => s.name === sampleName && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (!found || found.length === 0) return undefined;
  if (found.length > 1) throw new Error(`${family} ${JSON.stringify(labels)} matches ${found.length} samples`);
  return found[0]!.value;
}

describe('the exposition parser', () => {
  it('parses HELP, TYPE, labels with escapes, special values, timestamps and histograms', () => {
    const text = [
      '# HELP a_total Things \\\\ counted\\nover time.',
      '# TYPE a_total counter',
      'a_total{path="C:\\\\x",msg="say \\"hi\\"\\n"} 3 1700000000000',
      'a_total{path="y",msg=""} +Inf',
      '# TYPE h histogram',
      'h_bucket{le="0.1"} 1',
      'h_bucket{le="1"} 2',
      'h_bucket{le="+Inf"} 3',
      'h_sum 4.5',
      'h_count 3',
      'u Nan',
      '',
    ].join('\n');
    const families = parsePrometheusText(text);
    const a = families.get('a_total')!;
    expect(a.type).toBe('counter');
    expect(a.help).toBe('Things \\ counted\nover time.');
    expect(a.samples[0]).toEqual({ name: 'a_total', labels: { path: 'C:\\x', msg: 'say "hi"\n' }, value: 3, timestampMs: 1_700_000_000_000 });
    expect(a.samples[1]!.value).toBe(Infinity);
    expect(families.get('h')!.samples).toHaveLength(5);
    expect(families.get('u')!.type).toBe('untyped');
    expect(Number.isNaN(families.get('u')!.samples[0]!.value)).toBe(true);
  });

  it.each([
    ['a bad metric name', '# TYPE 1a gauge\n1a 1\n'],
    ['an unquoted label value', '# TYPE a gauge\na{x=1} 1\n'],
    ['a bad escape', '# TYPE a gauge\na{x="\\t"} 1\n'],
    ['a duplicate series', '# TYPE a gauge\na{x="1"} 1\na{x="1"} 2\n'],
    ['a second TYPE', '# TYPE a gauge\n# TYPE a counter\n'],
    ['interleaved families', '# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na{x="2"} 1\n'],
    ['a value that is no number', '# TYPE a gauge\na one\n'],
    ['a value that is almost NaN', '# TYPE a gauge\na NaNa\n'],
    ['a histogram without +Inf', '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n'],
    ['non-cumulative buckets', '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n'],
    ['+Inf bucket unlike _count', '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n'],
    ['no final newline', '# TYPE a gauge\na 1'],
  ])('rejects %s', (_what, text) => {
    expect(() => parsePrometheusText(text)).toThrow(PromParseError);
  });
});

describe('createMetrics', () => {
  it('exposes every memtide metric with its type, labels and the values of a known sample', async () => {
    const { samples, metrics } = setup();
    samples.next(sample());
    const families = await scrape(metrics);
    const types = Object.fromEntries([...families.values()].map((f) => [f.name, f.type]));
    expect(types).toEqual({
      memtide_component_rss_bytes: 'gauge',
      memtide_component_pss_bytes: 'gauge',
      memtide_component_processes: 'gauge',
      memtide_system_available_bytes: 'gauge',
      memtide_system_total_bytes: 'gauge',
      memtide_swap_used_bytes: 'gauge',
      memtide_engine_rss_bytes: 'gauge',
      memtide_engine_heap_used_bytes: 'gauge',
      memtide_sample_cpu_seconds: 'histogram',
      memtide_pressure_level: 'gauge',
      memtide_pressure_level_info: 'gauge',
      memtide_models_loaded_bytes: 'gauge',
      memtide_actions_total: 'counter',
      memtide_alerts_firing: 'gauge',
      memtide_alerts_total: 'counter',
      memtide_transcription_queue_samples: 'gauge',
      memtide_history_cache_hits_total: 'counter',
      memtide_history_cache_misses_total: 'counter',
      memtide_history_cache_evictions_total: 'counter',
      memtide_history_cache_bytes: 'gauge',
      memtide_psi_some_avg10: 'gauge',
    });
    for (const family of families.values()) expect(family.help, family.name).toBeTruthy();

    expect(value(families, 'memtide_component_rss_bytes', { component: 'ollama' })).toBe(4000 * MIB);
    expect(value(families, 'memtide_component_rss_bytes', { component: 'web-ui' })).toBe(300 * MIB);
    expect(value(families, 'memtide_component_pss_bytes', { component: 'ollama' })).toBe(3900 * MIB);
    // No PSS read for web-ui: no series (a 0 would be a lie).
    expect(value(families, 'memtide_component_pss_bytes', { component: 'web-ui' })).toBeUndefined();
    expect(value(families, 'memtide_component_processes', { component: 'web-ui' })).toBe(5);
    expect(value(families, 'memtide_system_available_bytes')).toBe(2048 * MIB);
    expect(value(families, 'memtide_system_total_bytes')).toBe(8192 * MIB);
    expect(value(families, 'memtide_swap_used_bytes')).toBe(100 * MIB);
    expect(value(families, 'memtide_psi_some_avg10')).toBe(12.5);
    expect(value(families, 'memtide_engine_rss_bytes')).toBe(60 * MIB);
    expect(value(families, 'memtide_engine_heap_used_bytes')).toBe(20 * MIB);
    expect(value(families, 'memtide_pressure_level')).toBe(2);
    expect(families.get('memtide_pressure_level_info')!.samples.map((s) => [s.labels.level, s.value])).toEqual([
      ['low', 0],
      ['medium', 0],
      ['high', 1],
      ['critical', 0],
    ]);
    expect(value(families, 'memtide_models_loaded_bytes', { model: 'llama3.1:8b' })).toBe(5_000 * MIB);
    expect(value(families, 'memtide_models_loaded_bytes', { model: 'gemma3:1b "q4"' })).toBe(800 * MIB);
    expect(value(families, 'memtide_transcription_queue_samples')).toBe(48_000);
    expect(value(families, 'memtide_sample_cpu_seconds', {}, 'memtide_sample_cpu_seconds_count')).toBe(1);
    expect(value(families, 'memtide_sample_cpu_seconds', {}, 'memtide_sample_cpu_seconds_sum')).toBeCloseTo(0.003, 9);
    expect(value(families, 'memtide_sample_cpu_seconds', { le: '0.0025' }, 'memtide_sample_cpu_seconds_bucket')).toBe(0);
    expect(value(families, 'memtide_sample_cpu_seconds', { le: '0.005' }, 'memtide_sample_cpu_seconds_bucket')).toBe(1);
    expect(value(families, 'memtide_alerts_firing', { kind: 'leak', severity: 'critical' })).toBe(0);
  });

  it('follows the latest sample: a component that went away disappears', async () => {
    const { samples, metrics } = setup();
    samples.next(sample());
    const next = sample({ timestampMs: 1_700_000_001_000, cpuMs: 1 });
    delete (next.components as Record<string, unknown>)['web-ui'];
    next.system.availableBytes = 1024 * MIB;
    samples.next(next);
    const families = await scrape(metrics);
    expect(families.get('memtide_component_rss_bytes')!.samples.map((s) => s.labels.component).sort()).toEqual(['engine', 'ollama']);
    expect(value(families, 'memtide_system_available_bytes')).toBe(1024 * MIB);
    expect(value(families, 'memtide_sample_cpu_seconds', {}, 'memtide_sample_cpu_seconds_count')).toBe(2);
  });

  it('counts actions and alerts, and gauges the firing ones', async () => {
    const { samples, actions, alerts, metrics } = setup();
    samples.next(sample());
    actions.next({ kind: 'unload', executed: true });
    actions.next({ kind: 'unload', executed: true });
    actions.next({ kind: 'unload', executed: false });
    actions.next({ kind: 'resize-context', executed: true });
    alerts.next(alert('leak:ollama', 'leak', 'warning', 'firing'));
    alerts.next(alert('pressure', 'pressure', 'critical', 'firing'));
    alerts.next(alert('budget:ollama', 'budget', 'warning', 'firing'));
    alerts.next(alert('pressure', 'pressure', 'critical', 'resolved'));
    const families = await scrape(metrics);
    expect(value(families, 'memtide_actions_total', { kind: 'unload', executed: 'true' })).toBe(2);
    expect(value(families, 'memtide_actions_total', { kind: 'unload', executed: 'false' })).toBe(1);
    expect(value(families, 'memtide_actions_total', { kind: 'resize-context', executed: 'true' })).toBe(1);
    expect(value(families, 'memtide_alerts_firing', { kind: 'leak', severity: 'warning' })).toBe(1);
    expect(value(families, 'memtide_alerts_firing', { kind: 'budget', severity: 'warning' })).toBe(1);
    expect(value(families, 'memtide_alerts_firing', { kind: 'pressure', severity: 'critical' })).toBe(0);
    expect(value(families, 'memtide_alerts_total', { kind: 'pressure', severity: 'critical', status: 'firing' })).toBe(1);
    expect(value(families, 'memtide_alerts_total', { kind: 'pressure', severity: 'critical', status: 'resolved' })).toBe(1);
  });

  it('history cache counters follow the cache (monotonic across scrapes)', async () => {
    const { samples, cache, metrics } = setup();
    samples.next(sample());
    cache.get('a');
    cache.set('a', Buffer.alloc(1000), 60_000);
    cache.get('a');
    cache.get('a');
    let families = await scrape(metrics);
    expect(value(families, 'memtide_history_cache_hits_total')).toBe(2);
    expect(value(families, 'memtide_history_cache_misses_total')).toBe(1);
    expect(value(families, 'memtide_history_cache_bytes')).toBe(cache.stats().bytes);
    for (const key of ['b', 'c', 'd', 'e']) cache.set(key, Buffer.alloc(1000), 60_000);
    cache.get('a');
    families = await scrape(metrics);
    expect(value(families, 'memtide_history_cache_evictions_total')).toBe(cache.stats().evictions);
    expect(cache.stats().evictions).toBeGreaterThan(0);
    expect(value(families, 'memtide_history_cache_hits_total')).toBe(2);
    expect(value(families, 'memtide_history_cache_misses_total')).toBe(2);
  });

  it('has no PSI gauge where the kernel has no PSI', async () => {
    const { samples, metrics } = setup();
    samples.next(sample({ psi: false }));
    expect((await scrape(metrics)).has('memtide_psi_some_avg10')).toBe(false);
  });

  it('two engines in one process: two registries, no clash, values apart, global registry untouched', async () => {
    const globalBefore = (await globalRegistry.getMetricsAsJSON()).length;
    const a = setup({ defaultMetrics: true });
    const b = setup({ defaultMetrics: true });
    expect(a.metrics.registry).not.toBe(b.metrics.registry);
    a.samples.next(sample());
    const other = sample();
    other.system.availableBytes = 512 * MIB;
    b.samples.next(other);
    b.pressure.next({ atMs: 2, level: 'critical', previous: 'high', reasons: [] });
    const [fa, fb] = [await scrape(a.metrics), await scrape(b.metrics)];
    expect(value(fa, 'memtide_system_available_bytes')).toBe(2048 * MIB);
    expect(value(fb, 'memtide_system_available_bytes')).toBe(512 * MIB);
    expect(value(fa, 'memtide_pressure_level')).toBe(2);
    expect(value(fb, 'memtide_pressure_level')).toBe(3);
    // prom-client's process metrics, prefixed, on each registry.
    for (const families of [fa, fb]) {
      expect(families.get('memtide_process_resident_memory_bytes')?.type).toBe('gauge');
      expect(families.get('memtide_nodejs_heap_size_used_bytes')?.type).toBe('gauge');
      expect(families.get('memtide_process_cpu_seconds_total')?.type).toBe('counter');
      expect([...families.keys()].every((name) => name.startsWith('memtide_'))).toBe(true);
    }
    expect((await globalRegistry.getMetricsAsJSON()).length).toBe(globalBefore);
    // Closing one leaves the other whole.
    a.metrics.close();
    expect(value(await scrape(b.metrics), 'memtide_system_available_bytes')).toBe(512 * MIB);
  });
});

describe('the shipped Grafana dashboard and Prometheus rules', () => {
  const docs = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'docs');

  it('use only metrics memtide exports', async () => {
    const { samples, alerts, actions, metrics } = setup({ defaultMetrics: true });
    samples.next(sample());
    alerts.next(alert('leak:ollama', 'leak', 'warning', 'firing'));
    actions.next({ kind: 'unload', executed: true });
    const exported = new Set([...(await scrape(metrics)).values()].flatMap((family) => family.samples.map((s) => s.name)));
    const dashboard = fs.readFileSync(path.join(docs, 'grafana/memtide-dashboard.json'), 'utf8');
    const rules = fs.readFileSync(path.join(docs, 'prometheus/memtide-rules.yml'), 'utf8');
    const parsed = JSON.parse(dashboard) as { panels: Array<{ type: string; targets?: Array<{ expr: string }> }> };
    const exprs = [
      ...parsed.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)),
      ...[...rules.matchAll(/^\s*expr: (.+)$/gm)].map((m) => m[1]!),
    ];
    expect(exprs.length).toBeGreaterThan(20);
    const used = new Set(exprs.flatMap((expr) => [...expr.matchAll(/\bmemtide_[a-z0-9_]+/g)].map((m) => m[0])));
    expect(used.size).toBeGreaterThan(12);
    expect([...used].filter((name) => !exported.has(name))).toEqual([]);
    // What the issue asks the dashboard to show.
    for (const name of ['memtide_component_rss_bytes', 'memtide_system_available_bytes', 'memtide_system_total_bytes', 'memtide_pressure_level', 'memtide_models_loaded_bytes', 'memtide_alerts_firing']) {
      expect(used, name).toContain(name);
    }
    expect(rules).toMatch(/deriv\(memtide_component_rss_bytes\[1h\]\)/);
  });
});

describe('GET /metrics on a real runner', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memtide-metrics-'));
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  function get(url: string): Promise<{ status: number; type: string; text: string }> {
    return new Promise((resolve, reject) => {
      http
        .get(url, (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), text }));
        })
        .on('error', reject);
    });
  }

  it('serves the exposition format without a token on loopback, with the engine\'s own values', async () => {
    const memtide = createMemtide({
      mode: 'runner',
      env: {},
      config: { sampling: { intervalMs: 100 }, history: { path: path.join(tmp, 'm.db'), flushIntervalMs: 200 }, server: { port: 0, tokenFile: path.join(tmp, 'token') } },
    });
    const cache = createHistoryQueryCache({ maxBytes: 1 << 20 });
    const server = await startServer({ memtide, logger: silentLogger, modules: [historyRoutes({ cache }), metricsRoutes({ historyCache: cache })] });
    try {
      const first = await new Promise<MemorySample>((resolve, reject) => {
        const subscription = memtide.samples$.subscribe({
          next: (s) => {
            resolve(s);
            queueMicrotask(() => subscription.unsubscribe());
          },
          error: reject,
        });
      });
      const res = await get(`${server.url}/metrics`);
      expect(res.status).toBe(200);
      expect(res.type).toBe('text/plain; version=0.0.4; charset=utf-8');
      const families = parsePrometheusText(res.text);
      expect(value(families, 'memtide_component_processes', { component: 'engine' })).toBeGreaterThanOrEqual(1);
      expect(value(families, 'memtide_system_total_bytes')).toBe(first.system.totalBytes);
      expect(value(families, 'memtide_pressure_level')).toBeGreaterThanOrEqual(0);
      expect(families.get('memtide_process_resident_memory_bytes')?.type).toBe('gauge');
      const range = `since=${Date.now() - 60_000}&until=${Date.now() + 60_000}`;
      await get(`${server.url}/api/history?${range}`);
      await get(`${server.url}/api/history?${range}`);
      const after = parsePrometheusText((await get(`${server.url}/metrics`)).text);
      expect(value(after, 'memtide_history_cache_misses_total')).toBe(1);
      expect(value(after, 'memtide_history_cache_hits_total')).toBe(1);
    } finally {
      await server.close();
      memtide.stop();
    }
  });
});
