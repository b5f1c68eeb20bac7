/**
 * Model facts and memory accounting of the fake Ollama server.
 *
 * A loaded runner costs weights (the GGUF file) + KV cache + fixed buffers,
 * the formula in ../shared/README.md (Ollama section): KV = 2 x block_count x
 * head_count_kv x (embedding_length / head_count) x n_ctx x 2 bytes (f16).
 * The fixed buffers hold the compute graph at Ollama's default num_batch 512;
 * a smaller batch allocates a smaller graph (Ollama's fs/ggml GraphSize, the
 * size llama.cpp logs as "CPU compute buffer size"), so the buffers shrink by
 * the difference: {@link graphBytes}.
 * The fake then multiplies by a per-model `bias` (default derived from the
 * name, 1.04-1.22), because the real server never matches anyone's estimate
 * exactly and a governor has to learn the correction from `/api/ps`.
 */
import { createHash } from 'node:crypto';

export interface FakeModelSpec {
  /** Full tag, e.g. `llama3.1:8b`; a name without tag means `:latest`. */
  name: string;
  /** GGUF architecture: the prefix of the `model_info` keys (`llama`, `gemma3`, `qwen2`, `nomic-bert`...). */
  arch: string;
  parameterCount: number;
  /** `details.quantization_level`: Q4_K_M, Q8_0, F16... */
  quantization: string;
  blockCount: number;
  headCount: number;
  headCountKv: number;
  embeddingLength: number;
  /** Trained context (`<arch>.context_length`). */
  contextLength: number;
  /** Tokens in the vocabulary (`<arch>.vocab_size`); default by architecture. */
  vocabSize?: number;
  /** GGUF file size = weight bytes. */
  fileSizeBytes: number;
  /** Fixed compute/graph buffers; default 512 MiB (Ollama: 0.5-1 GiB). */
  overheadBytes?: number;
  /** Real size / documented estimate; default from the name (1.04-1.22). */
  bias?: number;
  /** An embedding model (`capabilities: ["embedding"]`). */
  embedding?: boolean;
}

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;

/** Bytes per parameter of common GGUF quantizations (../shared/README.md). */
export const BYTES_PER_PARAMETER: Record<string, number> = {
  F16: 2.0,
  Q8_0: 1.0625,
  Q6_K: 0.82,
  Q5_K_M: 0.71,
  Q4_K_M: 0.61,
  Q4_0: 0.5625,
};

/** `x` → `x:latest`, the way Ollama resolves a name without tag. */
export function normalizeModelName(name: string): string {
  const lastSegment = name.slice(name.lastIndexOf('/') + 1);
  return lastSegment.includes(':') ? name : `${name}:latest`;
}

/** Deterministic bias in [1.04, 1.22] from the model name. */
export function defaultBias(name: string): number {
  const byte = createHash('sha256').update(name).digest()[0] ?? 0;
  return 1.04 + (byte / 255) * 0.18;
}

/** The server's `OLLAMA_KV_CACHE_TYPE` (q8_0 and q4_0 need `OLLAMA_FLASH_ATTENTION=1`). */
export type FakeKvCacheType = 'f16' | 'q8_0' | 'q4_0';
const KV_ELEMENT_BYTES: Record<FakeKvCacheType, number> = { f16: 2, q8_0: 1, q4_0: 0.5 };

/** Vocabulary sizes of the architectures' common models (from their GGUF headers). */
const VOCAB_BY_ARCH: Record<string, number> = { llama: 128_256, gemma3: 262_144, qwen2: 151_936, 'nomic-bert': 30_522 };

/** Ollama's default num_batch. */
export const DEFAULT_NUM_BATCH = 512;

export const vocabSizeOf = (spec: FakeModelSpec): number => spec.vocabSize ?? VOCAB_BY_ARCH[spec.arch] ?? 32_000;

