/**
 * The simulated Meetily embedding memtide (bundled to plain JS, its own
 * process): its Ollama URL points at memtide's proxy (the one-URL change),
 * live audio and imports go through memtide's bounded streaming pipeline,
 * transcription follows memtide's pressure level, and the whisper engine is
 * built from memtide's `transcription` config (idle unload included).
 */
import { createTranscriber } from '../../../src/sources/transcribers/index.js';
import { simMain } from './day.js';
import { governedPieces } from './governedPieces.js';
import { importGoverned } from './importGoverned.js';
import { liveMeetingGoverned } from './liveGoverned.js';

process.title = 'memtide-e2e-meetily';

void simMain(async (args) => {
  const pieces = await governedPieces(args);
  return {
    transcriber: createTranscriber(pieces.transcription),
    liveMeeting: (ctx, step) => liveMeetingGoverned(ctx, pieces, step),
    importRecording: (ctx, step) => importGoverned(ctx, pieces, step),
    pressureEvents: pieces.pressureEvents,
    batchHolds: pieces.batchHolds,
    close: pieces.close,
  };
});
