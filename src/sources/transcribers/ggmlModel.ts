/**
 * Structural check of a whisper.cpp ggml model file, read the way
 * `whisper_model_load` reads it (magic, 11 i32 hparams, mel filters, vocab,
 * then tensor records to EOF), without loading any weights: only headers are
 * read, with seeks over the data.
 *
 * Why: @napi-rs/whisper 0.0.4 crashes the whole process (SIGSEGV when the
 * worker that tried is torn down) after whisper.cpp refuses a malformed file,
 * e.g. a truncated download. A file that passes this check has every tensor
 * whisper.cpp expects for its hparams, each complete within the file, so the
 * load cannot fail on the file's structure; a file that does not pass gets an
 * error naming the byte offset.
 */
import fs from 'node:fs';
import { TranscriberError } from './transcriber.js';

export interface WhisperHparams {
  nVocab: number;
  nAudioCtx: number;
  nAudioState: number;
  nAudioHead: number;
  nAudioLayer: number;
  nTextCtx: number;
  nTextState: number;
  nTextHead: number;
  nTextLayer: number;
  nMels: number;
  ftype: number;
}

export interface WhisperModelInfo {
  hparams: WhisperHparams;
  tensors: number;
  sizeBytes: number;
}

const GGML_MAGIC = 0x67676d6c;

/** Bytes per block and elements per block of the ggml types whisper models use. */
const TYPE_SIZES: Record<number, [bytes: number, block: number]> = {
  0: [4, 1], // f32
  1: [2, 1], // f16
  2: [18, 32], // q4_0
  3: [20, 32], // q4_1
  6: [22, 32], // q5_0
  7: [24, 32], // q5_1
  8: [34, 32], // q8_0
  9: [36, 32], // q8_1
  10: [84, 256], // q2_K
  11: [110, 256], // q3_K
  12: [144, 256], // q4_K
  13: [176, 256], // q5_K
  14: [210, 256], // q6_K
  15: [292, 256], // q8_K
};

/** Tensors whisper.cpp creates: encoder 7 + 15 per layer, decoder 4 + 24 per layer. */
export function expectedTensorCount(h: Pick<WhisperHparams, 'nAudioLayer' | 'nTextLayer'>): number {
  return 7 + 15 * h.nAudioLayer + 4 + 24 * h.nTextLayer;
}

class Reader {
  private readonly buffer = Buffer.alloc(64 * 1024);
  private start = 0;
  private end = 0;
  offset = 0;
  constructor(
    private readonly fd: number,
    readonly size: number,
    private readonly fail: (offset: number, reason: string) => never,
  ) {}

  private fill(bytes: number): void {
    if (this.offset >= this.start && this.offset + bytes <= this.end) return;
    if (this.offset + bytes > this.size) this.fail(this.offset, `the file ends at byte ${this.size}, ${bytes} more bytes were expected here`);
    const read = fs.readSync(this.fd, this.buffer, 0, this.buffer.length, this.offset);
    this.start = this.offset;
    this.end = this.offset + read;
  }

  i32(): number {
    this.fill(4);
    const value = this.buffer.readInt32LE(this.offset - this.start);
    this.offset += 4;
    return value;
  }

  u32(): number {
    this.fill(4);
    const value = this.buffer.readUInt32LE(this.offset - this.start);
    this.offset += 4;
    return value;
  }

  text(length: number): string {
    if (length > this.buffer.length) this.fail(this.offset, `a name of ${length} bytes`);
    this.fill(length);
    const value = this.buffer.toString('utf8', this.offset - this.start, this.offset - this.start + length);
    this.offset += length;
    return value;
  }

  skip(bytes: number): void {
    if (this.offset + bytes > this.size) this.fail(this.offset, `${bytes} bytes of data were expected here, the file ends at byte ${this.size}`);
    this.offset += bytes;
  }
}

