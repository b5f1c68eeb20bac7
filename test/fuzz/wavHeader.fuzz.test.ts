/**
 * Fuzzing the WAV parser with mutated headers: every header field set to
 * random and boundary values, chunk sizes odd, zero, huge and lying, extra
 * chunks anywhere, bytes flipped, the file cut at every offset, and all of it
 * pushed in random pieces.
 *
 * Every parse either returns frames or throws an AudioDecodeError with a
 * known code and the byte offset of the problem (inside the input, and in the
 * message); the outcome never depends on how the input was split; the parser
 * never keeps more than a bounded header buffer and never returns more
 * samples than the bytes it was given (no allocation from a declared size).
 * Failures print fast-check's seed and path.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeWav, type WavSpec } from '../../bench/support/makeWav.js';
import { AUDIO_ERROR_CODES, AudioDecodeError, WavParser } from '../../src/sources/audio/wavParser.js';
import { runs } from './support/runs.js';

type Outcome = { ok: true; samples: number; channels: number | null } | { ok: false; code: string; byteOffset: number | null; message: string };

/** Largest header buffer the parser may hold: the biggest `fmt ` chunk it accepts (64 KiB) plus its pad byte. */
const MAX_PENDING = (1 << 16) + 1;

/** Parses `bytes` pushed in the given piece sizes (cycled); checks the bounds on the way. */
function parse(bytes: Uint8Array, pieces: readonly number[]): Outcome {
  const parser = new WavParser('fuzz.wav');
  let samples = 0;
  try {
    let at = 0;
    for (let i = 0; at < bytes.length; i += 1) {
      const size = pieces.length ? Math.max(1, pieces[i % pieces.length] as number) : bytes.length;
      const out = parser.push(bytes.subarray(at, at + size));
      at += size;
      samples += out.length;
      // Never more samples than bytes given (each sample is at least one byte): no allocation from a declared size.
      // (Plain checks, not expect(): this runs for every piece of every cut.)
      const inner = parser as unknown as { pending: Uint8Array; carry: Uint8Array };
      if (samples > Math.min(at, bytes.length)) throw new Error(`${samples} samples from ${Math.min(at, bytes.length)} bytes`);
      if (inner.pending.length > MAX_PENDING) throw new Error(`a header buffer of ${inner.pending.length} bytes`);
      if (inner.carry.length > 0xffff) throw new Error(`a frame buffer of ${inner.carry.length} bytes`);
    }
    samples += parser.end().length;
  } catch (error) {
    if (!(error instanceof AudioDecodeError)) throw new Error(`expected an AudioDecodeError, got ${String((error as Error)?.stack ?? error)}`);
    return { ok: false, code: error.code, byteOffset: error.byteOffset, message: error.message };
  }
  if (parser.bytesRead !== bytes.length) throw new Error(`bytesRead ${parser.bytesRead} of ${bytes.length}`);
  return { ok: true, samples, channels: parser.format?.channels ?? null };
}

function expectClear(outcome: Outcome, length: number): void {
  if (outcome.ok) {
    if (outcome.channels !== null) expect(outcome.samples % outcome.channels).toBe(0);
    return;
  }
  expect(AUDIO_ERROR_CODES).toContain(outcome.code);
  // Every parser error names the byte it is about, inside the input (or just past its end).
  expect(outcome.byteOffset, outcome.message).not.toBeNull();
  expect(outcome.byteOffset!).toBeGreaterThanOrEqual(0);
  expect(outcome.byteOffset!, outcome.message).toBeLessThanOrEqual(length);
  expect(outcome.message.startsWith(`fuzz.wav: byte ${outcome.byteOffset}: `), outcome.message).toBe(true);
}

const ascii = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));

// ---------------------------------------------------------------------------------------
// Valid files and their mutations
// ---------------------------------------------------------------------------------------

