/**
 * What a loaded Ollama model costs, before Ollama says (`/api/ps` `size`).
 *
 * estimate = weights + KV cache + buffers, the formula in ../shared/README.md
 * (Ollama section):
 * - weights: the GGUF file size when known (`/api/tags` `size`), else
 *   parameter_count x bytes per parameter of the quantization;
 * - KV cache: 2 (K and V) x block_count x head_count_kv x head_dim x n_ctx x
 *   bytes per element (f16 2, q8_0 1, q4_0 0.5), head_dim =
 *   embedding_length / head_count (or `attention.key_length` where the GGUF has it);
 * - buffers: a fixed 512 MiB (compute graph, output; Ollama: 0.5-1 GiB) at
 *   Ollama's default `num_batch` 512. The compute graph is the part that
 *   scales with the batch (Ollama's fs/ggml GraphSize, and llama.cpp's "CPU
 *   compute buffer size": 4 bytes x batch x (embedding + vocabulary) for
 *   llama3.2's 128k vocabulary), so a smaller `num_batch` takes the graph
 *   difference off the buffers: {@link overheadBytesFor}.
 *
 * Real servers never match the formula exactly (sliding-window attention,
 * projectors, graph size), so {@link SizeCorrection} learns, per model, the
 * ratio of the size Ollama reports to the estimate, as an exponentially
 * weighted mean, and scales later estimates by it.
 *
 * Weights are file pages when `use_mmap` is on (reclaimable by the kernel);
 * the KV cache and buffers are anonymous memory: {@link splitMapped}.
 */
import type { KvCacheType } from '../../app/schema/models.js';

const MIB = 1024 ** 2;

/**
 * Bytes per parameter of GGUF quantizations. F16, Q8_0, Q6_K, Q5_K_M, Q4_K_M
 * and Q4_0 are from ../shared/README.md; the others are llama.cpp's
 * bits-per-weight of the format divided by 8 (approximate for the K-quants,
 * which mix block types).
 */
export const BYTES_PER_PARAMETER: Readonly<Record<string, number>> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  Q8_0: 1.0625,
  Q6_K: 0.82,
  Q5_1: 0.75,
  Q5_K_M: 0.71,
  Q5_K_S: 0.69,
  Q5_0: 0.6875,
  Q4_1: 0.625,
  Q4_K_M: 0.61,
  Q4_K_S: 0.57,
  Q4_0: 0.5625,
  Q3_K_L: 0.53,
  Q3_K_M: 0.49,
  Q3_K_S: 0.44,
  Q2_K: 0.33,
};

/** Bytes per KV-cache element for Ollama's `OLLAMA_KV_CACHE_TYPE`. */
export const KV_BYTES: Readonly<Record<KvCacheType, number>> = { f16: 2, q8_0: 1, q4_0: 0.5 };

/** Fixed buffers added to every estimate (at Ollama's default num_batch). */
export const DEFAULT_OVERHEAD_BYTES = 512 * MIB;

/** Ollama's default `num_batch` (api.DefaultOptions): llama.cpp's n_batch and n_ubatch. */
export const OLLAMA_DEFAULT_NUM_BATCH = 512;

/** The facts about a model the estimate needs (from `/api/show`, plus `/api/tags` for the file size). */
export interface ModelFacts {
  name: string;
  architecture: string | null;
  parameterCount: number | null;
  /** `<arch>.block_count`: layers. */
  blockCount: number | null;
  /** `<arch>.context_length`: the trained context. */
  contextLength: number | null;
  embeddingLength: number | null;
  headCount: number | null;
  headCountKv: number | null;
  /** `<arch>.attention.key_length`, when the GGUF has it (gemma: 256, not embedding/heads). */
  keyLength: number | null;
  /** `<arch>.vocab_size`, when the GGUF has it (llama3.x: 128256); sizes the batch-dependent graph. */
  vocabSize?: number | null;
  /** `details.quantization_level`, e.g. `Q4_K_M`. */
  quantization: string | null;
  /** GGUF file size (`/api/tags` `size`), when known. */
  fileSizeBytes: number | null;
}

export interface MemoryEstimate {
  weightsBytes: number;
  kvBytes: number;
  overheadBytes: number;
  /** weights + kv + overhead, before any learned correction. */
  totalBytes: number;
}

/** Weight bytes: the file size, else parameters x bytes per parameter; null when neither is known. */
export function weightsBytes(facts: Pick<ModelFacts, 'fileSizeBytes' | 'parameterCount' | 'quantization'>): number | null {
  if (facts.fileSizeBytes != null && facts.fileSizeBytes > 0) return facts.fileSizeBytes;
  if (facts.parameterCount == null || facts.parameterCount <= 0) return null;
  const perParameter = BYTES_PER_PARAMETER[(facts.quantization ?? '').toUpperCase()];
  return perParameter === undefined ? null : Math.round(facts.parameterCount * perParameter);
}

/** KV-cache bytes per token of context; null when the shape is unknown. */
export function kvBytesPerToken(
  facts: Pick<ModelFacts, 'blockCount' | 'headCountKv' | 'embeddingLength' | 'headCount' | 'keyLength'>,
  kvType: KvCacheType = 'f16',
): number | null {
  const { blockCount, headCountKv, embeddingLength, headCount, keyLength } = facts;
  if (!blockCount || !headCountKv) return null;
  const headDim = keyLength ?? (embeddingLength && headCount ? embeddingLength / headCount : null);
  if (!headDim) return null;
  return 2 * blockCount * headCountKv * headDim * KV_BYTES[kvType];
}

