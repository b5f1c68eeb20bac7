/**
 * Incremental WAV (RIFF/WAVE) parser: bytes are pushed in as they are read,
 * decoded PCM frames come out, and nothing but the few header bytes of the
 * chunk being parsed is ever retained, so a 4 h file costs the same memory as
 * a 4 s one.
 *
 * Supported: little-endian RIFF; `fmt ` PCM 8-bit unsigned, 16/24/32-bit
 * signed integer, 32/64-bit IEEE float, any channel count and rate,
 * WAVE_FORMAT_EXTENSIBLE (sub-format GUID PCM or float); any other chunk
 * anywhere (LIST, fact, bext, cue, id3, JUNK...) is skipped without being
 * buffered; odd-sized chunks are followed by a pad byte; a `data` size of 0 or
 * 0xFFFFFFFF (streaming writers that never came back to patch the header)
 * means "until end of file". Frames split across pushes are reassembled.
 * Everything after the `data` chunk is ignored.
 */

export const AUDIO_ERROR_CODES = [
  'MEMTIDE_ERR_AUDIO_HEADER',
  'MEMTIDE_ERR_AUDIO_TRUNCATED',
  'MEMTIDE_ERR_AUDIO_UNSUPPORTED',
  'MEMTIDE_ERR_AUDIO_EMPTY',
  'MEMTIDE_ERR_AUDIO_NOT_AUDIO',
  /** ffmpeg ran but could not decode the input (reason from its stderr). */
  'MEMTIDE_ERR_AUDIO_DECODE',
  /** ffmpeg could not be started (not found, not executable) or was killed. */
  'MEMTIDE_ERR_AUDIO_FFMPEG',
  /** The input could not be read (missing file, a directory, permissions, a stream error). */
  'MEMTIDE_ERR_AUDIO_READ',
  /** The input is larger than `audio.maxFileBytes`. */
  'MEMTIDE_ERR_AUDIO_TOO_LARGE',
] as const;
export type AudioErrorCode = (typeof AUDIO_ERROR_CODES)[number];

/** Bad or unreadable audio: names the source, and the byte offset when the problem has one. */
export class AudioDecodeError extends Error {
  readonly code: AudioErrorCode;
  /** File name (or stream label) the error is about. */
  readonly source: string;
  /** Byte offset in the input the problem is at, or null when it has none (e.g. ffmpeg failures). */
  readonly byteOffset: number | null;
  /** The message without the `source: byte N: ` prefix. */
  readonly reason: string;

  constructor(code: AudioErrorCode, source: string, byteOffset: number | null, reason: string, options?: { cause?: unknown }) {
    super(byteOffset === null ? `${source}: ${reason}` : `${source}: byte ${byteOffset}: ${reason}`, options);
    this.name = 'AudioDecodeError';
    this.code = code;
    this.source = source;
    this.byteOffset = byteOffset;
    this.reason = reason;
  }
}

export type SampleEncoding = 'pcm' | 'float';

/** What the `fmt ` and `data` chunks declare. */
export interface WavFormat {
  encoding: SampleEncoding;
  /** Format tag as written: 1 PCM, 3 IEEE float, 0xFFFE WAVE_FORMAT_EXTENSIBLE. */
  formatTag: number;
  channels: number;
  sampleRate: number;
  /** Container bits per sample (8, 16, 24, 32 or 64). */
  bitsPerSample: number;
  /** Bytes per frame (all channels of one sample instant). */
  blockAlign: number;
  /** Byte offset of the first PCM byte in the input. */
  dataOffset: number;
  /** Bytes the `data` chunk declares; null when it runs until end of file (size 0 or 0xFFFFFFFF). */
  dataBytes: number | null;
}

const EMPTY = new Float32Array(0);
/** Largest `fmt ` chunk accepted (the biggest real one, EXTENSIBLE, is 40 bytes). */
const MAX_FMT_BYTES = 1 << 16;
const FORMAT_PCM = 1;
const FORMAT_FLOAT = 3;
const FORMAT_EXTENSIBLE = 0xfffe;
/** Bytes 2..15 of every KSDATAFORMAT_SUBTYPE_* GUID, xxxxxxxx-0000-0010-8000-00aa00389b71 (bytes 0..1: the format tag). */
const GUID_TAIL = [0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71];