const specArb: fc.Arbitrary<WavSpec> = fc
  .record({
    sampleRate: fc.constantFrom(8000, 16000, 44100, 1, 0xffffffff),
    channels: fc.constantFrom(1, 2, 3, 6),
    format: fc.constantFrom([8, 'pcm'], [16, 'pcm'], [24, 'pcm'], [32, 'pcm'], [32, 'float'], [64, 'float']) as fc.Arbitrary<[number, 'pcm' | 'float']>,
    extensible: fc.boolean(),
    dataSizeField: fc.constantFrom<WavSpec['dataSizeField']>('exact', 'exact', 'zero', 'max'),
    chunks: fc.array(
      fc.record({
        id: fc.constantFrom('LIST', 'JUNK', 'fact', 'bext', 'id3 ', 'cue '),
        body: fc.uint8Array({ maxLength: 9 }),
        at: fc.constantFrom('beforeFmt', 'afterFmt', 'afterData') as fc.Arbitrary<'beforeFmt' | 'afterFmt' | 'afterData'>,
      }),
      { maxLength: 3 },
    ),
  })
  .map(({ format: [bitsPerSample, encoding], ...rest }) => ({ ...rest, bitsPerSample, encoding }));

const fileArb = fc.tuple(specArb, fc.integer({ min: 0, max: 12 })).map(([spec, frames]) => {
  const values = Array.from({ length: frames * spec.channels }, (_, i) => ((i * 37) % 256) / 128 - 1);
  return encodeWav(spec, values);
});

/** Where the header fields of a file are: RIFF size, and every chunk's id, size and (for fmt) fields. */
function fieldOffsets(file: Uint8Array): Array<{ at: number; size: 2 | 4 }> {
  const fields: Array<{ at: number; size: 2 | 4 }> = [{ at: 4, size: 4 }];
  let at = 12;
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  while (at + 8 <= file.length) {
    const id = String.fromCharCode(...file.subarray(at, at + 4));
    const size = view.getUint32(at + 4, true);
    fields.push({ at, size: 4 }, { at: at + 4, size: 4 });
    if (id === 'fmt ') for (const [offset, width] of [[0, 2], [2, 2], [4, 4], [8, 4], [12, 2], [14, 2], [16, 2], [18, 2], [20, 4], [24, 2], [26, 4]] as const) fields.push({ at: at + 8 + offset, size: width });
    if (id === 'data') break;
    at += 8 + size + (size & 1);
  }
  return fields.filter((f) => f.at + f.size <= file.length);
}

const BOUNDARY_U32 = [0, 1, 2, 3, 15, 16, 17, 18, 39, 40, 0x7fff, 0x8000, 0xffff, 0x10000, 0x10001, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];
const BOUNDARY_U16 = [0, 1, 2, 3, 7, 8, 12, 16, 22, 24, 32, 64, 0xfffe, 0xffff, 0x8000];

type Mutation = { kind: 'field'; pick: number; value: number } | { kind: 'byte'; at: number; value: number } | { kind: 'cut'; at: number } | { kind: 'insert'; at: number; bytes: Uint8Array } | { kind: 'append'; bytes: Uint8Array };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('field' as const), pick: fc.nat(), value: fc.oneof(fc.constantFrom(...BOUNDARY_U32, ...BOUNDARY_U16), fc.nat({ max: 0xffffffff })) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('byte' as const), at: fc.nat(), value: fc.nat({ max: 255 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('insert' as const),
      at: fc.nat(),
      bytes: fc.oneof(
        fc.uint8Array({ maxLength: 16 }),
        // A chunk header whose size lies (odd, huge, past the end).
        fc.tuple(fc.constantFrom('LIST', 'data', 'fmt ', 'JUNK', '\u0000\u0000\u0000\u0000'), fc.constantFrom(...BOUNDARY_U32)).map(([id, size]) => {
          const header = new Uint8Array(8);
          header.set(ascii(id));
          new DataView(header.buffer).setUint32(4, size, true);
          return header;
        }),
      ),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ maxLength: 16 }) }) },
);

