import fc from 'fast-check';
import { Readable } from 'node:stream';
import { from } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { encodeWav, type WavSpec } from '../bench/support/makeWav.js';
import type { AudioChunk } from '../src/model.js';
import { AudioChunker, chunkAudio, chunkSamples, type ChunkAudioConfig } from '../src/operators/chunkAudio.js';
import { audioChunks, audioFrames, type AudioSourceConfig } from '../src/sources/audio/audioSource.js';
import { Resampler } from '../src/sources/audio/resample.js';
import { WavParser } from '../src/sources/audio/wavParser.js';

const RATES = [8000, 11025, 16000, 22050, 32000, 44100, 48000, 96000];
const FORMATS = [
  { bitsPerSample: 8, encoding: 'pcm' },
  { bitsPerSample: 16, encoding: 'pcm' },
  { bitsPerSample: 24, encoding: 'pcm' },
  { bitsPerSample: 32, encoding: 'pcm' },
  { bitsPerSample: 32, encoding: 'float' },
  { bitsPerSample: 64, encoding: 'float' },
] as const;

/** Deterministic noise-and-tones signal (cheap to make for 5 s x 96 kHz x 8 channels). */
function signal(frames: number, channels: number, rate: number, seed: number): Float64Array {
  const out = new Float64Array(frames * channels);
  let s = seed | 1;
  for (let i = 0; i < frames; i++) {
    const tone = 0.4 * Math.sin((2 * Math.PI * 440 * i) / rate);
    for (let c = 0; c < channels; c++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      out[i * channels + c] = tone + 0.1 * (s / 2 ** 31);
    }
  }
  return out;
}

/** The file's bytes as a stream of pieces cut at `cuts` (fractions of the length). */
function pieces(bytes: Uint8Array, cuts: number[]): Readable {
  const points = [...new Set(cuts.map((f) => Math.floor(f * bytes.length)))].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let last = 0;
  for (const p of [...points, bytes.length]) {
    if (p > last) parts.push(Buffer.from(bytes.subarray(last, p)));
    last = Math.max(last, p);
  }
  return Readable.from(parts);
}

/** The reference: the whole file parsed in one push and resampled in one push. */
function wholeStream(bytes: Uint8Array): Int16Array {
  const parser = new WavParser('ref.wav');
  const frames = parser.push(bytes);
  parser.end();
  const format = parser.format!;
  const r = new Resampler(format.sampleRate, format.channels);
  const a = r.push(frames);
  const b = r.flush();
  const out = new Int16Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const value of iterable) out.push(value);
  return out;
}

const baseConfig: AudioSourceConfig = { chunkSeconds: 30, overlapSeconds: 0, ffmpegPath: null, readHighWaterMarkBytes: 65536, maxFileBytes: null };

/** Tiny chunks with short files, or real chunk sizes with files up to 5 s (bounded chunk counts keep runs fast). */
const lengthAndChunk = fc.oneof(
  fc.record({ micros: fc.integer({ min: 0, max: 50_000 }), chunkSamples: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ micros: fc.integer({ min: 0, max: 5_000_000 }), chunkSamples: fc.integer({ min: 65, max: 100_000 }) }),
);

/** Index of the first sample where a and b differ (or the shorter length), -1 when equal. Fast on long arrays. */
function firstDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

function concatInt16(parts: Int16Array[]): Int16Array {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const wavCase = fc.record({
  format: fc.constantFrom(...FORMATS),
  extensible: fc.boolean(),
  channels: fc.integer({ min: 1, max: 8 }),
  rate: fc.constantFrom(...RATES),
  lengthAndChunk,
  seed: fc.integer(),
  overlapFraction: fc.double({ min: 0, max: 0.99, noNaN: true }),
  cuts: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 6 }),
});

