/**
 * Any audio file or stream -> 16 kHz mono Int16 blocks -> AudioChunks, pulled.
 *
 * WAV (RIFF/WAVE magic) is parsed, downmixed and resampled in-process;
 * everything else goes through ffmpeg. A WAV codec the parser does not do
 * (mu-law, ADPCM, RF64...) is handed to ffmpeg too.
 *
 * Backpressure, end to end: these are async generators, so nothing runs
 * until the consumer asks for the next value. `audioChunks` pulls 16 kHz
 * blocks, which pull bytes: a file is read with `FileHandle.read` into one
 * reused buffer of `audio.readHighWaterMarkBytes`, one read per pull and
 * none ahead; a stream is read through its async iterator (it stops reading
 * when its own highWaterMark is full); ffmpeg's stdout is read only as
 * blocks are pulled (the pipe fills and ffmpeg blocks). So while the consumer
 * does not call `next()` — its transcription queue is full — the file is
 * simply not read. Memory held at any time: one read buffer, the parser's
 * decode buffer, the resampler's filter history (a few KB), and the chunk
 * being filled (chunkSeconds * 32 KB); per-read garbage is avoided so the
 * garbage collector has little to leave lying around. For RxJS consumers,
 * {@link pullOnDemand} turns the iterable into an Observable that reads one
 * chunk per demand notification.
 */
import { promises as fsp } from 'node:fs';
import { Observable } from 'rxjs';
import type { AudioConfig } from '../../app/schema/audio.js';
import type { AudioChunk } from '../../model.js';
import { chunkSamplesAsync } from '../../operators/chunkAudio.js';
import { ffmpegDecode } from './ffmpegDecode.js';
import { OUTPUT_RATE, Resampler } from './resample.js';
import { AudioDecodeError, looksLikeRiff, WavParser } from './wavParser.js';

export { AudioDecodeError, type AudioErrorCode } from './wavParser.js';

/** A file path, or a stream of bytes (an upload, a pipe). */
export type AudioInput = string | NodeJS.ReadableStream;

/** The `audio` config keys the source reads (all of {@link AudioConfig} works). */
export type AudioSourceConfig = Pick<AudioConfig, 'chunkSeconds' | 'overlapSeconds' | 'ffmpegPath' | 'readHighWaterMarkBytes' | 'maxFileBytes'>;

export interface AudioSourceOptions {
  /** Label in chunks and errors; default: the path as given, or "stream". */
  source?: string;
  /** Lines ffmpeg printed while still decoding successfully (skipped damaged frames). */
  onWarning?: (message: string) => void;
}

/** Header bytes kept while the WAV format is unknown, so a stream can still be replayed into ffmpeg. */
const MAX_REPLAY_BYTES = 1 << 20;
/** Bytes needed to tell WAV from the rest. */
const MAGIC_BYTES = 12;

function labelOf(input: AudioInput, options: AudioSourceOptions): string {
  return options.source ?? (typeof input === 'string' ? input : 'stream');
}

/** Checks a path (exists, not a directory, not empty, not too large) before anything is read. */
async function checkFile(path: string, config: AudioSourceConfig, source: string): Promise<void> {
  let size: number | null = null;
  try {
    const stat = await fsp.stat(path);
    if (stat.isDirectory()) throw new AudioDecodeError('MEMTIDE_ERR_AUDIO_READ', source, null, 'is a directory, not an audio file');
    // Pipes and devices have no size up front; they are counted as they are read.
    if (stat.isFile()) size = stat.size;
  } catch (error) {
    if (error instanceof AudioDecodeError) throw error;
    throw readError(source, error);
  }
  if (size === 0) throw new AudioDecodeError('MEMTIDE_ERR_AUDIO_EMPTY', source, 0, 'the file is empty (0 bytes)');
  if (size !== null && config.maxFileBytes !== null && size > config.maxFileBytes) throw tooLarge(source, config.maxFileBytes, `it is ${size} bytes`);
}

/**
 * The file's bytes, one read per pull into one reused buffer: each value is
 * valid until the next pull (the parser consumes it at once), so reading a
 * 2.5 GB file allocates one buffer, not ten thousand.
 */
async function* readFile(path: string, bufferBytes: number): AsyncGenerator<Uint8Array, void, undefined> {
  const handle = await fsp.open(path, 'r');
  try {
    const buffer = Buffer.allocUnsafeSlow(bufferBytes);
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, bufferBytes, null);
      if (bytesRead === 0) return;
      yield buffer.subarray(0, bytesRead);
    }
  } finally {
    await handle.close();
  }
}

