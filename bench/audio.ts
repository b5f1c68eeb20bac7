/**
 * `npm run bench:audio`: memory and speed of turning a long WAV into 16 kHz
 * mono chunks, against the obvious alternatives, measured in one run on the
 * same files.
 *
 * - Writes 10 min, 1 h and 4 h 44.1 kHz stereo 16-bit "speech-like" WAVs to a
 *   temporary directory, streamed one second at a time (the 4 h file is
 *   2.5 GB on disk; writing it takes a few MB of memory). Deleted at the end,
 *   also on error or Ctrl-C.
 * - Each run is its own process, so peak RSS is per run, measured by
 *   `/usr/bin/time -v` (max RSS of the process; falls back to the child's
 *   own `process.resourceUsage().maxRSS` where GNU time is missing):
 *   (a) memtide: `audioChunks(file, defaults)` — the in-process WAV parser,
 *       resampler and chunker, every 30 s chunk pulled and dropped (what
 *       `memtide transcribe --transcriber none` does). The child runs as
 *       plain JavaScript (bundled from the sources with tsx's esbuild, as the
 *       built CLI runs), not under the tsx loader, which alone costs ~50 MB.
 *   (b) baseline: `readFileSync` + node-wav `decode` + downmix to mono — how
 *       an app that "just decodes the file" does it (Meetily reads imported
 *       files whole). Skipped where its estimated peak (file + decoded
 *       channels + mono copy) would pass 10 GB (the 4 h file).
 *   (c) ffmpeg alone converting to 16 kHz mono s16le into /dev/null: the
 *       native floor.
 * - Seconds are wall time of the decode (inside the child for node runs, the
 *   whole process for ffmpeg); CPU seconds are printed too, because other
 *   work on a shared machine stretches wall time.
 * - Exits 1 unless memtide's peak RSS is under 120 MB for 1 h and 4 h, the
 *   4 h peak is within 10 MB of the 1 h peak, and memtide decodes at least
 *   300x real time (wall) on every file.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statfsSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { writeSpeechLikeWav } from './support/makeWav.js';
import { audioSchema } from '../src/app/schema/audio.js';
import { audioChunks } from '../src/sources/audio/audioSource.js';

const RATE = 44100;
const CHANNELS = 2;
const FILES = [
  { label: '10 min', seconds: 600 },
  { label: '1 h', seconds: 3600 },
  { label: '4 h', seconds: 14400 },
];
const MAX_RSS_MB = 120;
const MAX_GROWTH_MB = 10;
const MIN_SPEED = 300;
/** Baseline runs whose estimated peak passes this are skipped (the machine has 24 GB). */
const BASELINE_LIMIT_BYTES = 10e9;

type Kind = 'memtide' | 'baseline' | 'ffmpeg';

/** What a node child reports on stdout. */
interface ChildReport {
  seconds: number;
  cpuSeconds: number;
  maxRssKb: number;
  chunks?: number;
  samples?: number;
}

interface Row {
  file: string;
  kind: Kind;
  rssMb: number | null;
  seconds: number;
  cpuSeconds: number | null;
  speed: number;
  note?: string;
}

// ---------------------------------------------------------------- child side

async function childMemtide(file: string): Promise<ChildReport> {
  const config = audioSchema.parse({});
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let chunks = 0;
  let samples = 0;
  for await (const chunk of audioChunks(file, config)) {
    chunks += 1;
    samples += chunk.samples.length;
  }
  const cpu = process.cpuUsage(c0);
  return { seconds: (performance.now() - t0) / 1000, cpuSeconds: (cpu.user + cpu.system) / 1e6, maxRssKb: process.resourceUsage().maxRSS, chunks, samples };
}

function childBaseline(file: string): ChildReport {
  type NodeWav = { decode(buffer: Buffer): { sampleRate: number; channelData: Float32Array[] } };
  const wav = createRequire(import.meta.url)('node-wav') as NodeWav;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const decoded = wav.decode(readFileSync(file));
  const channels = decoded.channelData;
  const mono = new Float32Array(channels[0]!.length);
  for (const data of channels) for (let i = 0; i < mono.length; i++) mono[i]! += data[i]! / channels.length;
  const cpu = process.cpuUsage(c0);
  return { seconds: (performance.now() - t0) / 1000, cpuSeconds: (cpu.user + cpu.system) / 1e6, maxRssKb: process.resourceUsage().maxRSS, samples: mono.length };
}

// --------------------------------------------------------------- parent side

const hasGnuTime = (() => {
  try {
    readFileSync('/usr/bin/time');
    return true;
  } catch {
    return false;
  }
})();

