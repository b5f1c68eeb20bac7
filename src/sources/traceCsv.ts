/**
 * Reads a memory trace in the export format (`timestamp_ms,component,rss_bytes`,
 * system memory as components `system.total` / `system.available`), streaming
 * line by line, and groups the rows of one timestamp into one sample. Every
 * malformed row is an error naming its line: a replay of a half-read trace
 * would report leaks and levels that are not in the data.
 */
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';

export const TRACE_HEADER = 'timestamp_ms,component,rss_bytes';
export const SYSTEM_TOTAL = 'system.total';
export const SYSTEM_AVAILABLE = 'system.available';

export class TraceError extends Error {
  readonly code = 'MEMTIDE_ERR_TRACE';
  constructor(
    readonly source: string,
    readonly line: number,
    reason: string,
  ) {
    super(`${source}:${line}: ${reason}`);
    this.name = 'TraceError';
  }
}

/** All rows of one timestamp. */
export interface TraceSample {
  timestampMs: number;
  components: Map<string, number>;
  totalBytes: number | null;
  availableBytes: number | null;
}

/** Splits one CSV line into fields (RFC 4180 quoting, as the exporter writes names with commas or quotes). */
export function splitCsvLine(line: string): string[] | null {
  if (!line.includes('"')) return line.split(',');
  const fields: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < line.length; i += 1) {
    const ch = line[i];
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        field += '"';
        i += 1;
      } else if (ch === '"') {
        quoted = false;
      } else {
        field += ch;
      }
    } else if (ch === '"' && field === '') {
      quoted = true;
    } else if (ch === ',') {
      fields.push(field);
      field = '';
    } else if (ch === '"') {
      return null;
    } else {
      field += ch;
    }
  }
  if (quoted) return null;
  fields.push(field);
  return fields;
}

/**
 * The value of a field of 1 to 16 ASCII digits that is a safe integer; null
 * for anything else (what `/^\d{1,16}$/` and `Number.isSafeInteger` accepted,
 * read digit by digit: parsing is most of reading a trace).
 */
function wholeNumber(line: string, from: number, to: number): number | null {
  if (to - from < 1 || to - from > 16) return null;
  let value = 0;
  for (let i = from; i < to; i++) {
    const digit = line.charCodeAt(i) - 48;
    if (!(digit >= 0 && digit <= 9)) return null;
    // exact while below 2^53; beyond, the result stays beyond (and is refused below)
    value = value * 10 + digit;
  }
  return Number.isSafeInteger(value) ? value : null;
}

/** Parses one data row; throws TraceError naming the line and the field. */
export function parseTraceRow(line: string, lineNumber: number, source: string): { timestampMs: number; component: string; bytes: number } {
  let fields: string[] | null;
  if (!line.includes('"')) {
    // unquoted (every row the exporter writes for a plain name): the two commas, without splitting
    const first = line.indexOf(',');
    const second = first < 0 ? -1 : line.indexOf(',', first + 1);
    if (second >= 0 && line.indexOf(',', second + 1) < 0) {
      const timestampMs = wholeNumber(line, 0, first);
      const bytes = wholeNumber(line, second + 1, line.length);
      if (timestampMs !== null && bytes !== null && second > first + 1) return { timestampMs, component: line.slice(first + 1, second), bytes };
    }
    // a bad row: the general path below names what is wrong with it
    fields = line.split(',');
  } else fields = splitCsvLine(line);
  if (!fields) throw new TraceError(source, lineNumber, 'unbalanced quotes');
  if (fields.length !== 3) throw new TraceError(source, lineNumber, `expected 3 fields (timestamp_ms,component,rss_bytes), got ${fields.length}`);
  const [ts, component, bytes] = fields as [string, string, string];
  const timestampMs = wholeNumber(ts, 0, ts.length);
  if (timestampMs === null) throw new TraceError(source, lineNumber, `timestamp_ms is not a non-negative integer: "${ts}"`);
  if (component.length === 0) throw new TraceError(source, lineNumber, 'component is empty');
  const value = wholeNumber(bytes, 0, bytes.length);
  if (value === null) throw new TraceError(source, lineNumber, `rss_bytes is not a non-negative integer: "${bytes}"`);
  return { timestampMs, component, bytes: value };
}

/**
 * Lines of a text arriving in chunks, as readline cuts them: `\n`, `\r\n` and
 * a lone `\r` each end a line (a `\r` ending one chunk and a `\n` opening the
 * next are one line end); the last line needs no end. Cut here rather than by
 * readline, whose async iteration costs a promise per line (a third of
 * reading a trace).
 */
class LineCutter {
  private readonly decoder = new StringDecoder('utf8');
  private rest = '';
  private skipNewline = false;

  /** Calls `onLine` for every line the chunk completes. */
  write(chunk: Buffer | string, onLine: (line: string) => void): void {
    this.cut(typeof chunk === 'string' ? chunk : this.decoder.write(chunk), onLine);
  }

  /** The end of the text: the last line, when it has no line end. */
  end(onLine: (line: string) => void): void {
    this.cut(this.decoder.end(), onLine);
    const last = this.rest;
    this.rest = '';
    if (last !== '') onLine(last);
  }

