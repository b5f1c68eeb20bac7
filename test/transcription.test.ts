/**
 * The transcription pipeline against the real whisper.cpp engine
 * (@napi-rs/whisper) on a generated random-weight model with tiny.en's shapes:
 * loading, memory and timing are real, the text is nonsense. Whisper tests run
 * one after another in this file (the engine takes seconds per chunk on 2 cores).
 */
import fs from 'node:fs';
import path from 'node:path';
import { BehaviorSubject, firstValueFrom, lastValueFrom, toArray } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { audioSchema } from '../src/app/schema/audio.js';
import type { AudioChunk } from '../src/model.js';
import { audioChunks, type AudioInput, type AudioSourceConfig } from '../src/sources/audio/audioSource.js';
import type { Transcriber } from '../src/sources/transcribers/transcriber.js';
import { inspectWhisperModel } from '../src/sources/transcribers/ggmlModel.js';
import { createWhisperInProcess } from '../src/sources/transcribers/whisperInProcess.js';
import { transcribeFiles, type TranscriptionEvent } from '../src/streams/transcription.js';
import { randomTinyModelPath, toneChunk } from './support/whisperModel.js';
import { tempDir, writeWav } from './support/wav.js';

const audio = audioSchema.parse({});
const bounds = { maxConcurrent: 1, maxQueuedChunks: 2, highConcurrency: null, criticalConcurrency: 0 };
const MB = 1e6;

let modelPath: string;
let tmp: ReturnType<typeof tempDir>;

beforeAll(() => {
  modelPath = randomTinyModelPath();
  tmp = tempDir('memtide-transcription-');
});
afterAll(() => tmp.cleanup());

const chunkOf = toneChunk;

const rss = () => process.memoryUsage().rss;