/** KV-cache bytes for `numCtx` tokens (`2 x layers x kv_heads x head_dim x n_ctx x bytes`). */
export function kvCacheBytes(
  facts: Pick<ModelFacts, 'blockCount' | 'headCountKv' | 'embeddingLength' | 'headCount' | 'keyLength'>,
  numCtx: number,
  kvType: KvCacheType = 'f16',
): number | null {
  const perToken = kvBytesPerToken(facts, kvType);
  return perToken === null ? null : perToken * numCtx;
}

type GraphFacts = Pick<ModelFacts, 'architecture' | 'embeddingLength' | 'headCount' | 'vocabSize'>;

/**
 * Compute-graph bytes at `numCtx` and `numBatch` (batch capped at the
 * context, as Ollama does), from Ollama's GraphSize: for llama the larger of
 * the attention term 4·b·(1 + 4·e + n_ctx·(1 + heads)) and the output term
 * 4·b·(e + vocab); other architectures get the output term, which every
 * architecture's formula contains. Null when embedding or vocabulary is unknown.
 */
export function graphBytes(facts: GraphFacts, numCtx: number, numBatch: number): number | null {
  const { embeddingLength: embedding, vocabSize: vocab, headCount: heads } = facts;
  if (!embedding || !vocab) return null;
  const batch = Math.max(1, Math.min(numBatch, numCtx));
  const output = 4 * batch * (embedding + vocab);
  if (facts.architecture !== 'llama' || !heads) return output;
  return Math.max(4 * batch * (1 + 4 * embedding + numCtx * (1 + heads)), output);
}

/**
 * The fixed buffers at `numBatch`: {@link DEFAULT_OVERHEAD_BYTES} (which holds
 * the graph at Ollama's default 512) minus the graph bytes a smaller batch
 * does not allocate (plus those a larger one does). Never below a quarter of
 * the default (the runner's own code and output buffers stay). The default
 * when the batch is not set or the graph cannot be sized.
 */
export function overheadBytesFor(facts: GraphFacts, numCtx: number, numBatch: number | null | undefined): number {
  if (numBatch == null || numBatch === OLLAMA_DEFAULT_NUM_BATCH) return DEFAULT_OVERHEAD_BYTES;
  const atDefault = graphBytes(facts, numCtx, OLLAMA_DEFAULT_NUM_BATCH);
  const atBatch = graphBytes(facts, numCtx, numBatch);
  if (atDefault === null || atBatch === null) return DEFAULT_OVERHEAD_BYTES;
  return Math.max(DEFAULT_OVERHEAD_BYTES / 4, DEFAULT_OVERHEAD_BYTES - atDefault + atBatch);
}

/** The uncorrected estimate at `numCtx`; null when the weights cannot be sized. A missing shape counts no KV. */
export function estimateModelMemory(
  facts: ModelFacts,
  numCtx: number,
  kvType: KvCacheType = 'f16',
  overheadBytes: number = DEFAULT_OVERHEAD_BYTES,
): MemoryEstimate | null {
  const weights = weightsBytes(facts);
  if (weights === null) return null;
  const kv = kvCacheBytes(facts, numCtx, kvType) ?? 0;
  return { weightsBytes: weights, kvBytes: kv, overheadBytes, totalBytes: weights + kv + overheadBytes };
}

/**
 * Mapped (file pages: the weights, when use_mmap is on) and anonymous bytes
 * (KV cache, buffers, and the weights too when use_mmap is off) of a model
 * whose total is `totalBytes` (Ollama's size, or the estimate).
 */
export function splitMapped(totalBytes: number, weights: number | null, useMmap: boolean): { mappedBytes: number; anonymousBytes: number } {
  if (!useMmap || weights === null) return { mappedBytes: 0, anonymousBytes: totalBytes };
  const mapped = Math.min(weights, totalBytes);
  return { mappedBytes: mapped, anonymousBytes: totalBytes - mapped };
}

export interface SizeCorrectionOptions {
  /** Weight of the newest observation (0..1]. */
  alpha?: number;
  /** Ratios outside [min, max] are clamped: one absurd /api/ps answer must not wreck the estimate. */
  minRatio?: number;
  maxRatio?: number;
}

/**
 * Learns, per model, reported size / estimated size as an exponentially
 * weighted mean: ratio <- ratio + alpha x (observed - ratio), starting at the
 * first observation. Converges geometrically (error x (1 - alpha) per step).
 */
export class SizeCorrection {
  private readonly ratios = new Map<string, { ratio: number; samples: number }>();
  private readonly alpha: number;
  private readonly minRatio: number;
  private readonly maxRatio: number;

  constructor(options: SizeCorrectionOptions = {}) {
    this.alpha = options.alpha ?? 0.3;
    this.minRatio = options.minRatio ?? 0.5;
    this.maxRatio = options.maxRatio ?? 2;
    if (!(this.alpha > 0 && this.alpha <= 1)) throw new RangeError(`alpha must be in (0, 1], got ${this.alpha}`);
  }

  /** Records one comparison of `/api/ps` size with the estimate for the same context size. */
  observe(model: string, estimatedBytes: number, reportedBytes: number): void {
    if (!(estimatedBytes > 0 && reportedBytes > 0)) return;
    const observed = Math.min(this.maxRatio, Math.max(this.minRatio, reportedBytes / estimatedBytes));
    const current = this.ratios.get(model);
    if (!current) {
      this.ratios.set(model, { ratio: observed, samples: 1 });
      return;
    }
    current.ratio += this.alpha * (observed - current.ratio);
    current.samples += 1;
  }

  /** The learned ratio (1 until something was observed). */
  ratio(model: string): number {
    return this.ratios.get(model)?.ratio ?? 1;
  }

  samples(model: string): number {
    return this.ratios.get(model)?.samples ?? 0;
  }

  /** The estimate scaled by the learned ratio. */
  correct(model: string, estimatedBytes: number): number {
    return Math.round(estimatedBytes * this.ratio(model));
  }
}

