/**
 * A random-weight whisper.cpp model with tiny.en's shapes, generated for the
 * tests (no whisper weights exist in any reachable package, and weights must
 * not be committed). The file follows whisper.cpp's legacy ggml layout read by
 * `whisper_model_load` (src/whisper.cpp):
 *
 * - magic 0x67676d6c (u32 LE);
 * - 11 i32 hparams: n_vocab, n_audio_ctx, n_audio_state, n_audio_head,
 *   n_audio_layer, n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype;
 * - mel filters: i32 n_mel, i32 n_fft, then n_mel × n_fft f32;
 * - vocab: i32 count, then per token u32 length + bytes (tokens past the count up
 *   to n_vocab are synthesised by the loader: EOT, SOT, timestamps ...);
 * - tensors until EOF: i32 n_dims, i32 name length, i32 type (0 f32, 1 f16),
 *   n_dims × i32 ne (ne[0] innermost), the name, then the raw data.
 *
 * ftype 1: 2-D weights and the conv kernels are f16; biases, norms and the
 * positional embeddings are f32. Values are deterministic (seeded) and small
 * (uniform, std ≈ 1/sqrt(fan-in); layer norms at 1) so activations stay finite.
 *
 * One deliberate exception keeps decoding short and deterministic: purely
 * random weights give near-uniform logits (log-prob ≈ -10.8), so whisper.cpp
 * treats every decode as failed and retries at 5 temperatures with 5 sampled
 * candidates each, and random timestamp tokens move the seek a little at a
 * time; a 30 s chunk then takes 1 to 60 s. Here the decoder's positional
 * embedding at position j points (strongly) along the embedding of a seeded
 * random token d_j, and from position {@link DECODED_TOKENS} on along EOT's, so
 * greedy decoding confidently emits a few nonsense tokens and stops. Every
 * layer still runs in full on real (random) weights: the engine's load, memory
 * and timing are real, the text is nonsense.
 *
 * The file (~75 MB) is written once per machine to
 * `os.tmpdir()/memtide-test-models/`, through a temporary name and an atomic
 * rename, so parallel test workers never see half a file.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { prng as rng } from './prng.js';
import type { AudioChunk } from '../../src/model.js';

export const TINY_HPARAMS = {
  nVocab: 51864,
  nAudioCtx: 1500,
  nAudioState: 384,
  nAudioHead: 6,
  nAudioLayer: 4,
  nTextCtx: 448,
  nTextState: 384,
  nTextHead: 6,
  nTextLayer: 4,
  nMels: 80,
  ftype: 1,
} as const;

/** Bump when the generated content changes, so stale cached files are not reused. */
const FORMAT_VERSION = 2;
const GGML_MAGIC = 0x67676d6c;
const N_FFT_BINS = 201; // 400-point FFT → 201 bins
/** Tokens written to the file: ids 0..50255 (the loader adds EOT at 50256, SOT, ... up to n_vocab). */
const N_TOKENS_WRITTEN = 50256;
const SEED = 0x5eed_1234;
/** English-only vocab: EOT is the first id past the written tokens. */
const TOKEN_EOT = 50256;
/** Decoder positions that point at a text token; later positions point at EOT. */
export const DECODED_TOKENS = 6;
/** Norms of the steering directions: the positional rows dominate the residual stream, the token rows make logits confident. */
const POSITION_NORM = 400;
const TOKEN_NORM = 3;

type Dtype = 'f32' | 'f16';
interface TensorSpec {
  name: string;
  /** ggml order: ne[0] is the innermost (contiguous) dimension. */
  ne: number[];
  dtype: Dtype;
  /** Values: uniform in ±scale around `mean`. */
  scale: number;
  mean?: number;
  /** Replaces row `r` (a slice along ne[1]) when it returns values. */
  row?: (r: number) => Float32Array | null;
}

