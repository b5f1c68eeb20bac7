/**
 * Config section `models`: the Ollama model governor (docs/governor.md has the
 * reasons behind every default). All of it is hot-reloadable: the governor
 * reads the latest value at each decision.
 */
import { z } from 'zod';
import { bytes, duration } from '../schemaTypes.js';

const modelName = z.string().min(1).max(200);

const perModelSchema = z
  .strictObject({
    idleTimeoutMs: duration('Idle time after which this model is unloaded (overrides models.idleTimeoutMs).').optional(),
    pinned: z.boolean().optional().describe('Never unload this model for idleness, budget or high pressure (critical pressure still may, see unloadPinnedAtCritical).'),
    maxContext: z
      .number()
      .int()
      .min(256)
      .optional()
      .describe('Largest num_ctx chosen for this model to use free memory (overrides models.maxContext).'),
  })
  .describe('Overrides for one model.');

export const QUANTIZATION_PREFERENCES = ['auto', 'none', 'int8', 'int4'] as const;
export type QuantizationPreference = (typeof QUANTIZATION_PREFERENCES)[number];

export const KV_CACHE_TYPES = ['f16', 'q8_0', 'q4_0'] as const;
export type KvCacheType = (typeof KV_CACHE_TYPES)[number];

export const modelsSchema = z
  .strictObject({
    upstream: z
      .url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' })
      .default('http://127.0.0.1:11434')
      .describe('The Ollama server the governor watches and unloads on.'),
    pollIntervalMs: duration('How often /api/ps is read (loaded models, real sizes).')
      .pipe(z.number().min(100, 'at least 100 ms'))
      .prefault('2s'),
    idleTimeoutMs: duration(
      'A model with no request in flight for this long is unloaded (keep_alive 0). Meetily sends summary chunks back to back, so a burst stays on one load.',
    ).prefault('1m'),
    perModel: z
      .record(modelName, perModelSchema)
      .prefault({})
      .describe('Per-model overrides, keyed by model name (e.g. {"llama3.1:8b": {"idleTimeoutMs": "10m"}}).'),
    pinned: z.array(modelName).default([]).describe('Models never unloaded for idleness, budget or high pressure.'),
    budgetBytes: bytes('Most bytes the loaded models may hold together; a load past it first unloads least recently used idle models.')
      .nullable()
      .prefault(null)
      .describe(
        'Most bytes the loaded models may hold together; a load past it first unloads least recently used idle models. null: from the pressure preset (4gb: 1.5 GiB, 8gb: 4.5 GiB, 16gb: the larger of 8 GiB and half the memory).',
      ),
    budgetScale: z
      .number()
      .min(0.1)
      .max(1)
      .default(1)
      .describe('Factor applied to the preset-derived model budget when budgetBytes is null (the optimization levels lower it); an explicit budgetBytes is used as written.'),
    allowedContextSizes: z
      .array(z.number().int().min(256).max(1_048_576))
      .min(1)
      .default([2048, 4096, 8192, 16384, 32768])
      .describe('num_ctx values the governor may choose from.'),
    maxContext: z
      .number()
      .int()
      .min(256)
      .default(4096)
      .describe(
        'Largest num_ctx chosen just because memory is free (Ollama\'s own default is 4096). A prompt that needs more still gets the smallest allowed size that holds it, up to the model\'s trained context.',
      ),
    serverContextLength: z
      .number()
      .int()
      .min(256)
      .default(4096)
      .describe(
        "num_ctx Ollama gives a request that sets none (its OLLAMA_CONTEXT_LENGTH: 4096 since Ollama 0.6, 2048 before). /v1/* requests forwarded as they are get it (the OpenAI layer takes no options): /v1/completions, /v1/embeddings, and /v1/chat/completions with proxy.openAiChat: forward or when a request cannot be translated. Translated /v1/chat/completions requests get a sized num_ctx like /api/chat.",
      ),
    answerReserveTokens: z
      .number()
      .int()
      .min(0)
      .default(1024)
      .describe('Tokens kept free in the context for the answer, on top of the prompt estimate.'),
    numBatch: z
      .number()
      .int()
      .min(1)
      .max(8192)
      .nullable()
      .default(null)
      .describe(
        "options.num_batch sent with /api/generate and /api/chat (and translated /v1 chat): the tokens llama.cpp evaluates per step. Its compute buffer scales with it (4 bytes x batch x (embedding + vocabulary): 256 MiB at Ollama's default 512 for llama3.2, 64 MiB at 128); prompts were measured no slower down to 64 with the real llama.cpp on CPU (docs/benchmarks.md). A client's smaller value is kept; embedding requests are never changed (an embedding model needs its whole input in one batch). null: leave Ollama's default.",
      ),
    contextSafetyMarginBytes: bytes('Memory left free when sizing the KV cache.').prefault('512MiB'),
    kvCacheType: z
      .enum(KV_CACHE_TYPES)
      .default('f16')
      .describe("The server's OLLAMA_KV_CACHE_TYPE (bytes per KV element: f16 2, q8_0 1, q4_0 0.5), for the estimate."),
    quantization: z
      .enum(QUANTIZATION_PREFERENCES)
      .default('auto')
      .describe(
        'Highest quantization level to use when several tags of a model exist: none (F16/F32), int8 (Q8_0, Q6_K), int4 (Q5/Q4/Q3...); auto: the requested tag\'s own level. A lower one is used when the preferred does not fit.',
      ),
    useMmap: z
      .boolean()
      .default(true)
      .describe('Keep use_mmap on (weights are file pages the kernel can reclaim); false makes the proxy send options.use_mmap=false.'),
    maxConcurrent: z.number().int().min(1).max(1024).default(4).describe('Admitted requests in flight at once, over all models.'),
    maxQueue: z
      .number()
      .int()
      .min(0)
      .max(100_000)
      .default(32)
      .describe('Requests that may wait for admission (slot, memory or pressure hold); past it they get 503 at once.'),
    queueTimeoutMs: duration('A request waiting longer than this for admission gets 503 with Retry-After.').prefault('2m'),
    pressureGraceMs: duration(
      'While pressure is high or critical, idle models are unloaded after this instead of idleTimeoutMs (a burst of requests still shares one load).',
    ).prefault('15s'),
    unloadPinnedAtCritical: z
      .boolean()
      .default(true)
      .describe('At critical pressure, unload idle pinned models too (a reload costs seconds; the OOM killer costs the meeting).'),
    warmUp: z.array(modelName).default([]).describe('Models loaded when warm-up is asked for (e.g. when a meeting starts); nothing is ever preloaded otherwise.'),
    observeOnly: z
      .boolean()
      .default(false)
      .describe('Decide and record every action (executed: false) but change nothing: requests pass through untouched.'),
  })
  .describe('Ollama model governor: budget, idle unload, pinning, context sizing, quantization.')
  .prefault({});
export type ModelsConfig = z.output<typeof modelsSchema>;
export type PerModelConfig = z.output<typeof perModelSchema>;
