/**
 * A live meeting in a Meetily that embeds memtide: chunks are recorded to
 * disk exactly as in Meetily, but the transcription is memtide's bounded
 * pipeline (`transcribeInput`: `pullOnDemand` + `transcribeBounded`, queue of
 * `transcription.maxQueuedChunks`, concurrency following memtide's pressure
 * level). Its source reads each chunk back from the recording only when the
 * pipeline has room for it, so a backlog (whisper slower than speech) waits
 * on disk, not in memory. Stopping waits for the backlog and unloads the
 * model, as Meetily does; memtide's own idle unload is there too.
 */
import path from 'node:path';
import { lastValueFrom } from 'rxjs';
import type { AudioChunk } from '../../../src/model.js';
import { transcribeInput } from '../../../src/streams/transcription.js';
import type { DayStep } from '../scenario.js';
import { benchMs } from '../scenario.js';
import { dropNow, transcriptTally, type SimContext, type StepOutcome } from './context.js';
import type { GovernedPieces } from './governedPieces.js';
import { LiveRecording } from './microphone.js';

export async function liveMeetingGoverned(ctx: SimContext, pieces: GovernedPieces, step: Extract<DayStep, { kind: 'meeting' }>): Promise<StepOutcome> {
  const { scenario } = ctx.args;
  const meetingId = ctx.db.createMeeting(step.name, 'live');
  const recording = new LiveRecording(ctx.args.micFiles[step.name]!, path.join(ctx.args.workDir, `recording-${meetingId}.wav`), scenario.liveChunkSeconds);
  const chunkSamples = scenario.liveChunkSeconds * 16000;
  const tally = transcriptTally(ctx, meetingId);
  let maxBacklog = 0;

  async function* recordedChunks(): AsyncGenerator<AudioChunk> {
    for (let index = 0; index < recording.totalChunks; index += 1) {
      if (!(await recording.waitFor(index))) return;
      const samples = recording.readRecorded(index);
      const firstSample = index * chunkSamples;
      yield { source: step.name, index, firstSample, startMs: firstSample / 16, endMs: (firstSample + samples.length) / 16, sampleRate: 16000, samples, last: index === recording.totalChunks - 1 };
    }
  }

  ctx.phase(`live: ${step.name}`);
  const playing = recording.play(benchMs(scenario, scenario.liveChunkSeconds * 1000), () => {
    maxBacklog = Math.max(maxBacklog, recording.recorded - tally.transcripts);
  });
  const transcribed = lastValueFrom(
    transcribeInput(recording.recordingFile, step.name, {
      transcriber: ctx.transcriber,
      audio: pieces.audioConfig(scenario.liveChunkSeconds),
      transcription: pieces.transcription,
      pressure$: pieces.pressure$,
      openChunks: () => recordedChunks(),
    }).pipe(tally.save),
    { defaultValue: null },
  );
  await playing;
  ctx.phase(`stopping: ${step.name} (transcribing the backlog)`);
  await transcribed;
  recording.close();
  await ctx.transcriber.unload();
  dropNow();
  return { meetingId, transcripts: tally.transcripts, emptyTranscripts: tally.empty, maxBacklogChunks: maxBacklog };
}
