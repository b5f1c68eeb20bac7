/**
 * Voice activity detection, as Meetily's import uses it: speech regions of
 * the 16 kHz signal (20 ms frames above an energy floor, pauses shorter than
 * the 2 s redemption time bridged), split into segments of at most 25 s,
 * each a copy of its samples (`SpeechSegment.samples`). Meetily runs Silero;
 * an energy detector finds the same regions in the generated audio (speech
 * blocks surrounded by digital silence).
 */
const FRAME = 320; // 20 ms at 16 kHz
const THRESHOLD_RMS = 0.01;

export interface SpeechSegment {
  startSample: number;
  samples: Float32Array;
}

function frameIsSpeech(samples: ArrayLike<number>, from: number, to: number, scale: number): boolean {
  let sum = 0;
  for (let i = from; i < to; i += 1) {
    const v = samples[i]! / scale;
    sum += v * v;
  }
  return to > from && Math.sqrt(sum / (to - from)) > THRESHOLD_RMS;
}

/** Speech regions [start, end) in samples. */
export function speechRegions(samples: Float32Array, redemptionMs: number): Array<[number, number]> {
  const redemptionFrames = Math.ceil((redemptionMs * 16) / FRAME);
  const regions: Array<[number, number]> = [];
  let open: [number, number] | null = null;
  let silentFrames = 0;
  for (let at = 0; at < samples.length; at += FRAME) {
    const end = Math.min(samples.length, at + FRAME);
    if (frameIsSpeech(samples, at, end, 1)) {
      if (open === null) open = [at, end];
      else open[1] = end;
      silentFrames = 0;
    } else if (open !== null && (silentFrames += 1) > redemptionFrames) {
      regions.push(open);
      open = null;
    }
  }
  if (open !== null) regions.push(open);
  return regions;
}

/** `get_speech_chunks`: one copied segment per region. */
export function speechSegments(samples: Float32Array, redemptionMs: number): SpeechSegment[] {
  return speechRegions(samples, redemptionMs).map(([a, b]) => ({ startSample: a, samples: samples.slice(a, b) }));
}

/** Meetily splits segments longer than `maxSamples` (at the quietest point near the limit; here the speech is even, so at the limit) into clones. */
export function splitSegments(segments: readonly SpeechSegment[], maxSamples: number): SpeechSegment[] {
  const out: SpeechSegment[] = [];
  for (const segment of segments) {
    if (segment.samples.length <= maxSamples) {
      out.push({ startSample: segment.startSample, samples: segment.samples.slice() });
      continue;
    }
    for (let at = 0; at < segment.samples.length; at += maxSamples) {
      out.push({ startSample: segment.startSample + at, samples: segment.samples.slice(at, at + maxSamples) });
    }
  }
  return out;
}

/** A 16-bit chunk with any speech frame (the streaming twin of the detector above). */
export function chunkHasSpeech(samples: Int16Array): boolean {
  for (let at = 0; at < samples.length; at += FRAME) {
    if (frameIsSpeech(samples, at, Math.min(samples.length, at + FRAME), 32768)) return true;
  }
  return false;
}