/** Runs `command args` (under /usr/bin/time -v when there); returns stdout, peak RSS (KB) and wall seconds. */
function run(command: string, args: string[]): Promise<{ stdout: string; maxRssKb: number | null; seconds: number }> {
  return new Promise((resolve, reject) => {
    const [cmd, argv] = hasGnuTime ? ['/usr/bin/time', ['-v', command, ...args]] : [command, args];
    const t0 = performance.now();
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
    child.on('error', reject);
    child.on('close', (code) => {
      const seconds = (performance.now() - t0) / 1000;
      if (code !== 0) return reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${stderr.slice(-2000)}`));
      const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
      resolve({ stdout, maxRssKb: rss ? Number(rss[1]) : null, seconds });
    });
  });
}

/** Bundles this file to plain JS (packages stay external) so children run without the tsx loader. */
async function bundleSelf(outDir: string): Promise<string> {
  type Esbuild = { build(options: Record<string, unknown>): Promise<unknown> };
  const fromTsx = createRequire(createRequire(import.meta.url).resolve('tsx/package.json'));
  const esbuild = fromTsx('esbuild') as Esbuild;
  const outfile = path.join(outDir, 'audio-bench.mjs');
  await esbuild.build({
    entryPoints: [fileURLToPath(import.meta.url)],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    outfile,
    logLevel: 'error',
  });
  return outfile;
}

async function nodeChild(bundle: string, kind: 'memtide' | 'baseline', file: string): Promise<{ report: ChildReport; rssKb: number }> {
  const { stdout, maxRssKb } = await run(process.execPath, [bundle, '--child', kind, file]);
  const report = JSON.parse(stdout.trim().split('\n').pop()!) as ChildReport;
  return { report, rssKb: maxRssKb ?? report.maxRssKb };
}

function ffmpegPath(): string {
  return (createRequire(import.meta.url)('@ffmpeg-installer/ffmpeg') as { path: string }).path;
}

const mb = (kb: number) => kb / 1024;
const fmt = (x: number, digits = 1) => x.toFixed(digits);

async function main(): Promise<void> {
  const tmpRoot = os.tmpdir();
  const needed = FILES.reduce((n, f) => n + f.seconds * RATE * CHANNELS * 2, 0);
  const free = (() => {
    const s = statfsSync(tmpRoot);
    return s.bavail * s.bsize;
  })();
  if (free < needed * 1.1) throw new Error(`need ${fmt(needed / 1e9)} GB free in ${tmpRoot}, have ${fmt(free / 1e9)} GB`);

  const dir = mkdtempSync(path.join(tmpRoot, 'memtide-bench-audio-'));
  const buildDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '.tmp', `bench-audio-${process.pid}`);
  const cleanup = () => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(buildDir, { recursive: true, force: true });
  };
  const onSignal = () => {
    cleanup();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const rows: Row[] = [];
  const notes: string[] = [];
  const load0 = os.loadavg()[0]!;
  try {
    mkdirSync(buildDir, { recursive: true });
    const bundle = await bundleSelf(buildDir);
    const ffmpeg = ffmpegPath();
    for (const spec of FILES) {
      const file = path.join(dir, `speech-${spec.seconds}s.wav`);
      const g0 = performance.now();
      const bytes = writeSpeechLikeWav(file, spec.seconds, RATE, CHANNELS);
      process.stderr.write(`wrote ${spec.label} (${fmt(bytes / 1e6, 0)} MB) in ${fmt((performance.now() - g0) / 1000)} s\n`);

      const ours = await nodeChild(bundle, 'memtide', file);
      const expectedSamples = Math.round(spec.seconds * 16000);
      if (ours.report.samples !== expectedSamples || ours.report.chunks !== Math.ceil(spec.seconds / 30)) {
        throw new Error(`memtide produced ${ours.report.samples} samples in ${ours.report.chunks} chunks, expected ${expectedSamples} in ${Math.ceil(spec.seconds / 30)}`);
      }
      rows.push({ file: spec.label, kind: 'memtide', rssMb: mb(ours.rssKb), seconds: ours.report.seconds, cpuSeconds: ours.report.cpuSeconds, speed: spec.seconds / ours.report.seconds });
      process.stderr.write(`  memtide: ${fmt(mb(ours.rssKb))} MB, ${fmt(ours.report.seconds, 2)} s\n`);

      const f = await run(ffmpeg, ['-hide_banner', '-nostdin', '-loglevel', 'error', '-i', file, '-f', 's16le', '-ar', '16000', '-ac', '1', '-y', '/dev/null']);
      rows.push({ file: spec.label, kind: 'ffmpeg', rssMb: f.maxRssKb === null ? null : mb(f.maxRssKb), seconds: f.seconds, cpuSeconds: null, speed: spec.seconds / f.seconds });
      process.stderr.write(`  ffmpeg: ${f.maxRssKb === null ? '?' : fmt(mb(f.maxRssKb))} MB, ${fmt(f.seconds, 2)} s\n`);

      const frames = spec.seconds * RATE;
      const estimate = bytes + frames * CHANNELS * 4 + frames * 4;
      if (estimate > BASELINE_LIMIT_BYTES) {
        notes.push(`baseline skipped for ${spec.label}: its estimated peak is ${fmt(estimate / 1e9)} GB (file ${fmt(bytes / 1e9, 2)} GB + Float32 channels + mono copy)`);
      } else {
        const base = await nodeChild(bundle, 'baseline', file);
        rows.push({ file: spec.label, kind: 'baseline', rssMb: mb(base.rssKb), seconds: base.report.seconds, cpuSeconds: base.report.cpuSeconds, speed: spec.seconds / base.report.seconds });
        process.stderr.write(`  baseline: ${fmt(mb(base.rssKb))} MB, ${fmt(base.report.seconds, 2)} s\n`);
      }
      rmSync(file, { force: true });
    }
  } finally {
    cleanup();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }

  const name = { memtide: 'memtide audioChunks (WAV -> 16 kHz mono, 30 s chunks)', baseline: 'readFileSync + node-wav decode + downmix', ffmpeg: 'ffmpeg -> 16 kHz mono s16le, /dev/null' };
  const lines = [
    `date: ${new Date().toISOString()}, node ${process.version}, ${os.cpus().length} cores, kernel ${os.release()}, load average ${fmt(load0, 2)} at start / ${fmt(os.loadavg()[0]!, 2)} at end, RSS by ${hasGnuTime ? '/usr/bin/time -v' : 'process.resourceUsage()'}`,
    '',
    '| file | run | peak RSS MB | seconds | CPU s | x real time | RSS / memtide | seconds / memtide |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const row of rows) {
    const ours = rows.find((r) => r.file === row.file && r.kind === 'memtide')!;
    const ratio = (a: number | null, b: number | null) => (a === null || b === null || row.kind === 'memtide' ? '' : `${fmt(a / b, 2)}x`);
    lines.push(
      `| ${row.file} | ${name[row.kind]} | ${row.rssMb === null ? '?' : fmt(row.rssMb)} | ${fmt(row.seconds, 2)} | ${row.cpuSeconds === null ? '' : fmt(row.cpuSeconds, 2)} | ${fmt(row.speed, 0)} | ${ratio(row.rssMb, ours.rssMb)} | ${ratio(row.seconds, ours.seconds)} |`,
    );
  }
  lines.push('', ...notes.map((n) => `note: ${n}`));

  const ours = (label: string) => rows.find((r) => r.file === label && r.kind === 'memtide')!;
  const failures: string[] = [];
  for (const label of ['1 h', '4 h']) {
    const rss = ours(label).rssMb!;
    if (rss >= MAX_RSS_MB) failures.push(`memtide peak RSS for ${label} is ${fmt(rss)} MB (limit ${MAX_RSS_MB} MB)`);
  }
  const growth = ours('4 h').rssMb! - ours('1 h').rssMb!;
  if (Math.abs(growth) > MAX_GROWTH_MB) failures.push(`memtide 4 h peak is ${fmt(growth)} MB from the 1 h peak (limit ${MAX_GROWTH_MB} MB either way)`);
  for (const row of rows.filter((r) => r.kind === 'memtide')) {
    if (row.speed < MIN_SPEED) failures.push(`memtide decoded ${row.file} at ${fmt(row.speed, 0)}x real time (needs ${MIN_SPEED}x)`);
  }
  lines.push(
    failures.length === 0
      ? `OK: memtide peak RSS ${fmt(ours('1 h').rssMb!)} MB (1 h) / ${fmt(ours('4 h').rssMb!)} MB (4 h) < ${MAX_RSS_MB} MB, 4 h - 1 h = ${fmt(growth)} MB (within ${MAX_GROWTH_MB} MB), slowest ${fmt(Math.min(...rows.filter((r) => r.kind === 'memtide').map((r) => r.speed)), 0)}x >= ${MIN_SPEED}x real time`
      : `FAIL: ${failures.join('; ')}`,
  );
  console.log(lines.join('\n'));
  if (failures.length > 0) process.exitCode = 1;
}

async function child(kind: string, file: string): Promise<void> {
  const report = kind === 'memtide' ? await childMemtide(file) : childBaseline(file);
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

const argv = process.argv.slice(2);
const entry = argv[0] === '--child' ? child(argv[1] as Kind, argv[2]!) : main();
entry.catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exit(1);
});