export function inspectWhisperModel(modelPath: string): WhisperModelInfo {
  const fail = (offset: number, reason: string): never => {
    throw new TranscriberError('MEMTIDE_ERR_TRANSCRIBER_MODEL', `whisper model ${modelPath}: byte ${offset}: ${reason}`);
  };
  let fd: number;
  try {
    fd = fs.openSync(modelPath, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : String(error);
    throw new TranscriberError('MEMTIDE_ERR_TRANSCRIBER_MODEL', `whisper model ${modelPath}: ${why} (set transcription.modelPath or --model)`, { cause: error });
  }
  try {
    const stat = fs.fstatSync(fd);
    if (stat.isDirectory()) fail(0, 'is a directory, not a model file');
    const r = new Reader(fd, stat.size, fail);
    if (stat.size < 4) fail(0, `not a whisper.cpp ggml model (only ${stat.size} bytes)`);
    const magic = r.u32();
    if (magic !== GGML_MAGIC) {
      fail(0, `not a whisper.cpp ggml model (magic 0x${magic.toString(16).padStart(8, '0')}, expected 0x67676d6c as in ggml-base.en.bin; GGUF and safetensors files are not whisper.cpp models)`);
    }
    const at = r.offset;
    const values = Array.from({ length: 11 }, () => r.i32());
    const [nVocab, nAudioCtx, nAudioState, nAudioHead, nAudioLayer, nTextCtx, nTextState, nTextHead, nTextLayer, nMels, ftype] = values as [
      number, number, number, number, number, number, number, number, number, number, number,
    ];
    const hparams: WhisperHparams = { nVocab, nAudioCtx, nAudioState, nAudioHead, nAudioLayer, nTextCtx, nTextState, nTextHead, nTextLayer, nMels, ftype };
    const bad = Object.entries(hparams).find(([key, v]) => (key === 'ftype' ? v < 0 : v <= 0) || v > 1_000_000);
    if (bad) fail(at, `implausible hparam ${bad[0]} = ${bad[1]}`);
    if (nTextState !== nAudioState) fail(at, `n_text_state ${nTextState} differs from n_audio_state ${nAudioState}`);

    const filtersAt = r.offset;
    const nMel = r.i32();
    const nFft = r.i32();
    if (nMel <= 0 || nFft <= 0 || nMel * nFft > 10_000_000) fail(filtersAt, `implausible mel filter size ${nMel} x ${nFft}`);
    r.skip(nMel * nFft * 4);

    const vocabAt = r.offset;
    const words = r.i32();
    if (words < 0 || words > 1_000_000) fail(vocabAt, `implausible vocabulary size ${words}`);
    for (let i = 0; i < words; i += 1) {
      const wordAt = r.offset;
      const length = r.u32();
      if (length > 1024) fail(wordAt, `token ${i} claims ${length} bytes`);
      r.skip(length);
    }

    const names = new Set<string>();
    while (r.offset < r.size) {
      const tensorAt = r.offset;
      const nDims = r.i32();
      const nameLength = r.i32();
      const type = r.i32();
      if (nDims < 1 || nDims > 4) fail(tensorAt, `tensor record with ${nDims} dimensions`);
      if (nameLength < 1 || nameLength > 256) fail(tensorAt, `tensor record with a name of ${nameLength} bytes`);
      const size = TYPE_SIZES[type];
      if (!size) fail(tensorAt, `tensor of unknown ggml type ${type}`);
      let elements = 1;
      for (let d = 0; d < nDims; d += 1) {
        const ne = r.i32();
        if (ne <= 0) fail(tensorAt, `tensor dimension ${d} is ${ne}`);
        elements *= ne;
      }
      const name = r.text(nameLength);
      const [bytes, block] = size!;
      if (elements % block !== 0) fail(tensorAt, `tensor "${name}" has ${elements} elements, not a multiple of its type's block of ${block}`);
      r.skip((elements / block) * bytes);
      if (names.has(name)) fail(tensorAt, `tensor "${name}" appears twice`);
      names.add(name);
    }
    const expected = expectedTensorCount(hparams);
    if (names.size !== expected) {
      fail(r.size, `the file holds ${names.size} tensors, whisper.cpp expects ${expected} for ${nAudioLayer} encoder and ${nTextLayer} decoder layers (a truncated or partial download?)`);
    }
    return { hparams, tensors: names.size, sizeBytes: stat.size };
  } finally {
    fs.closeSync(fd);
  }
}
