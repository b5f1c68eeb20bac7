/**
 * Decodes anything ffmpeg reads (MP3, OGG/Vorbis/Opus, FLAC, M4A/AAC, WebM,
 * and WAV codecs the in-process parser does not do) to 16 kHz mono s16le,
 * as an async iterable of Int16Array blocks.
 *
 * ffmpeg is spawned directly rather than through prism-media's `FFmpeg`
 * transform because prism-media 1.3.5 picks the binary once per process from
 * a fixed list (ffmpeg-static, then `ffmpeg` on PATH) with no way to pass the
 * bundled binary's path or `audio.ffmpegPath`, discards ffmpeg's stderr and
 * exit status (so failures could not be explained), and always reads from
 * stdin, where M4A files with the index at the end cannot be decoded. The
 * arguments are the same (`-i … -f s16le -ar 16000 -ac 1`).
 *
 * Backpressure: ffmpeg's stdout is read only as blocks are pulled; when the
 * consumer stops pulling, the pipe fills and ffmpeg blocks in write(), and
 * when fed from a stream, its stdin is written through `pipeline`, which
 * pauses the input while ffmpeg is not reading.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AudioDecodeError } from './wavParser.js';

export interface FfmpegDecodeOptions {
  /** Label for errors (the file name). */
  source: string;
  /** The ffmpeg binary; null: FFMPEG_PATH, then the bundled binary, then `ffmpeg` on PATH. */
  ffmpegPath: string | null;
  /** Called with each line ffmpeg writes to stderr during a decode that still succeeds (damaged frames skipped). */
  onWarning?: (message: string) => void;
}

/** Input: a file path (ffmpeg opens it itself, so it can seek) or bytes to pipe into its stdin. */
export type FfmpegInput = string | NodeJS.ReadableStream | AsyncIterable<Uint8Array>;

const STDERR_TAIL_BYTES = 8192;
const LITTLE_ENDIAN = os.endianness() === 'LE';

let bundled: string | null | undefined;

/** Path of the ffmpeg binary shipped by `@ffmpeg-installer/ffmpeg`, or null when it is missing for this platform. */
export function bundledFfmpegPath(): string | null {
  if (bundled !== undefined) return bundled;
  try {
    const installer = createRequire(import.meta.url)('@ffmpeg-installer/ffmpeg') as { path?: string };
    bundled = installer.path && existsSync(installer.path) ? installer.path : null;
  } catch {
    bundled = null;
  }
  return bundled;
}

/** The binary to run: the configured path, else FFMPEG_PATH, else the bundled one, else `ffmpeg` from PATH. */
export function resolveFfmpegPath(configured: string | null): string {
  if (configured) return configured;
  const fromEnv = process.env.FFMPEG_PATH;
  if (fromEnv) return fromEnv;
  return bundledFfmpegPath() ?? 'ffmpeg';
}

/** ffmpeg's arguments for reading `input` ('-' = stdin) and writing 16 kHz mono s16le to stdout. */
export function ffmpegArgs(input: string): string[] {
  return [
    '-hide_banner',
    ...(input === '-' ? [] : ['-nostdin']),
    '-loglevel',
    'error',
    // Start decoding at once instead of probing ~5 s of input first.
    '-analyzeduration',
    '0',
    '-i',
    input === '-' ? 'pipe:0' : input,
    // The first audio stream; a file without one fails with "matches no streams".
    '-map',
    '0:a:0',
    '-vn',
    '-f',
    's16le',
    '-acodec',
    'pcm_s16le',
    '-ar',
    '16000',
    '-ac',
    '1',
    'pipe:1',
  ];
}

/** The last non-empty lines of ffmpeg's stderr (the reason is usually the last line, the context the one before). */
function lastLines(stderr: string, count = 2): string {
  const lines = stderr
    .split(/\r?\n/)
    // "[mp3 @ 0x55d0c8]" -> "[mp3]": the pointer only makes messages differ between runs.
    .map((line) => line.trim().replace(/\[(\S+) @ 0x[0-9a-f]+\]/g, '[$1]'))
    // ffmpeg's advice about -map options memtide chose on purpose.
    .filter((line) => line && !/^To ignore this, add a trailing/.test(line));
  return lines.slice(-count).join(' / ');
}

