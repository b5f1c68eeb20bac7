/**
 * How Ollama's `num_batch` (llama.cpp n_batch = n_ubatch) changes a CPU-only
 * runner's memory and speed, measured with the real llama.cpp engine
 * (node-llama-cpp prebuilt binaries) on the random-weight llama3.2:3b-shaped
 * GGUF written by generate.ts.
 *
 *   tsx bench/llamacpp/measure.ts [--batches 512,256,128,64] [--runs 3]
 *       [--prompt 3000] [--gen 32] [--ctx 4096] [--threads 2] [--flash-attention]
 *       [--model /tmp/llamabench/llama32-3b-random.gguf] [--nlc /tmp/llamabench]
 *
 * Every (batch, run) is a fresh child process, so RSS starts clean. Runs are
 * interleaved (all batch sizes for run 1, then run 2, ...) so drift in the
 * host affects every batch size alike. The table shows medians.
 *
 * node-llama-cpp is imported from the scratch install (--nlc), never from the
 * repo; its API is typed by the small local interfaces below.
 */
import { spawn } from 'node:child_process';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { NORMAL_TOKEN_RANGE } from './llama32Shape.js';

// ---- the part of node-llama-cpp used here ---------------------------------
interface NlcSequence {
  evaluate(tokens: number[], options: { temperature: number; yieldEogToken: boolean }): AsyncGenerator<number, void, void>;
}
interface NlcContext {
  getSequence(): NlcSequence;
  dispose(): Promise<void>;
}
interface NlcModel {
  createContext(options: {
    contextSize: number;
    batchSize: number;
    threads: number;
    flashAttention: boolean;
    sequences: number;
  }): Promise<NlcContext>;
}
interface NlcLlama {
  loadModel(options: { modelPath: string; gpuLayers: number; useMmap: boolean; useDirectIo: boolean; lazyMode: boolean }): Promise<NlcModel>;
  readonly llamaCppRelease: { repo: string; release: string };
  readonly buildType: string;
  readonly cpuMathCores: number;
}
interface NlcModule {
  getLlama(options: {
    gpu: false;
    build: 'never';
    logLevel: 'debug';
    logger: (level: string, message: string) => void;
  }): Promise<NlcLlama>;
}

// ---- options ---------------------------------------------------------------
function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}
const NLC_DIR = arg('nlc', '/tmp/llamabench');
const MODEL = arg('model', '/tmp/llamabench/llama32-3b-random.gguf');
const CTX = Number(arg('ctx', '4096'));
const THREADS = Number(arg('threads', '2'));
const PROMPT = Number(arg('prompt', '3000'));
const GEN = Number(arg('gen', '32'));
const FLASH = process.argv.includes('--flash-attention');

// ---- child: one measurement ------------------------------------------------
interface Mem {
  rss: number;
  anon: number;
  file: number;
  hwm: number;
}
interface ChildResult {
  batch: number;
  logs: {
    nBatch?: number;
    nUbatch?: number;
    flashAttn?: string;
    computeMiB?: number;
    kvMiB?: number;
    outputMiB?: number;
    modelBuffers: string[];
    cpuBackend?: string;
  };
  mem: { start: Mem; loaded: Mem; context: Mem; prompt: Mem; gen: Mem };
  promptTokS: number;
  genTokS: number;
  llamaCpp: string;
  nlcVersion: string;
  buildType: string;
  cpuMathCores: number;
}

function readMem(): Mem {
  const s = readFileSync('/proc/self/status', 'utf8');
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN) / 1024;
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile'), hwm: kb('VmHWM') };
}

/** Deterministic prompt: the same random ids in every run and process. */
function promptTokens(n: number): number[] {
  let x = 0x9e3779b9;
  const out: number[] = [];
  const span = NORMAL_TOKEN_RANGE.to - NORMAL_TOKEN_RANGE.from;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.push(NORMAL_TOKEN_RANGE.from + ((x >>> 0) % span));
  }
  return out;
}

