/**
 * The simulated Meetily with its own defaults (bundled to plain JS and run
 * as its own process by the bench): Ollama called directly, live chunks in
 * an unbounded in-memory queue, imports decoded whole. whisper.cpp runs in
 * process (memtide's whisper worker wrapper stands in for whisper-rs: one
 * model copy, loaded on the first chunk, unloaded only when Meetily says so).
 */
import { createWhisperInProcess } from '../../../src/sources/transcribers/whisperInProcess.js';
import { simMain } from './day.js';
import { importBaseline } from './importBaseline.js';
import { liveMeetingBaseline } from './liveBaseline.js';

process.title = 'memtide-e2e-meetily';

void simMain(async (args) => ({
  transcriber: createWhisperInProcess({
    modelPath: args.whisperModelPath,
    threads: args.scenario.whisperThreads,
    maxCopies: 1,
    // Meetily has no idle unload: the model goes when a recording stops or a batch ends.
    idleUnloadMs: 24 * 3600_000,
  }),
  liveMeeting: liveMeetingBaseline,
  importRecording: importBaseline,
  pressureEvents: () => 0,
  batchHolds: () => 0,
  close: () => undefined,
}));
