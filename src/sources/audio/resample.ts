/**
 * Streaming band-limited resampler to 16 kHz mono Int16, the format
 * whisper.cpp wants.
 *
 * 1. Channels are averaged to mono.
 * 2. A windowed-sinc low-pass (Kaiser window, 70 dB stop band) evaluated in
 *    polyphase form: output sample n sits at input position n * fin / fout,
 *    split into an integer index and a phase; the phase picks one row of the
 *    coefficient table. Pass band to 0.45 * min(fin, fout), -6 dB at
 *    0.5 * min (the output's Nyquist when down-sampling), stop band from
 *    0.55 * min. Aliases can land only in the top 0.45-0.5 band (7.2-8 kHz
 *    at 16 kHz); everything that would alias below 7.2 kHz is >= 70 dB down.
 *    - Integer down-sampling (32k, 48k, 96k -> 16k): one phase, the fast path.
 *    - Other rational ratios (44.1k = 160/441 phases, 22.05k, 11.025k, 8k
 *      up-sampling, odd rates like 44 056 Hz = 2000 phases): one exact row
 *      per phase, while the table stays within 4 MB.
 *    - Beyond that (e.g. 44 101 Hz: 16 000 phases) rows of a 512-phase table
 *      are interpolated linearly, in JS (slower; no real device records so).
 *    The loop over outputs runs in WebAssembly SIMD (simdFir.ts) where
 *    available, else in JS.
 * 3. The filter is centred on each output instant (its group delay is
 *    compensated), so output sample n is the signal at time n / 16000 s: the
 *    output is time-aligned with the input, and the stream is flushed with
 *    zeros at the end so the whole output has exactly
 *    round(inputFrames * 16000 / inputRate) samples.
 * 4. Rounded to Int16 and clipped.
 *
 * State (the last K input samples, K = filter taps) carries across pushes, so
 * the output does not depend on how the input is split.
 */

import { createSimdFir, SIMD_TAPS_MULTIPLE, type SimdFir } from './simdFir.js';

export const OUTPUT_RATE = 16000;

/** Stop-band attenuation of the anti-alias filter, dB. */
export const STOPBAND_DB = 70;
/** Pass-band edge, -6 dB point and stop-band edge, as fractions of min(input rate, output rate). */
export const PASSBAND_EDGE = 0.45;
export const CUTOFF = 0.5;
export const STOPBAND_EDGE = 0.55;
/** Exact polyphase rows while phases x taps stays within this many coefficients (4 MB); beyond, rows of a TABLE_PHASES table are interpolated. */
const MAX_EXACT_COEFFICIENTS = 1 << 20;
const TABLE_PHASES = 512;


function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** Output samples for `inputFrames` at `inputRate`: round(duration * outputRate), half up, in exact integer arithmetic. */
export function expectedOutputSamples(inputFrames: number, inputRate: number, outputRate: number = OUTPUT_RATE): number {
  const g = gcd(inputRate, outputRate);
  const up = outputRate / g;
  const down = inputRate / g;
  return Math.floor((2 * inputFrames * up + down) / (2 * down));
}