function readError(source: string, error: unknown): AudioDecodeError {
  const e = error as NodeJS.ErrnoException;
  const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.code === 'EISDIR' ? 'is a directory' : e.message;
  return new AudioDecodeError('MEMTIDE_ERR_AUDIO_READ', source, null, `cannot read it: ${why}`, { cause: error });
}

function tooLarge(source: string, max: number, detail: string): AudioDecodeError {
  return new AudioDecodeError('MEMTIDE_ERR_AUDIO_TOO_LARGE', source, max, `larger than audio.maxFileBytes (${max} bytes): ${detail}`);
}

/** Bytes of the input as Uint8Arrays, counting them against maxFileBytes, with read errors made clear. */
async function* bytesOf(stream: AsyncIterable<unknown>, config: AudioSourceConfig, source: string): AsyncGenerator<Uint8Array, void, undefined> {
  let total = 0;
  try {
    for await (const data of stream) {
      const bytes = typeof data === 'string' ? Buffer.from(data) : (data as Uint8Array);
      total += bytes.length;
      if (config.maxFileBytes !== null && total > config.maxFileBytes) throw tooLarge(source, config.maxFileBytes, 'the input goes on past it');
      yield bytes;
    }
  } catch (error) {
    if (error instanceof AudioDecodeError) throw error;
    throw readError(source, error);
  }
}

/** WAV in-process: parse -> downmix + resample -> 16 kHz blocks. Throws UNSUPPORTED before any audio for a codec it does not do. */
async function* decodeWav(
  head: Uint8Array[],
  rest: AsyncIterator<Uint8Array>,
  source: string,
  held: Uint8Array[] | null,
  reuseOutput: boolean,
): AsyncGenerator<Int16Array, void, undefined> {
  const parser = new WavParser(source, { reuseOutput: true });
  let resampler: Resampler | null = null;
  const feed = (bytes: Uint8Array): Int16Array | null => {
    if (held !== null && parser.format === null) held.push(bytes);
    const frames = parser.push(bytes);
    if (resampler === null && parser.format !== null) {
      resampler = new Resampler(parser.format.sampleRate, parser.format.channels, OUTPUT_RATE, { reuseOutput });
    }
    return frames.length > 0 && resampler !== null ? (resampler as Resampler).push(frames) : null;
  };
  for (const bytes of head) {
    const out = feed(bytes);
    if (out && out.length > 0) yield out;
  }
  for (;;) {
    const next = await rest.next();
    if (next.done) break;
    const out = feed(next.value);
    if (out && out.length > 0) yield out;
  }
  parser.end();
  const tail = (resampler as Resampler | null)?.flush();
  if (tail && tail.length > 0) yield tail;
}

/**
 * 16 kHz mono Int16 blocks of `input` (sizes follow the reads: about
 * readHighWaterMarkBytes of input each), each a fresh array the caller may
 * keep. Pull-based: see the module comment. Errors are
 * {@link AudioDecodeError}s naming the source and, where there is one, the
 * byte offset. Returning early closes the file / kills ffmpeg.
 */
export function audioFrames(input: AudioInput, config: AudioSourceConfig, options: AudioSourceOptions = {}): AsyncGenerator<Int16Array, void, undefined> {
  return decodeTo16k(input, config, options, false);
}

/** `audioFrames`; with `reuse`, WAV blocks are views valid only until the next pull (for the chunker, which copies them). */
async function* decodeTo16k(input: AudioInput, config: AudioSourceConfig, options: AudioSourceOptions, reuse: boolean): AsyncGenerator<Int16Array, void, undefined> {
  const source = labelOf(input, options);
  const ffmpegOptions = { source, ffmpegPath: config.ffmpegPath, ...(options.onWarning ? { onWarning: options.onWarning } : {}) };
  if (typeof input === 'string') await checkFile(input, config, source);
  const raw = typeof input === 'string' ? readFile(input, config.readHighWaterMarkBytes) : (input as AsyncIterable<unknown>);
  const bytes = bytesOf(raw, config, source);
  try {
    // Peek at the magic.
    const head: Uint8Array[] = [];
    let headLength = 0;
    while (headLength < MAGIC_BYTES) {
      const next = await bytes.next();
      if (next.done) break;
      // A copy: file reads reuse one buffer, and these bytes are needed after the next read.
      head.push(new Uint8Array(next.value));
      headLength += next.value.length;
    }
    if (headLength === 0) throw new AudioDecodeError('MEMTIDE_ERR_AUDIO_EMPTY', source, 0, 'the input is empty (0 bytes)');
    const magic = concatBytes(head, MAGIC_BYTES);

    if (!looksLikeRiff(magic)) {
      if (typeof input === 'string') {
        await bytes.return();
        yield* ffmpegDecode(input, ffmpegOptions);
      } else {
        yield* ffmpegDecode(replay(head, bytes), ffmpegOptions);
      }
      return;
    }

    // Header bytes are kept (for streams) until the format is known, in case ffmpeg has to take over.
    const held: Uint8Array[] | null = typeof input === 'string' ? null : [];
    let yielded = false;
    try {
      for await (const block of decodeWav(head, bytes, source, held, reuse)) {
        yielded = true;
        yield block;
      }
    } catch (error) {
      const handOver = error instanceof AudioDecodeError && error.code === 'MEMTIDE_ERR_AUDIO_UNSUPPORTED' && !yielded;
      if (!handOver) throw error;
      const heldBytes = held?.reduce((n, b) => n + b.length, 0) ?? 0;
      if (held !== null && heldBytes > MAX_REPLAY_BYTES) throw error;
      try {
        if (typeof input === 'string') {
          await bytes.return();
          yield* ffmpegDecode(input, ffmpegOptions);
        } else {
          yield* ffmpegDecode(replay(held ?? [], bytes), ffmpegOptions);
        }
      } catch (ffmpegError) {
        const why = ffmpegError instanceof AudioDecodeError ? ffmpegError.reason : String(ffmpegError);
        throw new AudioDecodeError(error.code, source, error.byteOffset, `${error.reason}; ffmpeg could not decode it either: ${why}`, { cause: ffmpegError });
      }
    }
  } finally {
    // Closes the file handle (or stops iterating the stream).
    await bytes.return();
  }
}