describe('audio pipeline properties', () => {
  it('for any supported WAV format, rate, length and chunking: chunks tile the whole resampled stream exactly', async () => {
    await fc.assert(
      fc.asyncProperty(wavCase, async (c) => {
        const spec: WavSpec = { sampleRate: c.rate, channels: c.channels, bitsPerSample: c.format.bitsPerSample, encoding: c.format.encoding, extensible: c.extensible };
        const frames = Math.round((c.lengthAndChunk.micros * c.rate) / 1e6);
        const bytes = encodeWav(spec, signal(frames, c.channels, c.rate, c.seed));
        const size = c.lengthAndChunk.chunkSamples;
        const overlap = Math.min(size - 1, Math.floor(c.overlapFraction * size));
        const hop = size - overlap;
        const config: AudioSourceConfig = { ...baseConfig, chunkSeconds: size / 16000, overlapSeconds: overlap / 16000 };

        const chunks = await collect(audioChunks(pieces(bytes, c.cuts), config, { source: 'p.wav' }));
        const whole = wholeStream(bytes);

        // The stream has round(duration * 16000) samples, and the block stream is that stream.
        expect(whole.length).toBe(Math.round((frames * 16000) / c.rate));
        const blocks = await collect(audioFrames(pieces(bytes, c.cuts), config));
        expect(firstDifference(concatInt16(blocks), whole)).toBe(-1);

        // Chunk i starts at i * hop, is never longer than configured, all but the last are full.
        const expectedCount = whole.length === 0 ? 0 : Math.max(1, Math.ceil((whole.length - overlap) / hop));
        expect(chunks.length).toBe(expectedCount);
        // Plain checks per chunk (thousands of chunks: expect() per field would dominate the run), one expect at the end.
        const wrong = chunks.flatMap((chunk, i) => {
          const isLast = i === chunks.length - 1;
          const problems = [
            chunk.index !== i && `index ${chunk.index}`,
            chunk.source !== 'p.wav' && `source ${chunk.source}`,
            chunk.firstSample !== i * hop && `firstSample ${chunk.firstSample}, expected ${i * hop}`,
            chunk.samples.length > size && `${chunk.samples.length} samples, more than ${size}`,
            !isLast && chunk.samples.length !== size && `${chunk.samples.length} samples in a chunk before the last`,
            chunk.startMs !== chunk.firstSample / 16 && `startMs ${chunk.startMs}`,
            chunk.endMs !== (chunk.firstSample + chunk.samples.length) / 16 && `endMs ${chunk.endMs}`,
            chunk.last !== isLast && `last ${chunk.last}`,
            chunk.sampleRate !== 16000 && `sampleRate ${chunk.sampleRate}`,
            // Every chunk is exactly its slice of the whole stream (so overlaps repeat the same samples).
            firstDifference(chunk.samples, whole.subarray(chunk.firstSample, chunk.firstSample + chunk.samples.length)) !== -1 && 'samples differ from the stream',
          ].filter(Boolean);
          return problems.length > 0 ? [`chunk ${i}: ${problems.join(', ')}`] : [];
        });
        expect(wrong).toEqual([]);
        // Concatenating the chunks without their overlap gives the whole stream.
        const joined = concatInt16(chunks.map((chunk, i) => chunk.samples.subarray(i === 0 ? 0 : overlap)));
        expect(firstDifference(joined, whole)).toBe(-1);
      }),
      { numRuns: 50 },
    );
  });

  it('the operator, the sync iterable and the async iterable agree for any blocks and chunking', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 50 }), { maxLength: 30 }),
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 0, max: 39 }),
        async (sizes, size, rawOverlap) => {
          const overlap = rawOverlap % size;
          let next = 0;
          const blocks = sizes.map((n) => Int16Array.from({ length: n }, () => next++));
          const config: ChunkAudioConfig = { source: 's', chunkSeconds: size / 16000, overlapSeconds: overlap / 16000 };
          const viaOperator: AudioChunk[] = [];
          let failure: unknown;
          from(blocks)
            .pipe(chunkAudio(config))
            .subscribe({ next: (c) => viaOperator.push(c), error: (e: unknown) => (failure = e) });
          expect(failure).toBeUndefined();
          expect([...chunkSamples(blocks, config)]).toEqual(viaOperator);
          const asyncBlocks = (async function* () {
            yield* blocks;
          })();
          const { chunkSamplesAsync } = await import('../src/operators/chunkAudio.js');
          expect(await collect(chunkSamplesAsync(asyncBlocks, config))).toEqual(viaOperator);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('AudioChunker (model-based)', () => {
  interface Model {
    pushed: number;
    emitted: number;
    ended: boolean;
  }
  interface Real {
    chunker: AudioChunker;
    chunks: AudioChunk[];
    size: number;
    overlap: number;
  }

  /** Chunks emitted once `total` samples were pushed: chunk i goes out when a sample past i * hop + size arrives. */
  const emittedAfter = (total: number, size: number, hop: number) => (total > size ? Math.ceil((total - size) / hop) : 0);

  class Push implements fc.AsyncCommand<Model, Real> {
    constructor(readonly n: number) {}
    check = (m: Readonly<Model>) => !m.ended;
    async run(m: Model, r: Real): Promise<void> {
      const block = Int16Array.from({ length: this.n }, (_, i) => (m.pushed + i) % 32768);
      const out = r.chunker.push(block);
      m.pushed += this.n;
      r.chunks.push(...out);
      const hop = r.size - r.overlap;
      expect(r.chunks.length).toBe(emittedAfter(m.pushed, r.size, hop));
      for (const chunk of out) {
        expect(chunk.last).toBe(false);
        expect(chunk.samples.length).toBe(r.size);
        expect(chunk.firstSample).toBe(chunk.index * hop);
        expect(chunk.samples[0]).toBe(chunk.firstSample % 32768);
      }
      m.emitted = r.chunks.length;
    }
    toString = () => `push(${this.n})`;
  }

  class End implements fc.AsyncCommand<Model, Real> {
    check = (m: Readonly<Model>) => !m.ended;
    async run(m: Model, r: Real): Promise<void> {
      const out = r.chunker.end();
      m.ended = true;
      const hop = r.size - r.overlap;
      const expected = m.pushed === 0 ? 0 : Math.max(1, Math.ceil((m.pushed - r.overlap) / hop));
      expect(r.chunks.length + out.length).toBe(expected);
      if (m.pushed > 0) {
        expect(out).toHaveLength(1);
        const last = out[0]!;
        expect(last.last).toBe(true);
        expect(last.firstSample + last.samples.length).toBe(m.pushed);
        expect(last.samples.buffer.byteLength).toBe(last.samples.length * 2);
      } else expect(out).toEqual([]);
      r.chunks.push(...out);
      // Without the overlaps, the chunks are every sample once, in order.
      const joined = r.chunks.flatMap((c, i) => Array.from(c.samples.subarray(i === 0 ? 0 : r.overlap)));
      expect(joined).toEqual(Array.from({ length: m.pushed }, (_, i) => i % 32768));
      expect(() => r.chunker.push(new Int16Array(1))).toThrow(/after the end/);
    }
    toString = () => 'end';
  }

  it('emits exactly the chunks the model predicts after every push, and the right last chunk at the end', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 0, max: 11 }),
        fc.commands([fc.integer({ min: 0, max: 30 }).map((n) => new Push(n)), fc.constant(new End())], { maxCommands: 40 }),
        async (size, rawOverlap, commands) => {
          const overlap = rawOverlap % size;
          const real: Real = {
            chunker: new AudioChunker({ source: 'm', chunkSeconds: size / 16000, overlapSeconds: overlap / 16000 }),
            chunks: [],
            size,
            overlap,
          };
          await fc.asyncModelRun(() => ({ model: { pushed: 0, emitted: 0, ended: false }, real }), commands);
        },
      ),
      { numRuns: 300 },
    );
  });
});
