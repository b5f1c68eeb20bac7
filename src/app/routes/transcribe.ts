/**
 * `POST /v1/transcribe`: an audio upload in, NDJSON transcript out, through
 * the same bounded pipeline as `memtide transcribe`.
 *
 * - Streaming: the request body is fed to the decoder as it arrives and is
 *   read only as fast as chunks are transcribed (TCP backpressure reaches the
 *   client); the body is never buffered whole. Each segment is written as one
 *   line when its chunk completes: `{ file, startMs, endMs, text }`; the last
 *   line is `{ done: true, file, chunks, durationMs }`.
 * - Content type: audio/wav, audio/x-wav, audio/wave, audio/vnd.wave,
 *   audio/mpeg, audio/mp3, audio/ogg, audio/opus, audio/flac, audio/x-flac,
 *   audio/webm, audio/mp4, audio/m4a, audio/x-m4a, application/octet-stream
 *   (sniffed); anything else is 415 before a byte is read.
 * - Size: `transcription.uploadLimitBytes`. A larger Content-Length is 413 at
 *   once; a body that passes the limit while streaming is cut there (reading
 *   stops): 413 if no segment was sent yet, else an error line.
 * - Errors before the first segment get a status (400 bad audio naming the
 *   byte offset, 413, 502/504 whisper-server, 500); after it, an error line
 *   `{ error, code }` ends the stream (segments already sent stand).
 * - One transcription at a time (files are never transcribed at once, seed
 *   5.5): a second upload while one runs is 429 with Retry-After.
 * - Chunks at once follow `transcription.maxConcurrent` and pressure, and
 *   the coordinator's cap (`setConcurrencyCap`), which applies to the
 *   transcription already running (fewer whisper copies at once).
 * - An upload is batch work: while the coordinator holds batch
 *   transcription (`memtide.batchHold$`, `optimization.batchYield`) no new
 *   chunk starts and the body is not read further (the client's upload
 *   waits on TCP backpressure), the chunk in flight finishes, the whisper
 *   model is unloaded; the transcription resumes where it stopped.
 * - It runs the model (hundreds of MB, minutes of CPU): state-changing work,
 *   so the route is mutating and needs the bearer token, like every POST.
 * - Query `?name=meeting.mp3` labels the upload in segments and errors.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import { BehaviorSubject, distinctUntilChanged, map, type Observable, type Subscription } from 'rxjs';
import type { BatchHold } from '../../operators/yieldBatch.js';
import { TranscribeError, type TranscribeBoundedConfig, type TranscribeStats } from '../../operators/transcribeBounded.js';
import { AudioDecodeError } from '../../sources/audio/audioSource.js';
import { createTranscriber, TranscriberError, type Transcriber } from '../../sources/transcribers/index.js';
import { transcribeInput } from '../../streams/transcription.js';
import type { MemtideConfig } from '../config.js';
import type { TranscriptionConfig } from '../schema/transcription.js';
import { HttpError } from '../http.js';
import type { Route, RouteContext, RouteModule } from '../router.js';

export const ACCEPTED_AUDIO_TYPES: readonly string[] = [
  'audio/wav',
  'audio/x-wav',
  'audio/wave',
  'audio/vnd.wave',
  'audio/mpeg',
  'audio/mp3',
  'audio/ogg',
  'audio/opus',
  'audio/flac',
  'audio/x-flac',
  'audio/webm',
  'audio/mp4',
  'audio/m4a',
  'audio/x-m4a',
  'application/octet-stream',
];

/** The transcriber and the one-at-a-time slot shared by the route's requests. */
export interface TranscriptionService {
  /** 16 kHz samples queued or being transcribed now (for `memtide_transcription_queue_samples`). */
  queuedSamples(): number;
  readonly busy: boolean;
  /** The transcriber for the config in force (built lazily, rebuilt when its settings change). */
  transcriber(config: MemtideConfig): Transcriber;
  /** Marks the slot taken; returns false when a transcription already runs. */
  acquire(): boolean;
  release(): void;
  report(stats: TranscribeStats | null): void;
  /** What the coordinator's budget balancing reads: chunks in flight and chunks allowed at once now. */
  activity(): { busy: boolean; inFlightChunks: number; concurrency: number };
  /**
   * A ceiling on chunks transcribed at once (the coordinator's); null lifts
   * it. Applies at once to a transcription already running.
   */
  setConcurrencyCap(chunks: number | null): void;
  concurrencyCap(): number | null;
  /** `transcription`'s bounds with the cap applied, following the cap while a transcription runs. */
  bounds(transcription: TranscriptionConfig): Observable<TranscribeBoundedConfig>;
  /** Unloads the model. */
  close(): Promise<void>;
}