/** Zeroth-order modified Bessel function of the first kind (power series; converges fast for the betas used). */
function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  const q = (x * x) / 4;
  for (let k = 1; k < 64; k++) {
    term *= q / (k * k);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

export interface FilterDesign {
  /** Taps per phase (a multiple of 16): each output reads this many input samples. */
  taps: number;
  /** -6 dB cutoff in cycles per input sample. */
  cutoff: number;
  beta: number;
}

/** Kaiser-window design for resampling `inputRate` -> `outputRate` (Kaiser's length formula for STOPBAND_DB). */
export function designFilter(inputRate: number, outputRate: number): FilterDesign {
  const minRate = Math.min(inputRate, outputRate);
  const transition = ((STOPBAND_EDGE - PASSBAND_EDGE) * minRate) / inputRate;
  const beta = 0.1102 * (STOPBAND_DB - 8.7);
  const length = Math.ceil((STOPBAND_DB - 7.95) / (14.36 * transition)) + 1;
  // A multiple of 16: the SIMD kernel does 16 taps a step, the JS loop 8.
  return { taps: Math.ceil(length / SIMD_TAPS_MULTIPLE) * SIMD_TAPS_MULTIPLE, cutoff: (CUTOFF * minRate) / inputRate, beta };
}

/**
 * Coefficient table: `rows` rows of `taps`; row r is the impulse response
 * sampled at fractional delay r / phases: c[r][j] = h(r / phases + taps/2 - 1 - j).
 * Each row is normalised to unit DC gain (no ripple from the phase).
 */
function coefficientTable(design: FilterDesign, phases: number, rows: number): Float32Array {
  const { taps, cutoff, beta } = design;
  const half = taps / 2;
  const row = new Float64Array(taps);
  const table = new Float32Array(rows * taps);
  const i0Beta = besselI0(beta);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let j = 0; j < taps; j++) {
      const t = r / phases + half - 1 - j;
      const u = t / half;
      const window = Math.abs(u) >= 1 ? 0 : besselI0(beta * Math.sqrt(1 - u * u)) / i0Beta;
      const x = 2 * cutoff * t;
      const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
      const value = 2 * cutoff * sinc * window;
      row[j] = value;
      sum += value;
    }
    for (let j = 0; j < taps; j++) table[r * taps + j] = row[j]! / sum;
  }
  return table;
}

const EMPTY = new Int16Array(0);

/**
 * sum(c[row + j] * x[at + j]) for j < taps (a multiple of 16). Four
 * accumulators: one running sum is bound by the latency of each addition;
 * four independent ones let the CPU overlap them (about 3x faster here).
 */
function dot(c: Float32Array, row: number, x: Float32Array, at: number, taps: number): number {
  let a0 = 0;
  let a1 = 0;
  let a2 = 0;
  let a3 = 0;
  let a4 = 0;
  let a5 = 0;
  let a6 = 0;
  let a7 = 0;
  for (let j = 0; j < taps; j += 8) {
    const r = row + j;
    const k = at + j;
    a0 += c[r]! * x[k]!;
    a1 += c[r + 1]! * x[k + 1]!;
    a2 += c[r + 2]! * x[k + 2]!;
    a3 += c[r + 3]! * x[k + 3]!;
    a4 += c[r + 4]! * x[k + 4]!;
    a5 += c[r + 5]! * x[k + 5]!;
    a6 += c[r + 6]! * x[k + 6]!;
    a7 += c[r + 7]! * x[k + 7]!;
  }
  return a0 + a1 + (a2 + a3) + (a4 + a5 + (a6 + a7));
}

function toInt16(value: number): number {
  const v = Math.round(value * 32768);
  return v > 32767 ? 32767 : v < -32768 ? -32768 : v;
}

/** Options of {@link Resampler}. */
export interface ResamplerOptions {
  /** Use the WebAssembly SIMD kernel when available (default true); false forces the JS loop. */
  simd?: boolean;
  /**
   * Return views of one reused buffer, valid until the next push or flush,
   * instead of fresh arrays (default false): for consumers that copy at once
   * (the chunker), so a long file allocates no garbage per read.
   */
  reuseOutput?: boolean;
}

/**
 * Streaming resampler to 16 kHz mono.
 *
 * ```ts
 * const r = new Resampler(44100, 2);
 * const a = r.push(interleavedFloat32); // Int16Array, 16 kHz mono
 * const z = r.flush();                  // the tail; total = round(frames * 16000 / 44100)
 * ```
 */
export class Resampler {
  readonly inputRate: number;
  readonly channels: number;
  readonly outputRate: number;
  /** Taps per output sample (0 when the rate is already right: no filtering at all). */
  readonly taps: number;
  /** True when the WebAssembly SIMD kernel computes the outputs. */
  readonly simd: boolean;
  private readonly up: number;
  private readonly down: number;
  private readonly half: number;
  private readonly table: Float32Array;
  private readonly exact: boolean;
  private readonly kernel: SimdFir | null;
  private readonly reuseOutput: boolean;
  private scratch = new Int16Array(0);
  /** Mono input history; buf[0] is input sample `bufBase` (negative indices are the leading zeros). */
  private buf: Float32Array;
  private bufLength: number;
  private bufBase: number;
  /** Next output: at input position index + phase / up. */
  private index = 0;
  private phase = 0;
  private produced = 0;
  private received = 0;
  private flushed = false;

