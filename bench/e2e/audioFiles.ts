/**
 * The day's audio, written to a temporary directory before the runs (both
 * runs read the same files): per live meeting the 16 kHz mono WAV its
 * microphone plays, and the long recording that is imported.
 *
 * "Speech" is a voiced signal (a wandering pitch with two harmonics, a 4 Hz
 * syllable envelope that never goes silent, a little noise); silence is
 * digital zero. Speech blocks start and end with 10 ms fades so resampling
 * does not ring into the silence around them (the VAD must see exactly the
 * blocks). Files are written one second at a time: a long file never sits
 * in memory.
 */
import fs from 'node:fs';
import path from 'node:path';
import { wavHeader } from '../../test/support/wav.js';
import { speechBlocks, type ImportFileSpec, type Scenario } from './scenario.js';

interface SignalSpec {
  seconds: number;
  sampleRate: number;
  channels: number;
  /** Speech intervals in seconds; everything else is silence. */
  speech: Array<[number, number]>;
  seed: number;
}

const FADE_SECONDS = 0.01;

function writeSignal(file: string, spec: SignalSpec): number {
  const frames = Math.round(spec.seconds * spec.sampleRate);
  const fd = fs.openSync(file, 'w');
  let phase = 0;
  let noise = spec.seed >>> 0 || 1;
  try {
    fs.writeSync(fd, wavHeader(frames * spec.channels * 2, spec.sampleRate, spec.channels));
    const block = Buffer.alloc(spec.sampleRate * spec.channels * 2);
    for (let at = 0; at < frames; at += spec.sampleRate) {
      const end = Math.min(frames, at + spec.sampleRate);
      block.fill(0);
      for (const interval of spec.speech) {
        const from = Math.max(at, Math.ceil(interval[0] * spec.sampleRate));
        const to = Math.min(end, Math.ceil(interval[1] * spec.sampleRate));
        for (let i = from; i < to; i += 1) {
          const t = i / spec.sampleRate;
          const fade = Math.min(1, (t - interval[0]) / FADE_SECONDS, (interval[1] - t) / FADE_SECONDS);
          const pitch = 140 + 30 * Math.sin(2 * Math.PI * 0.3 * t + spec.seed);
          phase += (2 * Math.PI * pitch) / spec.sampleRate;
          if (phase > 2 * Math.PI) phase -= 2 * Math.PI;
          const voiced = 0.55 * Math.sin(phase) + 0.3 * Math.sin(2 * phase) + 0.15 * Math.sin(3 * phase);
          const envelope = 0.35 + 0.65 * (0.5 + 0.5 * Math.sin(2 * Math.PI * 4 * t));
          noise = (Math.imul(noise, 1103515245) + 12345) >>> 0;
          const value = fade * (0.4 * envelope * voiced + ((noise >>> 16) / 65536 - 0.5) * 0.01);
          const sample = Math.max(-32768, Math.min(32767, Math.round(value * 32767)));
          for (let c = 0; c < spec.channels; c += 1) block.writeInt16LE(sample, ((i - at) * spec.channels + c) * 2);
        }
      }
      fs.writeSync(fd, block, 0, (end - at) * spec.channels * 2);
    }
  } finally {
    fs.closeSync(fd);
  }
  return 44 + frames * spec.channels * 2;
}

export interface DayAudio {
  micFiles: Record<string, string>;
  importFiles: Record<string, string>;
  bytes: number;
}

const safeName = (name: string) => name.replace(/[^a-z0-9]+/gi, '-').toLowerCase();

/** Writes every file the scenario needs into `dir`. */
export function writeDayAudio(scenario: Scenario, dir: string): DayAudio {
  const out: DayAudio = { micFiles: {}, importFiles: {}, bytes: 0 };
  scenario.steps.forEach((step, index) => {
    if (step.kind === 'meeting') {
      const file = path.join(dir, `mic-${safeName(step.name)}.wav`);
      const seconds = step.audioMinutes * 60;
      out.bytes += writeSignal(file, { seconds, sampleRate: 16_000, channels: 1, speech: [[0, seconds]], seed: index + 1 });
      out.micFiles[step.name] = file;
    } else if (step.kind === 'import') {
      const file = path.join(dir, `import-${safeName(step.name)}.wav`);
      out.bytes += writeImportFile(file, step.file, index + 1);
      out.importFiles[step.name] = file;
    }
  });
  return out;
}

function writeImportFile(file: string, spec: ImportFileSpec, seed: number): number {
  return writeSignal(file, { seconds: spec.minutes * 60, sampleRate: spec.sampleRate, channels: spec.channels, speech: speechBlocks(spec), seed });
}
