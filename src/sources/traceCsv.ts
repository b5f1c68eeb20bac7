/**
 * Reads a memory trace in the export format (`timestamp_ms,component,rss_bytes`,
 * system memory as components `system.total` / `system.available`), streaming
 * line by line, and groups the rows of one timestamp into one sample. Every
 * malformed row is an error naming its line: a replay of a half-read trace
 * would report leaks and levels that are not in the data.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';

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

const INTEGER = /^\d{1,16}$/;

/** Parses one data row; throws TraceError naming the line and the field. */
export function parseTraceRow(line: string, lineNumber: number, source: string): { timestampMs: number; component: string; bytes: number } {
  const fields = splitCsvLine(line);
  if (!fields) throw new TraceError(source, lineNumber, 'unbalanced quotes');
  if (fields.length !== 3) throw new TraceError(source, lineNumber, `expected 3 fields (timestamp_ms,component,rss_bytes), got ${fields.length}`);
  const [ts, component, bytes] = fields as [string, string, string];
  if (!INTEGER.test(ts) || !Number.isSafeInteger(Number(ts))) {
    throw new TraceError(source, lineNumber, `timestamp_ms is not a non-negative integer: "${ts}"`);
  }
  if (component.length === 0) throw new TraceError(source, lineNumber, 'component is empty');
  if (!INTEGER.test(bytes) || !Number.isSafeInteger(Number(bytes))) {
    throw new TraceError(source, lineNumber, `rss_bytes is not a non-negative integer: "${bytes}"`);
  }
  return { timestampMs: Number(ts), component, bytes: Number(bytes) };
}

/**
 * Samples of a trace, in order. Rows must be ordered by timestamp (the
 * exporter writes them so); a row going back in time is an error, since a
 * replay cannot un-happen what it already reported.
 */
export async function* readTrace(input: string | Readable, sourceName = typeof input === 'string' ? input : 'trace'): AsyncGenerator<TraceSample> {
  const stream = typeof input === 'string' ? createReadStream(input, { highWaterMark: 256 * 1024 }) : input;
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  let lineNumber = 0;
  let current: TraceSample | null = null;
  try {
    for await (const raw of lines) {
      lineNumber += 1;
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (lineNumber === 1) {
        if (line.replace(/^\uFEFF/, '').trim() !== TRACE_HEADER) {
          throw new TraceError(sourceName, 1, `expected the header "${TRACE_HEADER}", got "${line.slice(0, 80)}"`);
        }
        continue;
      }
      if (line.trim() === '') continue;
      const row = parseTraceRow(line, lineNumber, sourceName);
      if (current && row.timestampMs < current.timestampMs) {
        throw new TraceError(sourceName, lineNumber, `timestamp_ms ${row.timestampMs} goes back in time (previous row: ${current.timestampMs})`);
      }
      if (!current || row.timestampMs !== current.timestampMs) {
        if (current) yield current;
        current = { timestampMs: row.timestampMs, components: new Map(), totalBytes: null, availableBytes: null };
      }
      if (row.component === SYSTEM_TOTAL) current.totalBytes = row.bytes;
      else if (row.component === SYSTEM_AVAILABLE) current.availableBytes = row.bytes;
      else if (current.components.has(row.component)) {
        throw new TraceError(sourceName, lineNumber, `component "${row.component}" appears twice at ${row.timestampMs}`);
      } else current.components.set(row.component, row.bytes);
    }
  } catch (error) {
    if (error instanceof TraceError) throw error;
    throw new TraceError(sourceName, lineNumber, `cannot read: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  } finally {
    lines.close();
    if (typeof input === 'string') stream.destroy();
  }
  if (lineNumber === 0) throw new TraceError(sourceName, 1, `empty file (expected the header "${TRACE_HEADER}")`);
  if (current) yield current;
}