/** The tensor list of `whisper_model_load`, with whisper.cpp's names and shapes. */
export function tinyTensorSpecs(h = TINY_HPARAMS): TensorSpec[] {
  const specs: TensorSpec[] = [];
  const w = (name: string, ne: number[], fanIn: number): TensorSpec => ({ name, ne, dtype: 'f16', scale: Math.sqrt(3 / fanIn) });
  const b = (name: string, n: number): TensorSpec => ({ name, ne: [n], dtype: 'f32', scale: 0.01 });
  const lnW = (name: string, n: number): TensorSpec => ({ name, ne: [n], dtype: 'f32', scale: 0.01, mean: 1 });
  const sa = h.nAudioState;
  const st = h.nTextState;

  specs.push({ name: 'encoder.positional_embedding', ne: [sa, h.nAudioCtx], dtype: 'f32', scale: 0.02 });
  specs.push(w('encoder.conv1.weight', [3, h.nMels, sa], 3 * h.nMels));
  specs.push({ name: 'encoder.conv1.bias', ne: [1, sa], dtype: 'f32', scale: 0.01 });
  specs.push(w('encoder.conv2.weight', [3, sa, sa], 3 * sa));
  specs.push({ name: 'encoder.conv2.bias', ne: [1, sa], dtype: 'f32', scale: 0.01 });
  for (let i = 0; i < h.nAudioLayer; i += 1) {
    const p = `encoder.blocks.${i}`;
    specs.push(lnW(`${p}.mlp_ln.weight`, sa), b(`${p}.mlp_ln.bias`, sa));
    specs.push(w(`${p}.mlp.0.weight`, [sa, 4 * sa], sa), b(`${p}.mlp.0.bias`, 4 * sa));
    specs.push(w(`${p}.mlp.2.weight`, [4 * sa, sa], 4 * sa), b(`${p}.mlp.2.bias`, sa));
    specs.push(lnW(`${p}.attn_ln.weight`, sa), b(`${p}.attn_ln.bias`, sa));
    specs.push(w(`${p}.attn.query.weight`, [sa, sa], sa), b(`${p}.attn.query.bias`, sa));
    specs.push(w(`${p}.attn.key.weight`, [sa, sa], sa));
    specs.push(w(`${p}.attn.value.weight`, [sa, sa], sa), b(`${p}.attn.value.bias`, sa));
    specs.push(w(`${p}.attn.out.weight`, [sa, sa], sa), b(`${p}.attn.out.bias`, sa));
  }
  specs.push(lnW('encoder.ln_post.weight', sa), b('encoder.ln_post.bias', sa));

  const steer = steering(st);
  specs.push({ name: 'decoder.positional_embedding', ne: [st, h.nTextCtx], dtype: 'f32', scale: 0.02, row: steer.position });
  specs.push({ name: 'decoder.token_embedding.weight', ne: [st, h.nVocab], dtype: 'f16', scale: 0.05, row: steer.token });
  for (let i = 0; i < h.nTextLayer; i += 1) {
    const p = `decoder.blocks.${i}`;
    specs.push(lnW(`${p}.mlp_ln.weight`, st), b(`${p}.mlp_ln.bias`, st));
    specs.push(w(`${p}.mlp.0.weight`, [st, 4 * st], st), b(`${p}.mlp.0.bias`, 4 * st));
    specs.push(w(`${p}.mlp.2.weight`, [4 * st, st], 4 * st), b(`${p}.mlp.2.bias`, st));
    specs.push(lnW(`${p}.attn_ln.weight`, st), b(`${p}.attn_ln.bias`, st));
    specs.push(w(`${p}.attn.query.weight`, [st, st], st), b(`${p}.attn.query.bias`, st));
    specs.push(w(`${p}.attn.key.weight`, [st, st], st));
    specs.push(w(`${p}.attn.value.weight`, [st, st], st), b(`${p}.attn.value.bias`, st));
    specs.push(w(`${p}.attn.out.weight`, [st, st], st), b(`${p}.attn.out.bias`, st));
    specs.push(lnW(`${p}.cross_attn_ln.weight`, st), b(`${p}.cross_attn_ln.bias`, st));
    specs.push(w(`${p}.cross_attn.query.weight`, [st, st], st), b(`${p}.cross_attn.query.bias`, st));
    specs.push(w(`${p}.cross_attn.key.weight`, [st, st], st));
    specs.push(w(`${p}.cross_attn.value.weight`, [st, st], st), b(`${p}.cross_attn.value.bias`, st));
    specs.push(w(`${p}.cross_attn.out.weight`, [st, st], st), b(`${p}.cross_attn.out.bias`, st));
  }
  specs.push(lnW('decoder.ln.weight', st), b('decoder.ln.bias', st));
  return specs;
}

