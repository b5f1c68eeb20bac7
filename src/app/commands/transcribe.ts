import fs from 'node:fs';
import cliProgress from 'cli-progress';
import { EMPTY, type Observable } from 'rxjs';
import type { PressureChange } from '../../model.js';
import { createTranscriber, inspectWhisperModel, TranscriberError, type Transcriber } from '../../sources/transcribers/index.js';
import { transcribeFiles, type TranscriptionEvent } from '../../streams/transcription.js';
import { CONFIG_FLAGS, oneOf, parse, UsageError } from '../cliArgs.js';
import { loadConfig, type MemtideConfig } from '../config.js';
import { createMemtide, type Memtide } from '../memtide.js';
import { TRANSCRIBERS } from '../schema/transcription.js';
import { formatDuration } from '../units.js';

export const transcribeHelp = `memtide transcribe FILE... [--transcriber whisper|server|none] [--model PATH] [--server URL]
                  [--chunk-seconds 30] [--concurrency N] [--out transcript.jsonl] [--stop-on-error]
                  [--ignore-pressure] [--config FILE] [--set KEY=VALUE]...

Transcribes audio files (WAV in-process; MP3, OGG, FLAC, M4A, WebM through
ffmpeg) one after another, in bounded 16 kHz chunks: memory does not grow with
the length of a file, and the file read pauses while chunks wait for the
transcriber. Concurrency follows memory pressure (sampled while it runs):
halved at high, paused (or one at a time) at critical.

Output: one JSON line per chunk, { file, startMs, endMs, text }, written as
each chunk completes, to --out FILE or stdout. --transcriber none decodes and
chunks only and prints a JSON summary { files, chunks, durationMs, perFile }.

  --transcriber     whisper (in-process whisper.cpp, needs --model), server
                    (whisper-server at --server), none (dry run)
  --model PATH      whisper.cpp ggml model (transcription.modelPath)
  --server URL      whisper-server base URL (transcription.serverUrl)
  --chunk-seconds   chunk length (audio.chunkSeconds, default 30)
  --concurrency N   chunks at once at low pressure (transcription.maxConcurrent)
  --out FILE        write the JSON lines here (completed lines survive a later failure)
  --stop-on-error   stop at the first file that fails (default: go on with the next)
  --ignore-pressure do not sample memory pressure

Exit codes: 0 all files done, 1 a file failed (its error names the file and
the byte offset; lines already written are kept), 2 bad usage or config.`;

/** Where the command writes besides stdout (tests pass collectors). */
export interface TranscribeIo {
  stderr?: (text: string) => void;
  /** Draw a progress bar (default: stderr is a TTY). */
  progress?: boolean;
}

const FLAGS = {
  ...CONFIG_FLAGS,
  transcriber: { type: 'string' },
  model: { type: 'string', short: 'm' },
  server: { type: 'string' },
  'chunk-seconds': { type: 'string' },
  concurrency: { type: 'string' },
  out: { type: 'string', short: 'o' },
  'stop-on-error': { type: 'boolean' },
  'ignore-pressure': { type: 'boolean' },
} as const;

function numberFlag(name: string, value: string | undefined, integer: boolean): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new UsageError(`--${name}: expected ${integer ? 'a whole number' : 'a number'}, got "${value}"`);
  }
  return n;
}

/** One JSON line per transcript segment: `{ file, startMs, endMs, text }`. */
export function segmentLine(segment: { file: string; startMs: number; endMs: number; text: string }): string {
  const { file, startMs, endMs, text } = segment;
  return `${JSON.stringify({ file, startMs, endMs, text })}\n`;
}

/** The error as one line naming the file (decoder errors already start with it and carry the byte offset). */
function fileErrorLine(file: string, error: Error): string {
  const code = (error as { code?: string }).code;
  const message = error.message.includes(file) ? error.message : `${file}: ${error.message}`;
  return `memtide transcribe: ${message}${code ? ` [${code}]` : ''}\n`;
}