/** Names of format tags people actually meet, for the "unsupported" message. */
const CODEC_NAMES: Record<number, string> = {
  0x0002: 'Microsoft ADPCM',
  0x0006: 'A-law',
  0x0007: 'mu-law',
  0x0011: 'IMA ADPCM',
  0x0031: 'GSM 6.10',
  0x0050: 'MPEG audio',
  0x0055: 'MP3',
  0x00ff: 'AAC',
  0x1610: 'HE-AAC',
  0xf1ac: 'FLAC',
};

type State = 'riff' | 'chunkHeader' | 'fmt' | 'skip' | 'data' | 'done';

/** Little-endian unsigned 32-bit and 16-bit reads (no DataView: header bytes may sit at any offset). */
function u32(bytes: Uint8Array, at: number): number {
  return ((bytes[at] as number) | ((bytes[at + 1] as number) << 8) | ((bytes[at + 2] as number) << 16)) + (bytes[at + 3] as number) * 0x1000000;
}
function u16(bytes: Uint8Array, at: number): number {
  return (bytes[at] as number) | ((bytes[at + 1] as number) << 8);
}
function fourcc(bytes: Uint8Array, at: number): string {
  return String.fromCharCode(bytes[at] as number, bytes[at + 1] as number, bytes[at + 2] as number, bytes[at + 3] as number);
}
/** True when `head` (any length) could be the start of a RIFF, RIFX or RF64 header. */
export function looksLikeRiff(head: Uint8Array): boolean {
  const n = Math.min(head.length, 4);
  return ['RIFF', 'RIFX', 'RF64', 'BW64'].some((magic) => {
    for (let i = 0; i < n; i++) if (head[i] !== magic.charCodeAt(i)) return false;
    return true;
  });
}

const printable = (id: string) => /^[\x20-\x7e]{4}$/.test(id);
const shown = (bytes: Uint8Array) =>
  printable(fourcc(bytes, 0)) ? `"${fourcc(bytes, 0)}"` : Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Decodes `count` samples from `src` at byte `at` into `out` (interleaved,
 * full scale = 1.0) starting at `outAt`. One function per sample format,
 * chosen once when the `fmt ` chunk is read. Aligned input on a
 * little-endian host is read through a typed-array view (several times faster
 * than DataView); anything else byte by byte.
 */
type SampleDecoder = (src: Uint8Array, at: number, count: number, out: Float32Array, outAt: number) => void;

const aligned = (src: Uint8Array, at: number, size: number) => LITTLE_ENDIAN && (src.byteOffset + at) % size === 0;
const dataView = (src: Uint8Array) => new DataView(src.buffer, src.byteOffset, src.byteLength);

