/**
 * WAV fixtures made in the tests: 16-bit PCM, any rate and channel count, a
 * tone with a slow sweep and a little noise (so it is not silence), written
 * block by block so a long file never sits in memory whole.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface WavSpec {
  seconds: number;
  sampleRate?: number;
  channels?: number;
  /** Base frequency of the tone in Hz (default 220). */
  frequency?: number;
}

export function wavHeader(dataBytes: number, sampleRate: number, channels: number): Buffer {
  const header = Buffer.alloc(44);
  header.write('RIFF', 0, 'ascii');
  header.writeUInt32LE(36 + dataBytes, 4);
  header.write('WAVE', 8, 'ascii');
  header.write('fmt ', 12, 'ascii');
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20);
  header.writeUInt16LE(channels, 22);
  header.writeUInt32LE(sampleRate, 24);
  header.writeUInt32LE(sampleRate * channels * 2, 28);
  header.writeUInt16LE(channels * 2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36, 'ascii');
  header.writeUInt32LE(dataBytes, 40);
  return header;
}

/** Frames [from, to) of the test signal, interleaved. */
function block(from: number, to: number, sampleRate: number, channels: number, frequency: number): Buffer {
  const out = Buffer.alloc((to - from) * channels * 2);
  let seed = from * 7919 + 1;
  for (let i = from; i < to; i += 1) {
    const t = i / sampleRate;
    seed = (seed * 1103515245 + 12345) >>> 0;
    const noise = ((seed >>> 16) / 65536 - 0.5) * 0.02;
    const value = 0.3 * Math.sin(2 * Math.PI * frequency * t * (1 + 0.1 * Math.sin(t))) + noise;
    const sample = Math.max(-32768, Math.min(32767, Math.round(value * 32767)));
    for (let c = 0; c < channels; c += 1) out.writeInt16LE(sample, ((i - from) * channels + c) * 2);
  }
  return out;
}

/** Writes a WAV file; returns its path. */
export function writeWav(file: string, spec: WavSpec): string {
  const sampleRate = spec.sampleRate ?? 16000;
  const channels = spec.channels ?? 1;
  const frames = Math.round(spec.seconds * sampleRate);
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, wavHeader(frames * channels * 2, sampleRate, channels));
    for (let at = 0; at < frames; at += sampleRate) {
      fs.writeSync(fd, block(at, Math.min(frames, at + sampleRate), sampleRate, channels, spec.frequency ?? 220));
    }
  } finally {
    fs.closeSync(fd);
  }
  return file;
}

/** The whole file in memory (small fixtures only). */
export function wavBytes(spec: WavSpec): Buffer {
  const sampleRate = spec.sampleRate ?? 16000;
  const channels = spec.channels ?? 1;
  const frames = Math.round(spec.seconds * sampleRate);
  return Buffer.concat([wavHeader(frames * channels * 2, sampleRate, channels), block(0, frames, sampleRate, channels, spec.frequency ?? 220)]);
}

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(prefix = 'memtide-test-'): { dir: string; cleanup(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}