function apply(file: Uint8Array, mutation: Mutation): Uint8Array {
  const out = Uint8Array.from(file);
  switch (mutation.kind) {
    case 'field': {
      const fields = fieldOffsets(out);
      const field = fields[mutation.pick % fields.length];
      if (!field) return out;
      const view = new DataView(out.buffer);
      if (field.size === 2) view.setUint16(field.at, mutation.value & 0xffff, true);
      else view.setUint32(field.at, mutation.value >>> 0, true);
      return out;
    }
    case 'byte':
      if (out.length) out[mutation.at % out.length] = mutation.value;
      return out;
    case 'cut':
      return out.subarray(0, mutation.at % (out.length + 1));
    case 'insert': {
      const at = mutation.at % (out.length + 1);
      const joined = new Uint8Array(out.length + mutation.bytes.length);
      joined.set(out.subarray(0, at));
      joined.set(mutation.bytes, at);
      joined.set(out.subarray(at), at + mutation.bytes.length);
      return joined;
    }
    case 'append': {
      const joined = new Uint8Array(out.length + mutation.bytes.length);
      joined.set(out);
      joined.set(mutation.bytes, out.length);
      return joined;
    }
  }
}

const piecesArb = fc.oneof(fc.constant<number[]>([]), fc.constant([1]), fc.array(fc.integer({ min: 1, max: 70 }), { minLength: 1, maxLength: 6 }));

describe('fuzz: WAV headers', () => {
  it('mutated headers: frames or an AudioDecodeError naming the byte; the same however the bytes are split', () => {
    fc.assert(
      fc.property(fileArb, fc.array(mutationArb, { minLength: 1, maxLength: 4 }), piecesArb, (file, mutations, pieces) => {
        const bytes = mutations.reduce(apply, file);
        const whole = parse(bytes, []);
        expectClear(whole, bytes.length);
        expect(parse(bytes, pieces)).toEqual(whole);
      }),
      { numRuns: runs(1500) },
    );
  });

  it('a valid file cut at every offset: a truncation or header error at the cut, or the frames before it', () => {
    fc.assert(
      fc.property(fileArb, (file) => {
        for (let cut = 0; cut <= file.length; cut += 1) {
          const bytes = file.subarray(0, cut);
          const outcome = parse(bytes, [7]);
          expectClear(outcome, cut);
          if (!outcome.ok) expect(outcome.byteOffset, outcome.message).toBeLessThanOrEqual(cut);
        }
      }),
      { numRuns: runs(60) },
    );
  });

  it('random bytes, and random bytes after "RIFF....WAVE": never anything but frames or an AudioDecodeError', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.uint8Array({ maxLength: 200 }).map((tail) => Uint8Array.from([...ascii('RIFF'), 0xff, 0xff, 0xff, 0xff, ...ascii('WAVE'), ...tail]))), piecesArb, (bytes, pieces) => {
        const whole = parse(bytes, []);
        expectClear(whole, bytes.length);
        expect(parse(bytes, pieces)).toEqual(whole);
      }),
      { numRuns: runs(800) },
    );
  });

  it('huge declared sizes cost nothing: a 4 GiB data chunk, a 4 GiB skipped chunk, a 64 KiB fmt chunk', () => {
    const spec: WavSpec = { sampleRate: 16000, channels: 2, bitsPerSample: 16, encoding: 'pcm', dataSizeField: 0xfffffffe };
    const file = encodeWav(spec, [0.5, -0.5, 0.25, -0.25]);
    const outcome = parse(file, [3]);
    expect(outcome).toMatchObject({ ok: false, code: 'MEMTIDE_ERR_AUDIO_TRUNCATED' });
    const junk = Uint8Array.from([...ascii('RIFF'), 0, 0, 0, 0, ...ascii('WAVE'), ...ascii('JUNK'), 0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
    expect(parse(junk, [1])).toMatchObject({ ok: false, code: 'MEMTIDE_ERR_AUDIO_TRUNCATED', byteOffset: junk.length });
    const bigFmt = Uint8Array.from([...ascii('RIFF'), 0, 0, 0, 0, ...ascii('WAVE'), ...ascii('fmt '), 0xff, 0xff, 0x00, 0x00]);
    expect(parse(bigFmt, [1])).toMatchObject({ ok: false, code: 'MEMTIDE_ERR_AUDIO_TRUNCATED', byteOffset: bigFmt.length });
  });
});
