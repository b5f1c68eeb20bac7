import fs from 'node:fs';
import path from 'node:path';
import { fc, it as propIt } from '@fast-check/vitest';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../src/app/config.js';
import { reportCommand } from '../src/app/commands/report.js';
import {
  Downsampler,
  MAX_CHART_POINTS,
  buildReport,
  renderHtml,
  renderJson,
  renderMarkdown,
  type ComponentReport,
  type MemoryReport,
} from '../src/app/report/index.js';
import type { Alert, ComponentUsage, MemorySample, PressureChange } from '../src/model.js';
import { HistoryStore } from '../src/sinks/historyStore.js';
import { historyFiles } from './support/historyFiles.js';

const SEC = 1000;
const MIN = 60 * SEC;
const HOUR = 60 * MIN;
const MIB = 1024 ** 2;
const GIB = 1024 ** 3;
const MB = 1e6;
/** Bucket-aligned start. */
const T0 = 1_700_000_040_000;
const STEP = 20 * SEC;
const SPAN = 6 * HOUR;
const TOTAL = 16 * GIB;
const EVIL = '<img onerror=x>';

afterEach(() => vi.restoreAllMocks()); // registered first, so it runs after the stores are closed (after-hooks run as a stack)
const { dir: tmpRoot, freshPath, open } = historyFiles('memtide-report-');

function usage(rssBytes: number, pssBytes: number | null = null): ComponentUsage {
  return { rssBytes, pssBytes, pssAnonBytes: null, processCount: 1 };
}

function sample(timestampMs: number, components: Record<string, ComponentUsage>, availableBytes: number): MemorySample {
  return {
    timestampMs,
    system: {
      totalBytes: TOTAL,
      availableBytes,
      usedBytes: TOTAL - availableBytes,
      swapTotalBytes: 0,
      swapUsedBytes: 0,
      psi: null,
      physicalTotalBytes: TOTAL,
      cgroupLimitBytes: null,
    },
    components,
    processes: [],
    self: { pid: 1, rssBytes: 1, heapUsedBytes: 1, heapTotalBytes: 1, externalBytes: 0, arrayBuffersBytes: 0, sampleCpuMs: 0 },
  };
}

function alert(atMs: number, status: Alert['status'], key: string, severity: Alert['severity'], component: string | null): Alert {
  return {
    key,
    kind: key.startsWith('leak') ? 'leak' : 'pressure',
    severity,
    status,
    component,
    atMs,
    sinceMs: atMs,
    repeat: 0,
    title: `${key} ${status}`,
    message: `${key} is ${status}`,
    recommendations: [],
  };
}

/** Deterministic noise in [-1, 1]. */
function noise(i: number): number {
  return Math.sin(i * 12.9898) * 0.5 + Math.sin(i * 78.233) * 0.5;
}

/**
 * Six hours at 20 s: ollama leaks 100 MB/h from 4 GiB, the engine is flat
 * with a 40 MiB GC sawtooth (5 min period), whisper steps up once (a model
 * load) at 2 h, a component with a hostile name sits still, and available
 * memory dips to 1.5 GiB between 3:00 and 3:30 (a pressure episode).
 */
interface Scenario {
  samples: MemorySample[];
  pressure: PressureChange[];
  alerts: Alert[];
}

function scenario(): Scenario {
  const samples: MemorySample[] = [];
  for (let i = 0, t = T0; t < T0 + SPAN; i++, t += STEP) {
    const elapsed = t - T0;
    const ollama = Math.round(4 * GIB + (100 * MB * elapsed) / HOUR + 5 * MB * noise(i));
    const engine = 300 * MIB + Math.round(((elapsed % (5 * MIN)) / (5 * MIN)) * 40 * MIB);
    const whisper = elapsed < 2 * HOUR ? 200 * MIB : 1200 * MIB;
    const episode = elapsed >= 3 * HOUR && elapsed < 3.5 * HOUR;
    const available = episode ? 1.5 * GIB : 8 * GIB - Math.round((100 * MB * elapsed) / HOUR);
    samples.push(
      sample(t, { ollama: usage(ollama, Math.round(ollama * 0.9)), engine: usage(engine), whisper: usage(whisper), [EVIL]: usage(10 * MIB) }, available),
    );
  }
  const at = (h: number) => T0 + h * HOUR;
  const pressure: PressureChange[] = [
    { atMs: T0, level: 'low', previous: null, reasons: [] },
    { atMs: at(3), level: 'high', previous: 'low', reasons: ['available 9.4% <= 14%'] },
    { atMs: at(3) + 10 * MIN, level: 'critical', previous: 'high', reasons: ['available 9.4% <= 11%'] },
    { atMs: at(3) + 25 * MIN, level: 'high', previous: 'critical', reasons: ['dwell'] },
    { atMs: at(3.5), level: 'low', previous: 'high', reasons: ['recovered'] },
  ];
  const alerts = [alert(at(3) + 10 * MIN, 'firing', 'pressure', 'critical', null), alert(at(5), 'firing', 'leak:ollama', 'warning', 'ollama')];
  return { samples, pressure, alerts };
}

