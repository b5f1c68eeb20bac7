/**
 * A faithful loopback Ollama server for tests and benchmarks (no Ollama binary
 * exists on these machines). Built from Ollama's documented API and its
 * source (ollama/ollama `api/types.go`, `server/routes.go`, `server/sched.go`,
 * `openai/openai.go`); see docs/proxy.md for what was and was not checked
 * against a real Ollama.
 *
 * Endpoints: `/api/generate`, `/api/chat` (NDJSON streams by default,
 * `stream:false` for one JSON), `/api/embed`, `/api/embeddings`, `/api/ps`,
 * `/api/tags`, `/api/show`, `/api/version`, `/api/pull`, `/api/delete`,
 * `/api/copy`, `/v1/chat/completions` and `/v1/completions` (SSE or JSON),
 * `/v1/embeddings`, `/v1/models`, and `GET /` ("Ollama is running").
 *
 * Semantics: keep_alive (default 5m; number = seconds, string = Go duration,
 * negative = forever, 0 = unload), an empty prompt preloads (`done_reason:
 * "load"`) or with keep_alive 0 unloads (`done_reason: "unload"`), a changed
 * `num_ctx` reloads the runner, memory accounting with a per-model bias,
 * Ollama's eviction order, its queue (503 past `maxQueue`) and its error
 * shapes. `/v1/*` ignores `keep_alive` and `options` like Ollama does.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseKeepAlive } from '../../src/app/proxy/keepAlive.js';
import { DEFAULT_FAKE_MODELS, DEFAULT_NUM_BATCH, normalizeModelName, promptSpeed, type FakeKvCacheType, type FakeModelSpec } from './fakeOllamaModels.js';
import { CancelledError, FakeScheduler, OutOfMemoryError, emptyModelStats, type FakeAllocator, type FakeStats, type Runner } from './fakeOllamaScheduler.js';
import {
  MIDSTREAM_MESSAGE,
  QUEUE_FULL_MESSAGE,
  countTokens,
  details,
  digestOf,
  embeddingOf,
  modelNameOf,
  notFoundMessage,
  nowIso,
  ollamaError,
  openAiError,
  sendJson,
  sendNotFoundPage,
  showResponse,
  tagsEntry,
  tokenText,
} from './fakeOllamaWire.js';

export type { FakeModelSpec } from './fakeOllamaModels.js';
export type { FakeAllocator, FakeStats, ModelStats } from './fakeOllamaScheduler.js';
export { DEFAULT_FAKE_MODELS, documentedEstimateBytes, runnerSizeBytes, modelSpec } from './fakeOllamaModels.js';

export type FailKind = 'oom' | 'midstream' | '503' | 'hang' | 'reset';

export interface FakeOllamaOptions {
  models?: readonly FakeModelSpec[];
  /** Simulated RAM for the fit check (default 16 GiB). */
  memoryBytes?: number;
  /** OLLAMA_NUM_PARALLEL (1). */
  numParallel?: number;
  /** OLLAMA_MAX_QUEUE (512): requests waiting for a runner past this get 503. */
  maxQueue?: number;
  /** OLLAMA_MAX_LOADED_MODELS (3). */
  maxLoadedModels?: number;
  /** OLLAMA_KV_CACHE_TYPE (f16; q8_0 halves the KV cache, q4_0 quarters it). */
  kvCacheType?: FakeKvCacheType;
  /** OLLAMA_KEEP_ALIVE ('5m'). */
  defaultKeepAlive?: string | number;
  /** OLLAMA_CONTEXT_LENGTH (4096). */
  defaultNumCtx?: number;
  /** Delay between streamed tokens (0: as fast as possible). */
  tokenDelayMs?: number;
  /** Prompt evaluation per prompt token at num_batch 512 (0); a smaller batch is slower by promptSpeed (fakeOllamaModels.ts). */
  promptTokenDelayMs?: number;
  /** Load time per GB of runner size (0). */
  loadDelayMs?: number;
  /** Multiplies every keep_alive timer (0.001 turns 5m into 300 ms). */
  timeScale?: number;
  /** Tokens in a full answer (8); `num_predict`/`max_tokens` below it ends with done_reason "length". */
  responseTokens?: number;
  /** Backs runners with real memory (see realMemoryAllocator.ts). */
  allocator?: FakeAllocator;
  version?: string;
  host?: string;
  port?: number;
}

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** Parsed JSON body (undefined when there was none or it was not JSON). */
  body: unknown;
  atMs: number;
}