/** Unit directions for d_0..d_{n-1} and EOT; see the file comment. */
function steering(width: number): { position(r: number): Float32Array | null; token(r: number): Float32Array | null } {
  const next = rng(SEED ^ 0xd1ec7);
  const unit = () => {
    const v = new Float32Array(width).map(() => next() * 2 - 1);
    const norm = Math.hypot(...v);
    return v.map((x) => x / norm);
  };
  const tokens = Array.from({ length: DECODED_TOKENS }, () => 1000 + Math.floor(next() * 40_000));
  const directions = new Map<number, Float32Array>([...tokens.map((t) => [t, unit()] as const), [TOKEN_EOT, unit()]]);
  const scaled = (v: Float32Array, norm: number) => v.map((x) => x * norm);
  return {
    position: (r) => scaled(directions.get(tokens[r] ?? TOKEN_EOT)!, POSITION_NORM),
    token: (r) => {
      const v = directions.get(r);
      return v ? scaled(v, TOKEN_NORM) : null;
    },
  };
}


const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
/** IEEE half from a float (round to nearest; the values here are small and normal, subnormals flush). */
function toHalf(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = ((x >>> 23) & 0xff) - 127 + 15;
  if (exp <= 0) return sign;
  if (exp >= 31) return sign | 0x7c00;
  const mantissa = (x >>> 13) & 0x3ff;
  const round = (x >>> 12) & 1;
  return (sign | (exp << 10) | mantissa) + round;
}

/** Slaney-style mel filterbank (what whisper's own filters are): 80 × 201 for a 400-point FFT at 16 kHz. */
function melFilters(nMels: number, nBins: number, sampleRate = 16000): Float32Array {
  const hzToMel = (hz: number) => (hz < 1000 ? (3 * hz) / 200 : 15 + (27 * Math.log(hz / 1000)) / Math.log(6.4));
  const melToHz = (mel: number) => (mel < 15 ? (200 * mel) / 3 : 1000 * Math.exp((Math.log(6.4) / 27) * (mel - 15)));
  const maxMel = hzToMel(sampleRate / 2);
  const points = Array.from({ length: nMels + 2 }, (_, i) => melToHz((maxMel * i) / (nMels + 1)));
  const out = new Float32Array(nMels * nBins);
  for (let m = 0; m < nMels; m += 1) {
    const [lo, mid, hi] = [points[m]!, points[m + 1]!, points[m + 2]!];
    const norm = 2 / (hi - lo);
    for (let k = 0; k < nBins; k += 1) {
      const hz = (k * sampleRate) / (2 * (nBins - 1));
      const weight = Math.max(0, Math.min((hz - lo) / (mid - lo), (hi - hz) / (hi - mid)));
      out[m * nBins + k] = weight * norm;
    }
  }
  return out;
}

/** ASCII tokens: the 95 printable bytes, then short pseudo-syllables (unique), all valid UTF-8. */
function vocabTokens(count: number): Buffer[] {
  const tokens: Buffer[] = [];
  const seen = new Set<string>();
  for (let c = 32; c < 127 && tokens.length < count; c += 1) {
    const s = String.fromCharCode(c);
    seen.add(s);
    tokens.push(Buffer.from(s));
  }
  const consonants = 'bcdfghjklmnprstvwz';
  const vowels = 'aeiou';
  for (let n = 0; tokens.length < count; n += 1) {
    let s = n % 2 === 0 ? ' ' : '';
    let rest = Math.floor(n / 2);
    do {
      s += consonants[rest % consonants.length]! + vowels[Math.floor(rest / consonants.length) % vowels.length]!;
      rest = Math.floor(rest / (consonants.length * vowels.length));
    } while (rest > 0);
    if (seen.has(s)) continue;
    seen.add(s);
    tokens.push(Buffer.from(s));
  }
  return tokens;
}

