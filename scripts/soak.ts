/**
 * `npm run soak`: the real runner for `--minutes` (default 30) at `--interval`
 * (default 100 ms, 10 samples a second), with the server on, a dashboard SSE
 * client connected the whole time and a steady load of API and history
 * requests. Afterwards the runner's own `engine` samples are read back from
 * its SQLite history and fed to the same leak detector (`leakTrend`, with the
 * `leaks` config the runner reported in force), as are the live feed's
 * anonymous PSS and V8 heap of the engine and an independent /proc reading.
 * Exits 1 on a leak verdict, on missing samples, or when the runner fails.
 * Not part of the test suite. docs/soak.md has what it does and a result.
 *
 *   npm run soak -- [--minutes 30] [--interval 100ms] [--rate 5] [--dir DIR] [--no-build] [--min-coverage 0.95]
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { parseDuration } from '../src/app/units.js';
import { CLI_PATH, REPO_ROOT, ensureBuilt } from '../test/setup/build.js';
import { defaultLeaksConfig, describeSeries, mb, mbPerHour, summarize, type LeaksConfig, type Point, type SeriesSummary } from './soak/analysis.js';
import { connectFeed, procMemory, startLoad } from './soak/client.js';

/** The pid of the first process whose command line passes `test` (NUL-separated arguments joined by spaces). */
function findPid(test: (cmdline: string) => boolean): number | undefined {
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (test(fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' '))) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    interval: { type: 'string', default: '100ms' },
    rate: { type: 'string', default: '5' },
    dir: { type: 'string' },
    'no-build': { type: 'boolean', default: false },
    'min-coverage': { type: 'string', default: '0.95' },
    // Diagnosis: run the runner under a tool, e.g. --wrap 'heaptrack -o /tmp/ht/runner' (split on spaces).
    wrap: { type: 'string' },
  },
  strict: true,
});