export class TranscriptionServiceError extends Error {
  readonly code = 'MEMTIDE_ERR_TRANSCRIPTION_CAP';
  constructor(message: string) {
    super(message);
    this.name = 'TranscriptionServiceError';
  }
}

/** The bounds with at most `cap` chunks at once (maxConcurrent caps the pressure levels' values too). */
export function cappedBounds(transcription: TranscribeBoundedConfig, cap: number | null): TranscribeBoundedConfig {
  if (cap === null || cap >= transcription.maxConcurrent) return transcription;
  return { ...transcription, maxConcurrent: cap, highConcurrency: transcription.highConcurrency == null ? null : Math.min(transcription.highConcurrency, cap) };
}

export function createTranscriptionService(): TranscriptionService {
  let current: { key: string; transcriber: Transcriber } | null = null;
  let busy = false;
  let stats: TranscribeStats | null = null;
  const cap = new BehaviorSubject<number | null>(null);
  return {
    queuedSamples: () => (stats ? stats.queuedSamples + stats.inFlightSamples : 0),
    get busy() {
      return busy;
    },
    transcriber(config) {
      const t = config.transcription;
      const key = JSON.stringify([t.transcriber, t.modelPath, t.serverUrl, t.threads, t.language, t.translate, t.temperature, t.maxConcurrent, t.idleUnloadMs, t.requestTimeoutMs]);
      if (current?.key !== key) {
        const next = createTranscriber(t);
        void current?.transcriber.unload();
        current = { key, transcriber: next };
      }
      return current.transcriber;
    },
    acquire() {
      if (busy) return false;
      busy = true;
      return true;
    },
    release() {
      busy = false;
      stats = null;
    },
    report(next) {
      stats = next;
    },
    activity: () => ({ busy, inFlightChunks: stats?.inFlight ?? 0, concurrency: stats?.concurrency ?? 1 }),
    setConcurrencyCap(chunks) {
      if (chunks !== null && !(Number.isInteger(chunks) && chunks >= 1)) {
        throw new TranscriptionServiceError(`concurrency cap: expected a whole number of chunks >= 1 or null, got ${String(chunks)}`);
      }
      cap.next(chunks);
    },
    concurrencyCap: () => cap.getValue(),
    bounds: (transcription) =>
      cap.pipe(
        distinctUntilChanged(),
        map((chunks) => cappedBounds(transcription, chunks)),
      ),
    close: async () => {
      const transcriber = current?.transcriber;
      current = null;
      await transcriber?.unload();
    },
  };
}

/** Passes the body through, counting; past `limit` it stops reading the request and fails. */
class UploadLimit extends Transform {
  received = 0;
  exceeded = false;
  constructor(
    private readonly req: IncomingMessage,
    private readonly limit: number,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.received += chunk.length;
    if (this.received > this.limit) {
      this.exceeded = true;
      this.req.unpipe(this);
      this.req.pause();
      callback(new HttpError(413, 'MEMTIDE_ERR_BODY_TOO_LARGE', `upload exceeds transcription.uploadLimitBytes (${this.limit} bytes)`));
      return;
    }
    callback(null, chunk);
  }
}

/** The HTTP status and code for an error that ends a transcription before any output. */
function statusOf(error: unknown): { status: number; code: string; message: string } {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof HttpError) return { status: error.status, code: error.code, message };
  if (error instanceof AudioDecodeError) return { status: error.code === 'MEMTIDE_ERR_AUDIO_TOO_LARGE' ? 413 : 400, code: error.code, message };
  const cause = error instanceof TranscribeError ? error.cause : error;
  if (cause instanceof TranscriberError) {
    const status = cause.code === 'MEMTIDE_ERR_TRANSCRIBER_TIMEOUT' ? 504 : cause.code === 'MEMTIDE_ERR_TRANSCRIBER_UNREACHABLE' || cause.code === 'MEMTIDE_ERR_TRANSCRIBER_SERVER' ? 502 : cause.code === 'MEMTIDE_ERR_TRANSCRIBER_CONFIG' || cause.code === 'MEMTIDE_ERR_TRANSCRIBER_MODEL' ? 503 : 500;
    return { status, code: cause.code, message };
  }
  const code = (error as { code?: unknown }).code;
  return { status: 500, code: typeof code === 'string' ? code : 'MEMTIDE_ERR_INTERNAL', message };
}

function label(url: URL): string {
  const name = url.searchParams.get('name');
  if (name === null) return 'upload';
  if (name.length === 0 || name.length > 200 || /[\u0000-\u001f]/.test(name)) throw new HttpError(400, 'MEMTIDE_ERR_BAD_NAME', 'name: 1 to 200 printable characters', 'name');
  return name;
}