/**
 * Compute-graph bytes of a runner (Ollama's GraphSize, full offload, which is
 * what a CPU runner allocates): for llama max(4·b·(1 + 4·e + n_ctx·(1 + heads)),
 * 4·b·(e + vocab)); other architectures the output term 4·b·(e + vocab).
 * Batch capped at the context.
 */
export function graphBytes(spec: FakeModelSpec, numCtx: number, numBatch: number): number {
  const batch = Math.max(1, Math.min(numBatch, numCtx));
  const output = 4 * batch * (spec.embeddingLength + vocabSizeOf(spec));
  if (spec.arch !== 'llama') return output;
  return Math.max(4 * batch * (1 + 4 * spec.embeddingLength + numCtx * (1 + spec.headCount)), output);
}

/**
 * Of the graph bytes a smaller batch does not allocate, the share that also
 * leaves the runner's RSS (not every page of the larger buffer is touched).
 * The real llama.cpp at 4096 context (llama3.2:3b shapes,
 * bench/llamacpp/README.md): batch 512 -> 128 allocates 196.9 MiB less
 * compute buffer; RSS after a 3000-token prompt is 154 MiB lower without
 * flash attention (Ollama's default for llama), 51 MiB with it (which a
 * quantized KV cache requires: the attention scores are never materialised).
 */
export const GRAPH_RSS_SHARE = 0.78;
export const GRAPH_RSS_SHARE_FLASH_ATTENTION = 0.26;

/**
 * Fixed buffers at `numBatch`: the default ones less `share` of the graph a
 * smaller batch does not allocate (at least a quarter of them). share 1:
 * Ollama's estimate; GRAPH_RSS_SHARE: what the runner really holds.
 */
export function overheadBytes(spec: FakeModelSpec, numCtx: number, numBatch: number = DEFAULT_NUM_BATCH, share = 1): number {
  const base = spec.overheadBytes ?? 512 * MIB;
  if (numBatch === DEFAULT_NUM_BATCH) return base;
  return Math.max(base / 4, base - (graphBytes(spec, numCtx, DEFAULT_NUM_BATCH) - graphBytes(spec, numCtx, numBatch)) * share);
}

/**
 * Prompt-evaluation speed at a num_batch, relative to Ollama's 512: smaller
 * batches make fewer, smaller matrix products per step. Measured with the
 * real llama.cpp (CPU, 2 threads) on a llama3.2:3b-shaped model
 * (bench/llamacpp/README.md); linear in between, clamped at the ends.
 */
export const PROMPT_SPEED_BY_BATCH: ReadonlyArray<readonly [batch: number, speed: number]> = [
  // Medians of 3 runs, 3000-token prompt at 4096 context: 55.4 / 55.5 / 56.7 / 53.9 tokens/s at 64 / 128 / 256 / 512,
  // i.e. no slowdown on this CPU (AMX). Capped at 1 below: a smaller batch is never modelled faster.
  [64, 1],
  [128, 1],
  [256, 1],
  [512, 1],
];

export function promptSpeed(numBatch: number, table: ReadonlyArray<readonly [number, number]> = PROMPT_SPEED_BY_BATCH): number {
  if (numBatch <= table[0]![0]) return Math.min(1, table[0]![1]);
  for (let i = 1; i < table.length; i += 1) {
    const [b1, s1] = table[i]!;
    const [b0, s0] = table[i - 1]!;
    if (numBatch <= b1) return Math.min(1, s0 + ((s1 - s0) * (numBatch - b0)) / (b1 - b0));
  }
  return Math.min(1, table[table.length - 1]![1]);
}

/** KV cache bytes for `numCtx` tokens (f16 unless the server says otherwise). */
export function kvCacheBytes(spec: FakeModelSpec, numCtx: number, kvCacheType: FakeKvCacheType = 'f16'): number {
  const headDim = spec.embeddingLength / spec.headCount;
  return 2 * spec.blockCount * spec.headCountKv * headDim * numCtx * KV_ELEMENT_BYTES[kvCacheType];
}

