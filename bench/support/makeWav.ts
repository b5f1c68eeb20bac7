/**
 * WAV writers for tests and benchmarks: exact in-memory files in every format
 * the parser supports (with extra chunks, EXTENSIBLE headers and open-ended
 * data sizes), and long "speech-like" 16-bit files streamed to disk in
 * constant memory (a 4 h file is written one second at a time).
 */
import { closeSync, openSync, writeSync } from 'node:fs';

export interface WavSpec {
  sampleRate: number;
  channels: number;
  /** 8 (unsigned), 16, 24, 32 integer; 32 or 64 float. */
  bitsPerSample: number;
  encoding: 'pcm' | 'float';
  /** Write a WAVE_FORMAT_EXTENSIBLE fmt chunk (40 bytes) instead of the plain one. */
  extensible?: boolean;
  /** What the data chunk's size field says: the real size (default), 0 or 0xFFFFFFFF (until EOF), or a number. */
  dataSizeField?: 'exact' | 'zero' | 'max' | number;
  /** Chunks written before `fmt `, between `fmt ` and `data`, and after `data`. */
  chunks?: { id: string; body: Uint8Array; at: 'beforeFmt' | 'afterFmt' | 'afterData' }[];
}

const ascii = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));

function chunk(id: string, body: Uint8Array, sizeField = body.length): Uint8Array {
  const out = new Uint8Array(8 + body.length + (body.length & 1));
  out.set(ascii(id), 0);
  new DataView(out.buffer).setUint32(4, sizeField, true);
  out.set(body, 8);
  return out;
}

function fmtBody(spec: WavSpec): Uint8Array {
  const blockAlign = (spec.channels * spec.bitsPerSample) / 8;
  const tag = spec.encoding === 'float' ? 3 : 1;
  const body = new Uint8Array(spec.extensible ? 40 : 16);
  const v = new DataView(body.buffer);
  v.setUint16(0, spec.extensible ? 0xfffe : tag, true);
  v.setUint16(2, spec.channels, true);
  v.setUint32(4, spec.sampleRate, true);
  v.setUint32(8, spec.sampleRate * blockAlign, true);
  v.setUint16(12, blockAlign, true);
  v.setUint16(14, spec.bitsPerSample, true);
  if (spec.extensible) {
    v.setUint16(16, 22, true); // cbSize
    v.setUint16(18, spec.bitsPerSample, true); // valid bits
    v.setUint32(20, 0, true); // channel mask: unspecified
    v.setUint16(24, tag, true);
    body.set([0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71], 26);
  }
  return body;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Header bytes up to and including the `data` chunk header (plus any chunks before it). */
export function wavHeader(spec: WavSpec, dataBytes: number): Uint8Array {
  const field = spec.dataSizeField ?? 'exact';
  const sizeField = field === 'exact' ? dataBytes : field === 'zero' ? 0 : field === 'max' ? 0xffffffff : field;
  const extra = (at: string) => (spec.chunks ?? []).filter((c) => c.at === at).map((c) => chunk(c.id, c.body));
  const beforeData = concat([...extra('beforeFmt'), chunk('fmt ', fmtBody(spec)), ...extra('afterFmt')]);
  const after = concat(extra('afterData'));
  const riffSize = 4 + beforeData.length + 8 + dataBytes + (dataBytes & 1) + after.length;
  const head = new Uint8Array(12 + beforeData.length + 8);
  head.set(ascii('RIFF'), 0);
  new DataView(head.buffer).setUint32(4, Math.min(riffSize, 0xffffffff), true);
  head.set(ascii('WAVE'), 8);
  head.set(beforeData, 12);
  head.set(ascii('data'), 12 + beforeData.length);
  new DataView(head.buffer).setUint32(12 + beforeData.length + 4, sizeField >>> 0, true);
  return head;
}

/** Encodes interleaved samples (full scale 1.0) in the spec's sample format, rounding and clipping. */
export function encodeSamples(spec: WavSpec, samples: ArrayLike<number>): Uint8Array {
  const bytes = spec.bitsPerSample / 8;
  const out = new Uint8Array(samples.length * bytes);
  const v = new DataView(out.buffer);
  const clip = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x));
  for (let i = 0; i < samples.length; i++) {
    const x = samples[i]!;
    const at = i * bytes;
    if (spec.encoding === 'float') {
      if (spec.bitsPerSample === 32) v.setFloat32(at, x, true);
      else v.setFloat64(at, x, true);
      continue;
    }
    switch (spec.bitsPerSample) {
      case 8:
        v.setUint8(at, clip(Math.round(x * 128) + 128, 0, 255));
        break;
      case 16:
        v.setInt16(at, clip(Math.round(x * 32768), -32768, 32767), true);
        break;
      case 24: {
        const s = clip(Math.round(x * 8388608), -8388608, 8388607);
        v.setUint8(at, s & 0xff);
        v.setUint8(at + 1, (s >> 8) & 0xff);
        v.setUint8(at + 2, (s >> 16) & 0xff);
        break;
      }
      case 32:
        v.setInt32(at, clip(Math.round(x * 2147483648), -2147483648, 2147483647), true);
        break;
      default:
        throw new Error(`unsupported bits ${spec.bitsPerSample}`);
    }
  }
  return out;
}

