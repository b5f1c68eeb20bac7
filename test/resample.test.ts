import { describe, expect, it } from 'vitest';
import { sine } from '../bench/support/makeWav.js';
import { designFilter, expectedOutputSamples, Resampler } from '../src/sources/audio/resample.js';

/** Runs a whole signal through a resampler in pushes of `step` frames; returns all output. */
function resample(input: ArrayLike<number>, rate: number, channels: number, step = 4099, simd = true): Int16Array {
  const r = new Resampler(rate, channels, 16000, { simd });
  const parts: Int16Array[] = [];
  const all = Float32Array.from(input);
  for (let at = 0; at < all.length; at += step * channels) parts.push(r.push(all.subarray(at, at + step * channels)));
  parts.push(r.flush());
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  expect(r.outputSamples).toBe(out.length);
  return out;
}

const rms = (x: ArrayLike<number>, from = 0, to = x.length) => {
  let sum = 0;
  for (let i = from; i < to; i++) sum += (x[i]! / 32768) ** 2;
  return Math.sqrt(sum / (to - from));
};
const db = (ratio: number) => 20 * Math.log10(ratio);
/** Amplitude of the `frequency` component (Goertzel, full scale 1.0) over x[from, to). */
function amplitudeAt(x: ArrayLike<number>, frequency: number, rate: number, from = 0, to = x.length): number {
  const w = (2 * Math.PI * frequency) / rate;
  const coeff = 2 * Math.cos(w);
  let s1 = 0;
  let s2 = 0;
  for (let i = from; i < to; i++) {
    const s0 = x[i]! / 32768 + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
  return (2 * Math.sqrt(Math.max(power, 0))) / (to - from);
}

/** The edges of the output are where the filter sees the zero padding: measure in the middle. */
const MARGIN = 1000;

describe('resampler: output length', () => {
  it('emits exactly round(frames * 16000 / rate) samples for every rate, length and push size', () => {
    for (const rate of [8000, 11025, 16000, 22050, 32000, 44100, 48000, 88200, 96000, 44056, 44101, 7999]) {
      for (const frames of [0, 1, 2, 3, 5, 137, 1000, 4410, 44101]) {
        for (const step of [1, 997, 65536]) {
          if (step === 1 && frames > 1000) continue;
          const input = sine(rate, 2, frames, 440);
          const out = resample(input, rate, 2, step);
          expect(out.length, `${rate} Hz, ${frames} frames, pushes of ${step}`).toBe(Math.round((frames * 16000) / rate));
        }
      }
    }
  });

  it('expectedOutputSamples rounds half up in exact integer arithmetic', () => {
    expect(expectedOutputSamples(1, 32000)).toBe(1); // 0.5 -> 1
    expect(expectedOutputSamples(3, 96000)).toBe(1); // 0.5 -> 1
    expect(expectedOutputSamples(2, 96000)).toBe(0); // 0.33 -> 0
    expect(expectedOutputSamples(44100 * 3600 * 4, 44100)).toBe(16000 * 3600 * 4);
    expect(expectedOutputSamples(1_587_600_001, 44100)).toBe(Math.round((1_587_600_001 * 16000) / 44100));
  });

  it('the output does not depend on how the input is split', () => {
    for (const rate of [44100, 48000, 8000, 44056, 44101]) {
      const input = sine(rate, 3, rate, 1234, 0.7);
      const whole = resample(input, rate, 3, rate);
      expect(resample(input, rate, 3, 1)).toEqual(whole);
      expect(resample(input, rate, 3, 333)).toEqual(whole);
    }
  });
});

describe('resampler: quality', () => {
  it('a 1 kHz sine survives 44.1 kHz stereo -> 16 kHz within 0.5 dB, time-aligned (group delay compensated)', () => {
    const amplitude = 0.5;
    const out = resample(sine(44100, 2, 44100 * 2, 1000, amplitude), 44100, 2);
    const gain = db(rms(out, MARGIN, out.length - MARGIN) / (amplitude / Math.SQRT2));
    expect(Math.abs(gain)).toBeLessThan(0.5);
    // Sample n of the output is the signal at n / 16000 s: compare with the ideal sine sampled at 16 kHz.
    let error = 0;
    let signal = 0;
    for (let n = MARGIN; n < out.length - MARGIN; n++) {
      const ideal = amplitude * Math.sin((2 * Math.PI * 1000 * n) / 16000);
      error += (out[n]! / 32768 - ideal) ** 2;
      signal += ideal ** 2;
    }
    expect(10 * Math.log10(error / signal)).toBeLessThan(-60);
  });

  it('a 1 kHz sine within 0.5 dB from every common rate (down and up)', () => {
    for (const rate of [8000, 11025, 22050, 32000, 48000, 96000, 44056, 44101]) {
      const out = resample(sine(rate, 1, rate, 1000, 0.5), rate, 1);
      expect(Math.abs(db(rms(out, MARGIN, out.length - MARGIN) / (0.5 / Math.SQRT2))), `${rate} Hz`).toBeLessThan(0.5);
    }
  });

  it('a 7.5 kHz tone (below the 8 kHz Nyquist) passes, losing less than 1 dB', () => {
    for (const rate of [44100, 48000, 22050]) {
      const out = resample(sine(rate, 2, rate, 7500, 0.5), rate, 2);
      const gain = db(amplitudeAt(out, 7500, 16000, MARGIN, out.length - MARGIN) / 0.5);
      expect(gain, `${rate} Hz`).toBeGreaterThan(-1);
      expect(gain, `${rate} Hz`).toBeLessThan(0.1);
    }
  });

  it('a 12 kHz tone in 44.1 kHz is attenuated by >= 60 dB, with no alias at 4 kHz (naive decimation would fold it there)', () => {
    const input = sine(44100, 1, 44100 * 2, 12000, 0.5);
    const out = resample(input, 44100, 1);
    expect(db(rms(out, MARGIN, out.length - MARGIN) / (0.5 / Math.SQRT2))).toBeLessThan(-60);
    expect(db(amplitudeAt(out, 4000, 16000, MARGIN, out.length - MARGIN) / 0.5)).toBeLessThan(-60);
    // The test can fail: picking the nearest input sample instead of filtering puts the tone at 4 kHz at full level.
    const naive = Int16Array.from({ length: out.length }, (_, n) => Math.round(input[Math.round((n * 44100) / 16000)]! * 32767));
    expect(db(amplitudeAt(naive, 4000, 16000, MARGIN, naive.length - MARGIN) / 0.5)).toBeGreaterThan(-12);
  });

  it('48 kHz -> 16 kHz (integer path): 12 kHz and 9 kHz are gone, 1 kHz is kept', () => {
    for (const [frequency, expectAbove, expectBelow] of [
      [12000, -Infinity, -60],
      [9000, -Infinity, -60],
      [1000, -0.5, 0.5],
    ] as const) {
      const out = resample(sine(48000, 2, 48000, frequency, 0.5), 48000, 2);
      const gain = db(rms(out, MARGIN, out.length - MARGIN) / (0.5 / Math.SQRT2));
      expect(gain, `${frequency} Hz`).toBeGreaterThan(expectAbove);
      expect(gain, `${frequency} Hz`).toBeLessThan(expectBelow);
    }
  });

  it('up-sampling 8 kHz -> 16 kHz leaves no image (1 kHz would mirror to 7 kHz)', () => {
    const out = resample(sine(8000, 1, 16000, 1000, 0.5), 8000, 1);
    expect(db(amplitudeAt(out, 7000, 16000, MARGIN, out.length - MARGIN) / 0.5)).toBeLessThan(-60);
    expect(Math.abs(db(amplitudeAt(out, 1000, 16000, MARGIN, out.length - MARGIN) / 0.5))).toBeLessThan(0.5);
  });

  it('an impulse comes out centred where it happened in time (no filter delay)', () => {
    for (const rate of [44100, 48000, 22050, 8000]) {
      const at = Math.round(rate * 0.25);
      const input = new Float32Array(rate);
      input[at] = 1;
      const out = resample(input, rate, 1);
      const peak = out.indexOf(Math.max(...out));
      expect(Math.abs(peak - (at * 16000) / rate), `${rate} Hz`).toBeLessThanOrEqual(0.5);
    }
  });

  it('a 12 kHz tone from an odd rate (44 101 Hz: interpolated coefficient table) is attenuated by >= 60 dB too', () => {
    const out = resample(sine(44101, 1, 44101, 12000, 0.5), 44101, 1);
    expect(db(rms(out, MARGIN, out.length - MARGIN) / (0.5 / Math.SQRT2))).toBeLessThan(-60);
  });

  it('the anti-alias filter is longer for larger ratios (taps scale with rate / 16000)', () => {
    expect(designFilter(44100, 16000).taps).toBe(128);
    expect(designFilter(48000, 16000).taps).toBeGreaterThan(designFilter(32000, 16000).taps);
    expect(designFilter(96000, 16000).taps).toBeGreaterThan(2 * designFilter(44100, 16000).taps);
  });
});

describe('resampler: channels, rounding, paths', () => {
  it('16 kHz mono 16-bit passes through bit-exactly', () => {
    const values = Int16Array.from({ length: 5000 }, (_, i) => ((i * 7919) % 65536) - 32768);
    const out = resample(Float32Array.from(values, (v) => v / 32768), 16000, 1, 1000);
    expect(out).toEqual(values);
  });

  it('channels are averaged before resampling (opposite channels cancel)', () => {
    const frames = 16000;
    const input = new Float32Array(frames * 2);
    for (let i = 0; i < frames; i++) {
      const x = 0.5 * Math.sin((2 * Math.PI * 440 * i) / 16000);
      input[2 * i] = x;
      input[2 * i + 1] = -x;
    }
    expect(rms(resample(input, 16000, 2))).toBe(0);
    expect(rms(resample(Float32Array.from({ length: 8 * 100 }, (_, i) => (i % 8 === 0 ? 0.8 : 0)), 16000, 8))).toBeCloseTo(0.1, 4);
    const louder = resample(sine(44100, 2, 44100, 440, 0.4), 44100, 2);
    expect(Math.abs(db(rms(louder, MARGIN, louder.length - MARGIN) / (0.4 / Math.SQRT2)))).toBeLessThan(0.5);
  });

  it('clips instead of wrapping around: full-scale DC and the overshoot of a full-scale square wave', () => {
    // DC at full scale: the filter's DC gain is 1, so 1.0 * 32768 must clip to 32767, not wrap to -32768.
    expect(new Set(resample(new Float32Array(44100).fill(1), 44100, 1).subarray(MARGIN, -MARGIN))).toEqual(new Set([32767]));
    // A square wave overshoots (Gibbs) after low-pass filtering; wrapped samples would flip sign on a plateau.
    const period = 100;
    const input = Float32Array.from({ length: 44100 }, (_, i) => (Math.floor(i / (period / 2)) % 2 === 0 ? 1 : -1));
    const out = resample(input, 44100, 1);
    expect(Math.max(...out)).toBe(32767);
    expect(Math.min(...out)).toBe(-32768);
    for (let n = MARGIN; n < out.length - MARGIN; n++) {
      const position = ((n * 44100) / 16000) % period; // where in the input period output n sits
      const fromEdge = Math.min(position, Math.abs(position - period / 2), period - position);
      if (fromEdge > 8) expect(Math.sign(out[n]!), `sample ${n}`).toBe(position < period / 2 ? 1 : -1);
    }
    // Float input beyond full scale is clipped too; NaN becomes 0.
    expect(Array.from(resample(Float32Array.of(3, -3, Number.NaN), 16000, 1))).toEqual([32767, -32768, 0]);
  });

  it('the WebAssembly SIMD kernel and the JS loop agree within 1 LSB', () => {
    for (const rate of [44100, 48000, 11025]) {
      const input = sine(rate, 2, rate, 3000, 0.9);
      const simd = resample(input, rate, 2, 4096, true);
      const js = resample(input, rate, 2, 4096, false);
      expect(simd.length).toBe(js.length);
      let worst = 0;
      for (let i = 0; i < js.length; i++) worst = Math.max(worst, Math.abs(simd[i]! - js[i]!));
      expect(worst, `${rate} Hz`).toBeLessThanOrEqual(1);
    }
    expect(new Resampler(44100, 2).simd).toBe(true);
    expect(new Resampler(44100, 2, 16000, { simd: false }).simd).toBe(false);
  });

  it('rejects bad rates and channel counts, and pushes after flush', () => {
    expect(() => new Resampler(0, 1)).toThrow(RangeError);
    expect(() => new Resampler(44100, 0)).toThrow(RangeError);
    expect(() => new Resampler(44100.5, 1)).toThrow(RangeError);
    const r = new Resampler(44100, 1);
    r.flush();
    expect(() => r.push(new Float32Array(10))).toThrow(/after flush/);
    expect(r.flush()).toEqual(new Int16Array(0));
  });
});