/** The documented estimate (what a careful client would compute), without the fake's bias. */
export function documentedEstimateBytes(spec: FakeModelSpec, numCtx: number, kvCacheType: FakeKvCacheType = 'f16', numBatch: number = DEFAULT_NUM_BATCH): number {
  return spec.fileSizeBytes + kvCacheBytes(spec, numCtx, kvCacheType) + overheadBytes(spec, numCtx, numBatch);
}

/** What the fake server says the runner really takes (`/api/ps` `size`, and the bytes it allocates). */
export function runnerSizeBytes(spec: FakeModelSpec, numCtx: number, kvCacheType: FakeKvCacheType = 'f16', numBatch: number = DEFAULT_NUM_BATCH): number {
  const share = kvCacheType === 'f16' ? GRAPH_RSS_SHARE : GRAPH_RSS_SHARE_FLASH_ATTENTION;
  const real = spec.fileSizeBytes + kvCacheBytes(spec, numCtx, kvCacheType) + overheadBytes(spec, numCtx, numBatch, share);
  return Math.round(real * (spec.bias ?? defaultBias(spec.name)));
}

/** Go's `format.HumanBytes2`, as Ollama prints sizes in its errors ("4.6 GiB"). */
export function humanBytes2(bytes: number): string {
  if (bytes >= GIB) return `${(bytes / GIB).toFixed(1)} GiB`;
  if (bytes >= MIB) return `${(bytes / MIB).toFixed(1)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} B`;
}

/** `8.0B`, `567.0M`: Ollama's `details.parameter_size`. */
export function parameterSize(count: number): string {
  return count >= 1e9 ? `${(count / 1e9).toFixed(1)}B` : `${(count / 1e6).toFixed(1)}M`;
}

/** A spec from the architecture numbers and a quantization, with the file size derived. */
export function modelSpec(base: Omit<FakeModelSpec, 'fileSizeBytes'> & { fileSizeBytes?: number }): FakeModelSpec {
  const perParameter = BYTES_PER_PARAMETER[base.quantization] ?? 1;
  return { ...base, name: normalizeModelName(base.name), fileSizeBytes: base.fileSizeBytes ?? Math.round(base.parameterCount * perParameter) };
}

const llama8b = { arch: 'llama', parameterCount: 8.03e9, blockCount: 32, headCount: 32, headCountKv: 8, embeddingLength: 4096, contextLength: 131_072 };
const gemma4b = { arch: 'gemma3', parameterCount: 4.3e9, blockCount: 34, headCount: 8, headCountKv: 4, embeddingLength: 2560, contextLength: 131_072 };
const gemma1b = { arch: 'gemma3', parameterCount: 1.0e9, blockCount: 26, headCount: 4, headCountKv: 1, embeddingLength: 1152, contextLength: 32_768 };
const qwenHalf = { arch: 'qwen2', parameterCount: 494e6, blockCount: 24, headCount: 14, headCountKv: 2, embeddingLength: 896, contextLength: 32_768 };

/** Models Meetily users actually run, with their real shapes (from their GGUF headers). */
export const DEFAULT_FAKE_MODELS: readonly FakeModelSpec[] = [
  modelSpec({ name: 'llama3.1:8b', quantization: 'Q4_K_M', ...llama8b }),
  modelSpec({ name: 'llama3.1:8b-instruct-q8_0', quantization: 'Q8_0', ...llama8b }),
  modelSpec({ name: 'gemma3:4b', quantization: 'Q4_K_M', ...gemma4b }),
  modelSpec({ name: 'gemma3:1b', quantization: 'Q4_K_M', ...gemma1b }),
  modelSpec({ name: 'qwen2.5:0.5b', quantization: 'Q4_K_M', ...qwenHalf }),
  modelSpec({
    name: 'nomic-embed-text:latest',
    arch: 'nomic-bert',
    quantization: 'F16',
    parameterCount: 137e6,
    blockCount: 12,
    headCount: 12,
    headCountKv: 12,
    embeddingLength: 768,
    contextLength: 2048,
    embedding: true,
  }),
];
