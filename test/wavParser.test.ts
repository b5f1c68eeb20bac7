import { describe, expect, it } from 'vitest';
import { encodeWav, wavHeader, type WavSpec } from '../bench/support/makeWav.js';
import { AudioDecodeError, WavParser, type WavFormat } from '../src/sources/audio/wavParser.js';

const ascii = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Parses `bytes` pushed in pieces of `step` bytes (default: all at once); returns format and all samples. */
function parse(bytes: Uint8Array, step = bytes.length || 1, source = 'meeting.wav'): { format: WavFormat | null; samples: number[] } {
  const parser = new WavParser(source);
  const samples: number[] = [];
  for (let at = 0; at < bytes.length; at += step) samples.push(...parser.push(bytes.subarray(at, at + step)));
  samples.push(...parser.end());
  return { format: parser.format, samples };
}

function parseError(bytes: Uint8Array, step?: number): AudioDecodeError {
  try {
    parse(bytes, step);
  } catch (error) {
    expect(error).toBeInstanceOf(AudioDecodeError);
    return error as AudioDecodeError;
  }
  throw new Error('expected an AudioDecodeError');
}

/** Values exactly representable in every format (multiples of 1/128 in [-1, 127/128]). */
const exact = (n: number) => Array.from({ length: n }, (_, i) => (((i * 37) % 256) - 128) / 128);

const FORMATS: { name: string; bits: number; encoding: 'pcm' | 'float' }[] = [
  { name: '8-bit unsigned PCM', bits: 8, encoding: 'pcm' },
  { name: '16-bit PCM', bits: 16, encoding: 'pcm' },
  { name: '24-bit PCM', bits: 24, encoding: 'pcm' },
  { name: '32-bit PCM', bits: 32, encoding: 'pcm' },
  { name: '32-bit float', bits: 32, encoding: 'float' },
  { name: '64-bit float', bits: 64, encoding: 'float' },
];

describe('WavParser: formats', () => {
  for (const { name, bits, encoding } of FORMATS) {
    for (const extensible of [false, true]) {
      for (const channels of [1, 2, 6]) {
        it(`${name}${extensible ? ' (WAVE_FORMAT_EXTENSIBLE)' : ''}, ${channels} channel(s): every sample back exactly`, () => {
          const spec: WavSpec = { sampleRate: 22050, channels, bitsPerSample: bits, encoding, extensible };
          const values = exact(channels * 50);
          const file = encodeWav(spec, values);
          const { format, samples } = parse(file);
          expect(format).toEqual({
            encoding,
            formatTag: extensible ? 0xfffe : encoding === 'float' ? 3 : 1,
            channels,
            sampleRate: 22050,
            bitsPerSample: bits,
            blockAlign: (channels * bits) / 8,
            dataOffset: extensible ? 68 : 44,
            dataBytes: values.length * (bits / 8),
          });
          expect(samples).toEqual(values);
        });
      }
    }
  }

  it('decodes the extremes of each integer format from hand-written bytes', () => {
    const file = (bits: number, data: number[]) =>
      concat([wavHeader({ sampleRate: 8000, channels: 1, bitsPerSample: bits, encoding: 'pcm' }, data.length), Uint8Array.from(data)]);
    expect(parse(file(8, [0, 128, 255])).samples).toEqual([-1, 0, 127 / 128]);
    expect(parse(file(16, [0x00, 0x80, 0xff, 0xff, 0xff, 0x7f])).samples).toEqual([-1, -1 / 32768, 32767 / 32768]);
    expect(parse(file(24, [0x00, 0x00, 0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x01, 0x00, 0x00])).samples).toEqual([
      -1,
      -1 / 8388608,
      8388607 / 8388608,
      1 / 8388608,
    ]);
    expect(parse(file(32, [0x00, 0x00, 0x00, 0x80, 0xff, 0xff, 0xff, 0xff])).samples).toEqual([-1, -1 / 2147483648]);
  });

  it('float samples beyond full scale are kept as they are (the resampler clips)', () => {
    const { samples } = parse(encodeWav({ sampleRate: 8000, channels: 1, bitsPerSample: 32, encoding: 'float' }, [1.5, -2]));
    expect(samples).toEqual([1.5, -2]);
  });
});

