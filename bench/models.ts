/**
 * `npm run bench:models` (= `tsx bench/models.ts`): a scripted meeting day
 * with Meetily's Ollama traffic, run twice in one process, in virtual time,
 * against a simulated Ollama:
 * - baseline: Ollama's defaults, as Meetily uses them (it never sends
 *   keep_alive or num_ctx): every model stays 5 minutes after its last
 *   request, num_ctx 4096, at most 3 models loaded, eviction by shortest
 *   keep_alive (not LRU);
 * - governor: the same requests through `createModelGovernor` with the
 *   default config (idle timeout 1 m, num_ctx sized to the prompt, 16gb
 *   preset budget), driving the same simulated Ollama through the
 *   `OllamaApi` interface (ps, show, list, unload with keep_alive 0).
 *
 * Model sizes follow the fake Ollama's model facts (test/support/fakeOllamaModels.ts:
 * the documented estimate x a per-model bias the governor has to learn),
 * with the published file sizes of llama3.1:8b (4.9 GB) and gemma3:4b (3.3 GB).
 * A load takes LOAD_SECONDS_PER_GB per GB of runner size (stated assumption).
 *
 * Prints GB x h of model memory, peak, loads, extra loads per meeting and the
 * latency they add, with ratios; exits 1 unless the governor holds at least
 * 50% fewer GB x h with at most one extra load per meeting.
 */
import { BehaviorSubject, type VirtualTimeScheduler } from 'rxjs';
import { configSchema } from '../src/app/configSchema.js';
import type { PressureChange } from '../src/model.js';
import { normalizeModelName, type TagInfo } from '../src/operators/models/quantization.js';
import type { ModelFacts } from '../src/operators/models/modelMemory.js';
import { OllamaApiError, type OllamaApi, type PsModel } from '../src/sources/ollamaApi.js';
import { createModelGovernor } from '../src/streams/modelGovernor.js';
import { DEFAULT_FAKE_MODELS, runnerSizeBytes, type FakeModelSpec } from '../test/support/fakeOllamaModels.js';
import { advanceSettlingTo, drain, virtualScheduler } from '../test/support/virtualTime.js';

const GB = 1e9;
const MIN = 60_000;
const HOUR = 60 * MIN;
const GIB = 1024 ** 3;
/** Stated assumption: loading a runner takes 1 s per GB (weights read from an SSD or page cache, plus graph set-up). */
const LOAD_SECONDS_PER_GB = 1;
const OLLAMA_DEFAULT_KEEP_ALIVE_MS = 5 * MIN;
const OLLAMA_DEFAULT_NUM_CTX = 4096;
const OLLAMA_MAX_LOADED = 3;
const MACHINE_BYTES = 16 * GIB;

const LLAMA = 'llama3.1:8b';
const GEMMA = 'gemma3:4b';
const specOf = (name: string, fileSizeBytes: number): FakeModelSpec => ({ ...DEFAULT_FAKE_MODELS.find((m) => m.name === name)!, fileSizeBytes });
const SPECS = new Map<string, FakeModelSpec>([
  [LLAMA, specOf(LLAMA, 4.92 * GB)],
  [GEMMA, specOf(GEMMA, 3.34 * GB)],
]);

// ---- virtual time ------------------------------------------------------------

const sleep = (scheduler: VirtualTimeScheduler, ms: number) => new Promise<void>((resolve) => scheduler.schedule(() => resolve(), ms));

// ---- simulated Ollama --------------------------------------------------------

interface SimRunner {
  name: string;
  numCtx: number;
  sizeBytes: number;
  busy: number;
  keepAliveMs: number;
  expiry: { unsubscribe(): void } | null;
  loadedAtMs: number;
}

interface LoadEvent {
  atMs: number;
  model: string;
  sizeBytes: number;
  loadMs: number;
}

/** Ollama's scheduling rules that matter for memory over a day (see test/support/fakeOllamaScheduler.ts for the full set). */
class SimOllama implements OllamaApi {
  readonly runners = new Map<string, SimRunner>();
  readonly loads: LoadEvent[] = [];
  /** Integral of loaded bytes over time, and the peak. */
  byteMs = 0;
  peakBytes = 0;
  /** [hour index] -> byte-ms in that hour. */
  readonly hourly: number[] = [];
  private lastChangeMs = 0;

