import { asyncScheduler, concat, defer, mergeMap, type OperatorFunction, type SchedulerLike } from 'rxjs';
import type { AudioChunk } from '../model.js';

/** Samples per second of every chunk (whisper.cpp's input rate). */
export const CHUNK_SAMPLE_RATE = 16000;
const SAMPLES_PER_MS = CHUNK_SAMPLE_RATE / 1000;

/** Options of {@link chunkAudio}: the chunking keys of the `audio` config section plus the source label. */
export interface ChunkAudioConfig {
  /** Written into every chunk's `source` (the file path, or a label for a stream or upload). */
  source: string;
  /** Length of a chunk; rounded to whole samples at 16 kHz (4 / 16000 gives 4-sample chunks). */
  chunkSeconds: number;
  /** How much of the end of a chunk the next one repeats (0 = none); rounded to samples, less than a chunk. */
  overlapSeconds: number;
}

export type ChunkAudioErrorCode = 'MEMTIDE_ERR_AUDIO_CHUNK_CONFIG' | 'MEMTIDE_ERR_AUDIO_CHUNK_INPUT';

export class ChunkAudioError extends Error {
  readonly code: ChunkAudioErrorCode;
  constructor(code: ChunkAudioErrorCode, message: string) {
    super(message);
    this.name = 'ChunkAudioError';
    this.code = code;
  }
}

/** Chunk and overlap lengths in samples, validated. */
export function chunkGeometry(config: ChunkAudioConfig): { chunkSamples: number; overlapSamples: number; hopSamples: number } {
  const { chunkSeconds, overlapSeconds } = config;
  const chunkSamples = Math.round(chunkSeconds * CHUNK_SAMPLE_RATE);
  const overlapSamples = Math.round(overlapSeconds * CHUNK_SAMPLE_RATE);
  if (!Number.isFinite(chunkSeconds) || chunkSamples < 1) {
    throw new ChunkAudioError('MEMTIDE_ERR_AUDIO_CHUNK_CONFIG', `chunkSeconds must be at least one sample (1/16000 s), got ${chunkSeconds}`);
  }
  if (!Number.isSafeInteger(chunkSamples) || chunkSamples > 2 ** 30) {
    throw new ChunkAudioError('MEMTIDE_ERR_AUDIO_CHUNK_CONFIG', `chunkSeconds ${chunkSeconds} is too long for one buffer`);
  }
  if (!Number.isFinite(overlapSeconds) || overlapSamples < 0 || overlapSamples >= chunkSamples) {
    throw new ChunkAudioError(
      'MEMTIDE_ERR_AUDIO_CHUNK_CONFIG',
      `overlapSeconds must be >= 0 and shorter than chunkSeconds (${chunkSamples} samples), got ${overlapSeconds} (${overlapSamples} samples)`,
    );
  }
  return { chunkSamples, overlapSamples, hopSamples: chunkSamples - overlapSamples };
}

/**
 * The chunking state machine shared by the operator and the iterables.
 *
 * Chunk i covers samples [i * hop, i * hop + chunk) of the stream, clipped to
 * its end; a chunk is made only if it holds at least one sample the previous
 * one did not. A full chunk is held until the next sample arrives (then it is
 * not the last) or the stream ends (then it is): that is the only way to know
 * `last` without a length up front. Each chunk gets a buffer of its own, which
 * the chunker forgets the moment the chunk is handed on; the overlap is copied
 * into the next chunk's buffer, never shared.
 */
export class AudioChunker {
  private readonly source: string;
  private readonly size: number;
  private readonly overlap: number;
  private current: Int16Array | null = null;
  private filled = 0;
  private index = 0;
  private firstSample = 0;
  private ended = false;

  constructor(config: ChunkAudioConfig) {
    const { chunkSamples, overlapSamples } = chunkGeometry(config);
    this.source = config.source;
    this.size = chunkSamples;
    this.overlap = overlapSamples;
  }