function decoderFor(encoding: SampleEncoding, bits: number): SampleDecoder | null {
  if (encoding === 'float') {
    if (bits === 32) return (src, at, count, out, o) => {
      if (aligned(src, at, 4)) out.set(new Float32Array(src.buffer, src.byteOffset + at, count), o);
      else {
        const v = dataView(src);
        for (let i = 0; i < count; i++) out[o + i] = v.getFloat32(at + 4 * i, true);
      }
    };
    if (bits === 64) return (src, at, count, out, o) => {
      if (aligned(src, at, 8)) {
        const v = new Float64Array(src.buffer, src.byteOffset + at, count);
        for (let i = 0; i < count; i++) out[o + i] = v[i]!;
      } else {
        const v = dataView(src);
        for (let i = 0; i < count; i++) out[o + i] = v.getFloat64(at + 8 * i, true);
      }
    };
    return null;
  }
  switch (bits) {
    case 8:
      return (src, at, count, out, o) => {
        for (let i = 0; i < count; i++) out[o + i] = (src[at + i]! - 128) * (1 / 128);
      };
    case 16:
      return (src, at, count, out, o) => {
        if (aligned(src, at, 2)) {
          const v = new Int16Array(src.buffer, src.byteOffset + at, count);
          for (let i = 0; i < count; i++) out[o + i] = v[i]! * (1 / 32768);
        } else {
          const v = dataView(src);
          for (let i = 0; i < count; i++) out[o + i] = v.getInt16(at + 2 * i, true) * (1 / 32768);
        }
      };
    case 24:
      return (src, at, count, out, o) => {
        for (let i = 0, p = at; i < count; i++, p += 3) {
          // Sign-extend the 24-bit value through the top byte of a 32-bit int.
          const v = ((src[p]! | (src[p + 1]! << 8) | (src[p + 2]! << 16)) << 8) >> 8;
          out[o + i] = v * (1 / 8388608);
        }
      };
    case 32:
      return (src, at, count, out, o) => {
        if (aligned(src, at, 4)) {
          const v = new Int32Array(src.buffer, src.byteOffset + at, count);
          for (let i = 0; i < count; i++) out[o + i] = v[i]! * (1 / 2147483648);
        } else {
          const v = dataView(src);
          for (let i = 0; i < count; i++) out[o + i] = v.getInt32(at + 4 * i, true) * (1 / 2147483648);
        }
      };
    default:
      return null;
  }
}

/**
 * Push-based WAV parser.
 *
 * ```ts
 * const parser = new WavParser('meeting.wav');
 * for await (const bytes of stream) handle(parser.push(bytes)); // Float32Array, interleaved
 * handle(parser.end()); // throws if the file ended early
 * ```
 *
 * `push` returns the whole frames completed by those bytes as interleaved
 * samples in [-1, 1) (`format.channels` per frame); a frame split across pushes
 * comes out with the push that completes it. The returned array is never a
 * view of the input; it is fresh, or with `reuseOutput` a view of one scratch
 * buffer that the next push overwrites (for consumers that copy at once, like
 * the resampler: no allocation per read). Errors are {@link AudioDecodeError}s.
 */
export class WavParser {
  readonly source: string;
  private state: State = 'riff';
  /** Bytes of the input consumed so far (= offset of the next byte). */
  private offset = 0;
  /** Header bytes being collected (RIFF header, chunk header, `fmt ` body) and how many are needed. */
  private pending = new Uint8Array(12);
  private pendingLength = 0;
  private need = 12;
  /** Current chunk: id, where its header starts, declared body size. */
  private chunkId = '';
  private chunkStart = 0;
  private chunkSize = 0;
  /** Body bytes (plus pad byte) still to skip, or data bytes still to read (Infinity: until EOF). */
  private remaining = 0;
  private fmt: Omit<WavFormat, 'dataOffset' | 'dataBytes'> | null = null;
  private fmtOffset = 0;
  private decode: SampleDecoder | null = null;
  private formatValue: WavFormat | null = null;
  /** Bytes of a frame split across pushes. */
  private carry = new Uint8Array(0);
  private carryLength = 0;
  private frames = 0;
  private readonly reuseOutput: boolean;
  private scratch = new Float32Array(0);

  constructor(source: string, options: { reuseOutput?: boolean } = {}) {
    this.source = source;
    this.reuseOutput = options.reuseOutput ?? false;
  }

  /** The format, once the `data` chunk header has been read; null before. */
  get format(): WavFormat | null {
    return this.formatValue;
  }

  /** Whole frames decoded so far. */
  get framesDecoded(): number {
    return this.frames;
  }

  /** Bytes consumed so far. */
  get bytesRead(): number {
    return this.offset;
  }