  constructor(inputRate: number, channels: number, outputRate: number = OUTPUT_RATE, options: ResamplerOptions = {}) {
    if (!(Number.isInteger(inputRate) && inputRate > 0)) throw new RangeError(`input rate must be a positive integer, got ${inputRate}`);
    if (!(Number.isInteger(channels) && channels > 0)) throw new RangeError(`channels must be a positive integer, got ${channels}`);
    if (!(Number.isInteger(outputRate) && outputRate > 0)) throw new RangeError(`output rate must be a positive integer, got ${outputRate}`);
    this.inputRate = inputRate;
    this.channels = channels;
    this.outputRate = outputRate;
    this.reuseOutput = options.reuseOutput ?? false;
    const g = gcd(inputRate, outputRate);
    this.up = outputRate / g;
    this.down = inputRate / g;
    const initialHistory = 4096;
    if (this.up === this.down) {
      this.taps = 0;
      this.half = 0;
      this.table = new Float32Array(0);
      this.exact = true;
      this.kernel = null;
    } else {
      const design = designFilter(inputRate, outputRate);
      this.taps = design.taps;
      this.half = design.taps / 2;
      this.exact = this.up * design.taps <= MAX_EXACT_COEFFICIENTS;
      this.table = coefficientTable(design, this.exact ? this.up : TABLE_PHASES, this.exact ? this.up : TABLE_PHASES + 1);
      // Odd rates interpolate coefficients per output in JS; the kernel serves the exact table.
      this.kernel = options.simd !== false && this.exact ? createSimdFir(this.table, Math.max(initialHistory, this.taps * 2)) : null;
    }
    this.simd = this.kernel !== null;
    // half - 1 leading zeros: output 0 (at input 0) reads inputs -(half - 1) .. half.
    this.bufLength = Math.max(this.half - 1, 0);
    this.bufBase = -this.bufLength;
    this.buf = this.kernel ? this.kernel.history : new Float32Array(Math.max(initialHistory, this.taps * 2));
  }

  /** Input frames pushed so far. */
  get inputFrames(): number {
    return this.received;
  }

  /** Output samples produced so far. */
  get outputSamples(): number {
    return this.produced;
  }

  /** Pushes interleaved frames (`channels` samples each, full scale 1.0); returns the output samples now computable. */
  push(interleaved: Float32Array): Int16Array {
    if (this.flushed) throw new Error('Resampler.push after flush');
    const frames = Math.floor(interleaved.length / this.channels);
    if (frames === 0) return EMPTY;
    if (this.taps === 0) return this.passThrough(interleaved, frames);
    this.append(interleaved, frames);
    this.received += frames;
    return this.run(this.received - this.half, Number.POSITIVE_INFINITY);
  }

  /** Ends the stream: the last outputs, computed with zeros past the end. */
  flush(): Int16Array {
    if (this.flushed) return EMPTY;
    this.flushed = true;
    if (this.taps === 0) return EMPTY;
    const total = expectedOutputSamples(this.received, this.inputRate, this.outputRate);
    this.append(new Float32Array(this.half * this.channels), this.half);
    return this.run(this.received, total);
  }

  /** A fresh array, or with reuseOutput a view of the scratch buffer. */
  private output(length: number): Int16Array {
    if (!this.reuseOutput) return new Int16Array(length);
    if (this.scratch.length < length) this.scratch = new Int16Array(length);
    return this.scratch.subarray(0, length);
  }

  /** Same rate: only the downmix and the conversion. */
  private passThrough(interleaved: Float32Array, frames: number): Int16Array {
    const out = this.output(frames);
    const c = this.channels;
    if (c === 1) for (let i = 0; i < frames; i++) out[i] = toInt16(interleaved[i]!);
    else {
      for (let i = 0, p = 0; i < frames; i++) {
        let sum = 0;
        for (let k = 0; k < c; k++) sum += interleaved[p++]!;
        out[i] = toInt16(sum / c);
      }
    }
    this.received += frames;
    this.produced += frames;
    return out;
  }