  /** Adds samples; returns the chunks they complete (usually none or one). */
  push(samples: Int16Array): AudioChunk[] {
    if (!(samples instanceof Int16Array)) {
      const got = samples === null ? 'null' : typeof samples === 'object' ? (samples as object).constructor?.name ?? 'object' : typeof samples;
      throw new ChunkAudioError('MEMTIDE_ERR_AUDIO_CHUNK_INPUT', `chunkAudio expects Int16Array blocks of 16 kHz mono samples, got ${got}`);
    }
    if (this.ended) throw new ChunkAudioError('MEMTIDE_ERR_AUDIO_CHUNK_INPUT', 'samples pushed after the end of the stream');
    const out: AudioChunk[] = [];
    let at = 0;
    while (at < samples.length) {
      if (this.current !== null && this.filled === this.size) {
        // More samples after a full chunk: it was not the last one.
        const full = this.current;
        out.push(this.chunk(full, false));
        const next = new Int16Array(this.size);
        if (this.overlap > 0) next.set(full.subarray(this.size - this.overlap));
        this.current = next;
        this.filled = this.overlap;
        this.index += 1;
        this.firstSample += this.size - this.overlap;
      }
      this.current ??= new Int16Array(this.size);
      const n = Math.min(this.size - this.filled, samples.length - at);
      this.current.set(samples.subarray(at, at + n), this.filled);
      this.filled += n;
      at += n;
    }
    return out;
  }

  /** The stream has ended: the held or partial chunk, flagged `last` (none for an empty stream). */
  end(): AudioChunk[] {
    this.ended = true;
    const current = this.current;
    if (current === null) return [];
    this.current = null;
    // A partial chunk gets an exact-size copy, so `samples.buffer` holds nothing but its samples.
    return [this.chunk(this.filled === this.size ? current : current.slice(0, this.filled), true)];
  }

  private chunk(samples: Int16Array, last: boolean): AudioChunk {
    return {
      source: this.source,
      index: this.index,
      startMs: this.firstSample / SAMPLES_PER_MS,
      endMs: (this.firstSample + samples.length) / SAMPLES_PER_MS,
      firstSample: this.firstSample,
      sampleRate: CHUNK_SAMPLE_RATE,
      samples,
      last,
    };
  }
}

/** Pull-based twin of {@link chunkAudio} over a synchronous iterable of 16 kHz mono blocks. */
export function* chunkSamples(blocks: Iterable<Int16Array>, config: ChunkAudioConfig): Generator<AudioChunk, void, undefined> {
  const chunker = new AudioChunker(config);
  for (const block of blocks) yield* chunker.push(block);
  yield* chunker.end();
}

/**
 * Pull-based twin of {@link chunkAudio} over an async iterable: the next
 * block is pulled only when the consumer asks for a chunk that is not ready,
 * so a slow consumer stalls the producer (and, behind it, the file read).
 * Returning early (break) closes `blocks`.
 */
export async function* chunkSamplesAsync(blocks: AsyncIterable<Int16Array>, config: ChunkAudioConfig): AsyncGenerator<AudioChunk, void, undefined> {
  const chunker = new AudioChunker(config);
  for await (const block of blocks) yield* chunker.push(block);
  yield* chunker.end();
}

/**
 * Cuts a stream of 16 kHz mono Int16 blocks (any sizes) into sample-accurate
 * chunks of `chunkSeconds`, each repeating the last `overlapSeconds` of the
 * previous one.
 *
 * - Chunk i starts at sample i * (chunk - overlap); `startMs = firstSample / 16`,
 *   `endMs = (firstSample + length) / 16`.
 * - A full chunk goes out when the next block brings a sample past it (or on
 *   complete, then flagged `last`); the last partial chunk is flushed on
 *   complete with `last: true`; an empty stream completes with no chunk.
 * - Every chunk has its own buffer, forgotten by the operator once emitted.
 * - Bad config or a block that is not an Int16Array errors with a
 *   {@link ChunkAudioError} (the source is unsubscribed).
 *
 * ```
 * blocks (4-sample chunks): -a-------b-----|     a = 6 samples, b = 3 samples
 * result:                   -x-------y-----(z|)  x = 0..3, y = 4..7, z = 8 (last)
 * ```
 *
 * @param config chunk length, overlap and the source label.
 * @param scheduler accepted for the house signature; chunk bounds come from
 *   sample counts, never from a clock, so it is not used for timing.
 */
export function chunkAudio(config: ChunkAudioConfig, scheduler: SchedulerLike = asyncScheduler): OperatorFunction<Int16Array, AudioChunk> {
  void scheduler;
  return (source) =>
    defer(() => {
      const chunker = new AudioChunker(config);
      // mergeMap over arrays is synchronous: a chunk is emitted in the same frame as the block that completes it.
      return concat(
        source.pipe(mergeMap((block) => chunker.push(block))),
        defer(() => chunker.end()),
      );
    });
}
