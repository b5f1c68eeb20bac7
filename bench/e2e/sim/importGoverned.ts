/**
 * Importing a recording in a Meetily that embeds memtide: memtide's
 * streaming decoder (`audioChunks`: WAV parser + resampler, read only as
 * fast as chunks are taken) cut at Meetily's 25 s segment length, Meetily's
 * VAD applied to each chunk as it streams by (silent chunks are skipped, so
 * both runs transcribe the same segments), and memtide's bounded
 * transcription (`transcribeInput`), held while memtide's `batch` event
 * says so (a summary model is busy or resident). The model is unloaded
 * after the batch, as Meetily does.
 */
import { lastValueFrom } from 'rxjs';
import type { AudioChunk } from '../../../src/model.js';
import { audioChunks } from '../../../src/sources/audio/audioSource.js';
import { transcribeInput } from '../../../src/streams/transcription.js';
import type { DayStep } from '../scenario.js';
import { dropNow, transcriptTally, type SimContext, type StepOutcome } from './context.js';
import type { GovernedPieces } from './governedPieces.js';
import { chunkHasSpeech } from './vad.js';

async function* speechOnly(chunks: AsyncIterable<AudioChunk>): AsyncGenerator<AudioChunk> {
  for await (const chunk of chunks) if (chunkHasSpeech(chunk.samples)) yield chunk;
}

export async function importGoverned(ctx: SimContext, pieces: GovernedPieces, step: Extract<DayStep, { kind: 'import' }>): Promise<StepOutcome> {
  const meetingId = ctx.db.createMeeting(step.name, 'import');
  ctx.phase(`import: ${step.name} (streaming)`);
  const tally = transcriptTally(ctx, meetingId);
  await lastValueFrom(
    transcribeInput(ctx.args.importFiles[step.name]!, step.name, {
      transcriber: ctx.transcriber,
      audio: pieces.audioConfig(ctx.args.scenario.importChunkSeconds),
      transcription: pieces.transcription,
      pressure$: pieces.pressure$,
      // Batch work: it waits while memtide says the summary model needs the memory (whisper stays unloaded meanwhile).
      hold$: pieces.batchHold$,
      openChunks: (input, audio, source) => speechOnly(audioChunks(input, audio, { source })),
    }).pipe(tally.save),
    { defaultValue: null },
  );
  await ctx.transcriber.unload();
  dropNow();
  return { meetingId, transcripts: tally.transcripts, emptyTranscripts: tally.empty, maxBacklogChunks: 0 };
}
