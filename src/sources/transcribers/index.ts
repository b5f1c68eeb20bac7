/** The transcriber the `transcription` config section asks for. */
import type { SchedulerLike } from 'rxjs';
import type { TranscriptionConfig } from '../../app/schema/transcription.js';
import { createNoneTranscriber } from './none.js';
import { TranscriberError, type Transcriber } from './transcriber.js';
import { createWhisperInProcess } from './whisperInProcess.js';
import { createWhisperServer } from './whisperServer.js';

export * from './transcriber.js';
export { createWhisperInProcess, defaultThreads, type WhisperInProcessOptions } from './whisperInProcess.js';
export { expectedTensorCount, inspectWhisperModel, type WhisperHparams, type WhisperModelInfo } from './ggmlModel.js';
export { createWhisperServer, inferenceUrl, type WhisperServerOptions } from './whisperServer.js';
export { createNoneTranscriber } from './none.js';

/**
 * Builds the configured engine. Nothing is loaded here: the in-process model
 * loads on the first chunk. Throws a MEMTIDE_ERR_TRANSCRIBER_CONFIG error when
 * "whisper" has no modelPath.
 */
export function createTranscriber(config: TranscriptionConfig, scheduler?: SchedulerLike): Transcriber {
  switch (config.transcriber) {
    case 'none':
      return createNoneTranscriber();
    case 'server':
      return createWhisperServer({
        serverUrl: config.serverUrl,
        requestTimeoutMs: config.requestTimeoutMs,
        temperature: config.temperature,
        language: config.language,
        translate: config.translate,
      });
    case 'whisper':
      if (config.modelPath === null) {
        throw new TranscriberError(
          'MEMTIDE_ERR_TRANSCRIBER_CONFIG',
          'transcription.modelPath is not set: transcriber "whisper" needs a whisper.cpp ggml model (--model PATH), or use --transcriber server|none',
        );
      }
      return createWhisperInProcess({
        modelPath: config.modelPath,
        threads: config.threads,
        language: config.language,
        translate: config.translate,
        temperature: config.temperature,
        maxCopies: config.maxConcurrent,
        idleUnloadMs: config.idleUnloadMs,
        isolation: config.childProcess ? 'process' : 'thread',
        ...(scheduler ? { scheduler } : {}),
      });
  }
}
