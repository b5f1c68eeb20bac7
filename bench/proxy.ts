/**
 * `npm run bench:proxy`: what the Ollama proxy adds to time-to-first-byte,
 * against calling the same server directly, in one run.
 *
 * - The fake Ollama runs in its own process (test/support/fakeOllamaMain.ts),
 *   as Ollama would; the proxy (with a stub governor that admits at once, so
 *   the full model path runs: read, parse, admit, rewrite, forward, release)
 *   and the client run in this process.
 * - Workloads: streaming `/api/generate` (model preloaded, so no load time is
 *   measured; the proxy injects num_ctx and keep_alive equal to the loaded
 *   runner's, so Ollama does not reload) and non-streaming `GET /api/tags`.
 * - Requests go one at a time over keep-alive connections, direct and proxied
 *   alternating (drift hits both alike), after a warm-up. TTFB = from sending
 *   the request to the first body byte.
 * - Prints p50/p90/p99 per path, the added latency and ratios; exits 1 if the
 *   added p50 TTFB of any workload is 2 ms or more.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { startProxy } from '../src/app/proxy/proxy.js';
import { createStubGovernor } from '../test/support/stubGovernor.js';

const N = Number(process.env.BENCH_N ?? 500);
const WARMUP = 50;
const TARGET_ADDED_P50_MS = 2;
const MODEL = 'gemma3:1b';
const NUM_CTX = 4096;

interface Workload {
  name: string;
  method: 'GET' | 'POST';
  path: string;
  body?: string;
}

const WORKLOADS: Workload[] = [
  { name: 'streaming /api/generate', method: 'POST', path: '/api/generate', body: JSON.stringify({ model: MODEL, prompt: 'Summarise the meeting in one line.', stream: true }) },
  { name: 'GET /api/tags', method: 'GET', path: '/api/tags' },
];

let fakeProcess: ChildProcess | undefined;

/** Starts the fake Ollama in a child process; resolves with its URL. */
function startFakeProcess(): Promise<string> {
  const main = fileURLToPath(new URL('../test/support/fakeOllamaMain.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', main, '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  fakeProcess = child;
  return new Promise((resolve, reject) => {
    let text = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      text += chunk;
      const match = /listening on (http:\/\/\S+)/.exec(text);
      if (match?.[1]) resolve(match[1]);
    });
    child.once('exit', (code) => reject(new Error(`fake Ollama exited (${code}) before serving`)));
  });
}

/** One request; resolves with ms to the first body byte and to the end. */
function timed(base: string, workload: Workload, agent: Agent): Promise<{ ttfbMs: number; totalMs: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let ttfbMs = -1;
    const req = request(`${base}${workload.path}`, { method: workload.method, agent, headers: workload.body ? { 'content-type': 'application/json' } : {} }, (res) => {
      res.on('data', () => {
        if (ttfbMs < 0) ttfbMs = performance.now() - started;
      });
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(`${workload.path}: status ${res.statusCode}`));
        else resolve({ ttfbMs, totalMs: performance.now() - started });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(workload.body);
  });
}

const percentile = (values: number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};

async function main(): Promise<number> {
  const fakeUrl = await startFakeProcess();
  // Keep the runner loaded for the whole run, at the context the proxy injects.
  await fetch(`${fakeUrl}/api/generate`, { method: 'POST', body: JSON.stringify({ model: MODEL, prompt: '', keep_alive: -1, options: { num_ctx: NUM_CTX } }) });
  const governor = createStubGovernor(() => ({ numCtx: NUM_CTX, keepAlive: -1 }));
  const proxy = await startProxy({ listen: { host: '127.0.0.1', port: 0 }, upstream: fakeUrl, governor });
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });

  const rows: string[] = [];
  let failed = false;
  for (const workload of WORKLOADS) {
    for (let i = 0; i < WARMUP; i += 1) {
      await timed(fakeUrl, workload, agent);
      await timed(proxy.url, workload, agent);
    }
    const direct: number[] = [];
    const proxied: number[] = [];
    const directTotal: number[] = [];
    const proxiedTotal: number[] = [];
    for (let i = 0; i < N; i += 1) {
      const a = await timed(fakeUrl, workload, agent);
      const b = await timed(proxy.url, workload, agent);
      direct.push(a.ttfbMs);
      proxied.push(b.ttfbMs);
      directTotal.push(a.totalMs);
      proxiedTotal.push(b.totalMs);
    }
    const fmt = (n: number) => n.toFixed(3);
    const [d50, d90, d99] = [50, 90, 99].map((p) => percentile(direct, p)) as [number, number, number];
    const [p50, p90, p99] = [50, 90, 99].map((p) => percentile(proxied, p)) as [number, number, number];
    const added = p50 - d50;
    if (added >= TARGET_ADDED_P50_MS) failed = true;
    rows.push(`| ${workload.name}, direct | ${N} | ${fmt(d50)} | ${fmt(d90)} | ${fmt(d99)} | ${fmt(percentile(directTotal, 50))} |  |  |`);
    rows.push(
      `| ${workload.name}, via proxy | ${N} | ${fmt(p50)} | ${fmt(p90)} | ${fmt(p99)} | ${fmt(percentile(proxiedTotal, 50))} | ${fmt(added)} / ${fmt(p90 - d90)} / ${fmt(p99 - d99)} | ${(p50 / d50).toFixed(2)}x |`,
    );
  }
  await governor.settled(5000);
  const releasedOnce = governor.admissions.every((a) => a.releases.length === 1);

  process.stdout.write(
    [
      `date: ${new Date().toISOString()}, node ${process.version}, ${os.cpus().length} cores, ${os.type()} ${os.release()}`,
      `fake Ollama in a child process; proxy + client here; one request at a time, keep-alive, direct/proxied alternating; ${WARMUP} warm-up each`,
      '',
      '| request | N | TTFB p50 ms | p90 ms | p99 ms | total p50 ms | added TTFB p50 / p90 / p99 ms | p50 ratio |',
      '|---|---:|---:|---:|---:|---:|---:|---:|',
      ...rows,
      '',
      `admissions: ${governor.admissions.length}, each released exactly once: ${releasedOnce ? 'yes' : 'NO'}`,
      failed || !releasedOnce
        ? `FAIL: added p50 TTFB must stay under ${TARGET_ADDED_P50_MS} ms${releasedOnce ? '' : ', and every admission must be released once'}`
        : `OK: added p50 TTFB under ${TARGET_ADDED_P50_MS} ms for every workload`,
      '',
    ].join('\n'),
  );
  agent.destroy();
  await proxy.close();
  return failed || !releasedOnce ? 1 : 0;
}

const stopFake = () => {
  if (fakeProcess && fakeProcess.exitCode === null) fakeProcess.kill('SIGTERM');
};
process.once('SIGINT', () => {
  stopFake();
  process.exit(130);
});

main().then(
  (code) => {
    stopFake();
    process.exitCode = code;
  },
  (error: unknown) => {
    stopFake();
    process.stderr.write(`bench:proxy failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