const minutes = Number(args.minutes);
const intervalMs = parseDuration(args.interval);
const rate = Number(args.rate);
const minCoverage = Number(args['min-coverage']);
if (!(minutes > 0) || intervalMs === null || !(rate > 0) || !(minCoverage > 0 && minCoverage <= 1)) {
  process.stderr.write('usage: npm run soak -- [--minutes 30] [--interval 100ms] [--rate 5] [--dir DIR] [--no-build] [--min-coverage 0.95]\n');
  process.exit(2);
}
const durationMs = minutes * 60_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (text: string) => process.stdout.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${text}\n`);

if (!args['no-build']) await ensureBuilt();
if (!fs.existsSync(CLI_PATH)) throw new Error(`${CLI_PATH} is missing: run npm run build`);

const dir = args.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'memtide-soak-'));
fs.mkdirSync(dir, { recursive: true });
const dbFile = path.join(dir, 'soak.db');
const runnerLog = path.join(dir, 'runner.log');
log(`dir ${dir}; ${minutes} min at ${intervalMs} ms, ${rate} requests/s`);

// The runner, as a user starts it; its cwd is the soak directory (token file, nothing in the repo).
// A clean environment: the developer's MEMTIDE_* settings must not change what is measured.
const runnerArgs = [CLI_PATH, 'run', '--interval', args.interval, '--db', dbFile, '--port', '0'];
const wrap = args.wrap ? args.wrap.split(/\s+/).filter(Boolean) : [];
const runner = spawn(wrap[0] ?? process.execPath, wrap.length ? [...wrap.slice(1), process.execPath, ...runnerArgs] : runnerArgs, {
  cwd: dir,
  env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? dir },
  stdio: ['ignore', 'ignore', 'pipe'],
});
const logStream = fs.createWriteStream(runnerLog);
let stderr = '';
runner.stderr.setEncoding('utf8').on('data', (chunk: string) => {
  logStream.write(chunk);
  if (stderr.length < 64_000) stderr += chunk;
});
let runnerExit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
const exited = new Promise<void>((resolve) =>
  runner.on('exit', (code, signal) => {
    runnerExit = { code, signal };
    resolve();
  }),
);
// Never leave a runner behind if this script dies early.
process.on('exit', () => {
  if (!runnerExit) runner.kill('SIGKILL');
});
log(`runner pid ${runner.pid}: node ${path.relative(REPO_ROOT, CLI_PATH)} ${runnerArgs.slice(1).join(' ')}`);

// The dashboard URL (with the token) is in the start-up line.
const deadline = Date.now() + 60_000;
let match: RegExpExecArray | null = null;
while (!(match = /dashboard (http:\/\/[^/\s]+)\/#token=(\S+)/.exec(stderr))) {
  if (runnerExit || Date.now() > deadline) {
    process.stderr.write(`the runner did not start (${JSON.stringify(runnerExit)}):\n${stderr}\n`);
    process.exit(1);
  }
  await sleep(100);
}
const [, baseUrl, token] = match as unknown as [string, string, string];
log(`runner serving ${baseUrl}`);

// Under --wrap the runner is a child of the wrapper: find its pid (measured, and sent SIGTERM, directly).
const runnerPid = wrap.length ? findPid((cmdline) => cmdline.startsWith(`${process.execPath} ${CLI_PATH} `) && cmdline.includes(dbFile)) ?? runner.pid! : runner.pid!;
if (runnerPid !== runner.pid) log(`runner pid under ${wrap[0]}: ${runnerPid}`);

const configView = (await (await fetch(`${baseUrl}/api/config`)).json()) as { config: { leaks: LeaksConfig; components: { engine: string } } };
const leaksConfig = configView.config.leaks ?? defaultLeaksConfig();
const engineComponent = configView.config.components.engine;

const feed = connectFeed(baseUrl!, engineComponent);
const load = startLoad(baseUrl!, token!, rate);
const proc: Point[] = [];
const procAnon: Point[] = [];
const startedAt = Date.now();
let lastReport = startedAt;
while (Date.now() - startedAt < durationMs && !runnerExit) {
  await sleep(5_000);
  const now = Date.now();
  const m = procMemory(runnerPid, (p) => fs.readFileSync(p, 'utf8'));
  if (m) {
    proc.push({ timestampMs: now, bytes: m.rssBytes });
    if (m.pssAnonBytes !== null) procAnon.push({ timestampMs: now, bytes: m.pssAnonBytes });
  }
  if (now - lastReport >= 60_000) {
    lastReport = now;
    const last = feed.points.at(-1);
    log(
      `+${((now - startedAt) / 60_000).toFixed(1)} min: RSS ${mb(m?.rssBytes ?? Number.NaN)}, Pss_Anon ${mb(m?.pssAnonBytes ?? Number.NaN)}, ` +
        `heap ${mb(last?.heapUsedBytes ?? Number.NaN)}; feed ${feed.points.length} samples; ${load.requests} requests (${load.failures} failed)`,
    );
  }
}
const ranMs = Date.now() - startedAt;
await load.stop();
await sleep(2_000); // let requests in flight finish
feed.close();

// SIGTERM: the runner flushes history and exits 0.
const stopAt = Date.now();
if (!runnerExit) process.kill(runnerPid, 'SIGTERM');
await Promise.race([exited, sleep(wrap.length ? 300_000 : 30_000)]);
if (!runnerExit) {
  runner.kill('SIGKILL');
  await exited;
}
logStream.end();
log(`runner stopped in ${Date.now() - stopAt} ms: ${JSON.stringify(runnerExit)}`);

// ---------------------------------------------------------------------------
// What the runner wrote
// ---------------------------------------------------------------------------

const db = new Database(dbFile, { readonly: true });
const rows = db
  .prepare(
    `SELECT c.timestamp_ms AS t, c.rss_bytes AS rss, c.pss_bytes AS pss, s.available_bytes AS available
       FROM component_samples c LEFT JOIN system_samples s ON s.timestamp_ms = c.timestamp_ms
      WHERE c.component = ? ORDER BY c.timestamp_ms`,
  )
  .all(engineComponent) as { t: number; rss: number; pss: number | null; available: number | null }[];
const systemRows = (db.prepare('SELECT count(*) AS n FROM system_samples').get() as { n: number }).n;
const buckets = (db.prepare('SELECT count(*) AS n, sum(sample_count) AS samples FROM component_buckets WHERE component = ?').get(engineComponent) as {
  n: number;
  samples: number | null;
});
const alerts = db.prepare('SELECT kind, status, component, count(*) AS n FROM alerts GROUP BY kind, status, component').all();
db.close();

const firstMs = rows[0]?.t ?? Number.NaN;
const lastMs = rows.at(-1)?.t ?? Number.NaN;
const gaps = rows.slice(1).map((r, i) => r.t - rows[i]!.t);
const maxGapMs = gaps.reduce((max, g) => Math.max(max, g), 0);
// Expected: one sample per interval from the first to the last written one (the timer starts at 0).
const expected = Number.isFinite(firstMs) ? Math.floor((lastMs - firstMs) / intervalMs) + 1 : Math.floor(ranMs / intervalMs);
const coverage = rows.length / expected;

const historyRss: Point[] = rows.map((r) => ({ timestampMs: r.t, bytes: r.rss, availableBytes: r.available }));
const historyPss: Point[] = rows.filter((r) => r.pss !== null).map((r) => ({ timestampMs: r.t, bytes: r.pss!, availableBytes: r.available }));
const feedAnon: Point[] = feed.points.filter((p) => p.enginePssAnonBytes !== null).map((p) => ({ timestampMs: p.timestampMs, bytes: p.enginePssAnonBytes!, availableBytes: p.availableBytes }));
const feedHeap: Point[] = feed.points.map((p) => ({ timestampMs: p.timestampMs, bytes: p.heapUsedBytes }));
const feedHeapTotal: Point[] = feed.points.map((p) => ({ timestampMs: p.timestampMs, bytes: p.heapTotalBytes }));
const feedExternal: Point[] = feed.points.map((p) => ({ timestampMs: p.timestampMs, bytes: p.externalBytes }));

const series: Array<[string, Point[]]> = [
  ['history RSS', historyRss],
  ['history PSS', historyPss],
  ['feed Pss_Anon (live)', feedAnon],
  ['feed V8 heapUsed', feedHeap],
  ['feed V8 heapTotal', feedHeapTotal],
  ['feed V8 external', feedExternal],
  ['/proc VmRSS (5 s)', proc],
  ['/proc Pss_Anon (5 s)', procAnon],
];
const summaries: Array<[string, SeriesSummary]> = [];
for (const [name, points] of series) if (points.length > 1) summaries.push([name, await summarize(points, leaksConfig)]);
const runnerLeakEvents = feed.leakEvents.filter((e) => (e as { component?: string }).component === engineComponent);

const failures: string[] = [];
if (!runnerExit || runnerExit.code !== 0) failures.push(`the runner ended with ${JSON.stringify(runnerExit)} (expected exit 0 on SIGTERM)`);
if (ranMs < durationMs - 10_000) failures.push(`the runner stopped after ${(ranMs / 60_000).toFixed(1)} of ${minutes} minutes`);
if (!(coverage >= minCoverage)) failures.push(`missing samples: ${rows.length} written of ${expected} expected (${(coverage * 100).toFixed(1)}% < ${minCoverage * 100}%)`);
for (const [name, s] of summaries) if (s.leak) failures.push(`leak verdict on ${name}`);
if (runnerLeakEvents.some((e) => (e as { kind?: string }).kind === 'leak')) failures.push('the runner reported a leak of its own engine component live');

const report = {
  minutes,
  intervalMs,
  ranMs,
  runner: { exit: runnerExit, log: runnerLog },
  samples: { written: rows.length, expected, coverage, maxGapMs, systemRows, buckets: buckets.n, bucketSamples: buckets.samples ?? 0 },
  feed: { points: feed.points.length, events: feed.events, connects: feed.connects, drops: feed.drops, runnerLeakEvents },
  load: { requests: load.requests, bytes: load.bytes, failures: load.failures, byEndpoint: load.byEndpoint },
  alerts,
  leaksConfig: { windowMs: leaksConfig.windowMs, bucketMs: leaksConfig.bucketMs, minHourlyGrowthBytes: leaksConfig.minHourlyGrowthBytes, fastMinHourlyGrowthBytes: leaksConfig.fast.minHourlyGrowthBytes },
  series: Object.fromEntries(summaries),
  failures,
};
fs.writeFileSync(path.join(dir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);

const out: string[] = [];
out.push('');
out.push(`memtide soak: ${(ranMs / 60_000).toFixed(1)} min of \`memtide run --interval ${args.interval}\`, ${rate} requests/s, SSE client connected`);
out.push(
  `samples: ${rows.length} written of ${expected} expected (${(coverage * 100).toFixed(2)}%), largest gap ${maxGapMs} ms; ` +
    `${buckets.n} one-minute buckets holding ${buckets.samples ?? 0} samples`,
);
out.push(`feed: ${feed.points.length} sample events, ${feed.connects} connection(s), ${feed.drops} drop(s); events ${JSON.stringify(feed.events)}`);
out.push(`load: ${load.requests} requests, ${mb(load.bytes)} received, ${load.failures} failed`);
for (const [key, statuses] of Object.entries(load.byEndpoint).sort()) out.push(`  ${key.padEnd(28)} ${JSON.stringify(statuses)}`);
out.push(`alerts stored: ${JSON.stringify(alerts)}`);
out.push(`leak detector: leakTrend with the runner's leaks config (window ${leaksConfig.windowMs / 60_000} min, floor ${mbPerHour(leaksConfig.minHourlyGrowthBytes)}, fast path ${mbPerHour(leaksConfig.fast.minHourlyGrowthBytes)})`);
for (const [name, s] of summaries) out.push(`  ${describeSeries(name, s)}`);
out.push(`  runner's live leak events for ${engineComponent}: ${runnerLeakEvents.length}`);
if (ranMs < 40 * 60_000) {
  out.push(
    '  note: a segment younger than 40 min is a warm-up to the detector (docs/leaks.md, rule 4): in a run this short only the fast path ' +
      `(>= ${mbPerHour(leaksConfig.fast.minHourlyGrowthBytes)}) can report; the floor slopes above are the evidence for slower growth.`,
  );
}
out.push(failures.length ? `FAIL:\n  ${failures.join('\n  ')}` : 'OK: no leak, no missing samples, the runner exited 0');
out.push(`report: ${path.join(dir, 'report.json')}`);
process.stdout.write(`${out.join('\n')}\n`);
process.exit(failures.length ? 1 : 0);
