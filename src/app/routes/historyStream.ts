/**
 * Streaming history to a chart: rows go through a per-pixel downsampler
 * (min / average / max per series per pixel column, so a spike narrower than
 * a pixel still shows) and out as JSON text written in chunks as the rows are
 * read, with backpressure, while a copy is kept for the query cache as long
 * as it fits the cache's budget.
 */
import type { ServerResponse } from 'node:http';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { HttpError } from '../http.js';

/** `width` pixel columns of `bucketMs` each, the first starting at `sinceMs`. */
export interface PixelGrid {
  sinceMs: number;
  bucketMs: number;
  width: number;
}

/** `[series, t, min, avg, max, n]`: one series in one pixel column (`t` its start, `n` samples summarised). */
export type PixelPoint = [series: string, t: number, min: number, avg: number, max: number, n: number];
export const PIXEL_POINT_COLUMNS = ['series', 't', 'min', 'avg', 'max', 'n'] as const;

interface Accumulator {
  min: number;
  max: number;
  /** Sum of averages weighted by their sample counts. */
  sum: number;
  weight: number;
}

/** Integers stay integers (bytes); fractions keep 4 decimals (PSI percentages). The result never leaves [min, max]. */
function averageOf(acc: Accumulator): number {
  const raw = acc.sum / acc.weight;
  const rounded = Number.isInteger(acc.min) && Number.isInteger(acc.max) ? Math.round(raw) : Math.round(raw * 10_000) / 10_000;
  return Math.min(acc.max, Math.max(acc.min, rounded));
}

/**
 * Folds time-ordered values into pixel columns and emits one point per
 * series per column as soon as the column is complete (the first value of a
 * later column closes it), so output follows input without holding it: at
 * most one open column per series is kept.
 */
export class PixelDownsampler {
  private column = -1;
  private columnStart = 0;
  private readonly open = new Map<string, Accumulator>();
  private readonly names = new Set<string>();

  constructor(
    readonly grid: PixelGrid,
    private readonly emit: (point: PixelPoint) => void,
  ) {}

  /** One value (a raw sample: min = avg = max, weight 1; or an aggregate bucket with its sample count). */
  add(series: string, timestampMs: number, min: number, avg: number, max: number, weight: number): void {
    const { sinceMs, bucketMs, width } = this.grid;
    const column = Math.min(width - 1, Math.max(0, Math.floor((timestampMs - sinceMs) / bucketMs)));
    if (column !== this.column) {
      this.flush();
      this.column = column;
      this.columnStart = sinceMs + column * bucketMs;
    }
    this.names.add(series);
    const acc = this.open.get(series);
    const w = weight > 0 ? weight : 1;
    if (!acc) {
      this.open.set(series, { min, max, sum: avg * w, weight: w });
      return;
    }
    if (min < acc.min) acc.min = min;
    if (max > acc.max) acc.max = max;
    acc.sum += avg * w;
    acc.weight += w;
  }

  /** Emits the open column (call once at the end). */
  flush(): void {
    for (const [series, acc] of this.open) this.emit([series, this.columnStart, acc.min, averageOf(acc), acc.max, acc.weight]);
    this.open.clear();
  }

  /** Every series seen, in order of first appearance. */
  series(): string[] {
    return [...this.names];
  }
}

export interface StreamedBodyOptions {
  /** Text is handed to the socket in chunks of about this many characters. */
  chunkChars?: number;
  /** Keep a copy of the body up to this many bytes (for the cache); 0: keep none. */
  keepBytes?: number;
}

/**
 * A JSON response written as it is produced. `pause()` is where the
 * producer lets the event loop (and a slow client) catch up: it waits for
 * `drain` when the socket's buffer is full, else for the next turn; it
 * throws when the client went away, so the producer stops reading rows.
 */
export class StreamedBody {
  private text = '';
  private kept: Buffer[] | null;
  private keptBytes = 0;
  private gone = false;
  private readonly chunkChars: number;
  private readonly keepBytes: number;

  constructor(
    private readonly res: ServerResponse,
    options: StreamedBodyOptions = {},
  ) {
    this.chunkChars = options.chunkChars ?? 16 * 1024;
    this.keepBytes = options.keepBytes ?? 0;
    this.kept = this.keepBytes > 0 ? [] : null;
    res.once('close', () => {
      if (!res.writableFinished) this.gone = true;
    });
  }

  push(text: string): void {
    this.text += text;
    if (this.text.length >= this.chunkChars) this.flush();
  }

  async pause(): Promise<void> {
    this.assertConnected();
    const ready = this.flush();
    if (!ready) {
      await new Promise<void>((resolve) => {
        const done = () => {
          this.res.off('drain', done);
          this.res.off('close', done);
          resolve();
        };
        this.res.on('drain', done);
        this.res.on('close', done);
      });
    } else {
      await nextTurn();
    }
    this.assertConnected();
  }

  /** Ends the response; returns the whole body when it was kept (it fit `keepBytes`). */
  end(): Buffer | null {
    this.flush();
    this.res.end();
    return this.kept ? Buffer.concat(this.kept, this.keptBytes) : null;
  }

  private flush(): boolean {
    if (this.text === '') return true;
    const chunk = Buffer.from(this.text, 'utf8');
    this.text = '';
    if (this.kept) {
      this.keptBytes += chunk.length;
      if (this.keptBytes <= this.keepBytes) this.kept.push(chunk);
      else this.kept = null; // too big for the cache: stop copying
    }
    return this.res.write(chunk);
  }

  private assertConnected(): void {
    if (this.gone || this.res.destroyed) throw new HttpError(499, 'MEMTIDE_ERR_CLIENT_GONE', 'the client closed the connection');
  }
}

/** Loops over `rows`, pausing every `slice` rows; the iterator is closed (SQLite cursor released) however the loop ends. */
export async function forEachSliced<T>(rows: Iterable<T>, slice: number, body: StreamedBody, each: (row: T) => void): Promise<number> {
  let count = 0;
  for (const row of rows) {
    each(row);
    count += 1;
    if (count % slice === 0) await body.pause();
  }
  return count;
}