function fill(store: HistoryStore, s: Scenario): void {
  store.append(s.samples, s.pressure);
  store.appendAlerts(s.alerts);
}

const config = loadConfig({ env: {}, base: { pressure: { preset: '4gb' } } });
const NOW = T0 + SPAN;

function byName(report: MemoryReport, name: string): ComponentReport {
  const c = report.components.find((x) => x.component === name);
  if (!c) throw new Error(`no component ${name} in the report`);
  return c;
}

function rssOf(s: Scenario, name: string): number[] {
  return s.samples.map((x) => x.components[name]?.rssBytes ?? Number.NaN);
}

describe('buildReport on a crafted history', () => {
  const data = scenario();
  let report: MemoryReport;
  beforeAll(() => {
    const store = HistoryStore.open(freshPath(), {});
    fill(store, data);
    report = buildReport(store, { sinceMs: T0 - HOUR, untilMs: NOW + MIN, nowMs: NOW + MIN, config });
    store.close();
  });

  it('classifies trends: the steady leak grows, the sawtooth and the step are stable', () => {
    const ollama = byName(report, 'ollama');
    expect(ollama.trend).toBe('growing');
    expect(ollama.slopeBytesPerHour).toBeGreaterThan(90 * MB);
    expect(ollama.slopeBytesPerHour).toBeLessThan(110 * MB);
    expect(ollama.steadiness).toBeGreaterThan(0.9);
    for (const name of ['engine', 'whisper', EVIL]) expect(byName(report, name).trend, name).toBe('stable');
    expect(Math.abs(byName(report, 'engine').slopeBytesPerHour ?? Infinity)).toBeLessThan(2 * MB);
  });

  it('reports exact current, peak, minimum and average', () => {
    for (const name of ['ollama', 'engine', 'whisper']) {
      const values = rssOf(data, name);
      const c = byName(report, name);
      expect(c.rss.peakBytes, name).toBe(Math.max(...values));
      expect(c.rss.minBytes, name).toBe(Math.min(...values));
      expect(c.rss.currentBytes, name).toBe(values.at(-1));
      expect(c.rss.averageBytes, name).toBe(Math.round(values.reduce((a, b) => a + b, 0) / values.length));
      expect(c.sampleCount).toBe(data.samples.length);
      expect(c.series.length).toBeLessThanOrEqual(MAX_CHART_POINTS);
    }
    expect(byName(report, 'ollama').pss?.peakBytes).toBe(Math.max(...data.samples.map((s) => s.components.ollama?.pssBytes ?? 0)));
    expect(byName(report, 'engine').pss).toBeNull();
    expect(report.components[0]?.component).toBe('ollama'); // largest average first
    expect(report.system.available?.minBytes).toBe(1.5 * GIB);
  });

  it('names only the steady grower as a leak suspect', () => {
    expect(report.leakSuspects.map((s) => s.component)).toEqual(['ollama']);
    const growth = report.leakSuspects[0]?.growthBytes ?? 0;
    expect(growth).toBeGreaterThan(500 * MB);
    expect(growth).toBeLessThan(700 * MB);
  });

  it('times the pressure levels from the stored changes', () => {
    const { timeByLevelMs, events } = report.pressure;
    expect(events).toHaveLength(5);
    expect(timeByLevelMs.high).toBe(15 * MIN);
    expect(timeByLevelMs.critical).toBe(15 * MIN);
    expect(timeByLevelMs.unknown).toBe(0);
    // Up to the last sample, not to the end of the range.
    expect(timeByLevelMs.low).toBe(SPAN - STEP - 30 * MIN);
    expect(report.pressure.segments.map((s) => s.level)).toEqual(['low', 'high', 'critical', 'high', 'low']);
  });

  it('lists the alerts of the range', () => {
    expect(report.alerts.total).toBe(2);
    expect(report.alerts.bySeverity).toEqual({ info: 0, warning: 1, critical: 1 });
    expect(report.alerts.listed.map((a) => a.key)).toEqual(['pressure', 'leak:ollama']);
  });

  it('ranks suggestions computed from the data, with savings', () => {
    const { suggestions } = report;
    const restart = suggestions.find((s) => s.rule === 'restart-leak-suspect');
    expect(restart?.component).toBe('ollama');
    expect(restart?.action).toMatch(/^Restart ollama/);
    expect(restart?.expectedSavingBytes).toBeGreaterThan(500 * MB);
    expect(restart?.expectedSavingBytes).toBeLessThan(700 * MB);
    // The model server held ~4 GiB for six hours: the largest possible saving, ranked first.
    expect(suggestions[0]?.rule).toBe('unload-idle-model');
    expect(suggestions[0]?.component).toBe('ollama');
    expect(suggestions[0]?.expectedSavingBytes).toBeGreaterThan(4 * GIB - 128 * MIB);
    expect(suggestions[0]?.expectedSavingBytes).toBeLessThan(4.5 * GIB);
    // 30 min at high/critical on a 16 GiB machine with the 4gb preset: a smaller model budget and the right preset.
    const budget = suggestions.find((s) => s.rule === 'lower-model-budget');
    const shortfall = 0.22 * TOTAL - 1.5 * GIB;
    expect(budget?.expectedSavingBytes).toBe(Math.round(shortfall));
    expect(budget?.command).toMatch(/^--set models\.budgetBytes=\d+(MiB|GiB)$/);
    expect(suggestions.find((s) => s.rule === 'switch-preset')?.command).toBe('--set pressure.preset=16gb');
    const savings = suggestions.map((s) => s.expectedSavingBytes ?? -1);
    expect(savings).toEqual([...savings].sort((a, b) => b - a));
    // Whisper only stepped (a model load): nothing tells to restart it.
    expect(suggestions.some((s) => s.component === 'whisper')).toBe(false);
  });

  it('renders Markdown with every section, escaping names', () => {
    const md = renderMarkdown(report);
    for (const heading of ['# Memory report', '## Components', '## System memory', '## Pressure timeline', '## Leak suspects', '## Alerts', '## Suggestions']) {
      expect(md).toContain(`${heading}\n`);
    }
    expect(md).toMatch(/\| ollama \| .* \| growing \|/);
    expect(md).not.toContain('<img');
    expect(md).toContain('&lt;img onerror=x&gt;');
  });

  it('renders one self-contained HTML file with a chart per component', () => {
    const html = renderHtml(report);
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html.match(/<svg/g)).toHaveLength(report.components.length + 1);
    expect(html).not.toMatch(/https?:|<script|<link|\ssrc=|@import|url\(/i);
    expect(html).not.toContain('<img');
    expect(html).toContain('&#60;img onerror=x&#62;');
    expect(html.match(/<html/g)).toHaveLength(1);
  });

  it('round-trips through JSON', () => {
    expect(JSON.parse(renderJson(report))).toEqual(report);
  });
});