/** The coordinator's batch hold as the pipeline's `hold$` (test doubles of the engine may have none). */
function holdOf(batchHold$: Observable<BatchHold> | undefined): { hold$?: Observable<boolean> } {
  if (!batchHold$) return {};
  return {
    hold$: batchHold$.pipe(
      map((h) => h.hold),
      distinctUntilChanged(),
    ),
  };
}

export function transcribeHandler(context: RouteContext, service: TranscriptionService) {
  return async (req: IncomingMessage, res: ServerResponse, _params: Record<string, string>, url: URL): Promise<void> => {
    const config = context.config();
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (!ACCEPTED_AUDIO_TYPES.includes(type)) {
      throw new HttpError(415, 'MEMTIDE_ERR_CONTENT_TYPE', `expected an audio upload (${ACCEPTED_AUDIO_TYPES.join(', ')}), got "${type || 'none'}"`, undefined, { connection: 'close' });
    }
    const limit = config.transcription.uploadLimitBytes;
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      throw new HttpError(413, 'MEMTIDE_ERR_BODY_TOO_LARGE', `upload of ${declared} bytes exceeds transcription.uploadLimitBytes (${limit} bytes)`, undefined, { connection: 'close' });
    }
    const source = label(url);
    if (!service.acquire()) {
      throw new HttpError(429, 'MEMTIDE_ERR_TRANSCRIBE_BUSY', 'a transcription is running; uploads are transcribed one at a time', undefined, {
        'retry-after': '10',
        connection: 'close',
      });
    }
    let transcriber: Transcriber;
    try {
      transcriber = service.transcriber(config);
    } catch (error) {
      service.release();
      const { status, code, message } = statusOf(error);
      throw new HttpError(status, code, message, undefined, { connection: 'close' });
    }

    const body = new UploadLimit(req, limit);
    req.pipe(body);
    let headersSent = false;
    let chunks = 0;
    let durationMs = 0;
    const start = () => {
      if (headersSent) return;
      headersSent = true;
      res.writeHead(200, {
        'content-type': 'application/x-ndjson; charset=utf-8',
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
        connection: 'close',
      });
    };

    await new Promise<void>((resolve) => {
      let subscription: Subscription | null = null;
      const finish = () => {
        service.release();
        res.off('close', onClose);
        resolve();
      };
      // The client went away: cancel (aborts the chunk in flight, closes the decoder).
      const onClose = () => {
        subscription?.unsubscribe();
        body.destroy();
        finish();
      };
      res.on('close', onClose);
      subscription = transcribeInput(body, source, {
        transcriber,
        audio: config.audio,
        transcription: service.bounds(config.transcription),
        pressure$: context.memtide.pressure$,
        ...holdOf(context.memtide.batchHold$ as Observable<BatchHold> | undefined),
        onStats: (stats) => service.report(stats),
      }).subscribe({
        next: (segment) => {
          start();
          chunks += 1;
          durationMs = Math.max(durationMs, segment.endMs);
          res.write(`${JSON.stringify({ file: segment.file, startMs: segment.startMs, endMs: segment.endMs, text: segment.text })}\n`);
        },
        error: (error: unknown) => {
          const failure = body.exceeded
            ? { status: 413, code: 'MEMTIDE_ERR_BODY_TOO_LARGE', message: `upload exceeds transcription.uploadLimitBytes (${limit} bytes)` }
            : statusOf(error);
          if (!headersSent) {
            const text = JSON.stringify({ error: failure.message, code: failure.code });
            res.writeHead(failure.status, {
              'content-type': 'application/json; charset=utf-8',
              'cache-control': 'no-store',
              'content-length': Buffer.byteLength(text),
              connection: 'close',
            });
            res.end(text);
          } else {
            res.end(`${JSON.stringify({ error: failure.message, code: failure.code })}\n`);
          }
          if (failure.status >= 500) context.logger.error(`POST /v1/transcribe (${source}) failed: ${failure.message}`);
          finish();
        },
        complete: () => {
          start();
          res.end(`${JSON.stringify({ done: true, file: source, chunks, durationMs })}\n`);
          finish();
        },
      });
    });
  };
}

/**
 * The transcription routes. `transcriptionRoutes` uses its own service;
 * `transcriptionRoutesWith(service)` shares one (e.g. with the metrics'
 * `transcription.queuedSamples`).
 */
export function transcriptionRoutesWith(service: TranscriptionService): RouteModule {
  return (context) => {
    const routes: Route[] = [{ method: 'POST', path: '/v1/transcribe', mutating: true, handler: transcribeHandler(context, service) }];
    return {
      routes,
      close: () => {
        void service.close();
      },
    };
  };
}

export const transcriptionRoutes: RouteModule = (context) => transcriptionRoutesWith(createTranscriptionService())(context);