  constructor(private readonly scheduler: VirtualTimeScheduler) {}

  private total(): number {
    return [...this.runners.values()].reduce((s, r) => s + r.sizeBytes, 0);
  }

  /** Accounts the loaded bytes up to now; call before every change of the loaded set. */
  private account(): void {
    const now = this.scheduler.now();
    const total = this.total();
    let t = this.lastChangeMs;
    while (t < now) {
      const hourEnd = (Math.floor(t / HOUR) + 1) * HOUR;
      const until = Math.min(now, hourEnd);
      const h = Math.floor(t / HOUR);
      this.hourly[h] = (this.hourly[h] ?? 0) + total * (until - t);
      t = until;
    }
    this.byteMs += total * (now - this.lastChangeMs);
    this.lastChangeMs = now;
  }

  private drop(name: string): void {
    const r = this.runners.get(name);
    if (!r) return;
    this.account();
    r.expiry?.unsubscribe();
    this.runners.delete(name);
  }

  finish(): void {
    this.account();
  }

  /** A request: load (or reload on another num_ctx) if needed, generate for `genMs`, then keep alive. */
  async request(model: string, numCtx: number | null, keepAlive: number | string | null, genMs: number): Promise<void> {
    const name = normalizeModelName(model);
    const spec = SPECS.get(name)!;
    const ctx = Math.min(numCtx ?? OLLAMA_DEFAULT_NUM_CTX, spec.contextLength);
    let runner = this.runners.get(name);
    if (runner && runner.numCtx !== ctx) {
      this.drop(name);
      runner = undefined;
    }
    if (!runner) {
      // At the model limit, Ollama evicts the idle runner with the shortest keep_alive (then by name).
      while (this.runners.size >= OLLAMA_MAX_LOADED) {
        const idle = [...this.runners.values()].filter((r) => r.busy === 0).sort((a, b) => a.keepAliveMs - b.keepAliveMs || a.name.localeCompare(b.name));
        if (!idle[0]) throw new Error('no idle runner to evict (the script never gets here)');
        this.drop(idle[0].name);
      }
      const sizeBytes = runnerSizeBytes(spec, ctx);
      if (this.total() + sizeBytes > MACHINE_BYTES) throw new Error(`out of memory loading ${name} (the script never gets here)`);
      this.account();
      runner = { name, numCtx: ctx, sizeBytes, busy: 0, keepAliveMs: OLLAMA_DEFAULT_KEEP_ALIVE_MS, expiry: null, loadedAtMs: this.scheduler.now() };
      this.runners.set(name, runner);
      this.peakBytes = Math.max(this.peakBytes, this.total());
      const loadMs = Math.round((sizeBytes / GB) * LOAD_SECONDS_PER_GB * 1000);
      this.loads.push({ atMs: this.scheduler.now(), model: name, sizeBytes, loadMs });
      runner.busy += 1;
      await sleep(this.scheduler, loadMs);
    } else {
      runner.busy += 1;
    }
    runner.expiry?.unsubscribe();
    runner.expiry = null;
    runner.keepAliveMs = keepAlive === null ? OLLAMA_DEFAULT_KEEP_ALIVE_MS : typeof keepAlive === 'number' ? (keepAlive < 0 ? Infinity : keepAlive * 1000) : OLLAMA_DEFAULT_KEEP_ALIVE_MS;
    await sleep(this.scheduler, genMs);
    runner.busy -= 1;
    const current = runner;
    if (current.busy === 0 && Number.isFinite(current.keepAliveMs) && this.runners.get(name) === current) {
      current.expiry = this.scheduler.schedule(() => {
        if (this.runners.get(name) === current && current.busy === 0) this.drop(name);
      }, current.keepAliveMs);
    }
  }

  // OllamaApi (what the governor sees)
  async ps(): Promise<PsModel[]> {
    return [...this.runners.values()].map((r) => ({
      name: r.name,
      sizeBytes: r.sizeBytes,
      sizeVramBytes: 0,
      expiresAtMs: null,
      contextLength: r.numCtx,
      quantization: SPECS.get(r.name)!.quantization,
    }));
  }