  /** Feeds the next bytes of the input; returns the frames they complete (interleaved, possibly empty). */
  push(bytes: Uint8Array): Float32Array {
    let at = 0;
    let out: Float32Array = EMPTY;
    while (at < bytes.length) {
      if (this.state === 'done') {
        this.offset += bytes.length - at;
        return out;
      }
      if (this.state === 'skip') {
        const n = Math.min(this.remaining, bytes.length - at);
        this.remaining -= n;
        this.offset += n;
        at += n;
        if (this.remaining === 0) this.expectChunkHeader();
        continue;
      }
      if (this.state === 'data') {
        const n = Math.min(this.remaining, bytes.length - at);
        // A push holds at most one stretch of data (there is one data chunk), so this runs once per push.
        out = this.decodeData(bytes, at, n);
        this.offset += n;
        at += n;
        this.remaining -= n;
        if (this.remaining === 0) this.finishData();
        continue;
      }
      // Collecting header bytes.
      const n = Math.min(this.need - this.pendingLength, bytes.length - at);
      this.pending.set(bytes.subarray(at, at + n), this.pendingLength);
      this.pendingLength += n;
      this.offset += n;
      at += n;
      if (this.pendingLength === this.need) this.headerComplete();
    }
    return out;
  }

  /**
   * The input has ended. Returns the last frames (always empty today: frames
   * are emitted as soon as they are complete) and throws if the file ended
   * before what its header promised.
   */
  end(): Float32Array {
    const src = this.source;
    switch (this.state) {
      case 'riff':
        if (this.offset === 0) throw new AudioDecodeError('MEMTIDE_ERR_AUDIO_EMPTY', src, 0, 'the file is empty (0 bytes)');
        if (!looksLikeRiff(this.pending.subarray(0, this.offset))) {
          throw new AudioDecodeError('MEMTIDE_ERR_AUDIO_NOT_AUDIO', src, 0, `not a WAV file: ${this.offset} bytes that do not start with "RIFF"`);
        }
        throw new AudioDecodeError('MEMTIDE_ERR_AUDIO_TRUNCATED', src, this.offset, `the file ends inside the 12-byte RIFF header (${this.offset} bytes)`);
      case 'chunkHeader':
        if (this.pendingLength === 0) throw this.noData();
        throw new AudioDecodeError(
          'MEMTIDE_ERR_AUDIO_TRUNCATED',
          src,
          this.offset,
          `the file ends inside a chunk header (${this.pendingLength} of 8 bytes) before the data chunk`,
        );
      case 'fmt':
      case 'skip':
        throw new AudioDecodeError(
          'MEMTIDE_ERR_AUDIO_TRUNCATED',
          src,
          this.offset,
          `the file ends inside the "${this.chunkId}" chunk that starts at byte ${this.chunkStart} and declares ${this.chunkSize} bytes, before the data chunk`,
        );
      case 'data': {
        if (this.remaining !== Number.POSITIVE_INFINITY) {
          const format = this.formatValue as WavFormat;
          const received = this.offset - format.dataOffset;
          throw new AudioDecodeError(
            'MEMTIDE_ERR_AUDIO_TRUNCATED',
            src,
            this.offset,
            `audio data ends here, but the data chunk at byte ${format.dataOffset - 8} promised ${format.dataBytes} bytes ` +
              `(${received} received, ${format.dataBytes! - received} missing): the file is truncated`,
          );
        }
        // Until-EOF data: a partial last frame (a writer killed mid-frame) cannot be decoded; it is dropped.
        this.state = 'done';
        return EMPTY;
      }
      case 'done':
        return EMPTY;
    }
  }

  private noData(): AudioDecodeError {
    return this.fmt === null
      ? new AudioDecodeError('MEMTIDE_ERR_AUDIO_HEADER', this.source, this.offset, 'the file ends without a "fmt " chunk: not a complete WAV header')
      : new AudioDecodeError('MEMTIDE_ERR_AUDIO_HEADER', this.source, this.offset, 'the file ends without a "data" chunk: no audio in this WAV file');
  }

  private expectChunkHeader(): void {
    this.state = 'chunkHeader';
    this.need = 8;
    this.pendingLength = 0;
  }

  private headerComplete(): void {
    if (this.state === 'riff') return this.riffHeader();
    if (this.state === 'chunkHeader') return this.chunkHeader();
    if (this.state === 'fmt') return this.fmtChunk();
  }

