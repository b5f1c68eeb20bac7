/**
 * The architecture of Ollama's `llama3.2:3b` (Llama 3.2 3B Instruct) as GGUF
 * metadata + tensor list. Only shapes matter here: weights are random.
 *
 * Deviations from the real file, none of which change buffer sizes:
 * - tokenizer is a synthetic SentencePiece ("llama") vocabulary of the same
 *   size (128256 tokens: <unk>, <s>, </s>, 256 byte tokens, fillers) instead
 *   of the real GPT-2 BPE one with 280k merges;
 * - every 2-D weight is Q4_0 (the real Q4_K_M mixes Q4_K/Q6_K); token_embd
 *   (tied to the output projection, as in llama3.2) is Q6_K like the real one;
 * - rope_freqs.weight (llama3 rope scaling factors) is all ones.
 */
import type { GgmlTypeName, KvValue } from './gguf.js';

export const LLAMA32_3B = {
  blockCount: 28,
  contextLength: 131072,
  embd: 3072,
  ffn: 8192,
  heads: 24,
  headsKv: 8,
  headDim: 128,
  ropeFreqBase: 500000,
  rmsEps: 1e-5,
  vocab: 128256,
} as const;

export interface TensorShape {
  name: string;
  dims: readonly number[];
  type: GgmlTypeName;
}

const BOS = 1;
const EOS = 2;
const FIRST_FILLER = 3 + 256;

/** Token ids that are plain text pieces (safe to use as a random prompt). */
export const NORMAL_TOKEN_RANGE = { from: FIRST_FILLER, to: LLAMA32_3B.vocab } as const;

function vocabulary(): { tokens: string[]; scores: Float32Array; types: Int32Array } {
  const n = LLAMA32_3B.vocab;
  const tokens: string[] = new Array<string>(n);
  const scores = new Float32Array(n);
  const types = new Int32Array(n).fill(1); // 1 = NORMAL
  tokens[0] = '<unk>';
  types[0] = 2; // UNKNOWN
  tokens[BOS] = '<s>';
  tokens[EOS] = '</s>';
  types[BOS] = 3; // CONTROL
  types[EOS] = 3;
  for (let b = 0; b < 256; b++) {
    tokens[3 + b] = `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
    types[3 + b] = 6; // BYTE
  }
  for (let i = FIRST_FILLER; i < n; i++) {
    tokens[i] = `\u2581t${i.toString(36)}`;
    scores[i] = -i;
  }
  return { tokens, scores, types };
}

export function llama32Metadata(): Map<string, KvValue> {
  const s = LLAMA32_3B;
  const v = vocabulary();
  return new Map<string, KvValue>([
    ['general.architecture', { type: 'string', value: 'llama' }],
    ['general.name', { type: 'string', value: 'memtide random llama3.2-3b shape' }],
    ['general.alignment', { type: 'uint32', value: 32 }],
    ['general.file_type', { type: 'uint32', value: 2 }], // MOSTLY_Q4_0
    ['general.quantization_version', { type: 'uint32', value: 2 }],
    ['llama.block_count', { type: 'uint32', value: s.blockCount }],
    ['llama.context_length', { type: 'uint32', value: s.contextLength }],
    ['llama.embedding_length', { type: 'uint32', value: s.embd }],
    ['llama.feed_forward_length', { type: 'uint32', value: s.ffn }],
    ['llama.attention.head_count', { type: 'uint32', value: s.heads }],
    ['llama.attention.head_count_kv', { type: 'uint32', value: s.headsKv }],
    ['llama.rope.freq_base', { type: 'float32', value: s.ropeFreqBase }],
    ['llama.attention.layer_norm_rms_epsilon', { type: 'float32', value: s.rmsEps }],
    ['llama.attention.key_length', { type: 'uint32', value: s.headDim }],
    ['llama.attention.value_length', { type: 'uint32', value: s.headDim }],
    ['llama.rope.dimension_count', { type: 'uint32', value: s.headDim }],
    ['llama.vocab_size', { type: 'uint32', value: s.vocab }],
    ['tokenizer.ggml.model', { type: 'string', value: 'llama' }],
    ['tokenizer.ggml.tokens', { type: 'string[]', value: v.tokens }],
    ['tokenizer.ggml.scores', { type: 'float32[]', value: v.scores }],
    ['tokenizer.ggml.token_type', { type: 'int32[]', value: v.types }],
    ['tokenizer.ggml.bos_token_id', { type: 'uint32', value: BOS }],
    ['tokenizer.ggml.eos_token_id', { type: 'uint32', value: EOS }],
    ['tokenizer.ggml.unknown_token_id', { type: 'uint32', value: 0 }],
    ['tokenizer.ggml.add_bos_token', { type: 'bool', value: true }],
    ['tokenizer.ggml.add_eos_token', { type: 'bool', value: false }],
  ]);
}

/** Tensor list in the order llama.cpp's converter writes it. */
export function llama32Tensors(): TensorShape[] {
  const { embd, ffn, headsKv, headDim, vocab, blockCount } = LLAMA32_3B;
  const kvDim = headsKv * headDim;
  const out: TensorShape[] = [
    { name: 'rope_freqs.weight', dims: [headDim / 2], type: 'F32' },
    { name: 'token_embd.weight', dims: [embd, vocab], type: 'Q6_K' },
  ];
  for (let i = 0; i < blockCount; i++) {
    const b = `blk.${i}.`;
    out.push(
      { name: `${b}attn_norm.weight`, dims: [embd], type: 'F32' },
      { name: `${b}attn_q.weight`, dims: [embd, embd], type: 'Q4_0' },
      { name: `${b}attn_k.weight`, dims: [embd, kvDim], type: 'Q4_0' },
      { name: `${b}attn_v.weight`, dims: [embd, kvDim], type: 'Q4_0' },
      { name: `${b}attn_output.weight`, dims: [embd, embd], type: 'Q4_0' },
      { name: `${b}ffn_norm.weight`, dims: [embd], type: 'F32' },
      { name: `${b}ffn_gate.weight`, dims: [embd, ffn], type: 'Q4_0' },
      { name: `${b}ffn_up.weight`, dims: [embd, ffn], type: 'Q4_0' },
      { name: `${b}ffn_down.weight`, dims: [ffn, embd], type: 'Q4_0' },
    );
  }
  out.push({ name: 'output_norm.weight', dims: [embd], type: 'F32' });
  return out;
}