describe('buildReport', () => {
  it('keeps true peaks when old history comes from aggregates', () => {
    const data = scenario();
    const store = open(freshPath(), { rawRetentionMs: HOUR });
    fill(store, data);
    store.applyRetention(NOW); // raw rows only for the last hour; 1-minute buckets before
    const report = buildReport(store, { sinceMs: T0, nowMs: NOW + MIN, config });
    const engine = byName(report, 'engine');
    expect(engine.rss.peakBytes).toBe(Math.max(...rssOf(data, 'engine')));
    expect(engine.rss.minBytes).toBe(Math.min(...rssOf(data, 'engine')));
    expect(engine.sampleCount).toBe(data.samples.length);
    expect(byName(report, 'ollama').trend).toBe('growing');
    expect(engine.trend).toBe('stable');
  });

  it('reports an empty range without inventing anything', () => {
    const store = open(freshPath());
    const report = buildReport(store, { sinceMs: T0, untilMs: T0 + HOUR, nowMs: T0 + HOUR, config });
    expect(report.components).toEqual([]);
    expect(report.system.available).toBeNull();
    expect(report.suggestions).toEqual([]);
    expect(report.pressure.timeByLevelMs.unknown).toBe(HOUR);
    expect(renderMarkdown(report)).toContain('No component samples in the range.');
    expect(renderHtml(report)).toContain('No system samples in the range.');
  });

  it('refuses an empty range', () => {
    const store = open(freshPath());
    expect(() => buildReport(store, { sinceMs: T0, untilMs: T0, nowMs: T0, config })).toThrow(/range is empty/);
  });

  const componentName = fc.constantFrom('ollama', 'whisper', 'engine', 'a|b');
  propIt.prop(
    [
      fc.array(fc.record({ gapMs: fc.integer({ min: 1, max: 10 * MIN }), component: componentName, rss: fc.integer({ min: 0, max: 64 * GIB }) }), {
        minLength: 1,
        maxLength: 80,
      }),
    ],
    { numRuns: 40 },
  )('peak >= average >= min, and peak/min are those of the appended samples', (rows) => {
    const store = HistoryStore.open(':memory:');
    try {
      let t = T0;
      const samples = rows.map((r) => sample((t += r.gapMs), { [r.component]: usage(r.rss) }, GIB));
      store.append(samples);
      const report = buildReport(store, { sinceMs: T0, nowMs: t + 1, config });
      const expected = new Map<string, number[]>();
      for (const r of rows) expected.set(r.component, [...(expected.get(r.component) ?? []), r.rss]);
      expect(report.components.map((c) => c.component).sort()).toEqual([...expected.keys()].sort());
      for (const c of report.components) {
        const values = expected.get(c.component) ?? [];
        expect(c.rss.peakBytes).toBe(Math.max(...values));
        expect(c.rss.minBytes).toBe(Math.min(...values));
        expect(c.rss.peakBytes).toBeGreaterThanOrEqual(c.rss.averageBytes);
        expect(c.rss.averageBytes).toBeGreaterThanOrEqual(c.rss.minBytes);
        expect(c.sampleCount).toBe(values.length);
      }
    } finally {
      store.close();
    }
  });
});