  async show(model: string): Promise<ModelFacts> {
    const spec = SPECS.get(normalizeModelName(model));
    if (!spec) throw new OllamaApiError('MEMTIDE_ERR_OLLAMA_NOT_FOUND', `show ${model}`, 'not found', 404);
    return {
      name: model,
      architecture: spec.arch,
      parameterCount: spec.parameterCount,
      blockCount: spec.blockCount,
      contextLength: spec.contextLength,
      embeddingLength: spec.embeddingLength,
      headCount: spec.headCount,
      headCountKv: spec.headCountKv,
      keyLength: null,
      quantization: spec.quantization,
      fileSizeBytes: null,
    };
  }

  async list(): Promise<TagInfo[]> {
    return [...SPECS.values()].map((s) => ({ name: s.name, sizeBytes: s.fileSizeBytes, quantization: s.quantization, parameterSize: `${(s.parameterCount / 1e9).toFixed(1)}B` }));
  }

  async unload(model: string): Promise<void> {
    const r = this.runners.get(normalizeModelName(model));
    if (r && r.busy > 0) throw new Error(`unload of ${model} while busy: the governor must never do this`);
    this.drop(normalizeModelName(model));
  }

  async preload(): Promise<void> {
    throw new Error('the script never warms up');
  }
}

// ---- the meeting day -----------------------------------------------------------

interface Meeting {
  startMs: number;
  minutes: number;
  /** Ad-hoc chat during the meeting: [model, minutes into the meeting] (each followed 3 minutes later by a follow-up). */
  chat?: [string, number];
}

/** 9:00 to 18:00; times from 9:00. */
const MEETINGS: Meeting[] = [
  { startMs: 15 * MIN, minutes: 45, chat: [GEMMA, 20] },
  { startMs: 90 * MIN, minutes: 30 },
  { startMs: 150 * MIN, minutes: 60, chat: [GEMMA, 25] },
  { startMs: 270 * MIN, minutes: 45 },
  { startMs: 360 * MIN, minutes: 30, chat: [LLAMA, 10] },
  { startMs: 420 * MIN, minutes: 60, chat: [GEMMA, 40] },
];
/** Ad-hoc chat between meetings: [model, time]. */
const ADHOC: Array<[string, number]> = [[LLAMA, 345 * MIN]];
const DAY_MS = 9 * HOUR;

interface Call {
  model: string;
  promptTokens: number;
  genMs: number;
  /** Pause before the next call of the same conversation. */
  thenMs: number;
}

/**
 * Meetily's summary of a meeting: transcript chunks of ~3000 tokens (chars x
 * 0.35), one llama request each (~40 s to generate on an Apple-silicon class
 * machine), back to back; a combining request; then a title on gemma.
 */
function summary(minutes: number): Call[] {
  const chunks = Math.ceil(minutes / 20);
  const calls: Call[] = [];
  for (let i = 0; i < chunks; i += 1) calls.push({ model: LLAMA, promptTokens: 3000, genMs: 40_000, thenMs: 1000 });
  calls.push({ model: LLAMA, promptTokens: 2500, genMs: 20_000, thenMs: 2000 });
  calls.push({ model: GEMMA, promptTokens: 1200, genMs: 10_000, thenMs: 0 });
  return calls;
}

/** A question and a follow-up three minutes later (reading the answer in between). */
const chat = (model: string): Call[] => [
  { model, promptTokens: 800, genMs: 15_000, thenMs: 3 * MIN },
  { model, promptTokens: 1200, genMs: 15_000, thenMs: 0 },
];

function script(): Array<{ atMs: number; calls: Call[] }> {
  const conversations: Array<{ atMs: number; calls: Call[] }> = [];
  for (const m of MEETINGS) {
    if (m.chat) conversations.push({ atMs: m.startMs + m.chat[1] * MIN, calls: chat(m.chat[0]) });
    conversations.push({ atMs: m.startMs + m.minutes * MIN, calls: summary(m.minutes) });
  }
  for (const [model, at] of ADHOC) conversations.push({ atMs: at, calls: chat(model) });
  return conversations;
}

