/**
 * `npm run bench:analyze`: rows per second of `memtide analyze` against the
 * 100,000 rows/s target of issue 3, with reading alone as the baseline of
 * the same run (what the analysis adds on top of parsing the CSV).
 *
 * - Trace: 8 components + `system.total` / `system.available`, 10 s sampling,
 *   56 h (20,160 samples, 201,600 rows), written to a temporary file (removed
 *   at exit). Components: flat with GC sawtooth and noise, one 30 MB/h leak
 *   from hour 2, one model load (a step), one warm-up that saturates, one
 *   periodic batch; available memory follows their sum.
 * - (a) reading only: `readTrace` to the end; (b) the whole command:
 *   `analyzeCommand` (config defaults, JSON output to a collector). Best of
 *   a few runs each (the first run of (b) also warms the JIT up).
 * - Prints both rates, (b) / (a), and (b) / target; exits 1 below the target.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { analyzeCommand } from '../src/app/commands/analyze.js';
import { readTrace } from '../src/sources/traceCsv.js';

const TARGET_ROWS_PER_SECOND = 100_000;
const INTERVAL_MS = 10_000;
const HOURS = 56;
const MB = 1_000_000;
const HOUR = 3_600_000;

/** Deterministic noise (Park–Miller), so every run replays the same trace. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 16_807) % 2_147_483_647;
    return state / 2_147_483_647;
  };
}

function makeTrace(file: string): number {
  const rnd = random(42);
  const samples = (HOURS * HOUR) / INTERVAL_MS;
  const start = 1_700_000_000_000;
  const total = 32_000 * MB;
  const lines = ['timestamp_ms,component,rss_bytes'];
  for (let i = 0; i < samples; i++) {
    const t = start + i * INTERVAL_MS;
    const h = (i * INTERVAL_MS) / HOUR;
    const noise = (amplitude: number) => (rnd() - 0.5) * amplitude;
    const components: Record<string, number> = {
      engine: 80 * MB + (i % 30) * 0.5 * MB + noise(2 * MB),
      ollama: 900 * MB + (h > 6 ? 4_000 * MB : 0) + noise(20 * MB), // a model load at 6 h
      backend: 400 * MB + Math.max(0, h - 2) * 30 * MB + noise(8 * MB), // leaks 30 MB/h from 2 h
      frontend: 250 * MB + (i % 60) * 2 * MB + noise(5 * MB), // GC sawtooth
      audio: 300 * MB + 600 * MB * (1 - Math.exp(-h / 1.5)) + noise(10 * MB), // warm-up that saturates
      db: 150 * MB + (h % 3 < 0.25 ? 300 * MB : 0) + noise(4 * MB), // a batch every 3 h, 15 min long
      indexer: 120 * MB + noise(3 * MB),
      browser: 1_200 * MB + noise(40 * MB),
    };
    let used = 6_000 * MB;
    for (const [name, bytes] of Object.entries(components)) {
      const rounded = Math.max(0, Math.round(bytes));
      used += rounded;
      lines.push(`${t},${name},${rounded}`);
    }
    lines.push(`${t},system.total,${total}`, `${t},system.available,${Math.max(0, total - used)}`);
  }
  writeFileSync(file, `${lines.join('\n')}\n`);
  return lines.length - 1;
}

async function best(runs: number, fn: () => Promise<void>): Promise<number> {
  let fastest = Infinity;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    fastest = Math.min(fastest, performance.now() - t0);
  }
  return fastest;
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'memtide-bench-analyze-'));
try {
  const file = path.join(dir, 'trace.csv');
  const rows = makeTrace(file);
  let readRows = 0;
  const readMs = await best(3, async () => {
    readRows = 0;
    for await (const sample of readTrace(file)) readRows += sample.components.size + 2;
  });
  if (readRows !== rows) throw new Error(`read ${readRows} rows, wrote ${rows}`);
  let output = '';
  const analyzeMs = await best(3, async () => {
    output = '';
    await analyzeCommand([file], (text) => (output += text));
  });
  const result = JSON.parse(output) as { leaks: { component: string }[]; pressure: unknown[]; alerts: unknown[] };
  const readRate = rows / (readMs / 1000);
  const analyzeRate = rows / (analyzeMs / 1000);
  const k = (x: number) => `${Math.round(x / 1000)}k`;
  console.log(`bench:analyze  ${rows} rows (${(HOURS * HOUR) / INTERVAL_MS} samples × 10 rows, ${HOURS} h at 10 s), node ${process.version}, ${os.cpus().length} cores`);
  console.log(`  found: leaks [${result.leaks.map((l) => l.component).join(', ')}], ${result.pressure.length} pressure changes, ${result.alerts.length} alerts`);
  console.log('');
  console.log('| run | ms (best of 3) | rows/s | vs reading | vs target 100k rows/s |');
  console.log('|---|---:|---:|---:|---:|');
  console.log(`| (a) reading only (readTrace) | ${Math.round(readMs)} | ${k(readRate)} | 1.00 | ${(readRate / TARGET_ROWS_PER_SECOND).toFixed(2)} |`);
  console.log(
    `| (b) memtide analyze (replay + JSON) | ${Math.round(analyzeMs)} | ${k(analyzeRate)} | ${(analyzeRate / readRate).toFixed(2)} | ${(analyzeRate / TARGET_ROWS_PER_SECOND).toFixed(2)} |`,
  );
  if (analyzeRate < TARGET_ROWS_PER_SECOND) {
    console.log(`\nBELOW TARGET: analyze runs at ${k(analyzeRate)} rows/s, the target is ${k(TARGET_ROWS_PER_SECOND)} rows/s.`);
    process.exitCode = 1;
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