describe('WavParser: chunks and sizes', () => {
  const spec16: WavSpec = { sampleRate: 16000, channels: 2, bitsPerSample: 16, encoding: 'pcm' };
  const values = exact(2 * 40);

  it('skips LIST, fact, bext, cue, id3 and JUNK chunks anywhere, including odd-sized ones with their pad byte', () => {
    const file = encodeWav(
      {
        ...spec16,
        chunks: [
          { id: 'JUNK', body: new Uint8Array(27), at: 'beforeFmt' },
          { id: 'bext', body: new Uint8Array(602), at: 'beforeFmt' },
          { id: 'LIST', body: concat([ascii('INFOINAM'), Uint8Array.of(5, 0, 0, 0), ascii('talk'), Uint8Array.of(0)]), at: 'afterFmt' },
          { id: 'fact', body: Uint8Array.of(40, 0, 0, 0), at: 'afterFmt' },
          { id: 'cue ', body: new Uint8Array(1), at: 'afterFmt' },
          { id: 'id3 ', body: new Uint8Array(33), at: 'afterData' },
        ],
      },
      values,
    );
    const { format, samples } = parse(file);
    expect(samples).toEqual(values);
    // 12 RIFF + JUNK (8 + 27 + pad) + bext (8 + 602) + fmt (24) + LIST (8 + 17 + pad) + fact (12) + cue (8 + 1 + pad) + data header (8)
    expect(format?.dataOffset).toBe(12 + 36 + 610 + 24 + 26 + 12 + 10 + 8);
  });

  it('same result pushed one byte at a time (every header field and frame split across pushes)', () => {
    for (const bits of [8, 16, 24, 32]) {
      const file = encodeWav(
        { sampleRate: 44100, channels: 3, bitsPerSample: bits, encoding: 'pcm', extensible: bits === 24, chunks: [{ id: 'LIST', body: new Uint8Array(5), at: 'afterFmt' }] },
        exact(3 * 30),
      );
      const whole = parse(file);
      expect(parse(file, 1)).toEqual(whole);
      expect(parse(file, 7)).toEqual(whole);
      expect(whole.samples).toEqual(exact(3 * 30));
    }
  });

  it('data size 0 or 0xFFFFFFFF (streaming writers) means "until end of file"', () => {
    for (const dataSizeField of ['zero', 'max'] as const) {
      const { format, samples } = parse(encodeWav({ ...spec16, dataSizeField }, values), 5);
      expect(format?.dataBytes).toBeNull();
      expect(samples).toEqual(values);
    }
  });

  it('an open-ended data chunk cut mid-frame (writer killed) keeps the whole frames and drops the partial one', () => {
    const file = encodeWav({ ...spec16, dataSizeField: 'max' }, values);
    expect(parse(file.subarray(0, file.length - 3)).samples).toEqual(values.slice(0, -2));
  });

  it('a declared size that is not a whole number of frames: the partial frame is dropped, what follows is ignored', () => {
    const data = encodeWav(spec16, values).subarray(44);
    const file = concat([wavHeader({ ...spec16, dataSizeField: 7 }, 0), data.subarray(0, 7), Uint8Array.of(0), ascii('LIST'), new Uint8Array(4)]);
    expect(parse(file).samples).toEqual(values.slice(0, 2));
  });

  it('bytes after the data chunk are ignored (trailing chunks, junk)', () => {
    const file = concat([encodeWav(spec16, values), Uint8Array.of(1, 2, 3, 0xff, 0xfe)]);
    expect(parse(file).samples).toEqual(values);
  });

  it('a valid file with no samples parses to nothing', () => {
    const { format, samples } = parse(wavHeader(spec16, 0));
    expect(format?.channels).toBe(2);
    expect(samples).toEqual([]);
  });

  it('reports bytes read and frames decoded', () => {
    const parser = new WavParser('x.wav');
    const file = encodeWav(spec16, values);
    parser.push(file);
    expect(parser.bytesRead).toBe(file.length);
    expect(parser.framesDecoded).toBe(40);
  });

  it('push returns fresh arrays by default and one reused scratch buffer with reuseOutput', () => {
    const file = encodeWav(spec16, values);
    const fresh = new WavParser('x.wav');
    fresh.push(file.subarray(0, 44));
    const a = fresh.push(file.subarray(44, 84));
    const b = fresh.push(file.subarray(84, 124));
    expect(a.buffer).not.toBe(b.buffer);
    const reusing = new WavParser('x.wav', { reuseOutput: true });
    reusing.push(file.subarray(0, 44));
    const c = reusing.push(file.subarray(44, 84));
    const d = reusing.push(file.subarray(84, 124));
    expect(c.buffer).toBe(d.buffer);
    expect(Array.from(d)).toEqual(values.slice(20, 40));
  });
});