  private riffHeader(): void {
    const head = this.pending;
    const magic = fourcc(head, 0);
    if (magic === 'RIFX') throw this.unsupported(0, 'big-endian RIFX WAV is not supported');
    if (magic === 'RF64' || magic === 'BW64') throw this.unsupported(0, `${magic} (64-bit WAV for files over 4 GB) is not supported`);
    if (magic !== 'RIFF') throw new AudioDecodeError('MEMTIDE_ERR_AUDIO_NOT_AUDIO', this.source, 0, `not a WAV file: it starts with ${shown(head)}, not "RIFF"`);
    const form = fourcc(head, 8);
    if (form !== 'WAVE') {
      throw new AudioDecodeError('MEMTIDE_ERR_AUDIO_NOT_AUDIO', this.source, 8, `RIFF form type is ${shown(head.subarray(8))}, not "WAVE": not a WAV file`);
    }
    this.pending = new Uint8Array(8);
    this.expectChunkHeader();
  }

  private chunkHeader(): void {
    const head = this.pending;
    this.chunkStart = this.offset - 8;
    this.chunkId = fourcc(head, 0);
    this.chunkSize = u32(head, 4);
    if (!printable(this.chunkId)) {
      throw new AudioDecodeError(
        'MEMTIDE_ERR_AUDIO_HEADER',
        this.source,
        this.chunkStart,
        `expected a chunk id, found bytes ${shown(head)}: corrupt header (or a chunk size before it is wrong)`,
      );
    }
    if (this.chunkId === 'fmt ') {
      if (this.fmt !== null) throw this.header(this.chunkStart, 'a second "fmt " chunk');
      if (this.chunkSize < 16) throw this.header(this.chunkStart + 4, `"fmt " chunk declares ${this.chunkSize} bytes; at least 16 are needed`);
      if (this.chunkSize > MAX_FMT_BYTES) throw this.header(this.chunkStart + 4, `"fmt " chunk declares ${this.chunkSize} bytes: corrupt header`);
      this.state = 'fmt';
      this.fmtOffset = this.offset;
      this.need = this.chunkSize + (this.chunkSize & 1);
      this.pending = new Uint8Array(this.need);
      this.pendingLength = 0;
      return;
    }
    if (this.chunkId === 'data') return this.dataHeader();
    // Any other chunk (LIST, fact, bext, cue, id3, JUNK, PAD...): skipped as it streams by, never buffered.
    this.state = 'skip';
    this.remaining = this.chunkSize + (this.chunkSize & 1);
    this.pendingLength = 0;
    if (this.remaining === 0) this.expectChunkHeader();
  }

  private fmtChunk(): void {
    const b = this.pending;
    const base = this.fmtOffset;
    let formatTag = u16(b, 0);
    const channels = u16(b, 2);
    const sampleRate = u32(b, 4);
    const blockAlign = u16(b, 12);
    const bitsPerSample = u16(b, 14);
    let encoding: SampleEncoding | null = formatTag === FORMAT_PCM ? 'pcm' : formatTag === FORMAT_FLOAT ? 'float' : null;
    if (formatTag === FORMAT_EXTENSIBLE) {
      if (this.chunkSize < 40 || u16(b, 16) < 22) {
        throw this.header(base + 16, `WAVE_FORMAT_EXTENSIBLE "fmt " chunk is ${this.chunkSize} bytes (cbSize ${this.chunkSize >= 18 ? u16(b, 16) : 0}); 40 bytes (cbSize 22) are needed`);
      }
      const subFormat = u16(b, 24);
      const standardGuid = GUID_TAIL.every((byte, i) => b[26 + i] === byte);
      if (standardGuid && subFormat === FORMAT_PCM) encoding = 'pcm';
      else if (standardGuid && subFormat === FORMAT_FLOAT) encoding = 'float';
      else {
        throw this.unsupported(
          base + 24,
          standardGuid ? `WAVE_FORMAT_EXTENSIBLE sub-format ${this.codecName(subFormat)} is not supported (only PCM and IEEE float)` : 'WAVE_FORMAT_EXTENSIBLE with a non-standard sub-format GUID is not supported',
        );
      }
      formatTag = FORMAT_EXTENSIBLE;
    }
    if (encoding === null) throw this.unsupported(base, `${this.codecName(formatTag)} WAV is not supported (only PCM and IEEE float)`);
    if (channels === 0) throw this.header(base + 2, '"fmt " chunk declares 0 channels');
    if (sampleRate === 0) throw this.header(base + 4, '"fmt " chunk declares a sample rate of 0 Hz');
    const decode = decoderFor(encoding, bitsPerSample);
    if (decode === null) {
      throw this.unsupported(base + 14, `${bitsPerSample}-bit ${encoding === 'float' ? 'float' : 'integer PCM'} is not supported (PCM 8/16/24/32-bit, float 32/64-bit)`);
    }
    const expectedAlign = (channels * bitsPerSample) / 8;
    if (blockAlign !== expectedAlign) {
      throw this.header(base + 12, `"fmt " chunk declares block align ${blockAlign}; ${channels} channels of ${bitsPerSample} bits need ${expectedAlign}`);
    }
    this.fmt = { encoding, formatTag, channels, sampleRate, bitsPerSample, blockAlign };
    this.decode = decode;
    this.carry = new Uint8Array(blockAlign);
    this.pending = new Uint8Array(8);
    this.expectChunkHeader();
  }