export interface LoadedRunner {
  name: string;
  numCtx: number;
  numBatch: number;
  sizeBytes: number;
  useMmap: boolean | null;
  /** Keep-alive as scheduled (already scaled); Infinity = forever. */
  sessionMs: number;
  expiresAtMs: number;
  refCount: number;
}

export interface FakeOllama {
  readonly url: string;
  readonly stats: FakeStats;
  /** Every request with its parsed body, oldest first (the last 1000). */
  readonly received: ReceivedRequest[];
  /** The last request received on `path`. */
  lastReceived(path: string): ReceivedRequest | undefined;
  loaded(): LoadedRunner[];
  /** Makes the next `count` inference requests fail this way. */
  failNext(kind: FailKind, count?: number): void;
  setMemoryBytes(bytes: number): void;
  usedBytes(): number;
  close(): Promise<void>;
}

type Json = Record<string, unknown>;
type Flavor = 'generate' | 'chat' | 'openai-chat' | 'openai-completion';

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const GIB = 1024 ** 3;

class BadRequest extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Text of chat messages (strings or OpenAI content parts). */
function messagesText(messages: unknown): string {
  if (!Array.isArray(messages)) return '';
  return messages
    .map((m) => {
      if (!isObject(m)) return '';
      if (typeof m.content === 'string') return m.content;
      if (Array.isArray(m.content)) return m.content.map((p) => (isObject(p) && typeof p.text === 'string' ? p.text : '')).join('');
      return '';
    })
    .join('\n');
}

