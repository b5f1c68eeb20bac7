/**
 * The report's Actions section, from a real history database (a temp-dir
 * SQLite file) filled the way the coordinator's sink fills it:
 * `insertAction` when decided, `updateAction` when measured or undone.
 */
import { fc, it as propIt } from '@fast-check/vitest';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../src/app/config.js';
import { reportCommand } from '../src/app/commands/report.js';
import { MAX_LISTED, buildReport, readActions, renderHtml, renderJson, renderMarkdown, type MemoryReport } from '../src/app/report/index.js';
import type { ComponentUsage, MemorySample } from '../src/model.js';
import { HistoryStore } from '../src/sinks/historyStore.js';
import { actionEntry } from './support/actions.js';
import { historyFiles } from './support/historyFiles.js';

const SEC = 1000;
const MIN = 60 * SEC;
const HOUR = 60 * MIN;
const MIB = 1024 ** 2;
const GIB = 1024 ** 3;
const T0 = 1_700_000_040_000;
const SPAN = 3 * HOUR;
const NOW = T0 + SPAN;
const EVIL = '<img onerror=x>';

const config = loadConfig({ env: {}, base: { pressure: { preset: '8gb' } } });

afterEach(() => vi.restoreAllMocks()); // registered first, so it runs after the stores are closed (after-hooks run as a stack)
const history = historyFiles('memtide-report-actions-');

function open(): { store: HistoryStore; file: string } {
  const file = history.freshPath();
  return { store: history.open(file), file };
}

function usage(rssBytes: number): ComponentUsage {
  return { rssBytes, pssBytes: null, pssAnonBytes: null, processCount: 1 };
}

function sample(timestampMs: number, components: Record<string, number>, availableBytes: number): MemorySample {
  return {
    timestampMs,
    system: { totalBytes: 16 * GIB, availableBytes, usedBytes: 16 * GIB - availableBytes, swapTotalBytes: 0, swapUsedBytes: 0, psi: null, physicalTotalBytes: 16 * GIB, cgroupLimitBytes: null },
    components: Object.fromEntries(Object.entries(components).map(([name, rss]) => [name, usage(rss)])),
    processes: [],
    self: { pid: 1, rssBytes: 1, heapUsedBytes: 1, heapTotalBytes: 1, externalBytes: 0, arrayBuffersBytes: 0, sampleCpuMs: 0 },
  };
}

const at = (minutes: number) => T0 + minutes * MIN;

/**
 * Three hours at 30 s; the coordinator unloads ollama's idle model at 1:00
 * (5.5 GiB → 300 MiB), caps the model budget 1:05..1:35 (undone), in
 * observe-only mode would have shrunk the engine's caches at 2:00, one
 * execution fails, the governor loads a model (ollama grows), one action
 * is not measured yet, and one is before the range.
 */