  private codecName(tag: number): string {
    const hex = `0x${tag.toString(16).padStart(4, '0')}`;
    const name = CODEC_NAMES[tag];
    return name ? `${name} (format ${hex})` : `format ${hex}`;
  }

  private dataHeader(): void {
    if (this.fmt === null) throw this.header(this.chunkStart, '"data" chunk before the "fmt " chunk');
    const openEnded = this.chunkSize === 0 || this.chunkSize === 0xffffffff;
    this.formatValue = { ...this.fmt, dataOffset: this.offset, dataBytes: openEnded ? null : this.chunkSize };
    this.state = 'data';
    this.remaining = openEnded ? Number.POSITIVE_INFINITY : this.chunkSize;
  }

  private finishData(): void {
    // A declared size that is not a whole number of frames leaves a partial frame: it cannot be decoded.
    this.carryLength = 0;
    // Nothing after the data chunk matters (its pad byte, trailing LIST/id3 chunks, junk).
    this.state = 'done';
  }

  /** Decodes `n` data bytes of `bytes` from `at`, with any partial frame carried from the last push. */
  private decodeData(bytes: Uint8Array, at: number, n: number): Float32Array {
    const format = this.formatValue as WavFormat;
    const align = format.blockAlign;
    const samplesPerFrame = format.channels;
    const decode = this.decode as SampleDecoder;
    let start = at;
    let available = n;
    let carried = 0;
    if (this.carryLength > 0) {
      const take = Math.min(align - this.carryLength, available);
      this.carry.set(bytes.subarray(at, at + take), this.carryLength);
      this.carryLength += take;
      start += take;
      available -= take;
      if (this.carryLength === align) carried = 1;
    }
    const whole = Math.floor(available / align);
    const frames = carried + whole;
    const out = frames === 0 ? EMPTY : this.output(frames * samplesPerFrame);
    if (carried) {
      decode(this.carry, 0, samplesPerFrame, out, 0);
      this.carryLength = 0;
    }
    if (whole > 0) {
      decode(bytes, start, whole * samplesPerFrame, out, carried * samplesPerFrame);
    }
    const rest = available - whole * align;
    if (rest > 0) {
      this.carry.set(bytes.subarray(start + whole * align, start + available), 0);
      this.carryLength = rest;
    }
    this.frames += frames;
    return out;
  }

  private output(samples: number): Float32Array {
    if (!this.reuseOutput) return new Float32Array(samples);
    if (this.scratch.length < samples) this.scratch = new Float32Array(samples);
    return this.scratch.subarray(0, samples);
  }

  private header(offset: number, reason: string): AudioDecodeError {
    return new AudioDecodeError('MEMTIDE_ERR_AUDIO_HEADER', this.source, offset, reason);
  }

  private unsupported(offset: number, reason: string): AudioDecodeError {
    return new AudioDecodeError('MEMTIDE_ERR_AUDIO_UNSUPPORTED', this.source, offset, reason);
  }
}
