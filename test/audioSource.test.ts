import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { Subject, take } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeWav, sine, wavHeader } from '../bench/support/makeWav.js';
import { audioSchema } from '../src/app/schema/audio.js';
import type { AudioChunk } from '../src/model.js';
import { audioChunks, AudioDecodeError, audioFrames, pullOnDemand, type AudioSourceConfig } from '../src/sources/audio/audioSource.js';

const config: AudioSourceConfig = { ...audioSchema.parse({}), chunkSeconds: 1 };
const spec = { sampleRate: 44100, channels: 2, bitsPerSample: 16, encoding: 'pcm' } as const;
let dir = '';

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'memtide-audio-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function file(name: string, bytes: Uint8Array | string): string {
  const full = path.join(dir, name);
  writeFileSync(full, bytes);
  return full;
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const value of iterable) out.push(value);
  return out;
}

async function failure(iterable: AsyncIterable<unknown>, seen: unknown[] = []): Promise<AudioDecodeError> {
  try {
    for await (const value of iterable) seen.push(value);
  } catch (error) {
    expect(error).toBeInstanceOf(AudioDecodeError);
    return error as AudioDecodeError;
  }
  throw new Error('expected an AudioDecodeError');
}

/** A byte stream that counts what has been read from it, served in `piece`-byte reads. */
function countingStream(bytes: Uint8Array, piece: number): { stream: Readable; read: () => number } {
  let at = 0;
  const stream = new Readable({
    highWaterMark: piece,
    read() {
      if (at >= bytes.length) return void this.push(null);
      const end = Math.min(at + piece, bytes.length);
      this.push(Buffer.from(bytes.subarray(at, end)));
      at = end;
    },
  });
  return { stream, read: () => at };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('audioChunks / audioFrames', () => {
  const tenSeconds = encodeWav(spec, sine(44100, 2, 441000, 440, 0.5));

  it('a WAV file becomes sample-accurate 16 kHz chunks labelled with the path', async () => {
    const wav = file('ten.wav', tenSeconds);
    const chunks = await collect(audioChunks(wav, config));
    expect(chunks.map((c) => [c.index, c.firstSample, c.samples.length, c.startMs, c.endMs, c.last])).toEqual(
      Array.from({ length: 10 }, (_, i) => [i, i * 16000, 16000, i * 1000, (i + 1) * 1000, i === 9]),
    );
    expect(new Set(chunks.map((c) => c.source))).toEqual(new Set([wav]));
  });

  it('a stream gives the same samples as the file; the label defaults to "stream" and can be set', async () => {
    const wav = file('same.wav', tenSeconds);
    const fromFile = await collect(audioChunks(wav, config));
    const fromStream = await collect(audioChunks(Readable.from([Buffer.from(tenSeconds)]), config));
    expect(fromStream.map((c) => c.samples)).toEqual(fromFile.map((c) => c.samples));
    expect(fromStream[0]!.source).toBe('stream');
    const labelled = await collect(audioChunks(Readable.from([Buffer.from(tenSeconds)]), config, { source: 'upload-7' }));
    expect(labelled[0]!.source).toBe('upload-7');
  });

  it('backpressure: while the consumer holds a chunk, reading stops within a few reads of it', async () => {
    const piece = 16384;
    const { stream, read } = countingStream(tenSeconds, piece);
    const chunks = audioChunks(stream, { ...config, readHighWaterMarkBytes: piece });
    const first = await chunks.next();
    expect(first.done).toBe(false);
    const readAtFirst = read();
    await sleep(100);
    // The stream refills its own buffer (one highWaterMark) and then stops: nothing more is read while we wait.
    const settled = read();
    expect(settled - readAtFirst).toBeLessThanOrEqual(2 * piece);
    await sleep(200);
    expect(read()).toBe(settled);
    // One 1 s chunk needs ~176 KB of this file; the whole file is 1.76 MB.
    expect(settled).toBeLessThan(176_400 + 4 * piece);
    await chunks.next();
    expect(read()).toBeGreaterThan(readAtFirst);
    expect(read()).toBeLessThan(2 * 176_400 + 4 * piece);
    await chunks.return();
  });

  it('backpressure from a file: one read per pull into one reused buffer, none ahead while the consumer waits', async () => {
    const wav = file('bp.wav', tenSeconds);
    const probe = await open(wav, 'r');
    const proto = Object.getPrototypeOf(probe) as { read: (...args: unknown[]) => Promise<{ bytesRead: number; buffer: Buffer }> };
    await probe.close();
    const original = proto.read;
    const buffers = new Set<ArrayBufferLike>();
    let reads = 0;
    proto.read = async function (this: unknown, ...args: unknown[]) {
      reads += 1;
      const result = await original.apply(this, args);
      buffers.add(result.buffer.buffer);
      return result;
    };
    try {
      const piece = 16384;
      const chunks = audioChunks(wav, { ...config, readHighWaterMarkBytes: piece });
      await chunks.next();
      const readsAtFirst = reads;
      // A 1 s chunk is 176 400 bytes of this file: 11 reads of 16 KiB (+1 that completes the held chunk).
      expect(readsAtFirst).toBeLessThanOrEqual(Math.ceil(176_400 / piece) + 2);
      await sleep(200);
      expect(reads).toBe(readsAtFirst);
      await chunks.return();
      expect(buffers.size).toBe(1);
    } finally {
      proto.read = original;
    }
  });

  it('pullOnDemand reads one chunk per demand and nothing before it; unsubscribing closes the input', async () => {
    const { stream, read } = countingStream(tenSeconds, 16384);
    const demand = new Subject<void>();
    const received: AudioChunk[] = [];
    const errors: unknown[] = [];
    const subscription = pullOnDemand(audioChunks(stream, config), demand).subscribe({
      next: (c) => received.push(c),
      error: (e: unknown) => errors.push(e),
    });
    await sleep(50);
    expect(read()).toBe(0);
    demand.next();
    demand.next();
    for (let i = 0; i < 100 && received.length < 2; i++) await sleep(10);
    expect(received.map((c) => c.index)).toEqual([0, 1]);
    await sleep(100);
    expect(received).toHaveLength(2);
    expect(read()).toBeLessThan(tenSeconds.length / 2);
    subscription.unsubscribe();
    for (let i = 0; i < 100 && !stream.destroyed; i++) await sleep(10);
    expect(stream.destroyed).toBe(true);
    expect(errors).toEqual([]);
  });

  it('pullOnDemand completes at the end of the audio and errors with the decoder error', async () => {
    const done = await new Promise<{ chunks: number; completed: boolean }>((resolve, reject) => {
      let chunks = 0;
      const demand = new Subject<void>();
      pullOnDemand(audioChunks(Readable.from([Buffer.from(tenSeconds)]), { ...config, chunkSeconds: 4 }), demand).subscribe({
        next: () => {
          chunks += 1;
          demand.next();
        },
        error: reject,
        complete: () => resolve({ chunks, completed: true }),
      });
      demand.next();
    });
    expect(done).toEqual({ chunks: 3, completed: true });

    const truncated = tenSeconds.subarray(0, 100_000);
    const error = await new Promise<unknown>((resolve) => {
      const demand = new Subject<void>();
      pullOnDemand(audioChunks(Readable.from([Buffer.from(truncated)]), config, { source: 'cut.wav' }), demand).subscribe({
        next: () => demand.next(),
        error: resolve,
        complete: () => resolve(new Error('completed')),
      });
      demand.next();
    });
    expect(error).toMatchObject({ code: 'MEMTIDE_ERR_AUDIO_TRUNCATED', byteOffset: 100_000 });
  });

  it('pullOnDemand: a demand that errors stops the output with that error', async () => {
    const demand = new Subject<void>();
    const errors: unknown[] = [];
    pullOnDemand(audioChunks(Readable.from([Buffer.from(tenSeconds)]), config), demand.pipe(take(5))).subscribe({ error: (e: unknown) => errors.push(e) });
    demand.error(new Error('queue gone'));
    expect(errors).toEqual([new Error('queue gone')]);
  });
});

describe('audio source: bad input', () => {
  it('a truncated WAV: the chunks before the end come out, then the error naming where the data ended', async () => {
    const bytes = encodeWav(spec, sine(44100, 2, 441000, 440, 0.5));
    const cut = file('cut.wav', bytes.subarray(0, 44 + 600_000));
    const seen: AudioChunk[] = [];
    const error = await failure(audioChunks(cut, config), seen);
    expect(seen.length).toBe(3); // 600 kB = 3.4 s of 44.1 kHz stereo
    expect(error.code).toBe('MEMTIDE_ERR_AUDIO_TRUNCATED');
    expect(error.message).toBe(
      `${cut}: byte 600044: audio data ends here, but the data chunk at byte 36 promised 1764000 bytes (600000 received, 1164000 missing): the file is truncated`,
    );
  });

  it('zero-length file and stream: MEMTIDE_ERR_AUDIO_EMPTY', async () => {
    const empty = file('empty.wav', new Uint8Array(0));
    expect(await failure(audioChunks(empty, config))).toMatchObject({ code: 'MEMTIDE_ERR_AUDIO_EMPTY', message: `${empty}: byte 0: the file is empty (0 bytes)` });
    expect(await failure(audioFrames(Readable.from([]), config))).toMatchObject({ code: 'MEMTIDE_ERR_AUDIO_EMPTY' });
  });

  it('a WAV with a corrupt header names the byte', async () => {
    const header = wavHeader(spec, 4);
    new DataView(header.buffer).setUint16(22, 0, true);
    const bad = file('bad.wav', Buffer.concat([header, Buffer.alloc(4)]));
    expect((await failure(audioChunks(bad, config))).message).toBe(`${bad}: byte 22: "fmt " chunk declares 0 channels`);
  });

  it('missing file, a directory, a file over maxFileBytes', async () => {
    expect(await failure(audioChunks(path.join(dir, 'nope.wav'), config))).toMatchObject({ code: 'MEMTIDE_ERR_AUDIO_READ', reason: 'cannot read it: no such file' });
    expect(await failure(audioChunks(dir, config))).toMatchObject({ code: 'MEMTIDE_ERR_AUDIO_READ', reason: 'is a directory, not an audio file' });
    const wav = file('big.wav', encodeWav(spec, sine(44100, 2, 4410, 440)));
    expect(await failure(audioChunks(wav, { ...config, maxFileBytes: 1000 }))).toMatchObject({ code: 'MEMTIDE_ERR_AUDIO_TOO_LARGE', byteOffset: 1000 });
    const seen: unknown[] = [];
    const streamError = await failure(audioFrames(Readable.from([Buffer.from(encodeWav(spec, sine(44100, 2, 44100, 440)))]), { ...config, maxFileBytes: 1000 }), seen);
    expect(streamError).toMatchObject({ code: 'MEMTIDE_ERR_AUDIO_TOO_LARGE', reason: expect.stringContaining('audio.maxFileBytes (1000 bytes)') });
  });

  it('a stream that fails mid-way is a read error naming the source', async () => {
    const broken = new Readable({
      read() {
        this.destroy(new Error('socket hang up'));
      },
    });
    expect(await failure(audioFrames(broken, config, { source: 'upload' }))).toMatchObject({
      code: 'MEMTIDE_ERR_AUDIO_READ',
      message: 'upload: cannot read it: socket hang up',
    });
  });
});