function concatBytes(parts: Uint8Array[], max: number): Uint8Array {
  const out = new Uint8Array(Math.min(max, parts.reduce((n, p) => n + p.length, 0)));
  let at = 0;
  for (const part of parts) {
    if (at >= out.length) break;
    const n = Math.min(part.length, out.length - at);
    out.set(part.subarray(0, n), at);
    at += n;
  }
  return out;
}

/** The bytes already read, then the rest of the input: what ffmpeg gets when a stream turns out not to be WAV. */
async function* replay(already: Uint8Array[], rest: AsyncIterator<Uint8Array>): AsyncGenerator<Uint8Array, void, undefined> {
  yield* already;
  for (;;) {
    const next = await rest.next();
    if (next.done) return;
    yield next.value;
  }
}

/**
 * `input` as sample-accurate AudioChunks (see `chunkAudio`), pulled: the
 * file is read only as fast as chunks are taken. This is the API for
 * bounded transcription: take a chunk only when there is room for it.
 *
 * ```ts
 * for await (const chunk of audioChunks('meeting.mp3', config.audio)) await transcribe(chunk);
 * ```
 */
export function audioChunks(input: AudioInput, config: AudioSourceConfig, options: AudioSourceOptions = {}): AsyncGenerator<AudioChunk, void, undefined> {
  const source = labelOf(input, options);
  return chunkSamplesAsync(decodeTo16k(input, config, { ...options, source }, true), {
    source,
    chunkSeconds: config.chunkSeconds,
    overlapSeconds: config.overlapSeconds,
  });
}

/**
 * Observable adapter with backpressure: each notification of `demand` pulls
 * one value from `iterable` (demands that arrive while a pull is in flight are
 * counted and served in order). Completes when the iterable ends, errors when
 * it throws or `demand` errors; unsubscribing closes the iterable (closing
 * the file / killing ffmpeg). Nothing is read before the first demand, and
 * never more than was demanded.
 *
 * ```
 * demand: -d----d-d-------
 * result: --a----b-c------   (a, b, c: chunks, each after its read)
 * ```
 */
export function pullOnDemand<T>(iterable: AsyncIterable<T>, demand: Observable<unknown>): Observable<T> {
  return new Observable<T>((subscriber) => {
    const iterator = iterable[Symbol.asyncIterator]();
    let wanted = 0;
    let pulling = false;
    let done = false;
    const pump = async (): Promise<void> => {
      if (pulling) return;
      pulling = true;
      try {
        while (wanted > 0 && !subscriber.closed) {
          wanted -= 1;
          const next = await iterator.next();
          if (next.done) {
            done = true;
            subscriber.complete();
            return;
          }
          if (subscriber.closed) return;
          subscriber.next(next.value);
        }
      } catch (error) {
        done = true;
        subscriber.error(error);
      } finally {
        pulling = false;
      }
    };
    const demands = demand.subscribe({
      next: () => {
        wanted += 1;
        void pump();
      },
      error: (error: unknown) => subscriber.error(error),
    });
    return () => {
      demands.unsubscribe();
      if (!done) {
        done = true;
        // Queued behind a pull in flight, if any; closes the file / kills ffmpeg.
        void iterator.return?.(undefined)?.catch(() => {});
      }
    };
  });
}
