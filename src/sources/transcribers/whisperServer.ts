/**
 * whisper.cpp's HTTP server (`whisper-server`, examples/server/server.cpp):
 * each chunk is posted to `POST <serverUrl>/inference` as multipart/form-data
 * with the chunk as a 16 kHz mono 16-bit WAV in the `file` field, plus
 * `temperature`, `response_format=json`, `language` and `translate`. The
 * server answers `{"text": "..."}`, or `{"error": "..."}` with status 400/500.
 *
 * The server owns its model (loaded at its start), so `unload()` does nothing
 * and `loaded` / `modelBytes` are unknown from here (memtide's sampler sees the
 * `whisper-server` process itself).
 */
import path from 'node:path';
import type { AudioChunk } from '../../model.js';
import { abortedError, chunkToWav, TranscriberError, type Transcriber, type TranscriptionResult } from './transcriber.js';

export interface WhisperServerOptions {
  /** Base URL, e.g. http://127.0.0.1:8178; `/inference` is appended unless the URL already ends with it. */
  serverUrl: string;
  /** Longest wait for one chunk's answer. */
  requestTimeoutMs: number;
  temperature?: number;
  language?: string;
  translate?: boolean;
  /** Injected in tests; default global fetch. */
  fetch?: typeof fetch;
}

export function inferenceUrl(serverUrl: string): string {
  const url = new URL(serverUrl);
  if (!/\/inference\/?$/.test(url.pathname)) url.pathname = `${url.pathname.replace(/\/+$/, '')}/inference`;
  return url.toString();
}

const errorText = (error: unknown): string => {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error as Error).message ?? String(error);
};

export function createWhisperServer(options: WhisperServerOptions): Transcriber {
  const url = inferenceUrl(options.serverUrl);
  const doFetch = options.fetch ?? fetch;

  const transcribe = async (chunk: AudioChunk, signal?: AbortSignal): Promise<TranscriptionResult> => {
    if (signal?.aborted) throw abortedError('whisper-server', chunk);
    const form = new FormData();
    const name = `${path.basename(chunk.source) || 'audio'}.chunk-${chunk.index}.wav`;
    form.append('file', new Blob([new Uint8Array(chunkToWav(chunk))], { type: 'audio/wav' }), name);
    form.append('temperature', String(options.temperature ?? 0));
    form.append('response_format', 'json');
    form.append('language', options.language ?? 'en');
    form.append('translate', String(options.translate ?? false));

    // One controller for both the caller's cancel and the timeout (AbortSignal.any needs Node 20.3).
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, options.requestTimeoutMs);
    const onAbort = () => controller.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    const what = `whisper-server at ${url} (${chunk.source} chunk ${chunk.index})`;
    try {
      let response: Response;
      try {
        response = await doFetch(url, { method: 'POST', body: form, signal: controller.signal });
      } catch (error) {
        throw fetchFailure(error);
      }
      let body: string;
      try {
        body = await response.text();
      } catch (error) {
        throw fetchFailure(error);
      }
      if (!response.ok) {
        const reason = parseErrorBody(body) ?? (body.trim().slice(0, 200) || response.statusText);
        throw new TranscriberError('MEMTIDE_ERR_TRANSCRIBER_SERVER', `${what} answered ${response.status}: ${reason}`);
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(body);
      } catch {
        throw new TranscriberError('MEMTIDE_ERR_TRANSCRIBER_SERVER', `${what} answered 200 with a body that is not JSON: ${JSON.stringify(body.slice(0, 80))}`);
      }
      const text = (parsed as { text?: unknown }).text;
      if (typeof text !== 'string') {
        throw new TranscriberError('MEMTIDE_ERR_TRANSCRIBER_SERVER', `${what} answered 200 without a "text" string (got ${JSON.stringify(parsed).slice(0, 80)})`);
      }
      return { text: text.trim() };
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }

    function fetchFailure(error: unknown): TranscriberError {
      if (signal?.aborted) return abortedError('whisper-server', chunk);
      if (timedOut) {
        return new TranscriberError('MEMTIDE_ERR_TRANSCRIBER_TIMEOUT', `${what} did not answer within ${options.requestTimeoutMs} ms (transcription.requestTimeoutMs)`, {
          cause: error,
        });
      }
      return new TranscriberError('MEMTIDE_ERR_TRANSCRIBER_UNREACHABLE', `cannot reach ${what}: ${errorText(error)}`, { cause: error });
    }
  };

  return {
    name: 'whisper-server',
    transcribe,
    unload: async () => undefined,
    loaded: false,
    modelBytes: null,
  };
}

function parseErrorBody(body: string): string | null {
  try {
    const error = (JSON.parse(body) as { error?: unknown }).error;
    return typeof error === 'string' ? error : null;
  } catch {
    return null;
  }
}
