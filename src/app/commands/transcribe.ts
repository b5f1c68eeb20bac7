import fs from 'node:fs';
import cliProgress from 'cli-progress';
import { catchError, distinctUntilChanged, EMPTY, map, of, scan, shareReplay, startWith, tap, type Observable, type Subscription } from 'rxjs';
import type { PressureChange } from '../../model.js';
import { parseBatchEvent, runnerEvents, runnerEventsUrl, type RunnerEventsNotice, type RunnerEventsOptions } from '../../sources/runnerEvents.js';
import { createTranscriber, inspectWhisperModel, TranscriberError, type Transcriber } from '../../sources/transcribers/index.js';
import { transcribeFiles, type TranscriptionEvent } from '../../streams/transcription.js';
import { CONFIG_FLAGS, oneOf, parse, UsageError } from '../cliArgs.js';
import { loadConfig, type MemtideConfig } from '../config.js';
import { createMemtide, type Memtide } from '../memtide.js';
import { TRANSCRIBERS } from '../schema/transcription.js';
import { formatDuration } from '../units.js';

export const transcribeHelp = `memtide transcribe FILE... [--transcriber whisper|server|none] [--model PATH] [--server URL]
                  [--chunk-seconds 30] [--concurrency N] [--out transcript.jsonl] [--stop-on-error]
                  [--ignore-pressure] [--follow URL] [--config FILE] [--set KEY=VALUE]...

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
  --follow URL      pause between chunks while the memtide runner at URL (its
                    dashboard, e.g. http://127.0.0.1:7071) holds batch work
                    (transcription.follow); hold start and end go to stderr. A
                    runner that cannot be reached does not hold (one warning;
                    it reconnects in the background)

Exit codes: 0 all files done, 1 a file failed (its error names the file and
the byte offset; lines already written are kept), 2 bad usage or config.`;

/** Where the command writes besides stdout (tests pass collectors). */
export interface TranscribeIo {
  stderr?: (text: string) => void;
  /** Draw a progress bar (default: stderr is a TTY). */
  progress?: boolean;
  /** Reconnect delays and timeouts of the --follow connection (tests shorten them). */
  follow?: RunnerEventsOptions;
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
  follow: { type: 'string' },
} as const;

function numberFlag(name: string, value: string | undefined, integer: boolean): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new UsageError(`--${name}: expected ${integer ? 'a whole number' : 'a number'}, got "${value}"`);
  }
  return n;
}

/** `--follow URL`: an http(s) URL with a host, or a usage error naming the flag. */
export function followFlag(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  let url: URL | null = null;
  try {
    url = new URL(value);
  } catch {
    url = null;
  }
  if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') {
    throw new UsageError(`--follow: expected the http:// URL of a running memtide runner (e.g. http://127.0.0.1:7071), got "${value}"`);
  }
  return value;
}

/** What following the runner has decided so far, and the lines to print for the last notice. */
export interface FollowState {
  hold: boolean;
  reason: string;
  /** A "not reachable" warning was printed and no connection has opened since. */
  warnedDown: boolean;
  lines: string[];
}

/** One step of following the runner: its `batch` events become the hold; a lost connection is no hold. */
export function followStep(state: FollowState, notice: RunnerEventsNotice): FollowState {
  const next: FollowState = { ...state, lines: [] };
  switch (notice.type) {
    case 'open':
      if (state.warnedDown) next.lines.push(`reconnected to ${notice.url}: following its batch hold again`);
      next.warnedDown = false;
      return next;
    case 'message': {
      if (notice.event !== 'batch') return next;
      let batch: ReturnType<typeof parseBatchEvent>;
      try {
        batch = parseBatchEvent(notice.data);
      } catch (error) {
        next.lines.push(`warning: ignored an event from the runner: ${(error as Error).message}`);
        return next;
      }
      if (batch.hold && !state.hold) next.lines.push(`batch hold (${batch.reason}): waiting; the chunk in flight finishes, no new chunk starts`);
      if (!batch.hold && state.hold) next.lines.push(`batch hold lifted (${batch.reason}): going on`);
      next.hold = batch.hold;
      next.reason = batch.reason;
      return next;
    }
    case 'down':
      if (!state.warnedDown) {
        next.lines.push(`warning: ${notice.error.message}; not held while it is unreachable, reconnecting in the background`);
        next.warnedDown = true;
      }
      if (state.hold) next.lines.push('batch hold ended (lost the runner): going on');
      next.hold = false;
      next.reason = '';
      return next;
  }
}

/**
 * The batch hold of the runner at `base` as booleans: false until its first
 * `batch` event, false while it is unreachable; never errors. `say` gets the
 * lines for stderr (hold start and end, warnings).
 */
export function followBatchHold(base: string, say: (line: string) => void, options: RunnerEventsOptions = {}): Observable<boolean> {
  const initial: FollowState = { hold: false, reason: '', warnedDown: false, lines: [] };
  return runnerEvents(runnerEventsUrl(base), options).pipe(
    scan(followStep, initial),
    tap((state) => state.lines.forEach(say)),
    map((state) => state.hold),
    startWith(false),
    distinctUntilChanged(),
    catchError((error: unknown) => {
      say(`warning: stopped following ${base}: ${String(error)}`);
      return of(false);
    }),
  );
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
    'transcription.follow': followFlag(values.follow),
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

  // --follow: the runner's batch hold. Shared, and watched for the whole run, so the
  // connection stays open between files (transcribeFiles subscribes once per file).
  let hold$: Observable<boolean> | undefined;
  let holdWatch: Subscription | undefined;
  const follow = config.transcription.follow;
  if (follow !== null) {
    hold$ = followBatchHold(follow, (line) => note(`memtide transcribe: ${line}\n`), io.follow).pipe(shareReplay({ bufferSize: 1, refCount: true }));
    holdWatch = hold$.subscribe({ error: (error: unknown) => note(`memtide transcribe: warning: following ${follow} failed: ${String(error)}\n`) });
  }

  let summary: Extract<TranscriptionEvent, { type: 'done' }> | null = null;
  try {
    await new Promise<void>((resolve, reject) => {
      transcribeFiles(positionals, {
        transcriber,
        audio: config.audio,
        transcription: config.transcription,
        pressure$,
        ...(hold$ ? { hold$ } : {}),
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
    holdWatch?.unsubscribe(); // closes the runner connection and cancels its reconnect timer
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
