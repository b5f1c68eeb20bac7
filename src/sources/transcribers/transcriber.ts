/**
 * One interface for every speech-to-text engine memtide drives: whisper.cpp
 * in-process, whisper.cpp's HTTP server, and a dry run. The engine owns its
 * model's lifetime (lazy load, idle unload); `transcribeBounded` decides how
 * much work it gets and asks it to unload under pressure.
 */
import type { AudioChunk } from '../../model.js';

export interface TranscriptionResult {
  /** The chunk's text, trimmed; empty for silence (and for the dry run). */
  text: string;
}

export interface Transcriber {
  /** Engine name for logs and errors ("whisper", "whisper-server", "none"). */
  readonly name: string;
  /**
   * Transcribes one 16 kHz mono chunk. Rejects with a {@link TranscriberError};
   * when `signal` aborts, rejects at once with code MEMTIDE_ERR_TRANSCRIBER_ABORTED
   * (native work already started finishes in the background and is dropped).
   */
  transcribe(chunk: AudioChunk, signal?: AbortSignal): Promise<TranscriptionResult>;
  /** Frees the model once the chunks in flight are done; the next chunk loads it again. Never rejects. */
  unload(): Promise<void>;
  /**
   * Optional: keep at most `copies` model copies loaded (idle ones go now,
   * busy ones as they finish). Called when pressure lowers the concurrency.
   */
  shrinkTo?(copies: number): void;
  /** A model is in memory now. */
  readonly loaded: boolean;
  /** Bytes of model loaded now (file size × loaded copies); null when none is loaded or the engine is remote. */
  readonly modelBytes: number | null;
}

export type TranscriberErrorCode =
  | 'MEMTIDE_ERR_TRANSCRIBER_CONFIG'
  | 'MEMTIDE_ERR_TRANSCRIBER_MODEL'
  | 'MEMTIDE_ERR_TRANSCRIBER_FAILED'
  | 'MEMTIDE_ERR_TRANSCRIBER_ABORTED'
  | 'MEMTIDE_ERR_TRANSCRIBER_TIMEOUT'
  | 'MEMTIDE_ERR_TRANSCRIBER_UNREACHABLE'
  | 'MEMTIDE_ERR_TRANSCRIBER_SERVER';

export class TranscriberError extends Error {
  readonly code: TranscriberErrorCode;
  constructor(code: TranscriberErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TranscriberError';
    this.code = code;
  }
}

export function abortedError(engine: string, chunk: AudioChunk): TranscriberError {
  return new TranscriberError('MEMTIDE_ERR_TRANSCRIBER_ABORTED', `${engine}: transcription of ${chunk.source} chunk ${chunk.index} was cancelled`);
}

/** whisper.cpp wants float samples in [-1, 1). */
export function int16ToFloat32(samples: Int16Array): Float32Array {
  const out = new Float32Array(samples.length);
  for (let i = 0; i < samples.length; i += 1) out[i] = samples[i]! / 32768;
  return out;
}

/** A minimal 16-bit PCM mono WAV file of the chunk (what whisper-server's /inference reads). */
export function chunkToWav(chunk: AudioChunk): Buffer {
  const data = Buffer.from(chunk.samples.buffer, chunk.samples.byteOffset, chunk.samples.byteLength);
  const header = Buffer.alloc(44);
  header.write('RIFF', 0, 'ascii');
  header.writeUInt32LE(36 + data.length, 4);
  header.write('WAVE', 8, 'ascii');
  header.write('fmt ', 12, 'ascii');
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(chunk.sampleRate, 24);
  header.writeUInt32LE(chunk.sampleRate * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36, 'ascii');
  header.writeUInt32LE(data.length, 40);
  // Int16Array is little-endian on every platform Node runs on.
  return Buffer.concat([header, data]);
}