export async function startFakeOllama(options: FakeOllamaOptions = {}): Promise<FakeOllama> {
  const startedAt = nowIso();
  const models = new Map<string, FakeModelSpec>();
  for (const spec of options.models ?? DEFAULT_FAKE_MODELS) models.set(normalizeModelName(spec.name), { ...spec, name: normalizeModelName(spec.name) });
  const timeScale = options.timeScale ?? 1;
  const maxQueue = options.maxQueue ?? 512;
  const defaultNumCtx = options.defaultNumCtx ?? 4096;
  const tokenDelayMs = options.tokenDelayMs ?? 0;
  const promptTokenDelayMs = options.promptTokenDelayMs ?? 0;
  const responseTokens = options.responseTokens ?? 8;
  const defaultKeepAlive = parseKeepAlive(options.defaultKeepAlive ?? '5m');
  if (!defaultKeepAlive.ok) throw new Error(`defaultKeepAlive: ${defaultKeepAlive.error}`);
  const defaultKeepAliveMs = defaultKeepAlive.ms;

  const stats: FakeStats = { ...emptyModelStats(), rejected: 0, oom: 0, perModel: {} };
  const scheduler = new FakeScheduler({
    memoryBytes: options.memoryBytes ?? 16 * GIB,
    numParallel: options.numParallel ?? 1,
    maxLoadedModels: options.maxLoadedModels ?? 3,
    loadDelayMsPerGb: options.loadDelayMs ?? 0,
    defaultSessionMs: Number.isFinite(defaultKeepAliveMs) ? defaultKeepAliveMs * timeScale : defaultKeepAliveMs,
    ...(options.allocator ? { allocator: options.allocator } : {}),
    ...(options.kvCacheType ? { kvCacheType: options.kvCacheType } : {}),
    stats,
  });
  const received: ReceivedRequest[] = [];
  const failures: FailKind[] = [];
  let pending = 0;
  let requestCounter = 0;

  const scaled = (ms: number) => (Number.isFinite(ms) ? ms * timeScale : ms);

  const lookup = (name: string): FakeModelSpec | undefined => models.get(normalizeModelName(name));

  /** Session duration a native request asks for; null when it names none (the runner's stays, or the default on a load). */
  const sessionOf = (body: Json): number | null => {
    if (body.keep_alive === undefined || body.keep_alive === null) return null;
    const parsed = parseKeepAlive(body.keep_alive);
    if (!parsed.ok) throw new BadRequest(400, parsed.error);
    return scaled(parsed.ms);
  };

  const runnerOptions = (body: Json, spec: FakeModelSpec): { numCtx: number; numBatch: number; useMmap: boolean | null; numPredict: number | null } => {
    const opts = isObject(body.options) ? body.options : {};
    let numCtx = defaultNumCtx;
    if (opts.num_ctx !== undefined && opts.num_ctx !== null) {
      if (typeof opts.num_ctx !== 'number') throw new BadRequest(500, 'option "num_ctx" must be of type integer');
      if (Math.trunc(opts.num_ctx) > 0) numCtx = Math.trunc(opts.num_ctx);
    }
    // llm/server.go: a context beyond the trained one is clamped to it.
    numCtx = Math.min(numCtx, spec.contextLength);
    let useMmap: boolean | null = null;
    if (opts.use_mmap !== undefined && opts.use_mmap !== null) {
      if (typeof opts.use_mmap !== 'boolean') throw new BadRequest(500, 'option "use_mmap" must be of type boolean');
      useMmap = opts.use_mmap;
    }
    let numBatch = DEFAULT_NUM_BATCH;
    if (opts.num_batch !== undefined && opts.num_batch !== null) {
      if (typeof opts.num_batch !== 'number') throw new BadRequest(500, 'option "num_batch" must be of type integer');
      if (Math.trunc(opts.num_batch) > 0) numBatch = Math.trunc(opts.num_batch);
    }
    const numPredict = typeof opts.num_predict === 'number' && opts.num_predict >= 0 ? Math.trunc(opts.num_predict) : null;
    return { numCtx, numBatch, useMmap, numPredict };
  };

  // ---------------------------------------------------------------------------
  // Inference: schedule, stream, release
  // ---------------------------------------------------------------------------

  interface Inference {
    req: IncomingMessage;
    res: ServerResponse;
    flavor: Flavor;
    model: string;
    spec: FakeModelSpec;
    numCtx: number;
    numBatch: number;
    useMmap: boolean | null;
    sessionMs: number | null;
    promptTokens: number;
    numPredict: number | null;
    stream: boolean;
    /** Embedding endpoints and preloads: answer with this instead of generating tokens. */
    respond?: () => void;
    /** Preloads never take an injected failure (a governor's warm-up must not eat a test's failNext). */
    preload?: boolean;
  }

  const openAi = (flavor: Flavor) => flavor === 'openai-chat' || flavor === 'openai-completion';
  const errorBody = (flavor: Flavor, status: number, message: string) => (openAi(flavor) ? openAiError(status, message) : ollamaError(message));

  /** Tracks a client going away before the answer is complete. */
  function watchCancel(inf: Inference) {
    const controller = new AbortController();
    let counted = false;
    inf.res.on('close', () => {
      if (inf.res.writableFinished || counted) return;
      counted = true;
      controller.abort();
      stats.cancelled += 1;
      scheduler.modelStats(inf.spec.name).cancelled += 1;
    });
    return { signal: controller.signal, silence: () => (counted = true) };
  }

  async function infer(inf: Inference): Promise<void> {
    stats.requests += 1;
    scheduler.modelStats(inf.spec.name).requests += 1;
    const failure = inf.preload ? undefined : failures.shift();
    const cancel = watchCancel(inf);
    if (failure === 'reset') {
      cancel.silence();
      inf.req.socket.destroy();
      return;
    }
    if (failure === 'hang') return; // never answers; a client disconnect counts as cancelled
    if (failure === '503' || pending >= maxQueue) {
      stats.rejected += 1;
      sendJson(inf.res, 503, errorBody(inf.flavor, 503, QUEUE_FULL_MESSAGE));
      return;
    }
    let runner: Runner;
    pending += 1;
    try {
      runner = await scheduler.acquire(inf.spec, { numCtx: inf.numCtx, numBatch: inf.numBatch, useMmap: inf.useMmap }, inf.sessionMs, cancel.signal, failure === 'oom');
    } catch (error) {
      if (error instanceof CancelledError) return;
      const message = error instanceof OutOfMemoryError ? error.message : `llama runner process has terminated: ${String(error)}`;
      if (!inf.res.headersSent && !inf.res.destroyed) sendJson(inf.res, 500, errorBody(inf.flavor, 500, message));
      return;
    } finally {
      pending -= 1;
    }
    try {
      if (inf.respond) inf.respond();
      else await generate(inf, runner, cancel.signal, failure === 'midstream');
    } finally {
      scheduler.release(runner);
    }
  }

  async function generate(inf: Inference, runner: Runner, signal: AbortSignal, failMidstream: boolean): Promise<void> {
    const { res, flavor, model } = inf;
    const started = process.hrtime.bigint();
    if (inf.promptTokens > runner.numCtx) {
      // Ollama keeps the prompt's end and drops the rest without telling the client (only its log says so).
      stats.truncated += 1;
      scheduler.modelStats(inf.spec.name).truncated += 1;
    }
    // Prompt evaluation first (llama.cpp reads the prompt num_batch tokens at a time); only what fits the context is read.
    const promptMs = (Math.min(inf.promptTokens, runner.numCtx) * promptTokenDelayMs) / promptSpeed(runner.numBatch);
    if (promptMs > 0) await sleep(promptMs);
    const count = inf.numPredict !== null ? Math.min(inf.numPredict, responseTokens) : responseTokens;
    const doneReason = count < responseTokens ? 'length' : 'stop';
    const id = `${flavor === 'openai-chat' ? 'chatcmpl' : 'cmpl'}-${++requestCounter}`;
    const created = Math.floor(Date.now() / 1000);
    const sse = openAi(flavor);

    const chunk = (text: string, done: boolean): Json => {
      switch (flavor) {
        case 'generate':
          return { model, created_at: nowIso(), response: text, done };
        case 'chat':
          return { model, created_at: nowIso(), message: { role: 'assistant', content: text }, done };
        case 'openai-chat':
          return {
            id,
            object: 'chat.completion.chunk',
            created,
            model,
            system_fingerprint: 'fp_ollama',
            choices: [{ index: 0, delta: { role: 'assistant', content: text }, finish_reason: done ? doneReason : null }],
          };
        case 'openai-completion':
          return { id, object: 'text_completion', created, choices: [{ text, index: 0, finish_reason: done ? doneReason : null }], model, system_fingerprint: 'fp_ollama' };
      }
    };
    const metrics = () => {
      const total = Number(process.hrtime.bigint() - started);
      return {
        total_duration: total,
        load_duration: 0,
        prompt_eval_count: Math.min(inf.promptTokens, runner.numCtx),
        prompt_eval_duration: Math.round(total / 4),
        eval_count: count,
        eval_duration: Math.round((total * 3) / 4),
      };
    };
    const writeLine = (value: unknown) => {
      if (!res.headersSent) {
        res.writeHead(200, { 'content-type': sse ? 'text/event-stream' : 'application/x-ndjson' });
      }
      res.write(sse ? `data: ${JSON.stringify(value)}\n\n` : `${JSON.stringify(value)}\n`);
    };

    let text = '';
    for (let i = 0; i < count; i += 1) {
      if (signal.aborted) return;
      if (failMidstream && i === 2) {
        if (inf.stream) {
          // Ollama writes the error as one more line of the 200 stream; its OpenAI layer as a bare JSON error.
          const line = JSON.stringify(sse ? openAiError(500, MIDSTREAM_MESSAGE) : ollamaError(MIDSTREAM_MESSAGE));
          if (!res.headersSent) res.writeHead(200, { 'content-type': sse ? 'text/event-stream' : 'application/x-ndjson' });
          res.end(`${line}\n`);
        } else {
          sendJson(res, 500, errorBody(flavor, 500, MIDSTREAM_MESSAGE));
        }
        return;
      }
      const token = tokenText(i);
      text += token;
      if (inf.stream) writeLine(chunk(token, false));
      if (tokenDelayMs > 0) await sleep(tokenDelayMs);
    }
    if (signal.aborted) return;

    const m = metrics();
    const usage = { prompt_tokens: m.prompt_eval_count, completion_tokens: count, total_tokens: m.prompt_eval_count + count };
    if (inf.stream) {
      if (flavor === 'generate') writeLine({ ...chunk('', true), done_reason: doneReason, context: [1, 2, 3], ...m });
      else if (flavor === 'chat') writeLine({ ...chunk('', true), done_reason: doneReason, ...m });
      else writeLine(chunk('', true));
      res.end(sse ? 'data: [DONE]\n\n' : undefined);
      return;
    }
    switch (flavor) {
      case 'generate':
        return sendJson(res, 200, { model, created_at: nowIso(), response: text, done: true, done_reason: doneReason, context: [1, 2, 3], ...m });
      case 'chat':
        return sendJson(res, 200, { model, created_at: nowIso(), message: { role: 'assistant', content: text }, done: true, done_reason: doneReason, ...m });
      case 'openai-chat':
        return sendJson(res, 200, {
          id,
          object: 'chat.completion',
          created,
          model,
          system_fingerprint: 'fp_ollama',
          choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: doneReason }],
          usage,
        });
      case 'openai-completion':
        return sendJson(res, 200, {
          id,
          object: 'text_completion',
          created,
          model,
          system_fingerprint: 'fp_ollama',
          choices: [{ text, index: 0, finish_reason: doneReason }],
          usage,
        });
    }
  }

  // ---------------------------------------------------------------------------
  // Handlers
  // ---------------------------------------------------------------------------

  /** `/api/generate` and `/api/chat`, including preload and unload. */
  async function nativeInference(req: IncomingMessage, res: ServerResponse, body: Json, flavor: 'generate' | 'chat'): Promise<void> {
    const model = typeof body.model === 'string' ? body.model : '';
    if (model === '') throw new BadRequest(400, 'model is required');
    const spec = lookup(model);
    if (!spec) throw new BadRequest(404, notFoundMessage(model));
    const sessionMs = sessionOf(body);
    const empty = flavor === 'generate' ? (typeof body.prompt !== 'string' || body.prompt === '') && !body.images : !Array.isArray(body.messages) || body.messages.length === 0;
    const doneShape = (reason: string) =>
      flavor === 'generate'
        ? { model, created_at: nowIso(), response: '', done: true, done_reason: reason }
        : { model, created_at: nowIso(), message: { role: 'assistant', content: '' }, done: true, done_reason: reason };
    if (empty && sessionMs === 0) {
      scheduler.expire(spec.name);
      sendJson(res, 200, doneShape('unload'));
      return;
    }
    const { numCtx, numBatch, useMmap, numPredict } = runnerOptions(body, spec);
    if (empty) {
      // Preload: schedule the runner and answer at once.
      await infer({ req, res, flavor, model, spec, numCtx, numBatch, useMmap, sessionMs, promptTokens: 0, numPredict, stream: false, preload: true, respond: () => sendJson(res, 200, doneShape('load')) });
      return;
    }
    const promptText = flavor === 'generate' ? `${typeof body.system === 'string' ? body.system : ''}${String(body.prompt)}` : messagesText(body.messages);
    await infer({ req, res, flavor, model, spec, numCtx, numBatch, useMmap, sessionMs, promptTokens: countTokens(promptText), numPredict, stream: body.stream !== false });
  }

  async function embed(req: IncomingMessage, res: ServerResponse, body: Json, legacy: boolean): Promise<void> {
    const model = typeof body.model === 'string' ? body.model : '';
    if (model === '') throw new BadRequest(400, 'model is required');
    const spec = lookup(model);
    if (!spec) throw new BadRequest(404, notFoundMessage(model));
    const sessionMs = sessionOf(body);
    const { numCtx, numBatch, useMmap } = runnerOptions(body, spec);
    const inputs = legacy ? [typeof body.prompt === 'string' ? body.prompt : ''] : Array.isArray(body.input) ? body.input.map(String) : [typeof body.input === 'string' ? body.input : ''];
    const dims = spec.embeddingLength;
    const respond = () => {
      if (legacy) sendJson(res, 200, { embedding: inputs[0] === '' ? [] : embeddingOf(inputs[0] ?? '', dims) });
      else sendJson(res, 200, { model, embeddings: inputs.map((t) => embeddingOf(t, dims)), total_duration: 1000, load_duration: 0, prompt_eval_count: countTokens(inputs.join('')) });
    };
    await infer({ req, res, flavor: 'generate', model, spec, numCtx, numBatch, useMmap, sessionMs, promptTokens: countTokens(inputs.join('')), numPredict: null, stream: false, respond });
  }

  /** `/v1/*`: Ollama's OpenAI layer maps model, messages/prompt, max_tokens, stream; never keep_alive nor num_ctx. */
  async function openAiInference(req: IncomingMessage, res: ServerResponse, body: Json, flavor: 'openai-chat' | 'openai-completion'): Promise<void> {
    const model = typeof body.model === 'string' ? body.model : '';
    const spec = lookup(model);
    if (!spec) throw new BadRequest(404, notFoundMessage(model));
    const numPredict = typeof body.max_tokens === 'number' && body.max_tokens >= 0 ? Math.trunc(body.max_tokens) : null;
    const promptText = flavor === 'openai-chat' ? messagesText(body.messages) : typeof body.prompt === 'string' ? body.prompt : '';
    await infer({
      req,
      res,
      flavor,
      model,
      spec,
      numCtx: Math.min(defaultNumCtx, spec.contextLength),
      numBatch: DEFAULT_NUM_BATCH,
      useMmap: null,
      sessionMs: null,
      promptTokens: countTokens(promptText),
      numPredict,
      stream: body.stream === true,
    });
  }

  async function openAiEmbeddings(req: IncomingMessage, res: ServerResponse, body: Json): Promise<void> {
    const model = typeof body.model === 'string' ? body.model : '';
    const spec = lookup(model);
    if (!spec) throw new BadRequest(404, notFoundMessage(model));
    const inputs = Array.isArray(body.input) ? body.input.map(String) : [typeof body.input === 'string' ? body.input : ''];
    const respond = () =>
      sendJson(res, 200, {
        object: 'list',
        data: inputs.map((t, index) => ({ object: 'embedding', embedding: embeddingOf(t, spec.embeddingLength), index })),
        model,
        usage: { prompt_tokens: countTokens(inputs.join('')), total_tokens: countTokens(inputs.join('')) },
      });
    await infer({
      req,
      res,
      flavor: 'openai-chat',
      model,
      spec,
      numCtx: Math.min(defaultNumCtx, spec.contextLength),
      numBatch: DEFAULT_NUM_BATCH,
      useMmap: null,
      sessionMs: null,
      promptTokens: countTokens(inputs.join('')),
      numPredict: null,
      stream: false,
      respond,
    });
  }

  function ps(res: ServerResponse): void {
    const running = [...scheduler.runners.values()].map((r) => ({
      name: r.name,
      model: r.name,
      size: r.sizeBytes,
      digest: digestOf(r.name),
      details: details(r.spec),
      expires_at: new Date(r.refCount > 0 && Number.isFinite(r.sessionMs) ? Date.now() + r.sessionMs : r.expiresAtMs).toISOString(),
      size_vram: 0,
      context_length: r.numCtx,
    }));
    sendJson(res, 200, { models: running });
  }

  function pull(res: ServerResponse, body: Json): void {
    const name = modelNameOf(body);
    if (!name) throw new BadRequest(400, 'model is required');
    if (!lookup(name)) {
      sendJson(res, 500, ollamaError('pull model manifest: file does not exist'));
      return;
    }
    const steps = [{ status: 'pulling manifest' }, { status: 'verifying sha256 digest' }, { status: 'writing manifest' }, { status: 'success' }];
    if (body.stream === false) {
      sendJson(res, 200, { status: 'success' });
      return;
    }
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    res.end(steps.map((s) => `${JSON.stringify(s)}\n`).join(''));
  }

  function remove(res: ServerResponse, body: Json): void {
    const name = modelNameOf(body);
    if (!name) throw new BadRequest(400, 'model is required');
    const key = normalizeModelName(name);
    if (!models.has(key)) throw new BadRequest(404, `model '${name}' not found`);
    models.delete(key);
    scheduler.expire(key);
    res.writeHead(200, { 'content-length': 0 });
    res.end();
  }

  function copy(res: ServerResponse, body: Json): void {
    const source = typeof body.source === 'string' ? lookup(body.source) : undefined;
    const destination = typeof body.destination === 'string' ? normalizeModelName(body.destination) : '';
    if (!source) throw new BadRequest(404, `model "${String(body.source)}" not found`);
    if (destination === '') throw new BadRequest(400, 'destination is required');
    models.set(destination, { ...source, name: destination });
    res.writeHead(200, { 'content-length': 0 });
    res.end();
  }

  const record = (req: IncomingMessage, path: string, body: unknown) => {
    received.push({ method: req.method ?? 'GET', path, headers: req.headers, body, atMs: Date.now() });
    if (received.length > 1000) received.splice(0, received.length - 1000);
  };

  async function readJsonBody(req: IncomingMessage): Promise<{ body: Json | null; error: string | null }> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    if (text.trim() === '') return { body: null, error: 'missing request body' };
    try {
      const parsed = JSON.parse(text) as unknown;
      if (!isObject(parsed)) return { body: null, error: 'json: cannot unmarshal non-object into Go value of type api.Request' };
      return { body: parsed, error: null };
    } catch (error) {
      return { body: null, error: (error as Error).message };
    }
  }

  type Handler = (req: IncomingMessage, res: ServerResponse, body: Json) => void | Promise<void>;
  const POST_JSON: Record<string, { handler: Handler; openai?: boolean; method?: string }> = {
    '/api/generate': { handler: (req, res, body) => nativeInference(req, res, body, 'generate') },
    '/api/chat': { handler: (req, res, body) => nativeInference(req, res, body, 'chat') },
    '/api/embed': { handler: (req, res, body) => embed(req, res, body, false) },
    '/api/embeddings': { handler: (req, res, body) => embed(req, res, body, true) },
    '/api/show': {
      handler: (_req, res, body) => {
        const name = modelNameOf(body);
        if (!name) throw new BadRequest(400, 'model is required');
        const spec = lookup(name);
        if (!spec) throw new BadRequest(404, `model '${name}' not found`);
        sendJson(res, 200, showResponse(spec, startedAt));
      },
    },
    '/api/pull': { handler: (_req, res, body) => pull(res, body) },
    '/api/copy': { handler: (_req, res, body) => copy(res, body) },
    '/api/delete': { handler: (_req, res, body) => remove(res, body), method: 'DELETE' },
    '/v1/chat/completions': { handler: (req, res, body) => openAiInference(req, res, body, 'openai-chat'), openai: true },
    '/v1/completions': { handler: (req, res, body) => openAiInference(req, res, body, 'openai-completion'), openai: true },
    '/v1/embeddings': { handler: (req, res, body) => openAiEmbeddings(req, res, body), openai: true },
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const method = req.method ?? 'GET';
    const read = method === 'GET' || method === 'HEAD';
    if (read) {
      record(req, path, undefined);
      if (path === '/') {
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': 17 });
        res.end(method === 'HEAD' ? undefined : 'Ollama is running');
        return;
      }
      if (path === '/api/version') return sendJson(res, 200, { version: options.version ?? '0.12.6' });
      if (path === '/api/tags') return sendJson(res, 200, { models: [...models.values()].map((s) => tagsEntry(s, startedAt)) });
      if (path === '/api/ps') return ps(res);
      if (path === '/v1/models') {
        const created = Math.floor(Date.parse(startedAt) / 1000);
        return sendJson(res, 200, { object: 'list', data: [...models.values()].map((s) => ({ id: s.name, object: 'model', created, owned_by: 'library' })) });
      }
      const single = /^\/v1\/models\/(.+)$/.exec(path);
      if (single?.[1]) {
        const spec = lookup(decodeURIComponent(single[1]));
        if (!spec) return sendJson(res, 404, openAiError(404, `model "${decodeURIComponent(single[1])}" not found`));
        return sendJson(res, 200, { id: spec.name, object: 'model', created: Math.floor(Date.parse(startedAt) / 1000), owned_by: 'library' });
      }
      return sendNotFoundPage(res);
    }
    const route = POST_JSON[path];
    if (!route || method !== (route.method ?? 'POST')) {
      req.resume();
      record(req, path, undefined);
      return sendNotFoundPage(res);
    }
    const { body, error } = await readJsonBody(req);
    record(req, path, body ?? undefined);
    try {
      if (error !== null || body === null) throw new BadRequest(400, error ?? 'missing request body');
      await route.handler(req, res, body);
    } catch (caught) {
      const status = caught instanceof BadRequest ? caught.status : 500;
      const message = caught instanceof Error ? caught.message : String(caught);
      if (res.headersSent || res.destroyed) {
        res.destroy();
        return;
      }
      sendJson(res, status, route.openai ? openAiError(status, message) : ollamaError(message));
    }
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;

  return {
    url: `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`,
    stats,
    received,
    lastReceived: (path) => [...received].reverse().find((r) => r.path === path),
    loaded: () =>
      [...scheduler.runners.values()].map((r) => ({
        name: r.name,
        numCtx: r.numCtx,
        numBatch: r.numBatch,
        sizeBytes: r.sizeBytes,
        useMmap: r.useMmap,
        sessionMs: r.sessionMs,
        expiresAtMs: r.expiresAtMs,
        refCount: r.refCount,
      })),
    failNext(kind, count = 1) {
      for (let i = 0; i < count; i += 1) failures.push(kind);
    },
    setMemoryBytes(bytes) {
      scheduler.memoryBytes = bytes;
    },
    usedBytes: () => scheduler.usedBytes(),
    close: () =>
      new Promise<void>((resolve) => {
        scheduler.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