async function child(batch: number): Promise<void> {
  const pkgDir = join(NLC_DIR, 'node_modules', 'node-llama-cpp');
  const nlcVersion = (JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { version: string }).version;
  const nlc = (await import(pathToFileURL(join(pkgDir, 'dist', 'index.js')).href)) as NlcModule;
  const lines: string[] = [];
  const llama = await nlc.getLlama({ gpu: false, build: 'never', logLevel: 'debug', logger: (_l, m) => lines.push(m) });
  const start = readMem();
  const model = await llama.loadModel({ modelPath: MODEL, gpuLayers: 0, useMmap: true, useDirectIo: false, lazyMode: false });
  const loaded = readMem();
  const ctx = await model.createContext({ contextSize: CTX, batchSize: batch, threads: THREADS, flashAttention: FLASH, sequences: 1 });
  const context = readMem();

  const seq = ctx.getSequence();
  const t0 = performance.now();
  let tFirst = 0;
  let prompt: Mem | undefined;
  let produced = 0;
  for await (const _token of seq.evaluate(promptTokens(PROMPT), { temperature: 0, yieldEogToken: true })) {
    if (produced === 0) {
      tFirst = performance.now();
      prompt = readMem();
    }
    if (++produced > GEN) break;
  }
  const tEnd = performance.now();
  const gen = readMem();
  await new Promise((r) => setImmediate(r)); // let queued log lines arrive

  const last = (re: RegExp): string | undefined => {
    for (let i = lines.length - 1; i >= 0; i--) {
      const m = re.exec(lines[i]!);
      if (m) return m[1];
    }
    return undefined;
  };
  const num = (re: RegExp): number | undefined => {
    const v = last(re);
    return v === undefined ? undefined : Number(v);
  };
  const result: ChildResult = {
    batch,
    logs: {
      nBatch: num(/llama_context: n_batch\s+=\s+(\d+)/),
      nUbatch: num(/llama_context: n_ubatch\s+=\s+(\d+)/),
      flashAttn: last(/llama_context: flash_attn\s+=\s+(\S+)/),
      computeMiB: num(/CPU compute buffer size =\s+([\d.]+) MiB/),
      kvMiB: num(/KV buffer size =\s+([\d.]+) MiB/),
      outputMiB: num(/output buffer size =\s+([\d.]+) MiB/),
      modelBuffers: lines.filter((l) => /model buffer size/.test(l)).map((l) => l.trim()),
      cpuBackend: last(/loaded CPU backend from \S*\/(libggml-cpu-[\w-]+\.so)/),
    },
    mem: { start, loaded, context, prompt: prompt ?? gen, gen },
    promptTokS: PROMPT / ((tFirst - t0) / 1000),
    genTokS: GEN / ((tEnd - tFirst) / 1000),
    llamaCpp: `${llama.llamaCppRelease.repo}@${llama.llamaCppRelease.release}`,
    nlcVersion,
    buildType: llama.buildType,
    cpuMathCores: llama.cpuMathCores,
  };
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  process.exit(0); // skip teardown: nothing after this is measured
}

// ---- parent: orchestration and table ----------------------------------------
function runChild(batch: number): Promise<ChildResult> {
  const args = [...process.execArgv, fileURLToPath(import.meta.url), '--child', String(batch), ...process.argv.slice(2)];
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      if (code !== 0 || line === undefined) reject(new Error(`child batch=${batch} exited ${code}:\n${out.slice(-2000)}`));
      else resolve(JSON.parse(line.slice(7)) as ChildResult);
    });
  });
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function warmPageCache(path: string): Promise<void> {
  for await (const _chunk of createReadStream(path, { highWaterMark: 1 << 24 })) {
    // read only
  }
}

/** What is missing before a run, with the command that provides it; null when ready. */
function missingSetup(): string | null {
  if (!existsSync(join(NLC_DIR, 'node_modules', 'node-llama-cpp', 'package.json'))) {
    return `node-llama-cpp is not installed in ${NLC_DIR} (--nlc): mkdir -p ${NLC_DIR} && cd ${NLC_DIR} && npm init -y && npm install node-llama-cpp@3`;
  }
  if (!existsSync(MODEL)) return `no model at ${MODEL} (--model): npm run bench:llamacpp:model`;
  return null;
}

