/**
 * The code of one whisper.cpp engine copy, as source text: run as a worker
 * thread (`new Worker(source, { eval: true })`) or as a child process
 * (`node -e source` with an IPC channel; see whisperProcess.ts). A string
 * works the same from the TypeScript sources under test and from dist/, where
 * a separate file would need a build step of its own. It loads the model
 * once, then answers one `transcribe` message at a time: `Whisper#full` is
 * synchronous and takes seconds, which is exactly why it runs here and not on
 * the main thread. As a child process it exits when its parent goes (the IPC
 * channel closes), so a killed memtide never leaves a whisper behind.
 *
 * Protocol (structured clone; the samples buffer is transferred, not copied):
 * - worker → main: `{ type: 'ready' }` | `{ type: 'load-failed', message }`
 * - main → worker: `{ type: 'transcribe', id, samples: Float32Array, threads, language, translate, temperature }`
 * - worker → main: `{ type: 'result', id, text }` | `{ type: 'failed', id, message }`
 */

export interface WorkerData {
  /** Absolute path of @napi-rs/whisper's entry (resolved by the main thread). */
  module: string;
  modelPath: string;
}

export interface TranscribeMessage {
  type: 'transcribe';
  id: number;
  samples: Float32Array;
  threads: number;
  language: string;
  translate: boolean;
  temperature: number;
}

export type WorkerReply =
  | { type: 'ready' }
  | { type: 'load-failed'; message: string }
  | { type: 'result'; id: number; text: string }
  | { type: 'failed'; id: number; message: string };

export const WHISPER_WORKER_SOURCE = String.raw`
'use strict';
const threads = require('node:worker_threads');
const inProcess = threads.parentPort !== null;
const parentPort = inProcess ? threads.parentPort : { postMessage: (m) => process.send(m), on: (e, f) => process.on(e, f) };
const workerData = inProcess ? threads.workerData : JSON.parse(process.env.MEMTIDE_WHISPER_DATA);
if (!inProcess) {
  process.title = 'memtide-whisper';
  process.on('disconnect', () => process.exit(0));
}
const messageOf = (error) => (error && error.message) || String(error);
(function main() {
  let binding;
  let whisper;
  try {
    binding = require(workerData.module);
    whisper = new binding.Whisper(workerData.modelPath);
  } catch (error) {
    parentPort.postMessage({ type: 'load-failed', message: messageOf(error) });
    return;
  }
  parentPort.postMessage({ type: 'ready' });
  parentPort.on('message', (message) => {
    if (!message || message.type !== 'transcribe') return;
    try {
      const params = new binding.WhisperFullParams(binding.WhisperSamplingStrategy.Greedy);
      params.nThreads = message.threads;
      params.language = message.language;
      params.translate = message.translate;
      params.temperature = message.temperature;
      // Chunks carry their own start/end; whisper's timestamps are not used, and without them
      // whisper.cpp moves through the audio a whole 30 s window at a time.
      params.noTimestamps = true;
      params.printProgress = false;
      params.printRealtime = false;
      params.printTimestamps = false;
      params.printSpecial = false;
      const text = whisper.full(params, message.samples);
      parentPort.postMessage({ type: 'result', id: message.id, text: String(text) });
    } catch (error) {
      parentPort.postMessage({ type: 'failed', id: message.id, message: messageOf(error) });
    }
  });
})();
`;
