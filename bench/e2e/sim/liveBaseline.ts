/**
 * A live meeting the way Meetily does it (audio/transcription/worker.rs):
 * every recorded chunk goes, as 16 kHz f32 samples (`AudioChunk.data`), into
 * an unbounded channel (`tokio::sync::mpsc::unbounded_channel`); one worker
 * (`NUM_WORKERS = 1`) transcribes them in order with the one whisper engine.
 * Stopping the recording waits until every queued chunk is transcribed, then
 * unloads the whisper model (recording_commands.rs `stop_recording`).
 */
import path from 'node:path';
import type { DayStep } from '../scenario.js';
import { benchMs } from '../scenario.js';
import { chunkFromFloat, dropNow, type SimContext, type StepOutcome } from './context.js';
import { LiveRecording } from './microphone.js';

export async function liveMeetingBaseline(ctx: SimContext, step: Extract<DayStep, { kind: 'meeting' }>): Promise<StepOutcome> {
  const { scenario } = ctx.args;
  const meetingId = ctx.db.createMeeting(step.name, 'live');
  const recording = new LiveRecording(ctx.args.micFiles[step.name]!, path.join(ctx.args.workDir, `recording-${meetingId}.wav`), scenario.liveChunkSeconds);
  const queue: Array<{ index: number; data: Float32Array }> = [];
  let wake: (() => void) | null = null;
  let recordingDone = false;
  let maxBacklog = 0;
  let transcripts = 0;
  let empty = 0;
  const notify = () => {
    const resume = wake;
    wake = null;
    resume?.();
  };

  const worker = (async () => {
    for (;;) {
      const item = queue.shift();
      if (!item) {
        if (recordingDone) return;
        await new Promise<void>((resolve) => (wake = resolve));
        continue;
      }
      const firstSample = item.index * scenario.liveChunkSeconds * 16000;
      const chunk = chunkFromFloat(step.name, item.index, firstSample, item.data, item.index === recording.totalChunks - 1);
      const { text } = await ctx.transcriber.transcribe(chunk);
      ctx.db.addTranscript(meetingId, item.index, chunk.startMs, chunk.endMs, text);
      transcripts += 1;
      if (text.trim() === '') empty += 1;
    }
  })();

  ctx.phase(`live: ${step.name}`);
  await recording.play(benchMs(scenario, scenario.liveChunkSeconds * 1000), (index, samples) => {
    const data = new Float32Array(samples.length);
    for (let i = 0; i < samples.length; i += 1) data[i] = samples[i]! / 32768;
    queue.push({ index, data });
    maxBacklog = Math.max(maxBacklog, queue.length);
    notify();
  });
  recordingDone = true;
  notify();
  ctx.phase(`stopping: ${step.name} (transcribing the backlog)`);
  await worker;
  recording.close();
  await ctx.transcriber.unload();
  dropNow();
  return { meetingId, transcripts, emptyTranscripts: empty, maxBacklogChunks: maxBacklog };
}