/** A whole WAV file in memory. */
export function encodeWav(spec: WavSpec, samples: ArrayLike<number>): Uint8Array {
  const data = encodeSamples(spec, samples);
  const after = (spec.chunks ?? []).filter((c) => c.at === 'afterData').map((c) => chunk(c.id, c.body));
  return concat([wavHeader(spec, data.length), data, data.length & 1 ? new Uint8Array(1) : new Uint8Array(0), ...after]);
}

/** Interleaved test signal: a sine of `frequency` Hz at `amplitude` in every channel. */
export function sine(sampleRate: number, channels: number, frames: number, frequency: number, amplitude = 0.5): Float64Array {
  const out = new Float64Array(frames * channels);
  for (let i = 0; i < frames; i++) {
    const x = amplitude * Math.sin((2 * Math.PI * frequency * i) / sampleRate);
    for (let c = 0; c < channels; c++) out[i * channels + c] = x;
  }
  return out;
}

const TABLE_SIZE = 8192;
/** One period of a sine, looked up by phase in cycles: Math.sin per sample would make a 4 h file take minutes. */
const SINE_TABLE = Float32Array.from({ length: TABLE_SIZE + 1 }, (_, i) => Math.sin((2 * Math.PI * i) / TABLE_SIZE));
const sinCycles = (phase: number) => SINE_TABLE[((phase - Math.floor(phase)) * TABLE_SIZE) | 0]!;

/**
 * Streams a 16-bit PCM WAV of `seconds` to `path`, one second at a time
 * (constant memory whatever the length): three voice-band partials whose
 * pitch glides and whose loudness follows ~4 Hz "syllables" with pauses,
 * plus a little noise; the channels differ slightly. Returns the file size.
 */
export function writeSpeechLikeWav(path: string, seconds: number, sampleRate = 44100, channels = 2): number {
  const spec: WavSpec = { sampleRate, channels, bitsPerSample: 16, encoding: 'pcm' };
  const frames = Math.round(seconds * sampleRate);
  const dataBytes = frames * channels * 2;
  const header = wavHeader(spec, dataBytes);
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, header);
    const block = new Int16Array(sampleRate * channels);
    let seed = 0x2545f491;
    // Phases in cycles, kept in [0, 1) so precision does not drift over hours.
    let voice = 0;
    let formant = 0;
    for (let start = 0; start < frames; start += sampleRate) {
      const n = Math.min(sampleRate, frames - start);
      for (let i = 0; i < n; i++) {
        const t = (start + i) / sampleRate;
        const pitch = 140 + 40 * sinCycles(0.3 * t);
        voice += pitch / sampleRate;
        voice -= Math.floor(voice);
        formant += (2400 + 300 * sinCycles(0.7 * t)) / sampleRate;
        formant -= Math.floor(formant);
        const syllable = Math.max(0, sinCycles(4 * t)) * (sinCycles(0.2 * t) > -0.6 ? 1 : 0);
        seed ^= seed << 13;
        seed ^= seed >>> 17;
        seed ^= seed << 5;
        const noise = seed / 2 ** 31;
        const x = syllable * (0.3 * sinCycles(voice) + 0.15 * sinCycles(3.1 * voice) + 0.05 * sinCycles(formant));
        for (let c = 0; c < channels; c++) block[i * channels + c] = Math.round((x * (1 - 0.1 * c) + 0.01 * noise) * 32767);
      }
      writeSync(fd, new Uint8Array(block.buffer, 0, n * channels * 2));
    }
  } finally {
    closeSync(fd);
  }
  return header.length + dataBytes;
}