function fill(store: HistoryStore): void {
  const samples: MemorySample[] = [];
  for (let t = T0; t < NOW; t += 30 * SEC) {
    const m = (t - T0) / MIN;
    const ollama = m < 61 ? 5.5 * GIB : m < 150 ? 300 * MIB : 300 * MIB + GIB;
    samples.push(sample(t, { ollama, engine: 400 * MIB, [EVIL]: 10 * MIB }, 16 * GIB - ollama - 6 * GIB));
  }
  store.append(samples);

  store.insertAction(actionEntry({ atMs: T0 - HOUR, kind: 'unload-idle-models', reason: 'before the range' }));
  const unload = store.insertAction(
    actionEntry({
      atMs: at(60),
      kind: 'unload-idle-models',
      detail: 'llama3.1:8b (5.2 GiB)',
      componentBytesBefore: 5.5 * GIB,
      availableBytesBefore: 4.5 * GIB,
      reason: 'pressure high: available 28% <= 30%',
    }),
  );
  // Measured settleMs later, as the record book does.
  store.updateAction(unload, { componentBytesAfter: 300 * MIB, availableBytesAfter: 4.5 * GIB + 5 * GIB + 100 * MIB, measuredAtMs: at(61) });
  const cap = store.insertAction(actionEntry({ atMs: at(65), kind: 'cap-model-budget', detail: '2 GiB', componentBytesBefore: 300 * MIB, availableBytesBefore: 9 * GIB }));
  store.updateAction(cap, { componentBytesAfter: 300 * MIB, availableBytesAfter: 9 * GIB, measuredAtMs: at(66) });
  store.updateAction(cap, { undoneAtMs: at(95) });
  const observe = store.insertAction(
    actionEntry({ atMs: at(120), kind: 'shrink-caches', target: 'engine', executed: false, level: 'medium', componentBytesBefore: 400 * MIB, availableBytesBefore: 9 * GIB }),
  );
  store.updateAction(observe, { componentBytesAfter: 380 * MIB, availableBytesAfter: 9 * GIB + 20 * MIB, measuredAtMs: at(121) });
  const failed = store.insertAction(actionEntry({ atMs: at(130), kind: 'disable-live-summaries', target: 'ollama', componentBytesBefore: 300 * MIB, availableBytesBefore: 9 * GIB }));
  store.updateAction(failed, { error: 'ollama answered 500', componentBytesAfter: 300 * MIB, availableBytesAfter: 9 * GIB, measuredAtMs: at(131) });
  const load = store.insertAction(
    actionEntry({ atMs: at(150), source: 'governor', kind: 'load', level: 'low', detail: 'gemma3:1b (1.2 GiB)', componentBytesBefore: 300 * MIB, availableBytesBefore: 9 * GIB, reason: 'requested by /api/chat' }),
  );
  store.updateAction(load, { componentBytesAfter: 300 * MIB + GIB, availableBytesAfter: 8 * GIB, measuredAtMs: at(151) });
  store.insertAction(actionEntry({ atMs: at(170), kind: 'lower-transcription-concurrency', target: EVIL, detail: 'a|b `c` *d*', reason: '<script>alert(1)</script>', componentBytesBefore: 10 * MIB }));
}