/** Turns a failed run into an error with a code people can act on. */
export function ffmpegFailure(source: string, stderr: string, code: number | null, signal: NodeJS.Signals | null): AudioDecodeError {
  const said = lastLines(stderr);
  const tail = said ? `ffmpeg: ${said}` : `ffmpeg exited with ${signal ? `signal ${signal}` : `code ${code}`} and no message`;
  if (/matches no streams|does not contain any stream|no audio stream/i.test(stderr)) {
    return new AudioDecodeError('MEMTIDE_ERR_AUDIO_NOT_AUDIO', source, null, `no audio stream in this file (${tail})`);
  }
  if (/Invalid data found when processing input/i.test(stderr)) {
    return new AudioDecodeError('MEMTIDE_ERR_AUDIO_NOT_AUDIO', source, null, `not an audio file ffmpeg can read (${tail})`);
  }
  if (/decoder .*not found|unknown decoder|unsupported codec|not supported|could not find codec parameters|no decoder/i.test(stderr)) {
    return new AudioDecodeError('MEMTIDE_ERR_AUDIO_UNSUPPORTED', source, null, `unsupported codec or container (${tail})`);
  }
  if (signal) return new AudioDecodeError('MEMTIDE_ERR_AUDIO_FFMPEG', source, null, `ffmpeg was killed by ${signal} (${tail})`);
  return new AudioDecodeError('MEMTIDE_ERR_AUDIO_DECODE', source, null, `ffmpeg could not decode it, exit code ${code} (${tail})`);
}

/**
 * Decodes `input` to 16 kHz mono Int16 blocks with ffmpeg. Returning early
 * (break, or an error downstream) kills ffmpeg and stops feeding it.
 * Errors are {@link AudioDecodeError}s: MEMTIDE_ERR_AUDIO_FFMPEG (cannot run
 * ffmpeg), _NOT_AUDIO, _UNSUPPORTED, _DECODE (reason from ffmpeg's stderr).
 */
export async function* ffmpegDecode(input: FfmpegInput, options: FfmpegDecodeOptions): AsyncGenerator<Int16Array, void, undefined> {
  const command = resolveFfmpegPath(options.ffmpegPath);
  const fromPath = typeof input === 'string';
  const child = spawn(command, ffmpegArgs(fromPath ? input : '-'), {
    stdio: [fromPath ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    windowsHide: true,
  });

  let stderr = '';
  // stdio is ['ignore' | 'pipe', 'pipe', 'pipe']: stdout and stderr always exist.
  const out = child.stdout!;
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (text: string) => {
    stderr = (stderr + text).slice(-STDERR_TAIL_BYTES);
  });
  let spawnError: NodeJS.ErrnoException | null = null;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('error', (error: NodeJS.ErrnoException) => {
      spawnError = error;
      resolve({ code: null, signal: null });
    });
    child.once('close', (code, signal) => resolve({ code, signal }));
  });

  let inputError: unknown = null;
  const feeding = new AbortController();
  if (!fromPath && child.stdin) {
    const stdin = child.stdin;
    // ffmpeg closes its stdin when it gives up (not audio) or has read enough: EPIPE then is expected, not the error.
    stdin.on('error', () => {});
    const readable = input instanceof Readable ? input : Readable.from(input as AsyncIterable<Uint8Array>, { objectMode: false });
    pipeline(readable, stdin, { signal: feeding.signal }).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE' && error.code !== 'ERR_STREAM_PREMATURE_CLOSE' && error.name !== 'AbortError') inputError = error;
    });
  }

  let finished = false;
  try {
    // A byte of a sample split across two reads waits here for its other half.
    let odd: number | null = null;
    for await (const data of out as AsyncIterable<Buffer>) {
      let bytes: Uint8Array = data;
      if (odd !== null) {
        const joined = new Uint8Array(bytes.length + 1);
        joined[0] = odd;
        joined.set(bytes, 1);
        bytes = joined;
        odd = null;
      }
      const samples = bytes.length >> 1;
      if (bytes.length & 1) odd = bytes[bytes.length - 1]!;
      if (samples === 0) continue;
      // Copied out of the pipe's pooled buffer so nothing downstream pins it.
      const block = new Int16Array(samples);
      new Uint8Array(block.buffer).set(bytes.subarray(0, samples * 2));
      if (!LITTLE_ENDIAN) for (let i = 0; i < samples; i++) block[i] = ((block[i]! & 0xff) << 8) | ((block[i]! >> 8) & 0xff);
      yield block;
    }
    const { code, signal } = await exited;
    finished = true;
    if (spawnError !== null) {
      const error = spawnError as NodeJS.ErrnoException;
      const why = error.code === 'ENOENT' ? 'not found' : error.code === 'EACCES' ? 'not executable' : error.message;
      throw new AudioDecodeError(
        'MEMTIDE_ERR_AUDIO_FFMPEG',
        options.source,
        null,
        `cannot run ffmpeg "${command}" (${why}); it decodes every format but WAV: set audio.ffmpegPath or install ffmpeg`,
        { cause: error },
      );
    }
    if (code !== 0) throw ffmpegFailure(options.source, stderr, code, signal);
    if (inputError !== null) {
      const error = inputError as Error;
      throw new AudioDecodeError('MEMTIDE_ERR_AUDIO_READ', options.source, null, `reading the input failed: ${error.message}`, { cause: error });
    }
    if (stderr.trim() && options.onWarning) {
      for (const line of stderr.split(/\r?\n/).filter((l) => l.trim())) options.onWarning(`${options.source}: ffmpeg: ${line.trim()}`);
    }
  } finally {
    if (!finished) {
      feeding.abort();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  }
}