  private cut(text: string, onLine: (line: string) => void): void {
    let at = 0;
    if (this.skipNewline && text.length > 0) {
      if (text.charCodeAt(0) === 10) at = 1;
      this.skipNewline = false;
    }
    // the next \n and \r, each searched for again only once passed (a text without \r is scanned for it once)
    let newline = text.indexOf('\n', at);
    let ret = text.indexOf('\r', at);
    while (newline >= 0 || ret >= 0) {
      const endsAtReturn = ret >= 0 && (newline < 0 || ret < newline);
      const end = endsAtReturn ? ret : newline;
      const line = this.rest === '' ? text.slice(at, end) : this.rest + text.slice(at, end);
      this.rest = '';
      at = end + 1;
      if (endsAtReturn) {
        if (at < text.length) {
          if (text.charCodeAt(at) === 10) at += 1;
        } else this.skipNewline = true;
      }
      onLine(line);
      if (newline >= 0 && newline < at) newline = text.indexOf('\n', at);
      if (ret >= 0 && ret < at) ret = text.indexOf('\r', at);
    }
    this.rest += text.slice(at);
  }
}

/**
 * Longest gap between two samples of a trace. A replay runs every timer in
 * between (alert repeats every few hours), so its work grows with the gap: a
 * week costs a few dozen repeats, while a microsecond timestamp among
 * millisecond ones (a 50-year jump) would run it out of memory. Longer gaps
 * are almost always mixed units or a corrupt row; split such a trace instead.
 */
export const MAX_TRACE_GAP_MS = 7 * 24 * 3_600_000;

/**
 * Samples of a trace, in order. Rows must be ordered by timestamp (the
 * exporter writes them so); a row going back in time is an error, since a
 * replay cannot un-happen what it already reported, and so is a jump of more
 * than {@link MAX_TRACE_GAP_MS}.
 */
export async function* readTrace(input: string | Readable, sourceName = typeof input === 'string' ? input : 'trace'): AsyncGenerator<TraceSample> {
  const stream = typeof input === 'string' ? createReadStream(input, { highWaterMark: 256 * 1024 }) : input;
  // a stream of the caller's is left open when reading stops early, as readline left it
  const iterator: AsyncIterator<Buffer | string> = typeof input === 'string' ? stream[Symbol.asyncIterator]() : input.iterator({ destroyOnReturn: false });
  const cutter = new LineCutter();
  let lineNumber = 0;
  let current: TraceSample | null = null;
  // samples completed by the lines of one chunk (a chunk holds thousands of lines; a line is handled synchronously)
  const completed: TraceSample[] = [];
  const onLine = (raw: string): void => {
    lineNumber += 1;
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (lineNumber === 1) {
      if (line.replace(/^\uFEFF/, '').trim() !== TRACE_HEADER) {
        throw new TraceError(sourceName, 1, `expected the header "${TRACE_HEADER}", got "${line.slice(0, 80)}"`);
      }
      return;
    }
    // a line starting with a digit is not blank (the common case: no trim)
    const first = line.charCodeAt(0);
    if (!(first >= 48 && first <= 57) && line.trim() === '') return;
    const row = parseTraceRow(line, lineNumber, sourceName);
    if (current && row.timestampMs < current.timestampMs) {
      throw new TraceError(sourceName, lineNumber, `timestamp_ms ${row.timestampMs} goes back in time (previous row: ${current.timestampMs})`);
    }
    if (current && row.timestampMs - current.timestampMs > MAX_TRACE_GAP_MS) {
      throw new TraceError(
        sourceName,
        lineNumber,
        `timestamp_ms ${row.timestampMs} is ${Math.round((row.timestampMs - current.timestampMs) / 86_400_000)} days after the previous row (${current.timestampMs}); gaps over 7 days are refused (mixed units? split the trace)`,
      );
    }
    if (!current || row.timestampMs !== current.timestampMs) {
      if (current) completed.push(current);
      current = { timestampMs: row.timestampMs, components: new Map(), totalBytes: null, availableBytes: null };
    }
    // A second row for the same name and time would silently replace the first: which one is the data?
    const seen =
      row.component === SYSTEM_TOTAL ? current.totalBytes !== null : row.component === SYSTEM_AVAILABLE ? current.availableBytes !== null : current.components.has(row.component);
    if (seen) throw new TraceError(sourceName, lineNumber, `component "${row.component}" appears twice at ${row.timestampMs}`);
    if (row.component === SYSTEM_TOTAL) current.totalBytes = row.bytes;
    else if (row.component === SYSTEM_AVAILABLE) current.availableBytes = row.bytes;
    else current.components.set(row.component, row.bytes);
  };
  try {
    for (let ended = false; !ended; ) {
      const next = await iterator.next();
      ended = next.done === true;
      let bad: { error: unknown } | null = null;
      try {
        if (ended) cutter.end(onLine);
        else cutter.write(next.value, onLine);
      } catch (error) {
        bad = { error };
      }
      // the samples before a bad line still go out first, as they did line by line
      for (let i = 0; i < completed.length; i++) yield completed[i] as TraceSample;
      completed.length = 0;
      if (bad !== null) throw bad.error;
    }
  } catch (error) {
    if (error instanceof TraceError) throw error;
    throw new TraceError(sourceName, lineNumber, `cannot read: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  } finally {
    await iterator.return?.();
    if (typeof input === 'string') stream.destroy();
  }
  if (lineNumber === 0) throw new TraceError(sourceName, 1, `empty file (expected the header "${TRACE_HEADER}")`);
  if (current) yield current;
}
