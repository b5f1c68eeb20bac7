/**
 * What every step of the simulated Meetily shares: its arguments, its
 * database, its whisper engine, its Ollama endpoint, and a way to announce
 * phases to the bench harness (which marks them on the memory timeline).
 */
import { tap, type MonoTypeOperatorFunction } from 'rxjs';
import type { AudioChunk } from '../../../src/model.js';
import type { TranscribedChunk } from '../../../src/operators/transcribeBounded.js';
import type { Transcriber } from '../../../src/sources/transcribers/transcriber.js';
import type { ItemReport, SimArgs, SimMessage } from '../protocol.js';
import type { MeetilyDb } from './meetilyDb.js';
import type { OllamaEndpoint } from './summarize.js';

export interface SimContext {
  args: SimArgs;
  db: MeetilyDb;
  /** whisper.cpp in this process (one model copy, like Meetily's one worker). */
  transcriber: Transcriber;
  ollama: OllamaEndpoint;
  phase(name: string): void;
}

/** What a live meeting or an import hands back to the day runner. */
export type StepOutcome = Pick<ItemReport, 'transcripts' | 'emptyTranscripts' | 'maxBacklogChunks'> & { meetingId: number };

export function send(message: SimMessage): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

/** Rust frees a buffer when its owner is dropped; Node when the GC runs. Called where Meetily drops (both runs alike). */
export function dropNow(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/** A chunk for the whisper engine from 16 kHz float samples (Meetily's `AudioChunk.data`). */
export function chunkFromFloat(source: string, index: number, firstSample: number, samples: Float32Array, last: boolean): AudioChunk {
  const pcm = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i += 1) pcm[i] = Math.max(-32768, Math.min(32767, Math.round(samples[i]! * 32768)));
  return { source, index, firstSample, startMs: firstSample / 16, endMs: (firstSample + samples.length) / 16, sampleRate: 16000, samples: pcm, last };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Transcripts a memtide pipeline produced for one meeting, as they are saved to Meetily's database. */
export interface TranscriptTally {
  transcripts: number;
  empty: number;
  /** Saves each segment and counts it (empty text counts as a failed transcript). */
  save: MonoTypeOperatorFunction<TranscribedChunk>;
}

export function transcriptTally(ctx: SimContext, meetingId: number): TranscriptTally {
  const tally: TranscriptTally = {
    transcripts: 0,
    empty: 0,
    save: tap((segment) => {
      ctx.db.addTranscript(meetingId, segment.chunkIndex, segment.startMs, segment.endMs, segment.text);
      tally.transcripts += 1;
      if (segment.text.trim() === '') tally.empty += 1;
    }),
  };
  return tally;
}