function i32(...values: number[]): Buffer {
  const buf = Buffer.alloc(4 * values.length);
  values.forEach((v, i) => buf.writeInt32LE(v, 4 * i));
  return buf;
}

function tensorData(spec: TensorSpec, next: () => number): Buffer {
  const count = spec.ne.reduce((a, b) => a * b, 1);
  const mean = spec.mean ?? 0;
  const values = new Float32Array(count);
  for (let i = 0; i < count; i += 1) values[i] = mean + (next() * 2 - 1) * spec.scale;
  if (spec.row) {
    const width = spec.ne[0]!;
    for (let r = 0; r < count / width; r += 1) {
      const row = spec.row(r);
      if (row) values.set(row, r * width);
    }
  }
  if (spec.dtype === 'f32') return Buffer.from(values.buffer);
  const half = new Uint16Array(count);
  for (let i = 0; i < count; i += 1) half[i] = toHalf(values[i]!);
  return Buffer.from(half.buffer);
}

/** Writes the model to `file` (overwrites). Returns its size in bytes. */
export function writeRandomTinyModel(file: string, seed = SEED): number {
  const h = TINY_HPARAMS;
  const fd = fs.openSync(file, 'w');
  let size = 0;
  const write = (buf: Buffer) => {
    fs.writeSync(fd, buf);
    size += buf.length;
  };
  try {
    const magic = Buffer.alloc(4);
    magic.writeUInt32LE(GGML_MAGIC);
    write(magic);
    write(i32(h.nVocab, h.nAudioCtx, h.nAudioState, h.nAudioHead, h.nAudioLayer, h.nTextCtx, h.nTextState, h.nTextHead, h.nTextLayer, h.nMels, h.ftype));
    const filters = melFilters(h.nMels, N_FFT_BINS);
    write(i32(h.nMels, N_FFT_BINS));
    write(Buffer.from(filters.buffer));
    const tokens = vocabTokens(N_TOKENS_WRITTEN);
    const parts: Buffer[] = [i32(tokens.length)];
    for (const token of tokens) {
      const len = Buffer.alloc(4);
      len.writeUInt32LE(token.length);
      parts.push(len, token);
    }
    write(Buffer.concat(parts));
    const next = rng(seed);
    for (const spec of tinyTensorSpecs(h)) {
      const name = Buffer.from(spec.name);
      write(i32(spec.ne.length, name.length, spec.dtype === 'f16' ? 1 : 0, ...spec.ne));
      write(name);
      write(tensorData(spec, next));
    }
  } finally {
    fs.closeSync(fd);
  }
  return size;
}

export const MODEL_CACHE_DIR = path.join(os.tmpdir(), 'memtide-test-models');

/**
 * The path of the cached model, generated on first use (~1-2 s). Safe under
 * parallel workers: each writes its own temporary file and renames it into
 * place; the rename is atomic and the contents are identical.
 */
export function randomTinyModelPath(dir = MODEL_CACHE_DIR): string {
  const file = path.join(dir, `ggml-random-tiny.en-v${FORMAT_VERSION}.bin`);
  if (fs.existsSync(file)) return file;
  fs.mkdirSync(dir, { recursive: true });
  const temp = `${file}.${process.pid}.${Date.now()}.tmp`;
  try {
    writeRandomTinyModel(temp);
    fs.renameSync(temp, file);
  } finally {
    fs.rmSync(temp, { force: true });
  }
  return file;
}

/** A `seconds`-long 16 kHz chunk of two mixed tones: audio the generated model decodes steadily (its text is nonsense). */
export function toneChunk(seconds: number, index = 0): AudioChunk {
  const samples = new Int16Array(seconds * 16000).map((_, i) => Math.round(6000 * Math.sin(i * 0.11) + 2000 * Math.sin(i * 0.013)));
  return { source: 'tone', index, startMs: 0, endMs: seconds * 1000, firstSample: 0, sampleRate: 16000, samples, last: true };
}