// ---- runs --------------------------------------------------------------------

interface RunResult {
  gbHours: number;
  peakGb: number;
  loads: LoadEvent[];
  hourlyGb: number[];
  /** Seconds spent loading, over the day. */
  loadSeconds: number;
  /** Sum over requests of (finish - scheduled start), minus generation: time waiting for loads and admission. */
  waitSeconds: number;
  actions: number;
}

type Send = (call: Call) => Promise<void>;

async function runDay(scheduler: VirtualTimeScheduler, sim: SimOllama, send: Send): Promise<Pick<RunResult, 'waitSeconds'>> {
  let waitMs = 0;
  const conversations = script().map(async ({ atMs, calls }) => {
    await sleep(scheduler, atMs);
    for (const call of calls) {
      const started = scheduler.now();
      await send(call);
      waitMs += scheduler.now() - started - call.genMs;
      if (call.thenMs) await sleep(scheduler, call.thenMs);
    }
  });
  const done = Promise.all(conversations);
  await drain();
  await advanceSettlingTo(scheduler, DAY_MS);
  await done;
  sim.finish();
  return { waitSeconds: waitMs / 1000 };
}

function result(sim: SimOllama, extra: { waitSeconds: number; actions: number }): RunResult {
  return {
    gbHours: sim.byteMs / GB / HOUR,
    peakGb: sim.peakBytes / GB,
    loads: sim.loads,
    hourlyGb: Array.from({ length: DAY_MS / HOUR }, (_, h) => (sim.hourly[h] ?? 0) / GB / HOUR),
    loadSeconds: sim.loads.reduce((s, l) => s + l.loadMs, 0) / 1000,
    ...extra,
  };
}

async function baseline(): Promise<RunResult> {
  const scheduler = virtualScheduler();
  const sim = new SimOllama(scheduler);
  // Meetily sends neither keep_alive nor num_ctx.
  const { waitSeconds } = await runDay(scheduler, sim, (call) => sim.request(call.model, null, null, call.genMs));
  return result(sim, { waitSeconds, actions: 0 });
}

async function governed(): Promise<RunResult> {
  const scheduler = virtualScheduler();
  const sim = new SimOllama(scheduler);
  const config = configSchema.parse({ pressure: { preset: '16gb' } });
  const pressure$ = new BehaviorSubject<PressureChange>({ atMs: 0, level: 'low', previous: null, reasons: [] });
  const governor = createModelGovernor({ api: sim, config$: new BehaviorSubject(config), pressure$, scheduler, totalMemoryBytes: MACHINE_BYTES });
  let actions = 0;
  const problems: unknown[] = [];
  governor.actions$.subscribe({ next: () => (actions += 1), error: (e: unknown) => problems.push(e) });
  governor.problems$.subscribe({ next: (p) => problems.push(p), error: (e: unknown) => problems.push(e) });
  const { waitSeconds } = await runDay(scheduler, sim, async (call) => {
    const admission = await governor.admit({ model: call.model, endpoint: 'openai-chat', promptTokens: call.promptTokens });
    try {
      await sim.request(admission.model, admission.numCtx, admission.keepAlive, call.genMs);
      admission.release({ ok: true });
    } catch (error) {
      admission.release({ ok: false, error: String(error) });
      throw error;
    }
  });
  governor.stop();
  pressure$.complete();
  if (problems.length) throw new Error(`the governor reported problems: ${JSON.stringify(problems)}`);
  return result(sim, { waitSeconds, actions });
}

// ---- report ------------------------------------------------------------------

const fmt = (n: number, digits = 2) => n.toFixed(digits);
const clock = (ms: number) => {
  const minutes = 9 * 60 + Math.round(ms / MIN);
  return `${String(Math.floor(minutes / 60)).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`;
};

/** Loads per meeting: a meeting owns the loads from its start to the next meeting's start (the first also owns the morning). */
function loadsPerMeeting(loads: LoadEvent[]): number[] {
  return MEETINGS.map((m, i) => {
    const from = i === 0 ? 0 : m.startMs;
    const to = MEETINGS[i + 1]?.startMs ?? Infinity;
    return loads.filter((l) => l.atMs >= from && l.atMs < to).length;
  });
}

