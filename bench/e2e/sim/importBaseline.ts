/**
 * Importing a recording the way Meetily does (audio/import.rs, decoder.rs):
 *
 * 1. `decode_audio_file`: the whole file into one interleaved f32 buffer
 *    (reserved once from the header's frame count);
 * 2. `to_whisper_format` (borrowing the decoded audio, so it stays alive):
 *    a mono f32 copy, normalised, resampled to a 16 kHz f32 buffer;
 *    the decoded audio is dropped when the blocking task ends;
 * 3. VAD (`get_speech_chunks`, redemption 2 s): one copied segment per
 *    speech region, while the 16 kHz buffer is still held;
 * 4. segments over 25 s are split, every segment cloned (`processable_segments`),
 *    segments under 1600 samples skipped;
 * 5. whisper loads, transcribes the segments one by one, and is unloaded
 *    after the batch (`unload_engine_after_batch`).
 *
 * The file is read in 4 MB blocks (Symphonia streams it; only the decoded
 * samples are kept). Resampling is a windowed-sinc FIR decimator (Meetily
 * uses rubato's sinc resampler; the buffers, not the filter, set the memory).
 */
import fs from 'node:fs';
import type { DayStep } from '../scenario.js';
import { chunkFromFloat, dropNow, type SimContext, type StepOutcome } from './context.js';
import { speechSegments, splitSegments, type SpeechSegment } from './vad.js';

const READ_BLOCK = 4 << 20;
const VAD_REDEMPTION_MS = 2000;
const MAX_SEGMENT_SAMPLES = 25 * 16000;
const MIN_SEGMENT_SAMPLES = 1600;

interface Decoded {
  samples: Float32Array;
  sampleRate: number;
  channels: number;
}

/** `decode_audio_file` for a 16-bit PCM WAV with a 44-byte header. */
function decodeWhole(file: string): Decoded {
  const fd = fs.openSync(file, 'r');
  try {
    const header = Buffer.alloc(44);
    fs.readSync(fd, header, 0, 44, 0);
    const channels = header.readUInt16LE(22);
    const sampleRate = header.readUInt32LE(24);
    const dataBytes = header.readUInt32LE(40);
    const samples = new Float32Array(dataBytes / 2);
    const block = Buffer.alloc(READ_BLOCK);
    const pcm = new Int16Array(block.buffer, block.byteOffset, READ_BLOCK / 2);
    let at = 0;
    for (let offset = 44; at < samples.length; offset += READ_BLOCK) {
      const read = fs.readSync(fd, block, 0, READ_BLOCK, offset);
      if (read <= 0) break;
      const count = Math.min(read >> 1, samples.length - at);
      for (let i = 0; i < count; i += 1) samples[at++] = pcm[i]! / 32768;
    }
    return { samples, sampleRate, channels };
  } finally {
    fs.closeSync(fd);
  }
}

/** Low-pass windowed-sinc taps for decimating by `factor` (cut-off at 0.45 of the output rate). */
function decimationTaps(factor: number, taps = 9): Float32Array {
  const fc = 0.45 / factor;
  const out = new Float32Array(taps);
  let sum = 0;
  for (let i = 0; i < taps; i += 1) {
    const n = i - (taps - 1) / 2;
    const sinc = n === 0 ? 2 * fc : Math.sin(2 * Math.PI * fc * n) / (Math.PI * n);
    const blackman = 0.42 - 0.5 * Math.cos((2 * Math.PI * i) / (taps - 1)) + 0.08 * Math.cos((4 * Math.PI * i) / (taps - 1));
    out[i] = sinc * blackman;
    sum += out[i]!;
  }
  for (let i = 0; i < taps; i += 1) out[i]! /= sum;
  return out;
}

/** `to_whisper_format_with_progress(&self)`: mono copy, normalise, resample into a new 16 kHz buffer. */
function toWhisperFormat(decoded: Decoded): Float32Array {
  const frames = decoded.samples.length / decoded.channels;
  const mono = new Float32Array(frames);
  for (let f = 0; f < frames; f += 1) {
    let sum = 0;
    for (let c = 0; c < decoded.channels; c += 1) sum += decoded.samples[f * decoded.channels + c]!;
    mono[f] = sum / decoded.channels;
  }
  let peak = 0;
  for (let i = 0; i < mono.length; i += 1) peak = Math.max(peak, Math.abs(mono[i]!));
  if (peak > 1) for (let i = 0; i < mono.length; i += 1) mono[i]! /= peak;
  if (decoded.sampleRate % 16000 !== 0) throw new Error(`the simulated decoder resamples integer ratios only, not ${decoded.sampleRate} Hz`);
  const factor = decoded.sampleRate / 16000;
  if (factor === 1) return mono;
  const taps = decimationTaps(factor);
  const half = (taps.length - 1) / 2;
  const out = new Float32Array(Math.floor(frames / factor));
  for (let n = 0; n < out.length; n += 1) {
    const first = n * factor - half;
    let acc = 0;
    if (first >= 0 && first + taps.length <= frames) {
      for (let k = 0; k < taps.length; k += 1) acc += taps[k]! * mono[first + k]!;
    } else {
      for (let k = 0; k < taps.length; k += 1) if (first + k >= 0 && first + k < frames) acc += taps[k]! * mono[first + k]!;
    }
    out[n] = Math.max(-1, Math.min(1, acc));
  }
  return out;
}

export async function importBaseline(ctx: SimContext, step: Extract<DayStep, { kind: 'import' }>): Promise<StepOutcome> {
  const meetingId = ctx.db.createMeeting(step.name, 'import');
  ctx.phase(`import: ${step.name} (decoding the whole file)`);
  let decoded: Decoded | null = decodeWhole(ctx.args.importFiles[step.name]!);
  let audio: Float32Array | null = toWhisperFormat(decoded);
  decoded = null; // the blocking task ends: the decoded audio is dropped
  dropNow();
  ctx.phase(`import: ${step.name} (VAD)`);
  let speech: SpeechSegment[] | null = speechSegments(audio, VAD_REDEMPTION_MS);
  audio = null; // moved into the VAD task, dropped with it
  dropNow();
  let processable: SpeechSegment[] | null = splitSegments(speech, MAX_SEGMENT_SAMPLES);
  ctx.phase(`import: ${step.name} (transcribing ${processable.length} segments)`);
  let transcripts = 0;
  let empty = 0;
  for (const [index, segment] of processable.entries()) {
    if (segment.samples.length < MIN_SEGMENT_SAMPLES) continue;
    const chunk = chunkFromFloat(step.name, index, segment.startSample, segment.samples, index === processable.length - 1);
    const { text } = await ctx.transcriber.transcribe(chunk);
    ctx.db.addTranscript(meetingId, index, chunk.startMs, chunk.endMs, text);
    transcripts += 1;
    if (text.trim() === '') empty += 1;
  }
  await ctx.transcriber.unload();
  // Both segment lists go out of scope when run_import returns.
  speech = null;
  processable = null;
  dropNow();
  return { meetingId, transcripts, emptyTranscripts: empty, maxBacklogChunks: 0 };
}
