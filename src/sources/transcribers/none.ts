/** The dry run: every chunk "transcribes" to empty text at once, no model involved. */
import type { AudioChunk } from '../../model.js';
import { abortedError, type Transcriber, type TranscriptionResult } from './transcriber.js';

export function createNoneTranscriber(): Transcriber {
  return {
    name: 'none',
    transcribe: async (chunk: AudioChunk, signal?: AbortSignal): Promise<TranscriptionResult> => {
      if (signal?.aborted) throw abortedError('none', chunk);
      return { text: '' };
    },
    unload: async () => undefined,
    loaded: false,
    modelBytes: null,
  };
}