async function main(): Promise<void> {
  const base = await baseline();
  const gov = await governed();

  const basePer = loadsPerMeeting(base.loads);
  const govPer = loadsPerMeeting(gov.loads);
  const extraPer = govPer.map((n, i) => n - basePer[i]!);
  const maxExtra = Math.max(...extraPer);
  const saved = 1 - gov.gbHours / base.gbHours;
  const addedLatency = gov.waitSeconds - base.waitSeconds;

  const out: string[] = [];
  out.push(`date: ${new Date().toISOString()}, node ${process.version}; virtual time; simulated machine ${MACHINE_BYTES / GIB} GiB`);
  out.push(
    `day: 9:00-18:00, ${MEETINGS.length} meetings (${MEETINGS.map((m) => `${clock(m.startMs)} ${m.minutes}m`).join(', ')}); ` +
      `summaries on ${LLAMA} (chunks of 3000 tokens, 40 s each, + a combine) and a title on ${GEMMA}; ${MEETINGS.filter((m) => m.chat).length + ADHOC.length} ad-hoc chats (question + follow-up 3 min later)`,
  );
  out.push(`runner sizes: ${[...SPECS.values()].map((s) => `${s.name} ${fmt(runnerSizeBytes(s, 4096) / GB)} GB at num_ctx 4096`).join(', ')}; load time ${LOAD_SECONDS_PER_GB} s per GB`);
  out.push('');
  out.push('| | Ollama defaults | memtide governor | governor / defaults |');
  out.push('|---|---:|---:|---:|');
  out.push(`| model memory held (GB x h) | ${fmt(base.gbHours)} | ${fmt(gov.gbHours)} | ${fmt(gov.gbHours / base.gbHours)} (${fmt(saved * 100, 0)}% less) |`);
  out.push(`| peak model memory (GB) | ${fmt(base.peakGb)} | ${fmt(gov.peakGb)} | ${fmt(gov.peakGb / base.peakGb)} |`);
  out.push(`| loads over the day | ${base.loads.length} | ${gov.loads.length} | +${gov.loads.length - base.loads.length} |`);
  out.push(`| time spent loading (s) | ${fmt(base.loadSeconds, 0)} | ${fmt(gov.loadSeconds, 0)} | +${fmt(gov.loadSeconds - base.loadSeconds, 0)} s |`);
  out.push(`| request wait beyond generation (s, whole day) | ${fmt(base.waitSeconds, 0)} | ${fmt(gov.waitSeconds, 0)} | +${fmt(addedLatency, 0)} s |`);
  out.push(`| governor actions (load/unload/...) | - | ${gov.actions} | |`);
  out.push('');
  out.push('| meeting | loads, defaults | loads, governor | extra |');
  out.push('|---|---:|---:|---:|');
  MEETINGS.forEach((m, i) => out.push(`| ${clock(m.startMs)} (${m.minutes}m${m.chat ? `, chat on ${m.chat[0]}` : ''}) | ${basePer[i]} | ${govPer[i]} | ${extraPer[i]} |`));
  out.push('');
  out.push('| hour | mean GB held, defaults | mean GB held, governor |');
  out.push('|---|---:|---:|');
  base.hourlyGb.forEach((g, h) => out.push(`| ${clock(h * HOUR)} | ${fmt(g)} | ${fmt(gov.hourlyGb[h]!)} |`));
  out.push('');
  const ok = saved >= 0.5 && maxExtra <= 1;
  out.push(
    `${ok ? 'OK' : 'FAIL'}: ${fmt(saved * 100, 1)}% less GB x h (target >= 50%), at most ${maxExtra} extra load(s) per meeting (target <= 1), ` +
      `adding ${fmt(addedLatency, 0)} s of waiting over the day (${fmt(addedLatency / MEETINGS.length, 1)} s per meeting)`,
  );
  console.log(out.join('\n'));
  if (!ok) process.exitCode = 1;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