describe('Downsampler', () => {
  propIt.prop([fc.array(fc.integer({ min: 1, max: 100_000 }), { minLength: 1, maxLength: 3000 }), fc.integer({ min: 2, max: 50 })])(
    'holds at most maxPoints points, keeps extremes, and covers every sample',
    (gaps, maxPoints) => {
      const d = new Downsampler(maxPoints);
      let t = 0;
      const values = gaps.map((g, i) => {
        t += g;
        const v = (i * 7919) % 1000;
        d.add(t, v);
        return v;
      });
      const points = d.points();
      expect(points.length).toBeLessThanOrEqual(maxPoints);
      expect(Math.max(...points.map((p) => p.maxBytes))).toBe(Math.max(...values));
      expect(Math.min(...points.map((p) => p.minBytes))).toBe(Math.min(...values));
      for (let i = 1; i < points.length; i++) expect(points[i]?.atMs).toBeGreaterThan(points[i - 1]?.atMs ?? Infinity);
    },
  );
});

describe('reportCommand', () => {
  function filledDb(): string {
    const file = freshPath('cli');
    const store = HistoryStore.open(file);
    fill(store, scenario());
    store.close();
    return file;
  }

  it('writes --out atomically (no temporary file left) and picks the format from the extension', async () => {
    const db = filledDb();
    const dir = fs.mkdtempSync(path.join(tmpRoot, 'out-'));
    const file = path.join(dir, 'report.html');
    fs.writeFileSync(file, 'old');
    vi.spyOn(process.stderr, 'write').mockReturnValue(true);
    const printed: string[] = [];
    const code = await reportCommand(['--db', db, '--since', '7h', '--out', file], (t) => printed.push(t), NOW + MIN);
    expect(code).toBe(0);
    expect(printed).toEqual([]);
    expect(fs.readdirSync(dir)).toEqual(['report.html']);
    const html = fs.readFileSync(file, 'utf8');
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html).toContain('ollama');
  });

  it('leaves neither a file nor a temporary one when the write fails', async () => {
    const db = filledDb();
    const file = path.join(tmpRoot, 'missing-dir', 'r.md');
    await expect(reportCommand(['--db', db, '--out', file], () => {}, NOW + MIN)).rejects.toThrow(/ENOENT/);
    expect(fs.existsSync(path.dirname(file))).toBe(false);
  });

  it('prints JSON to stdout with --format json', async () => {
    const db = filledDb();
    let text = '';
    await reportCommand(['--db', db, '--format', 'json', '--since', '2023-01-01T00:00:00Z'], (t) => (text += t), NOW + MIN);
    const report = JSON.parse(text) as MemoryReport;
    expect(report.leakSuspects.map((s) => s.component)).toEqual(['ollama']);
  });

  it('names the missing database and creates nothing', async () => {
    const db = path.join(tmpRoot, 'nope.db');
    await expect(reportCommand(['--db', db], () => {}, NOW)).rejects.toThrow(`no history database at ${db}`);
    expect(fs.existsSync(db)).toBe(false);
  });

  it('rejects bad flags naming them', async () => {
    await expect(reportCommand(['--since', 'yesterday'], () => {}, NOW)).rejects.toThrow(/--since: not a duration or an ISO time/);
    await expect(reportCommand(['--format', 'pdf'], () => {}, NOW)).rejects.toThrow(/--format: expected one of md, html, json/);
    await expect(reportCommand(['--since', '1h', '--until', '2h'], () => {}, NOW)).rejects.toThrow(/must be before --until/);
  });
});