export async function transcribeCommand(args: string[], out: (text: string) => void, io: TranscribeIo = {}): Promise<number> {
  const { values, positionals } = parse(args, FLAGS);
  const stderr = io.stderr ?? ((text: string) => void process.stderr.write(text));
  if (values.help) {
    out(`${transcribeHelp}\n`);
    return 0;
  }
  if (positionals.length === 0) throw new UsageError('no input files: memtide transcribe FILE... (see --help)');
  const kind = values.transcriber === undefined ? undefined : oneOf('transcriber', values.transcriber, TRANSCRIBERS, 'whisper');
  const flags = {
    'transcription.transcriber': kind,
    'transcription.modelPath': values.model,
    'transcription.serverUrl': values.server,
    'audio.chunkSeconds': numberFlag('chunk-seconds', values['chunk-seconds'], false),
    'transcription.maxConcurrent': numberFlag('concurrency', values.concurrency, true),
  };
  const configOptions = { file: values.config, set: values.set ?? [], flags };
  const config: MemtideConfig = loadConfig(configOptions);
  const dryRun = config.transcription.transcriber === 'none';

  let transcriber: Transcriber;
  try {
    transcriber = createTranscriber(config.transcription);
    // A missing or broken model is a usage problem: say so before any file is opened.
    if (config.transcription.transcriber === 'whisper' && config.transcription.modelPath !== null) inspectWhisperModel(config.transcription.modelPath);
  } catch (error) {
    if (error instanceof TranscriberError) throw new UsageError(error.message);
    throw error;
  }

  // Memory pressure while transcribing (the dry run does not transcribe: nothing to slow down).
  let memtide: Memtide | null = null;
  let pressure$: Observable<PressureChange> = EMPTY;
  if (!dryRun && !values['ignore-pressure']) {
    memtide = createMemtide({ mode: 'embedded', ...(values.config ? { configFile: values.config } : {}), set: values.set ?? [], flags });
    pressure$ = memtide.pressure$;
  }

  let fd: number | null = null;
  if (values.out !== undefined && !dryRun) {
    try {
      fd = fs.openSync(values.out, 'w');
    } catch (error) {
      await transcriber.unload();
      memtide?.stop();
      throw new Error(`--out ${values.out}: cannot open it for writing: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
  }
  // One write per line, synchronous for the file: a completed line is on disk before the next chunk, never half of one.
  const writeLine = (line: string) => (fd !== null ? fs.writeSync(fd, line) : out(line));

  const progress = {
    files: 0,
    chunks: 0,
    audioMs: 0,
    file: '',
    payload() {
      return { chunks: this.chunks, audio: formatDuration(this.audioMs), file: this.file };
    },
  };
  const showProgress = io.progress ?? process.stderr.isTTY === true;
  const bar = showProgress
    ? new cliProgress.SingleBar(
        { format: ' {bar} {value}/{total} files | {chunks} chunks | {audio} of audio | {file}', hideCursor: true, stream: process.stderr },
        cliProgress.Presets.shades_classic,
      )
    : null;
  const note = (text: string) => {
    if (bar) bar.stop();
    stderr(text);
    if (bar) bar.start(positionals.length, progress.files, progress.payload());
  };
  bar?.start(positionals.length, 0, progress.payload());

  const pressureWatch = pressure$.subscribe({
    next: (change) => {
      if (change.previous === null && change.level === 'low') return;
      const what =
        change.level === 'critical'
          ? config.transcription.criticalConcurrency === 0
            ? 'transcription paused until memory recovers'
            : 'one chunk at a time'
          : change.level === 'high'
            ? 'fewer chunks at once'
            : 'full speed';
      note(`memtide transcribe: memory pressure ${change.level} (${change.reasons.join('; ') || 'recovered'}): ${what}\n`);
    },
    error: (error: unknown) => note(`memtide transcribe: memory sampling failed, going on without it: ${String(error)}\n`),
  });

  let summary: Extract<TranscriptionEvent, { type: 'done' }> | null = null;
  try {
    await new Promise<void>((resolve, reject) => {
      transcribeFiles(positionals, {
        transcriber,
        audio: config.audio,
        transcription: config.transcription,
        pressure$,
        stopOnError: values['stop-on-error'] === true,
        onWarning: (message) => note(`memtide transcribe: warning: ${message}\n`),
      }).subscribe({
        next: (event) => {
          switch (event.type) {
            case 'file-start':
              progress.file = event.file;
              break;
            case 'segment':
              if (!dryRun) writeLine(segmentLine(event.segment));
              progress.chunks += 1;
              progress.audioMs += event.segment.endMs - event.segment.startMs;
              break;
            case 'file-end':
              progress.files += 1;
              break;
            case 'file-error':
              progress.files += 1;
              note(fileErrorLine(event.file, event.error));
              break;
            case 'done':
              summary = event;
              break;
          }
          bar?.update(progress.files, progress.payload());
        },
        error: reject,
        complete: resolve,
      });
    });
  } finally {
    bar?.stop();
    pressureWatch.unsubscribe();
    memtide?.stop();
    await transcriber.unload();
    if (fd !== null) fs.closeSync(fd);
  }
  const done = summary as Extract<TranscriptionEvent, { type: 'done' }> | null;
  if (!done) return 1;
  if (dryRun) {
    const perFile = done.perFile.map((f) => ({ file: f.file, chunks: f.chunks, durationMs: f.durationMs, ...(f.error ? { error: f.error.message } : {}) }));
    out(`${JSON.stringify({ files: done.files, chunks: done.chunks, durationMs: done.durationMs, perFile }, null, 2)}\n`);
  } else if (showProgress) {
    stderr(`memtide transcribe: ${done.chunks} chunks, ${formatDuration(done.durationMs)} of audio from ${done.files} files${done.failed ? `, ${done.failed} failed` : ''}\n`);
  }
  return done.failed > 0 ? 1 : 0;
}