  /** Downmixes `frames` frames onto the end of the history, growing it only if a push is larger than any before. */
  private append(interleaved: Float32Array, frames: number): void {
    if (this.bufLength + frames > this.buf.length) {
      const capacity = Math.max(this.bufLength + frames, this.buf.length * 2);
      if (this.kernel) {
        this.kernel.reserveHistory(capacity);
        this.buf = this.kernel.history;
      } else {
        const grown = new Float32Array(capacity);
        grown.set(this.buf.subarray(0, this.bufLength));
        this.buf = grown;
      }
    }
    const buf = this.buf;
    const c = this.channels;
    let o = this.bufLength;
    if (c === 1) buf.set(interleaved.subarray(0, frames), o);
    else if (c === 2) for (let i = 0, p = 0; i < frames; i++, p += 2) buf[o++] = (interleaved[p]! + interleaved[p + 1]!) * 0.5;
    else {
      const scale = 1 / c;
      for (let i = 0, p = 0; i < frames; i++) {
        let sum = 0;
        for (let k = 0; k < c; k++) sum += interleaved[p++]!;
        buf[o++] = sum * scale;
      }
    }
    this.bufLength += frames;
  }

  /**
   * Computes outputs whose integer input index is < `limitIndex` (all the
   * input they read is present), and at most up to output number `limitCount`.
   */
  private run(limitIndex: number, limitCount: number): Int16Array {
    const { up, down, taps } = this;
    // Outputs n with floor(n * down / up) < limitIndex  <=>  n < limitIndex * up / down.
    const end = limitIndex <= 0 ? 0 : Math.min(Math.floor((limitIndex * up + down - 1) / down), limitCount);
    const count = Math.max(end - this.produced, 0);
    let out = count === 0 || this.kernel ? EMPTY : this.output(count);
    const stepIndex = Math.floor(down / up);
    const stepPhase = down % up;
    let index = this.index;
    let phase = this.phase;
    let at = index - this.half + 1 - this.bufBase;
    if (this.kernel) {
      if (count > 0) {
        // Byte addresses in the kernel's memory: the table is at 0, the history at historyByte.
        // The kernel's output is a view of its memory, overwritten by the next call.
        const result = this.kernel.run(taps, count, up, this.kernel.historyByte + at * 4, phase, stepPhase, stepIndex * 4);
        out = this.reuseOutput ? result : result.slice();
        // Where the JS loop below would have ended: count steps of the phase, carrying into the index.
        const phaseSum = phase + count * stepPhase;
        index += count * stepIndex + Math.floor(phaseSum / up);
        phase = phaseSum % up;
        // The kernel's memory may have grown (new buffer): take the fresh history view.
        this.buf = this.kernel.history;
      }
    } else if (this.exact) {
      const table = this.table;
      const buf = this.buf;
      for (let o = 0; o < count; o++) {
        out[o] = toInt16(dot(table, phase * taps, buf, at, taps));
        index += stepIndex;
        at += stepIndex;
        phase += stepPhase;
        if (phase >= up) {
          phase -= up;
          index += 1;
          at += 1;
        }
      }
    } else {
      const table = this.table;
      const buf = this.buf;
      const scale = TABLE_PHASES / up;
      for (let o = 0; o < count; o++) {
        const position = phase * scale;
        const r = Math.floor(position);
        const w = position - r;
        const row0 = r * taps;
        const row1 = row0 + taps;
        let acc = 0;
        for (let j = 0; j < taps; j++) {
          const c0 = table[row0 + j]!;
          acc += (c0 + w * (table[row1 + j]! - c0)) * buf[at + j]!;
        }
        out[o] = toInt16(acc);
        index += stepIndex;
        at += stepIndex;
        phase += stepPhase;
        if (phase >= up) {
          phase -= up;
          index += 1;
          at += 1;
        }
      }
    }
    this.index = index;
    this.phase = phase;
    this.produced += count;
    // Drop history the next output no longer reads.
    const keepFrom = index - this.half + 1 - this.bufBase;
    if (keepFrom > 0) {
      const drop = Math.min(keepFrom, this.bufLength);
      this.buf.copyWithin(0, drop, this.bufLength);
      this.bufLength -= drop;
      this.bufBase += drop;
    }
    return out;
  }
}
