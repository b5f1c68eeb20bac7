/**
 * Real ffmpeg (the binary bundled by @ffmpeg-installer/ffmpeg, else ffmpeg on
 * PATH): test files are generated with ffmpeg's lavfi sine source into a
 * temporary directory, then decoded through memtide.
 */
import { spawnSync } from 'node:child_process';
import { createReadStream, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { audioChunks, audioFrames, AudioDecodeError, type AudioSourceConfig } from '../src/sources/audio/audioSource.js';
import { ffmpegDecode, ffmpegFailure, resolveFfmpegPath } from '../src/sources/audio/ffmpegDecode.js';

const FFMPEG = resolveFfmpegPath(null);
const config: AudioSourceConfig = { chunkSeconds: 30, overlapSeconds: 0, ffmpegPath: null, readHighWaterMarkBytes: 65536, maxFileBytes: null };
let dir = '';

/** Makes `name` from a 440 Hz sine of `seconds` with extra ffmpeg output options. */
function make(name: string, seconds: number, ...options: string[]): string {
  const file = path.join(dir, name);
  const result = spawnSync(FFMPEG, ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', `sine=frequency=440:duration=${seconds}`, ...options, file]);
  if (result.status !== 0) throw new Error(`ffmpeg could not make ${name}: ${String(result.stderr)}`);
  return file;
}

async function decodeAll(input: Parameters<typeof audioFrames>[0], overrides: Partial<AudioSourceConfig> = {}): Promise<Int16Array> {
  const parts: Int16Array[] = [];
  for await (const block of audioFrames(input, { ...config, ...overrides })) parts.push(block);
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

async function decodeError(input: Parameters<typeof audioFrames>[0], overrides: Partial<AudioSourceConfig> = {}): Promise<AudioDecodeError> {
  try {
    await decodeAll(input, overrides);
  } catch (error) {
    expect(error).toBeInstanceOf(AudioDecodeError);
    return error as AudioDecodeError;
  }
  throw new Error('expected an AudioDecodeError');
}

/** Amplitude of `frequency` in x (Goertzel), full scale 1.0. */
function amplitudeAt(x: Int16Array, frequency: number, rate = 16000): number {
  const coeff = 2 * Math.cos((2 * Math.PI * frequency) / rate);
  let s1 = 0;
  let s2 = 0;
  for (const sample of x) {
    const s0 = sample / 32768 + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  return (2 * Math.sqrt(Math.max(s1 * s1 + s2 * s2 - coeff * s1 * s2, 0))) / x.length;
}

const rms = (x: Int16Array) => Math.sqrt(x.reduce((sum, v) => sum + (v / 32768) ** 2, 0) / x.length);

/** The 440 Hz tone holds (nearly) all the energy, and other frequencies nearly none. */
function expectTone(samples: Int16Array): void {
  const middle = samples.subarray(4000, samples.length - 4000);
  const tone = amplitudeAt(middle, 440);
  expect(tone).toBeGreaterThan(0.1); // lavfi's sine is 1/8 of full scale
  expect(tone / (Math.SQRT2 * rms(middle))).toBeGreaterThan(0.95);
  for (const other of [220, 1000, 3000]) expect(amplitudeAt(middle, other)).toBeLessThan(tone / 100);
}

/** Child processes of this process that are ffmpeg (from /proc). */
function ffmpegChildren(): number[] {
  const pids: number[] = [];
  for (const task of readdirSync(`/proc/${process.pid}/task`)) {
    const children = readFileSync(`/proc/${process.pid}/task/${task}/children`, 'utf8').trim();
    for (const pid of children ? children.split(/\s+/).map(Number) : []) {
      try {
        if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim().startsWith('ffmpeg')) pids.push(pid);
      } catch {
        // exited meanwhile
      }
    }
  }
  return pids;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A 60 s FLAC (fast to make), made once: 1.9 MB of 16 kHz output, far more than the pipes between ffmpeg and us hold. */
let longFile: string | null = null;
const long = () => (longFile ??= make('long.flac', 60));

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'memtide-ffmpeg-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('ffmpeg decoding (real ffmpeg)', () => {
  // Codec frame at the source rate (44.1 kHz for lavfi's sine; Opus runs at 48 kHz), in 16 kHz samples: the length tolerance.
  const cases = [
    { name: 's.mp3', options: ['-c:a', 'libmp3lame'], frame: Math.ceil((1152 * 16000) / 44100) },
    { name: 's.ogg', options: ['-c:a', 'libvorbis'], frame: Math.ceil((2048 * 16000) / 44100) },
    { name: 's.opus', options: ['-c:a', 'libopus'], frame: Math.ceil((960 * 16000) / 48000) },
    { name: 's.flac', options: [], frame: 0 },
    { name: 's.m4a', options: ['-c:a', 'aac'], frame: Math.ceil((1024 * 16000) / 44100) },
    { name: 's.webm', options: ['-c:a', 'libopus'], frame: Math.ceil((960 * 16000) / 48000) },
  ];

  for (const { name, options, frame } of cases) {
    it(`${name}: 3 s decode to 48000 samples within a codec frame (${frame}), the 440 Hz tone dominant`, async () => {
      const file = make(name, 3, ...options);
      const samples = await decodeAll(file);
      expect(Math.abs(samples.length - 48000)).toBeLessThanOrEqual(frame);
      expectTone(samples);
    });
  }

  it('streams (no file path) are piped into ffmpeg: MP3 and OGG from a read stream', async () => {
    for (const [name, options, frame] of [
      ['p.mp3', ['-c:a', 'libmp3lame'], 1152],
      ['p.ogg', ['-c:a', 'libvorbis'], 2048],
    ] as const) {
      const samples = await decodeAll(createReadStream(make(name, 3, ...options)));
      expect(Math.abs(samples.length - 48000)).toBeLessThanOrEqual(Math.ceil((frame * 16000) / 44100));
      expectTone(samples);
    }
  });

  it('audioChunks cuts ffmpeg output like any other: 3 s in 1 s chunks', async () => {
    const chunks = [];
    for await (const chunk of audioChunks(make('c.flac', 3), { ...config, chunkSeconds: 1 })) chunks.push(chunk);
    expect(chunks.map((c) => [c.index, c.firstSample, c.samples.length, c.last, c.source])).toEqual([
      [0, 0, 16000, false, path.join(dir, 'c.flac')],
      [1, 16000, 16000, false, path.join(dir, 'c.flac')],
      [2, 32000, 16000, true, path.join(dir, 'c.flac')],
    ]);
  });

  it('WAV codecs the parser does not do (mu-law, RF64) are handed to ffmpeg, from a path and from a stream', async () => {
    for (const file of [make('mulaw.wav', 3, '-c:a', 'pcm_mulaw'), make('rf64.wav', 3, '-rf64', 'always')]) {
      for (const input of [file, createReadStream(file)]) {
        const samples = await decodeAll(input);
        expect(samples.length).toBe(48000);
        expectTone(samples);
      }
    }
  });

  it('a corrupt MP3 fails with a clear error naming the file and what ffmpeg said', async () => {
    const good = readFileSync(make('g.mp3', 3, '-c:a', 'libmp3lame'));
    const corrupt = path.join(dir, 'corrupt.mp3');
    const noise = Buffer.alloc(20_000);
    for (let i = 0; i < noise.length; i++) noise[i] = (i * 7919 + 13) % 251;
    writeFileSync(corrupt, Buffer.concat([good.subarray(0, 400), noise]));
    const fromPath = await decodeError(corrupt);
    expect(['MEMTIDE_ERR_AUDIO_DECODE', 'MEMTIDE_ERR_AUDIO_NOT_AUDIO']).toContain(fromPath.code);
    expect(fromPath.message).toMatch(/corrupt\.mp3: .*\(ffmpeg: .+\)$/);
    expect(fromPath.byteOffset).toBeNull();
    const fromStream = await decodeError(createReadStream(corrupt));
    expect(fromStream.code).toBe('MEMTIDE_ERR_AUDIO_NOT_AUDIO');
    expect(fromStream.message).toMatch(/^stream: not an audio file ffmpeg can read \(ffmpeg: .*Invalid data found when processing input\)$/);
  });

  it('a damaged MP3 that still decodes succeeds, and ffmpeg\'s complaints go to onWarning', async () => {
    const bytes = readFileSync(make('d.mp3', 3, '-c:a', 'libmp3lame'));
    bytes.fill(0x55, 8000, 8600);
    const damaged = path.join(dir, 'damaged.mp3');
    writeFileSync(damaged, bytes);
    const warnings: string[] = [];
    let samples = 0;
    for await (const block of audioFrames(damaged, config, { onWarning: (w) => warnings.push(w) })) samples += block.length;
    expect(samples).toBeGreaterThan(40000);
    expect(warnings.length).toBeGreaterThan(0);
    expect(warnings[0]).toMatch(new RegExp(`^${damaged.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ffmpeg: `));
  });

  it('a text file is not audio (from a path and from a stream)', async () => {
    const text = path.join(dir, 'notes.txt');
    writeFileSync(text, 'Meeting notes\n- ship the audio pipeline\n'.repeat(20));
    for (const input of [text, createReadStream(text)]) {
      expect(await decodeError(input)).toMatchObject({ code: 'MEMTIDE_ERR_AUDIO_NOT_AUDIO', reason: expect.stringMatching(/ffmpeg: /) });
    }
  });

  it('ffmpeg missing (ffmpegPath /nonexistent): a clear error saying what to do', async () => {
    const error = await decodeError(make('m.mp3', 1, '-c:a', 'libmp3lame'), { ffmpegPath: '/nonexistent' });
    expect(error.code).toBe('MEMTIDE_ERR_AUDIO_FFMPEG');
    expect(error.reason).toBe('cannot run ffmpeg "/nonexistent" (not found); it decodes every format but WAV: set audio.ffmpegPath or install ffmpeg');
    // WAV needs no ffmpeg at all.
    const wav = make('w.wav', 1);
    expect((await decodeAll(wav, { ffmpegPath: '/nonexistent' })).length).toBe(16000);
  });

  it('backpressure: while nothing is pulled, ffmpeg is blocked on a full pipe instead of racing ahead', async () => {
    const blocks = ffmpegDecode(long(), { source: 'long.flac', ffmpegPath: null });
    const first = await blocks.next();
    expect(first.done).toBe(false);
    // 60 s at 16 kHz is 1.9 MB of output; ffmpeg decodes that in well under a second, unless it is held back.
    await sleep(800);
    expect(ffmpegChildren()).toHaveLength(1);
    let samples = (first.value as Int16Array).length;
    for (;;) {
      const next = await blocks.next();
      if (next.done) break;
      samples += next.value.length;
    }
    expect(samples).toBe(960000);
  });

  it('stopping early (break) kills ffmpeg', async () => {
    for await (const block of ffmpegDecode(long(), { source: 'long.flac', ffmpegPath: null })) {
      expect(block.length).toBeGreaterThan(0);
      expect(ffmpegChildren()).toHaveLength(1);
      break;
    }
    for (let i = 0; i < 50 && ffmpegChildren().length > 0; i++) await sleep(20);
    expect(ffmpegChildren()).toEqual([]);
  });
});

describe('ffmpeg errors and binary lookup', () => {
  it('classifies what ffmpeg says', () => {
    expect(ffmpegFailure('a.bin', 'pipe:0: Invalid data found when processing input\n', 1, null)).toMatchObject({
      code: 'MEMTIDE_ERR_AUDIO_NOT_AUDIO',
      message: 'a.bin: not an audio file ffmpeg can read (ffmpeg: pipe:0: Invalid data found when processing input)',
    });
    expect(ffmpegFailure('v.mp4', "Stream map '0:a:0' matches no streams.\nTo ignore this, add a trailing '?' to the map.\n", 1, null)).toMatchObject({
      code: 'MEMTIDE_ERR_AUDIO_NOT_AUDIO',
      message: "v.mp4: no audio stream in this file (ffmpeg: Stream map '0:a:0' matches no streams.)",
    });
    expect(ffmpegFailure('x.mka', '[matroska @ 0x5599aa] Could not find codec parameters for stream 0\n', 1, null)).toMatchObject({
      code: 'MEMTIDE_ERR_AUDIO_UNSUPPORTED',
      reason: expect.stringContaining('[matroska] Could not find codec parameters'),
    });
    expect(ffmpegFailure('y.mp3', 'something odd\nx.mp3: Invalid argument\n', 1, null)).toMatchObject({
      code: 'MEMTIDE_ERR_AUDIO_DECODE',
      reason: 'ffmpeg could not decode it, exit code 1 (ffmpeg: something odd / x.mp3: Invalid argument)',
    });
    expect(ffmpegFailure('z.mp3', '', null, 'SIGKILL')).toMatchObject({ code: 'MEMTIDE_ERR_AUDIO_FFMPEG', reason: expect.stringContaining('killed by SIGKILL') });
  });

  it('binary: audio.ffmpegPath, else $FFMPEG_PATH, else the bundled binary, else ffmpeg on PATH', () => {
    const saved = process.env.FFMPEG_PATH;
    try {
      delete process.env.FFMPEG_PATH;
      const bundled = resolveFfmpegPath(null);
      expect(bundled).toMatch(/@ffmpeg-installer|^ffmpeg$/);
      expect(resolveFfmpegPath('/opt/ffmpeg')).toBe('/opt/ffmpeg');
      process.env.FFMPEG_PATH = '/usr/local/bin/ffmpeg';
      expect(resolveFfmpegPath(null)).toBe('/usr/local/bin/ffmpeg');
      expect(resolveFfmpegPath('/opt/ffmpeg')).toBe('/opt/ffmpeg');
    } finally {
      if (saved === undefined) delete process.env.FFMPEG_PATH;
      else process.env.FFMPEG_PATH = saved;
    }
  });
});