async function parent(): Promise<void> {
  const missing = missingSetup();
  if (missing) {
    process.stderr.write(`bench:llamacpp: ${missing}\n`);
    process.exit(2);
  }
  const batches = arg('batches', '512,256,128,64').split(',').map(Number);
  const runs = Number(arg('runs', '3'));
  await warmPageCache(MODEL);
  const results = new Map<number, ChildResult[]>(batches.map((b) => [b, []]));
  for (let r = 1; r <= runs; r++) {
    for (const b of batches) {
      const res = await runChild(b);
      results.get(b)!.push(res);
      const m = res.mem;
      console.error(
        `run ${r} batch ${b}: n_batch=${res.logs.nBatch} n_ubatch=${res.logs.nUbatch} compute=${res.logs.computeMiB} MiB ` +
          `kv=${res.logs.kvMiB} MiB rss ctx/prompt/gen=${m.context.rss.toFixed(0)}/${m.prompt.rss.toFixed(0)}/${m.gen.rss.toFixed(0)} MiB ` +
          `anon(prompt)=${m.prompt.anon.toFixed(0)} file(prompt)=${m.prompt.file.toFixed(0)} ` +
          `pp=${res.promptTokS.toFixed(1)} tok/s tg=${res.genTokS.toFixed(2)} tok/s`,
      );
    }
  }

  const first = results.get(batches[0]!)![0]!;
  console.log(`\nnode-llama-cpp ${first.nlcVersion} (${first.buildType}), llama.cpp ${first.llamaCpp}, CPU backend ${first.logs.cpuBackend}`);
  console.log(`model buffers: ${first.logs.modelBuffers.join(' | ')}`);
  console.log(`ctx ${CTX}, threads ${THREADS}, flash_attn ${first.logs.flashAttn}, prompt ${PROMPT} tokens, gen ${GEN} tokens, ${runs} runs each, medians\n`);

  type Row = Record<string, number>;
  const rows = new Map<number, Row>();
  for (const b of batches) {
    const rs = results.get(b)!;
    const med = (f: (r: ChildResult) => number): number => median(rs.map(f));
    rows.set(b, {
      nUbatch: med((r) => r.logs.nUbatch ?? NaN),
      compute: med((r) => r.logs.computeMiB ?? NaN),
      kv: med((r) => r.logs.kvMiB ?? NaN),
      ctxRss: med((r) => r.mem.context.rss),
      rss: med((r) => r.mem.prompt.rss),
      anon: med((r) => r.mem.prompt.anon),
      file: med((r) => r.mem.prompt.file),
      hwm: med((r) => r.mem.gen.hwm),
      pp: med((r) => r.promptTokS),
      tg: med((r) => r.genTokS),
    });
  }
  const base = rows.get(512) ?? rows.get(batches[0]!)!;
  const cols: [string, string, number][] = [
    ['n_ubatch', 'nUbatch', 0],
    ['compute MiB', 'compute', 1],
    ['KV MiB', 'kv', 1],
    ['RSS after ctx', 'ctxRss', 0],
    ['RSS after prompt', 'rss', 0],
    ['anon', 'anon', 0],
    ['file', 'file', 0],
    ['peak (HWM)', 'hwm', 0],
    ['prompt tok/s', 'pp', 1],
    ['gen tok/s', 'tg', 2],
  ];
  console.log(`| num_batch | ${cols.map((c) => c[0]).join(' | ')} |`);
  console.log(`|---:|${cols.map(() => '---:').join('|')}|`);
  for (const [b, row] of rows) {
    console.log(`| ${b} | ${cols.map(([, k, d]) => row[k]!.toFixed(d)).join(' | ')} |`);
  }
  console.log(`\nratios vs ${base === rows.get(512) ? 512 : batches[0]}:\n`);
  const rcols = cols.filter(([, k]) => k !== 'nUbatch');
  console.log(`| num_batch | ${rcols.map((c) => c[0]).join(' | ')} |`);
  console.log(`|---:|${rcols.map(() => '---:').join('|')}|`);
  for (const [b, row] of rows) {
    console.log(`| ${b} | ${rcols.map(([, k]) => (row[k]! / base[k]!).toFixed(3)).join(' | ')} |`);
  }
  const expected = batches.map((b) => `${b}: ${((4 * b * (3072 + 128256)) / 2 ** 20).toFixed(1)}`).join(', ');
  console.log(`\nexpected compute buffer 4*batch*(n_embd+n_vocab) MiB -> ${expected}`);
}

const childAt = process.argv.indexOf('--child');
if (childAt >= 0) await child(Number(process.argv[childAt + 1]));
else await parent();