async function until(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (condition()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return condition();
}

describe.sequential('whisper.cpp in-process on the generated model', () => {
  it('the generated model has the structure whisper.cpp expects for tiny.en', () => {
    const info = inspectWhisperModel(modelPath);
    expect(info.hparams).toMatchObject({ nVocab: 51864, nAudioCtx: 1500, nAudioState: 384, nAudioLayer: 4, nTextLayer: 4, nMels: 80, ftype: 1 });
    expect(info.tensors).toBe(167);
    expect(info.sizeBytes).toBeGreaterThan(70e6);
  });

  it('loads lazily on the first chunk, unloads after idleUnloadMs; RSS rises on load and falls after unload', async () => {
    const whisper = createWhisperInProcess({ modelPath, threads: 2, idleUnloadMs: 400 });
    expect(whisper.loaded).toBe(false);
    expect(whisper.modelBytes).toBeNull();
    const before = rss();

    const started = Date.now();
    const result = await whisper.transcribe(chunkOf(30));
    const seconds = (Date.now() - started) / 1000;
    const loadedRss = rss();
    expect(typeof result.text).toBe('string');
    expect(result.text.length).toBeGreaterThan(0); // nonsense, but the decoder ran
    expect(whisper.loaded).toBe(true);
    expect(whisper.modelBytes).toBe(fs.statSync(modelPath).size);
    // weights (~78 MB) plus compute buffers; measured ~+240 MB
    expect(loadedRss - before).toBeGreaterThan(100 * MB);

    expect(await until(() => !whisper.loaded, 5000)).toBe(true);
    expect(whisper.modelBytes).toBeNull();
    await new Promise((r) => setTimeout(r, 200));
    const after = rss();
    // the worker's memory goes back to the OS; allow for allocator slack
    expect(loadedRss - after).toBeGreaterThan(0.5 * (loadedRss - before));
    console.info(
      `whisper (random tiny.en, 2 threads): first 30 s chunk incl. load ${seconds.toFixed(2)} s; RSS ${(before / MB).toFixed(0)} -> ${(loadedRss / MB).toFixed(0)} -> ${(after / MB).toFixed(0)} MB`,
    );
  });

  it('unload() frees the model at once; an aborted chunk rejects with MEMTIDE_ERR_TRANSCRIBER_ABORTED', async () => {
    const whisper = createWhisperInProcess({ modelPath, threads: 2, idleUnloadMs: 60_000 });
    const controller = new AbortController();
    const pending = whisper.transcribe(chunkOf(5), controller.signal);
    controller.abort();
    await expect(pending).rejects.toMatchObject({ code: 'MEMTIDE_ERR_TRANSCRIBER_ABORTED' });
    await whisper.unload();
    expect(whisper.loaded).toBe(false);
  });

  it('one model copy per concurrent chunk (maxCopies 2); shrinkTo(1) drops the idle extra copy; unload() the rest', async () => {
    const size = fs.statSync(modelPath).size;
    const whisper = createWhisperInProcess({ modelPath, threads: 1, maxCopies: 2, idleUnloadMs: 60_000 });
    try {
      const both = await Promise.all([whisper.transcribe(chunkOf(1, 0)), whisper.transcribe(chunkOf(1, 1))]);
      expect(both.map((r) => typeof r.text)).toEqual(['string', 'string']);
      expect(whisper.modelBytes).toBe(2 * size);
      whisper.shrinkTo!(1);
      expect(whisper.modelBytes).toBe(size);
      await whisper.transcribe(chunkOf(1, 2)); // reuses the copy left
      expect(whisper.modelBytes).toBe(size);
    } finally {
      await whisper.unload();
    }
    expect(whisper.loaded).toBe(false);
    expect(whisper.modelBytes).toBeNull();
  });

  it('a 60 s file (44.1 kHz stereo) gives 2 segments with exact bounds', async () => {
    const file = writeWav(path.join(tmp.dir, 'sixty.wav'), { seconds: 60, sampleRate: 44100, channels: 2 });
    const whisper = createWhisperInProcess({ modelPath, threads: 2, idleUnloadMs: 60_000 });
    try {
      const events = await lastValueFrom(transcribeFiles([file], { transcriber: whisper, audio, transcription: bounds }).pipe(toArray()));
      const segments = events.flatMap((e) => (e.type === 'segment' ? [e.segment] : []));
      expect(segments.map(({ file: f, startMs, endMs }) => ({ f, startMs, endMs }))).toEqual([
        { f: file, startMs: 0, endMs: 30000 },
        { f: file, startMs: 30000, endMs: 60000 },
      ]);
      expect(segments.every((s) => typeof s.text === 'string')).toBe(true);
      expect(events.at(-1)).toMatchObject({ type: 'done', files: 1, chunks: 2, durationMs: 60000, failed: 0 });
    } finally {
      await whisper.unload();
    }
  });

  it('a wrong model path or a file that is not a ggml model fails the chunk with a clear error', async () => {
    const notModel = path.join(tmp.dir, 'not-a-model.bin');
    fs.writeFileSync(notModel, 'GGUF but not really');
    const missing = createWhisperInProcess({ modelPath: path.join(tmp.dir, 'missing.bin'), idleUnloadMs: 1000 });
    await expect(missing.transcribe(chunkOf(1))).rejects.toMatchObject({ code: 'MEMTIDE_ERR_TRANSCRIBER_MODEL', message: expect.stringContaining('no such file') });
    const wrong = createWhisperInProcess({ modelPath: notModel, idleUnloadMs: 1000 });
    await expect(wrong.transcribe(chunkOf(1))).rejects.toMatchObject({ code: 'MEMTIDE_ERR_TRANSCRIBER_MODEL', message: expect.stringContaining('byte 0: not a whisper.cpp ggml model') });
    // right magic, cut short (a partial download): refused before whisper.cpp sees it, with the byte offset
    const broken = path.join(tmp.dir, 'broken.bin');
    fs.writeFileSync(broken, fs.readFileSync(modelPath).subarray(0, 2_000_000));
    const cut = createWhisperInProcess({ modelPath: broken, idleUnloadMs: 1000 });
    await expect(cut.transcribe(chunkOf(1))).rejects.toMatchObject({
      code: 'MEMTIDE_ERR_TRANSCRIBER_MODEL',
      message: expect.stringMatching(/broken\.bin: byte \d+: \d+ bytes of data were expected here, the file ends at byte 2000000$/),
    });
    expect(cut.loaded).toBe(false);
  });
});

describe('the pipeline around the engine (fast fake transcribers)', () => {
  /** Counts decoders open at once and chunks handed out, around the real `audioChunks`. */
  function instrumented() {
    const state = { open: 0, maxOpen: 0, opened: [] as string[], read: 0 };
    const openChunks = (input: AudioInput, config: AudioSourceConfig, source: string): AsyncIterable<AudioChunk> => ({
      [Symbol.asyncIterator]() {
        const inner = audioChunks(input, config, { source });
        let counted = false;
        const close = () => {
          if (counted) state.open -= 1;
          counted = false;
        };
        return {
          next: async () => {
            if (!counted && !state.opened.includes(source)) {
              counted = true;
              state.open += 1;
              state.maxOpen = Math.max(state.maxOpen, state.open);
              state.opened.push(source);
            }
            const next = await inner.next();
            if (next.done) close();
            else state.read += 1;
            return next;
          },
          return: async () => {
            close();
            return inner.return(undefined);
          },
        };
      },
    });
    return { state, openChunks };
  }

  const slow = (ms: number, onCall?: () => void): Transcriber => ({
    name: 'slow',
    transcribe: (chunk) => {
      onCall?.();
      return new Promise((resolve) => setTimeout(() => resolve({ text: `#${chunk.index}` }), ms));
    },
    unload: async () => undefined,
    loaded: false,
    modelBytes: null,
  });

  it('several files are processed one after another: never two decoders open at once', async () => {
    const files = [1, 2, 3].map((n) => writeWav(path.join(tmp.dir, `f${n}.wav`), { seconds: 3, sampleRate: 8000 }));
    const { state, openChunks } = instrumented();
    const events = await lastValueFrom(
      transcribeFiles(files, { transcriber: slow(5), audio: { ...audio, chunkSeconds: 1 }, transcription: bounds, openChunks }).pipe(toArray()),
    );
    expect(state.opened).toEqual(files);
    expect(state.maxOpen).toBe(1);
    expect(events.map((e) => e.type)).toEqual([
      ...files.flatMap(() => ['file-start', 'segment', 'segment', 'segment', 'file-end']),
      'done',
    ]);
  });

  it('backpressure: with a slow transcriber and a long input, chunks read ahead never exceed maxQueuedChunks + maxConcurrent', async () => {
    const file = writeWav(path.join(tmp.dir, 'long.wav'), { seconds: 600, sampleRate: 16000 });
    const { state, openChunks } = instrumented();
    let emitted = 0;
    let maxAhead = 0;
    const transcriber = slow(2, () => (maxAhead = Math.max(maxAhead, state.read - emitted)));
    const config = { ...bounds, maxConcurrent: 2, maxQueuedChunks: 3 };
    const queued: number[] = [];
    const events: TranscriptionEvent[] = [];
    await new Promise<void>((resolve, reject) =>
      transcribeFiles([file], {
        transcriber,
        audio: { ...audio, chunkSeconds: 2 },
        transcription: config,
        openChunks,
        onStats: (s) => {
          maxAhead = Math.max(maxAhead, state.read - emitted);
          queued.push(s.queuedChunks);
        },
      }).subscribe({
        next: (e) => {
          if (e.type === 'segment') emitted += 1;
          events.push(e);
        },
        error: reject,
        complete: resolve,
      }),
    );
    expect(emitted).toBe(300);
    expect(state.read).toBe(300);
    expect(maxAhead).toBeLessThanOrEqual(3 + 2);
    expect(maxAhead).toBeGreaterThanOrEqual(3); // the queue did fill: the read really waited
    expect(Math.max(...queued)).toBeLessThanOrEqual(3);
  });

  it('a batch hold (hold$) pauses the file read where it is, unloads the idle transcriber, and resumes in order across files', async () => {
    const files = [1, 2].map((n) => writeWav(path.join(tmp.dir, `held${n}.wav`), { seconds: 20, sampleRate: 16000 }));
    const { state, openChunks } = instrumented();
    const hold$ = new BehaviorSubject(false);
    let unloads = 0;
    let startedWhileHeld = 0;
    const transcriber: Transcriber = {
      ...slow(2, () => (startedWhileHeld += hold$.getValue() ? 1 : 0)),
      unload: async () => {
        unloads += 1;
      },
    };
    const segments: string[] = [];
    const config = { ...bounds, maxConcurrent: 1, maxQueuedChunks: 2 };
    const done = new Promise<TranscriptionEvent[]>((resolve, reject) => {
      const events: TranscriptionEvent[] = [];
      transcribeFiles(files, { transcriber, audio: { ...audio, chunkSeconds: 1 }, transcription: config, openChunks, hold$ }).subscribe({
        next: (e) => {
          events.push(e);
          if (e.type !== 'segment') return;
          segments.push(`${e.segment.file === files[0] ? 'a' : 'b'}${e.segment.chunkIndex}`);
          // Hold twice: in the middle of the first file and right after the second one starts.
          if ((e.segment.file === files[0] && e.segment.chunkIndex === 5) || (e.segment.file === files[1] && e.segment.chunkIndex === 1)) hold$.next(true);
        },
        error: reject,
        complete: () => resolve(events),
      });
    });
    for (let round = 0; round < 2; round += 1) {
      expect(await until(() => hold$.getValue() && unloads === round + 1, 5_000)).toBe(true);
      const read = state.read;
      const emitted = segments.length;
      await new Promise((r) => setTimeout(r, 150));
      // Held: nothing more is read or emitted; at most the queue (2) was read ahead of the last segment.
      expect(state.read).toBe(read);
      expect(segments.length).toBe(emitted);
      expect(read - emitted).toBeLessThanOrEqual(2 + 1);
      hold$.next(false);
    }
    const events = await done;
    expect(startedWhileHeld).toBe(0);
    expect(segments).toEqual([...Array.from({ length: 20 }, (_, i) => `a${i}`), ...Array.from({ length: 20 }, (_, i) => `b${i}`)]);
    expect(events.at(-1)).toMatchObject({ type: 'done', files: 2, chunks: 40, failed: 0 });
  });

  it('a corrupt second file: its error names the file and byte offset, the first file is complete, the third still runs', async () => {
    const good = writeWav(path.join(tmp.dir, 'good.wav'), { seconds: 3 });
    const whole = fs.readFileSync(writeWav(path.join(tmp.dir, 'whole.wav'), { seconds: 5 }));
    const truncated = path.join(tmp.dir, 'truncated.wav');
    fs.writeFileSync(truncated, whole.subarray(0, 44 + 2.5 * 16000 * 2)); // 2.5 of 5 s: chunks 0-1 s and 1-2 s are whole
    const third = writeWav(path.join(tmp.dir, 'third.wav'), { seconds: 1 });
    const events = await lastValueFrom(
      transcribeFiles([good, truncated, third], { transcriber: slow(1), audio: { ...audio, chunkSeconds: 1 }, transcription: bounds }).pipe(toArray()),
    );
    const failure = events.find((e) => e.type === 'file-error');
    expect(failure).toMatchObject({ file: truncated, chunks: 2, error: expect.objectContaining({ code: 'MEMTIDE_ERR_AUDIO_TRUNCATED', byteOffset: 80044 }) });
    expect(String((failure as { error: Error }).error.message)).toContain(`${truncated}: byte 80044`);
    expect(events.at(-1)).toMatchObject({ type: 'done', files: 3, chunks: 3 + 2 + 1, failed: 1 });

    const stopped = await lastValueFrom(
      transcribeFiles([good, truncated, third], { transcriber: slow(1), audio: { ...audio, chunkSeconds: 1 }, transcription: bounds, stopOnError: true }).pipe(toArray()),
    );
    expect(stopped.at(-1)).toMatchObject({ type: 'done', files: 2, failed: 1 });
  });

  it('a transcriber failure is a file error too (the chunks before it are kept)', async () => {
    const file = writeWav(path.join(tmp.dir, 'three.wav'), { seconds: 3 });
    const failing: Transcriber = {
      ...slow(1),
      transcribe: async (chunk) => {
        if (chunk.index === 2) throw new Error('engine crashed');
        return { text: 'ok' };
      },
    };
    const events = await lastValueFrom(transcribeFiles([file], { transcriber: failing, audio: { ...audio, chunkSeconds: 1 }, transcription: bounds }).pipe(toArray()));
    expect(events.filter((e) => e.type === 'segment')).toHaveLength(2);
    expect(events.find((e) => e.type === 'file-error')).toMatchObject({
      error: expect.objectContaining({ code: 'MEMTIDE_ERR_TRANSCRIBE_CHUNK', message: expect.stringContaining('chunk 2') }),
    });
    expect(await firstValueFrom(transcribeFiles([], { transcriber: failing, audio, transcription: bounds }))).toMatchObject({ type: 'done', files: 0 });
  });
});