describe('WavParser: bad input', () => {
  const spec: WavSpec = { sampleRate: 16000, channels: 1, bitsPerSample: 16, encoding: 'pcm' };

  it('truncated data: the error at end of input names the byte where data ended and what was promised', () => {
    const file = encodeWav(spec, exact(500)); // 1000 data bytes from byte 44
    const error = parseError(file.subarray(0, 44 + 600), 64);
    expect(error.code).toBe('MEMTIDE_ERR_AUDIO_TRUNCATED');
    expect(error.byteOffset).toBe(644);
    expect(error.source).toBe('meeting.wav');
    expect(error.message).toBe(
      'meeting.wav: byte 644: audio data ends here, but the data chunk at byte 36 promised 1000 bytes (600 received, 400 missing): the file is truncated',
    );
  });

  it('frames before the truncation were already returned (nothing decodable is lost)', () => {
    const parser = new WavParser('t.wav');
    const file = encodeWav(spec, exact(500));
    expect(parser.push(file.subarray(0, 44 + 601)).length).toBe(300);
    expect(() => parser.end()).toThrow(/byte 645: audio data ends here/);
  });

  it('a file cut inside the header', () => {
    const file = encodeWav(spec, exact(10));
    for (const cut of [4, 11]) {
      expect(parseError(file.subarray(0, cut))).toMatchObject({ code: 'MEMTIDE_ERR_AUDIO_TRUNCATED', byteOffset: cut });
    }
    expect(parseError(file.subarray(0, 30))).toMatchObject({
      code: 'MEMTIDE_ERR_AUDIO_TRUNCATED',
      byteOffset: 30,
      reason: 'the file ends inside the "fmt " chunk that starts at byte 12 and declares 16 bytes, before the data chunk',
    });
    expect(parseError(file.subarray(0, 40))).toMatchObject({ code: 'MEMTIDE_ERR_AUDIO_TRUNCATED', byteOffset: 40 });
  });

  it('zero bytes: MEMTIDE_ERR_AUDIO_EMPTY', () => {
    expect(parseError(new Uint8Array(0))).toMatchObject({ code: 'MEMTIDE_ERR_AUDIO_EMPTY', byteOffset: 0, message: 'meeting.wav: byte 0: the file is empty (0 bytes)' });
  });

  it('a header that ends without a data chunk, or without fmt', () => {
    const fmtOnly = wavHeader(spec, 0).subarray(0, 36);
    expect(parseError(fmtOnly)).toMatchObject({ code: 'MEMTIDE_ERR_AUDIO_HEADER', byteOffset: 36, reason: 'the file ends without a "data" chunk: no audio in this WAV file' });
    const riffOnly = concat([ascii('RIFF'), Uint8Array.of(4, 0, 0, 0), ascii('WAVE')]);
    expect(parseError(riffOnly)).toMatchObject({ code: 'MEMTIDE_ERR_AUDIO_HEADER', reason: expect.stringContaining('without a "fmt " chunk') });
  });

  it('corrupt header fields name the byte of the field', () => {
    const header = () => wavHeader(spec, 4);
    const corrupt = (at: number, value: number, size: 2 | 4) => {
      const h = header();
      const v = new DataView(h.buffer);
      if (size === 2) v.setUint16(at, value, true);
      else v.setUint32(at, value, true);
      return parseError(concat([h, new Uint8Array(4)]));
    };
    expect(corrupt(22, 0, 2).message).toBe('meeting.wav: byte 22: "fmt " chunk declares 0 channels');
    expect(corrupt(24, 0, 4)).toMatchObject({ code: 'MEMTIDE_ERR_AUDIO_HEADER', byteOffset: 24, reason: '"fmt " chunk declares a sample rate of 0 Hz' });
    expect(corrupt(32, 3, 2)).toMatchObject({ code: 'MEMTIDE_ERR_AUDIO_HEADER', byteOffset: 32, reason: expect.stringContaining('block align 3') });
    expect(corrupt(16, 12, 4)).toMatchObject({ code: 'MEMTIDE_ERR_AUDIO_HEADER', byteOffset: 16, reason: expect.stringContaining('at least 16') });
    expect(corrupt(16, 0x7fffffff, 4)).toMatchObject({ code: 'MEMTIDE_ERR_AUDIO_HEADER', byteOffset: 16 });
  });

  it('garbage where a chunk id should be (a wrong chunk size before it) is a header error at that byte', () => {
    const h = wavHeader(spec, 4);
    h.set(Uint8Array.of(0x00, 0x01, 0xfe, 0x9c), 36);
    expect(parseError(concat([h, new Uint8Array(4)]))).toMatchObject({
      code: 'MEMTIDE_ERR_AUDIO_HEADER',
      byteOffset: 36,
      reason: expect.stringContaining('expected a chunk id, found bytes 00 01 fe 9c'),
    });
  });

  it('data before fmt, or a second fmt', () => {
    const data = concat([ascii('data'), Uint8Array.of(2, 0, 0, 0), new Uint8Array(2)]);
    expect(parseError(concat([ascii('RIFF'), new Uint8Array(4), ascii('WAVE'), data]))).toMatchObject({
      code: 'MEMTIDE_ERR_AUDIO_HEADER',
      byteOffset: 12,
      reason: '"data" chunk before the "fmt " chunk',
    });
    const h = wavHeader(spec, 0);
    const twice = concat([h.subarray(0, 36), h.subarray(12, 36), h.subarray(36)]);
    expect(parseError(twice)).toMatchObject({ code: 'MEMTIDE_ERR_AUDIO_HEADER', byteOffset: 36, reason: 'a second "fmt " chunk' });
  });

  it('RF64 / BW64 and big-endian RIFX are unsupported, at byte 0', () => {
    for (const magic of ['RF64', 'BW64', 'RIFX']) {
      const h = wavHeader(spec, 0);
      h.set(ascii(magic), 0);
      const error = parseError(h);
      expect(error).toMatchObject({ code: 'MEMTIDE_ERR_AUDIO_UNSUPPORTED', byteOffset: 0 });
      expect(error.message).toMatch(new RegExp(`^meeting.wav: byte 0: ${magic === 'RIFX' ? 'big-endian RIFX' : magic}`));
    }
  });

  it('codecs other than PCM and float are unsupported, named', () => {
    const withTag = (tag: number, bits = 8) => {
      const h = wavHeader({ ...spec, bitsPerSample: bits }, 0);
      new DataView(h.buffer).setUint16(20, tag, true);
      return parseError(h);
    };
    expect(withTag(7).message).toBe('meeting.wav: byte 20: mu-law (format 0x0007) WAV is not supported (only PCM and IEEE float)');
    expect(withTag(0x55).reason).toContain('MP3 (format 0x0055)');
    expect(withTag(0x1234).reason).toContain('format 0x1234');
  });

  it('bit depths outside 8/16/24/32 (and float 32/64) are unsupported', () => {
    const h = wavHeader(spec, 0);
    const v = new DataView(h.buffer);
    v.setUint16(34, 12, true);
    v.setUint16(32, 2, true);
    expect(parseError(h)).toMatchObject({ code: 'MEMTIDE_ERR_AUDIO_UNSUPPORTED', byteOffset: 34, reason: expect.stringContaining('12-bit integer PCM') });
    const f = wavHeader({ ...spec, encoding: 'float' }, 0);
    expect(parseError(f)).toMatchObject({ code: 'MEMTIDE_ERR_AUDIO_UNSUPPORTED', reason: expect.stringContaining('16-bit float') });
  });

  it('EXTENSIBLE with another sub-format, a non-standard GUID or a short fmt chunk', () => {
    const ext = () => wavHeader({ ...spec, extensible: true }, 0);
    const sub = ext();
    new DataView(sub.buffer).setUint16(44, 7, true);
    expect(parseError(sub)).toMatchObject({ code: 'MEMTIDE_ERR_AUDIO_UNSUPPORTED', byteOffset: 44, reason: expect.stringContaining('sub-format mu-law') });
    const guid = ext();
    guid[50] = 0x42;
    expect(parseError(guid)).toMatchObject({ code: 'MEMTIDE_ERR_AUDIO_UNSUPPORTED', reason: expect.stringContaining('non-standard sub-format GUID') });
    const short = wavHeader(spec, 0);
    new DataView(short.buffer).setUint16(20, 0xfffe, true);
    expect(parseError(short)).toMatchObject({ code: 'MEMTIDE_ERR_AUDIO_HEADER', byteOffset: 36, reason: expect.stringContaining('40 bytes (cbSize 22) are needed') });
  });

  it('a text file is not audio (not RIFF), however long', () => {
    const text = ascii('Meeting notes\nAction items: ship it\n');
    expect(parseError(text)).toMatchObject({ code: 'MEMTIDE_ERR_AUDIO_NOT_AUDIO', byteOffset: 0, message: 'meeting.wav: byte 0: not a WAV file: it starts with "Meet", not "RIFF"' });
    expect(parseError(ascii('hi'))).toMatchObject({ code: 'MEMTIDE_ERR_AUDIO_NOT_AUDIO', byteOffset: 0 });
    expect(parseError(Uint8Array.of(0xff, 0xfb, 0x90, 0x64, 0, 0, 0, 0, 0, 0, 0, 0))).toMatchObject({
      code: 'MEMTIDE_ERR_AUDIO_NOT_AUDIO',
      reason: 'not a WAV file: it starts with ff fb 90 64, not "RIFF"',
    });
  });

  it('a RIFF file of another form (AVI) is not a WAV file', () => {
    expect(parseError(concat([ascii('RIFF'), new Uint8Array(4), ascii('AVI LIST')]))).toMatchObject({
      code: 'MEMTIDE_ERR_AUDIO_NOT_AUDIO',
      byteOffset: 8,
      reason: 'RIFF form type is "AVI ", not "WAVE": not a WAV file',
    });
  });
});