describe('the Actions section of a report', () => {
  let report: MemoryReport;
  beforeAll(() => {
    const { store } = open();
    fill(store);
    report = buildReport(store, { sinceMs: T0, untilMs: NOW, nowMs: NOW, config });
  });

  it('counts every action of the range, and sums only what executed actions measurably freed', () => {
    const a = report.actions;
    expect(report.version).toBe(2);
    expect(a.total).toBe(6);
    expect(a.executed).toBe(5);
    expect(a.notExecuted).toBe(1);
    expect(a.failed).toBe(1);
    expect(a.undone).toBe(1);
    // unload, cap and load: measured, executed, no error (the observe-only one and the failed one do not count).
    expect(a.measured).toBe(3);
    expect(a.freedBytes).toBe(5.5 * GIB - 300 * MIB);
    expect(a.grewBytes).toBe(GIB);
    expect(a.availableChangeBytes).toBe(5 * GIB + 100 * MIB + 0 - GIB);
    expect(a.byKind.find((k) => k.kind === 'unload-idle-models')).toEqual({ source: 'coordinator', kind: 'unload-idle-models', count: 1, executed: 1, freedBytes: 5.5 * GIB - 300 * MIB });
    expect(a.byKind.find((k) => k.kind === 'shrink-caches')).toMatchObject({ count: 1, executed: 0, freedBytes: 0 });
  });

  it('lists them oldest first with before, after, the measured change and the undo time', () => {
    const listed = report.actions.listed;
    expect(listed.map((x) => x.kind)).toEqual(['unload-idle-models', 'cap-model-budget', 'shrink-caches', 'disable-live-summaries', 'load', 'lower-transcription-concurrency']);
    const [unload, cap, observe, , load, pending] = listed;
    expect(unload).toMatchObject({ source: 'coordinator', level: 'high', target: 'ollama', detail: 'llama3.1:8b (5.2 GiB)', executed: true, freedBytes: 5.5 * GIB - 300 * MIB });
    expect(unload?.availableChangeBytes).toBe(5 * GIB + 100 * MIB);
    expect(cap?.undoneAtMs).toBe(at(95));
    expect(cap?.freedBytes).toBe(0);
    expect(observe).toMatchObject({ executed: false, freedBytes: 20 * MIB });
    expect(load).toMatchObject({ source: 'governor', freedBytes: -GIB });
    expect(pending).toMatchObject({ measuredAtMs: null, freedBytes: null, availableChangeBytes: null });
  });

  it('renders a Markdown section with the summary line, a row per action and escaped text', () => {
    const md = renderMarkdown(report);
    expect(md).toContain('## Actions\n');
    expect(md).toContain(
      '6 actions: 5 executed (1 failed), 1 observe-only (would have acted 1 time), 1 undone; measured after 3 executed actions: 5.2 GiB freed in their target components (and 1.0 GiB grown where a target grew), available memory +4.1 GiB.',
    );
    const rows = md.split('\n').filter((line) => /^\| \d{4}-\d\d-\d\dT/.test(line));
    expect(rows).toHaveLength(6);
    expect(rows[0]).toContain('| coordinator | unload-idle-models | high | ollama: llama3.1:8b (5.2 GiB) | executed | 5.5 GiB → 300 MiB (freed 5.2 GiB) | 4.5 GiB → 9.6 GiB (+5.1 GiB) | - |');
    expect(rows[1]).toContain(`| ${new Date(at(95)).toISOString()} (after 30m) |`);
    expect(rows[2]).toContain('| observe-only: not executed | 400 MiB → 380 MiB (freed 20.0 MiB) |');
    expect(rows[3]).toContain('| failed: ollama answered 500 |');
    expect(rows[4]).toContain('| governor | load | low | ollama: gemma3:1b (1.2 GiB) | executed | 300 MiB → 1.3 GiB (grew 1.0 GiB) |');
    expect(rows[5]).toContain('| 10.0 MiB → not measured |');
    // The hostile target, detail and reason neither open HTML nor break the table.
    expect(md).not.toMatch(/<img|<script/);
    expect(rows[5]).toContain('&lt;img onerror=x&gt;: a\\|b \\`c\\` \\*d\\*');
    expect(rows[5]?.split(/(?<!\\)\|/)).toHaveLength(12);
    expect(md).toContain('Observe-only actions were not executed');
  });

  it('renders an HTML section and marks each action on its target component chart, with a tooltip', () => {
    const html = renderHtml(report);
    expect(html).toContain('<h2>Actions</h2>');
    expect(html).toContain('would have acted 1 time');
    expect(html.match(/<tr class="(executed|observe|failed)">/g)).toHaveLength(6);
    const chartOf = (title: string) => {
      const start = html.indexOf(`aria-label="${title}"`);
      expect(start, title).toBeGreaterThan(0);
      return html.slice(start, html.indexOf('</svg>', start));
    };
    const ollama = chartOf('ollama RSS');
    expect(ollama.match(/<g class="action action-executed">/g)).toHaveLength(3); // unload, cap, load
    expect(ollama.match(/<g class="action action-failed">/g)).toHaveLength(1);
    expect(ollama).toMatch(/<title>[^<]*unload-idle-models at high\nollama: llama3\.1:8b \(5\.2 GiB\)\nexecuted\nollama 5\.5 GiB → 300 MiB \(freed 5\.2 GiB\)/);
    // The cap stayed in force 30 minutes: a bar along the top of the plot.
    expect(ollama).toMatch(/undone [^<]*<\/title><rect [^>]*height="3"/);
    const engine = chartOf('engine RSS');
    expect(engine.match(/<g class="action action-observe">/g)).toHaveLength(1);
    expect(engine).not.toContain('action-executed');
    // Every action on the available-memory chart.
    expect(chartOf('system available memory').match(/<g class="action /g)).toHaveLength(6);
    // Still one self-contained, escaped file.
    expect(html).not.toMatch(/https?:|<script|<link|\ssrc=|@import|url\(/i);
    expect(html).not.toContain('<img');
    expect(html).toContain('&#60;script&#62;alert(1)&#60;/script&#62;');
  });

  it('keeps the actions in the JSON report', () => {
    const json = JSON.parse(renderJson(report)) as MemoryReport;
    expect(json).toEqual(report);
    expect(json.actions.listed[2]?.executed).toBe(false);
  });

  it('`memtide report` includes the actions from the database file', async () => {
    const { store, file } = open();
    fill(store);
    let text = '';
    await reportCommand(['--db', file, '--since', '4h', '--format', 'md'], (t) => (text += t), NOW);
    expect(text).toContain('## Actions');
    expect(text).toContain('| coordinator | unload-idle-models |');
  });
});

describe('readActions', () => {
  it('says so when there are none; a report saved before actions existed still renders', () => {
    const { store } = open();
    const report = buildReport(store, { sinceMs: T0, untilMs: NOW, nowMs: NOW, config });
    expect(report.actions).toMatchObject({ total: 0, listed: [], byKind: [] });
    expect(renderMarkdown(report)).toContain('## Actions\n\nNo actions in the range.');
    const { actions: _dropped, ...old } = report;
    expect(renderHtml({ ...old, version: 1 } as unknown as MemoryReport)).toContain('No actions in the range.');
  });

  it('in observe-only mode only says what it would have done', () => {
    const { store } = open();
    for (let i = 0; i < 3; i++) {
      const id = store.insertAction(actionEntry({ atMs: at(10 * i), kind: 'unload-idle-models', executed: false, componentBytesBefore: 4 * GIB, availableBytesBefore: GIB }));
      store.updateAction(id, { componentBytesAfter: 4 * GIB, availableBytesAfter: GIB, measuredAtMs: at(10 * i + 1) });
    }
    const report = buildReport(store, { sinceMs: T0, untilMs: NOW, nowMs: NOW, config });
    expect(renderMarkdown(report)).toContain('3 actions: 0 executed, 3 observe-only (would have acted 3 times); nothing was executed, so nothing was freed.');
    expect(renderHtml(report).match(/<g class="action action-observe">/g)).toHaveLength(3); // the system chart (no component samples)
  });

  it('lists the newest MAX_LISTED and counts the rest', () => {
    const { store } = open();
    for (let i = 0; i < MAX_LISTED + 50; i++) store.insertAction(actionEntry({ atMs: T0 + i * SEC, kind: i % 2 ? 'shrink-caches' : 'unload-idle-models' }));
    const report = buildReport(store, { sinceMs: T0, untilMs: NOW, nowMs: NOW, config });
    expect(report.actions.total).toBe(MAX_LISTED + 50);
    expect(report.actions.listed).toHaveLength(MAX_LISTED);
    expect(report.actions.listed[0]?.atMs).toBe(T0 + 50 * SEC);
    expect(report.actions.listed.at(-1)?.atMs).toBe(T0 + (MAX_LISTED + 49) * SEC);
    expect(report.actions.byKind.map((k) => [k.kind, k.count])).toEqual([
      ['shrink-caches', 125],
      ['unload-idle-models', 125],
    ]);
    expect(renderMarkdown(report)).toContain('… and 50 earlier actions (counted above, not listed).');
  });

  propIt.prop(
    [
      fc.array(fc.record({ gapMs: fc.constantFrom(0, 0, 1, 7), executed: fc.boolean(), freed: fc.option(fc.integer({ min: -GIB, max: GIB }), { nil: null }) }), { maxLength: 60 }),
      fc.integer({ min: 1, max: 8 }),
      fc.integer({ min: 1, max: 10 }),
    ],
    { numRuns: 60 },
  )('reads every action once, however pages and same-millisecond ties fall', (rows, pageSize, maxListed) => {
    const store = HistoryStore.open(':memory:');
    try {
      let t = T0;
      const entries = rows.map((r) =>
        actionEntry({
          atMs: (t += r.gapMs),
          kind: 'k',
          executed: r.executed,
          componentBytesBefore: r.freed === null ? null : 2 * GIB,
          componentBytesAfter: r.freed === null ? null : 2 * GIB - r.freed,
          measuredAtMs: r.freed === null ? null : t + 1,
        }),
      );
      for (const e of entries) store.insertAction(e);
      const summary = readActions(store, { sinceMs: T0, untilMs: t + 1 }, maxListed, pageSize);
      expect(summary.total).toBe(entries.length);
      expect(summary.executed).toBe(entries.filter((e) => e.executed).length);
      const counted = entries.filter((e) => e.executed && e.measuredAtMs !== null).map((e) => (e.componentBytesBefore ?? 0) - (e.componentBytesAfter ?? 0));
      expect(summary.measured).toBe(counted.length);
      expect(summary.freedBytes).toBe(counted.filter((x) => x > 0).reduce((a, b) => a + b, 0));
      expect(summary.grewBytes).toBe(counted.filter((x) => x < 0).reduce((a, b) => a - b, 0));
      // The newest maxListed, oldest first (ties in insertion order, as the table's ids).
      expect(summary.listed.map((a) => a.atMs)).toEqual(entries.slice(-maxListed).map((e) => e.atMs));
    } finally {
      store.close();
    }
  });
});
