/**
 * Audio in, transcript segments out: decoder → chunks → transcribeBounded.
 *
 * The pipeline is pull-based end to end. `transcribeBounded` announces demand
 * (one chunk per free queue slot); `pullOnDemand` reads exactly that many
 * chunks from the decoder's AsyncIterable (`audioChunks`), which reads the
 * file only as far as those chunks need. When the transcriber is slow (or
 * paused by critical pressure) the queue stays full, no demand is announced,
 * and the file read pauses: memory holds at most maxQueuedChunks + concurrency
 * chunks plus one read buffer, whatever the file's length. A batch hold
 * (`hold$`, the coordinator's "batch transcription yields to the summary
 * model") stops the demand the same way: the read pauses where it is, and
 * resumes there when the hold is lifted.
 *
 * Several files are processed one after another, never at once: the next
 * file is opened only after the previous one's last chunk is transcribed.
 *
 * A file that fails (corrupt, truncated, not audio, or a chunk the engine
 * could not transcribe) ends with a `file-error` event naming the file and,
 * for bad audio, the byte offset; the segments before the failure have already
 * been emitted (kept). Then, by default, the remaining files are still
 * processed (`stopOnError: false`); the caller turns any `file-error` into a
 * non-zero exit. With `stopOnError: true` the run ends after the first failure.
 */
import { concat, defer, EMPTY, map, Observable, of, Subject, catchError, type SchedulerLike } from 'rxjs';
import type { AudioChunk, PressureChange } from '../model.js';
import { transcribeBounded, type TranscribeBoundedConfig, type TranscribedChunk, type TranscribeStats } from '../operators/transcribeBounded.js';
import { audioChunks, pullOnDemand, type AudioInput, type AudioSourceConfig } from '../sources/audio/audioSource.js';
import type { Transcriber } from '../sources/transcribers/transcriber.js';

export interface TranscriptionOptions {
  transcriber: Transcriber;
  /** Chunking and decoding (`audio` config section). */
  audio: AudioSourceConfig;
  /** Concurrency and queue bounds (`transcription` config section), or an Observable of them. */
  transcription: TranscribeBoundedConfig | Observable<TranscribeBoundedConfig>;
  pressure$?: Observable<PressureChange>;
  /**
   * Batch hold (e.g. `memtide.batchHold$` mapped to `hold`): while true no new
   * chunk starts and nothing more is read from the file (the pull stops),
   * chunks in flight finish, then the transcriber is asked to unload; false
   * resumes in order. Subscribed once per file, so it should replay its latest
   * value (`batchHold$` does). Default: never held.
   */
  hold$?: Observable<boolean>;
  /** Queue and buffer sizes of the file being transcribed, after every change. */
  onStats?(stats: TranscribeStats & { file: string }): void;
  /** ffmpeg's warnings for damaged-but-decodable input. */
  onWarning?(message: string): void;
  /** Opens a file's chunks (default `audioChunks`); tests instrument it. */
  openChunks?(input: AudioInput, audio: AudioSourceConfig, source: string): AsyncIterable<AudioChunk>;
  /** End the run at the first failed file (default false: go on with the next). */
  stopOnError?: boolean;
  scheduler?: SchedulerLike;
}

/** Per-file outcome: `durationMs` is the audio's length (the last chunk's end). */
export interface FileSummary {
  file: string;
  chunks: number;
  durationMs: number;
  error: Error | null;
}

export type TranscriptionEvent =
  | { type: 'file-start'; file: string; index: number }
  | { type: 'segment'; segment: TranscribedChunk }
  | ({ type: 'file-end' } & FileSummary & { error: null })
  | ({ type: 'file-error' } & FileSummary & { error: Error })
  | { type: 'done'; files: number; chunks: number; durationMs: number; failed: number; perFile: FileSummary[] };

/**
 * One input's segments, in order. Errors: the decoder's `AudioDecodeError`
 * (file and byte offset) after the chunks before it are transcribed, or a
 * `TranscribeError` for a chunk the engine failed on.
 */
export function transcribeInput(input: AudioInput, source: string, options: TranscriptionOptions): Observable<TranscribedChunk> {
  return defer(() => {
    const demand = new Subject<void>();
    const open = options.openChunks ?? ((i, audio, label) => audioChunks(i, audio, { source: label, ...(options.onWarning ? { onWarning: options.onWarning } : {}) }));
    return pullOnDemand(open(input, options.audio, source), demand).pipe(
      transcribeBounded(
        options.transcriber,
        options.transcription,
        options.pressure$ ?? EMPTY,
        {
          onDemand: (count) => {
            for (let i = 0; i < count; i += 1) demand.next();
          },
          ...(options.onStats ? { onStats: (stats: TranscribeStats) => options.onStats?.({ ...stats, file: source }) } : {}),
          ...(options.hold$ ? { hold$: options.hold$ } : {}),
        },
        options.scheduler,
      ),
    );
  });
}

const asError = (error: unknown): Error => (error instanceof Error ? error : new Error(String(error)));

/** Files one after another (see the module comment); events in order, then one `done`. */
export function transcribeFiles(files: readonly string[], options: TranscriptionOptions): Observable<TranscriptionEvent> {
  return defer(() => {
    const perFile: FileSummary[] = [];
    let stopped = false;
    const one = (file: string, index: number): Observable<TranscriptionEvent> =>
      defer(() => {
        if (stopped) return EMPTY;
        const summary: FileSummary = { file, chunks: 0, durationMs: 0, error: null };
        perFile.push(summary);
        const segments = transcribeInput(file, file, options).pipe(
          map((segment): TranscriptionEvent => {
            summary.chunks += 1;
            summary.durationMs = Math.max(summary.durationMs, segment.endMs);
            return { type: 'segment', segment };
          }),
        );
        const end = defer(() => of<TranscriptionEvent>({ type: 'file-end', ...summary, error: null }));
        return concat(of<TranscriptionEvent>({ type: 'file-start', file, index }), segments, end).pipe(
          catchError((error: unknown) => {
            summary.error = asError(error);
            if (options.stopOnError) stopped = true;
            return of<TranscriptionEvent>({ type: 'file-error', ...summary, error: summary.error });
          }),
        );
      });
    const done = defer(() =>
      of<TranscriptionEvent>({
        type: 'done',
        files: perFile.length,
        chunks: perFile.reduce((n, f) => n + f.chunks, 0),
        durationMs: perFile.reduce((n, f) => n + f.durationMs, 0),
        failed: perFile.filter((f) => f.error !== null).length,
        perFile: perFile.map((f) => ({ ...f })),
      }),
    );
    return concat(...files.map(one), done);
  });
}
