/**
 * The history API over 100,000 samples in a temp database: downsampling to
 * the chart's width (min <= avg <= max, nothing lost), streaming (output
 * follows the rows, backpressure, a client that leaves), the query cache
 * (hits, its byte budget, evictions; and a model-based test of the cache
 * itself), sample paging for the virtualised list, and the parameters.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemtide, type Memtide } from '../src/app/memtide.js';
import type { RouteContext } from '../src/app/router.js';
import { startServer, type MemtideServer } from '../src/app/server.js';
import { historyRoutes, parseHistoryQuery, type HistoryReader } from '../src/app/routes/history.js';
import { PixelDownsampler, type PixelPoint } from '../src/app/routes/historyStream.js';
import { HttpError } from '../src/app/http.js';
import { loadConfig } from '../src/app/config.js';
import { createHistoryQueryCache, entrySize, type HistoryQueryCache } from '../src/sinks/historyQueryCache.js';
import { HistoryStore } from '../src/sinks/historyStore.js';
import { silentLogger } from '../src/sinks/logger.js';
import { PRESSURE_LEVELS, type MemorySample, type PressureChange } from '../src/model.js';

const MIB = 1024 * 1024;
const N = 100_000;
const STEP_MS = 500;
/** Minute-aligned, ending about two hours ago: inside the raw retention, before anything the live engine writes. */
const START = Math.floor((Date.now() - 2 * 3_600_000 - N * STEP_MS) / 60_000) * 60_000;
const END = START + N * STEP_MS;
const EVENT_EVERY = 1_000;

const ollamaRss = (i: number) => 1000 * MIB + ((i * 7919) % 1000) * MIB;
const engineRss = (i: number) => 50 * MIB + (i % 100) * 1024;

function syntheticSample(i: number): MemorySample {
  return {
    timestampMs: START + i * STEP_MS,
    system: {
      totalBytes: 8192 * MIB,
      availableBytes: 4096 * MIB - (i % 500) * MIB,
      usedBytes: 0,
      swapTotalBytes: 1024 * MIB,
      swapUsedBytes: (i % 7) * MIB,
      psi: { someAvg10: (i % 100) / 10, someAvg60: 0, fullAvg10: 0, fullAvg60: 0 },
      physicalTotalBytes: 8192 * MIB,
      cgroupLimitBytes: null,
    },
    components: {
      engine: { rssBytes: engineRss(i), pssBytes: engineRss(i) - MIB, pssAnonBytes: null, processCount: 1 },
      ollama: { rssBytes: ollamaRss(i), pssBytes: null, pssAnonBytes: null, processCount: 2 },
    },
    processes: [],
    self: { pid: 1, rssBytes: 0, heapUsedBytes: 0, heapTotalBytes: 0, externalBytes: 0, arrayBuffersBytes: 0, sampleCpuMs: 0 },
  };
}

let tmp: string;
let dbPath: string;
let memtide: Memtide;
let server: MemtideServer;
let cache: HistoryQueryCache;
const RANGE = `since=${START}&until=${END}`;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memtide-history-api-'));
  dbPath = path.join(tmp, 'history.db');
  const store = HistoryStore.open(dbPath);
  try {
    for (let from = 0; from < N; from += 10_000) {
      const samples: MemorySample[] = [];
      const events: PressureChange[] = [];
      for (let i = from; i < from + 10_000; i++) {
        samples.push(syntheticSample(i));
        if (i % EVENT_EVERY === 0) {
          const k = i / EVENT_EVERY;
          events.push({ atMs: START + i * STEP_MS, level: PRESSURE_LEVELS[k % 4]!, previous: k === 0 ? null : PRESSURE_LEVELS[(k - 1) % 4]!, reasons: [] });
        }
      }
      store.append(samples, events);
    }
  } finally {
    store.close();
  }
  memtide = createMemtide({
    mode: 'runner',
    env: {},
    config: { sampling: { intervalMs: 1_000 }, history: { path: dbPath, flushIntervalMs: 1_000 }, server: { port: 0, tokenFile: path.join(tmp, 'token') } },
  });
  cache = createHistoryQueryCache({ maxBytes: 8 * MIB });
  server = await startServer({ memtide, logger: silentLogger, modules: [historyRoutes({ cache })] });
});

afterAll(async () => {
  await server?.close();
  memtide?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function get(url: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string; json: () => any }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) }));
      })
      .on('error', reject);
  });
}

function bySeries(points: PixelPoint[]): Map<string, PixelPoint[]> {
  const groups = new Map<string, PixelPoint[]>();
  for (const point of points) groups.set(point[0], [...(groups.get(point[0]) ?? []), point]);
  return groups;
}

describe('GET /api/history', () => {
  it('downsamples 100,000 samples to at most 2 x width points per series, min <= avg <= max, nothing lost', async () => {
    const reply = await get(`${server.url}/api/history?${RANGE}&width=800`);
    expect(reply.status).toBe(200);
    expect(reply.headers['x-memtide-cache']).toBe('miss');
    const body = reply.json();
    expect(body).toMatchObject({ kind: 'components', field: 'rss', sinceMs: START, untilMs: END, width: 800, rowsRead: 2 * N });
    expect(body.columns).toEqual(['series', 't', 'min', 'avg', 'max', 'n']);
    expect(body.series).toEqual(['engine', 'ollama']);
    const series = bySeries(body.points);
    for (const [name, points] of series) {
      expect(points.length, name).toBeLessThanOrEqual(2 * 800);
      expect(points.length, name).toBeGreaterThan(700);
      let previous = -Infinity;
      for (const [, t, min, avg, max, n] of points) {
        expect(min <= avg && avg <= max, `${name} at ${t}: ${min} <= ${avg} <= ${max}`).toBe(true);
        expect(t).toBeGreaterThan(previous);
        expect(t).toBeGreaterThanOrEqual(START);
        expect(t).toBeLessThan(END);
        expect(n).toBeGreaterThan(0);
        previous = t;
      }
      // Every sample counted once.
      expect(points.reduce((sum, p) => sum + p[5], 0), name).toBe(N);
    }
    const ollama = series.get('ollama')!;
    expect(Math.min(...ollama.map((p) => p[2]))).toBe(1000 * MIB);
    expect(Math.max(...ollama.map((p) => p[4]))).toBe(1999 * MIB);
  });

  it('a second identical query is a cache hit with the same body', async () => {
    const url = `${server.url}/api/history?${RANGE}&width=640`;
    const before = cache.stats();
    const first = await get(url);
    const second = await get(url);
    expect(first.headers['x-memtide-cache']).toBe('miss');
    expect(second.headers['x-memtide-cache']).toBe('hit');
    expect(second.text).toBe(first.text);
    const after = cache.stats();
    expect(after.hits - before.hits).toBe(1);
    expect(after.misses - before.misses).toBe(1);
    const stats = (await get(`${server.url}/api/history/cache`)).json();
    expect(stats).toMatchObject({ hits: after.hits, misses: after.misses, maxBytes: 8 * MIB });
    expect(stats.bytes).toBeGreaterThan(0);
  });

  it('kind=system: available / total / swap / PSI series with min and max per column', async () => {
    const body = (await get(`${server.url}/api/history?${RANGE}&width=500&kind=system`)).json();
    expect(body.series).toEqual(['available', 'total', 'swapUsed', 'psiSomeAvg10', 'psiFullAvg10']);
    const series = bySeries(body.points);
    for (const [name, points] of series) {
      expect(points.length, name).toBeLessThanOrEqual(1000);
      for (const [, , min, avg, max] of points) expect(min <= avg && avg <= max).toBe(true);
    }
    const available = series.get('available')!;
    expect(Math.min(...available.map((p) => p[2]))).toBe(4096 * MIB - 499 * MIB);
    expect(Math.max(...available.map((p) => p[4]))).toBe(4096 * MIB);
    expect(Math.max(...series.get('psiSomeAvg10')!.map((p) => p[4]))).toBe(9.9);
  });

  it('kind=pressure: the level changes as ranks; component and field filter the series', async () => {
    const pressure = (await get(`${server.url}/api/history?${RANGE}&width=50&kind=pressure`)).json();
    expect(pressure.series).toEqual(['level']);
    expect(pressure.points.reduce((sum: number, p: PixelPoint) => sum + p[5], 0)).toBe(N / EVENT_EVERY);
    expect(pressure.points.every((p: PixelPoint) => p[2] >= 0 && p[4] <= 3)).toBe(true);

    const ollama = (await get(`${server.url}/api/history?${RANGE}&width=100&component=ollama`)).json();
    expect(ollama.series).toEqual(['ollama']);
    expect(ollama.rowsRead).toBe(N);
    // PSS: only where it was read (engine); ollama has none.
    const pss = (await get(`${server.url}/api/history?${RANGE}&width=100&field=pss`)).json();
    expect(pss.series).toEqual(['engine']);
  });

  it.each([
    ['width=0', 'width'],
    ['width=10001', 'width'],
    ['width=abc', 'width'],
    ['kind=heap', 'kind'],
    ['field=vss', 'field'],
    ['since=soon', 'since'],
    ['until=later', 'until'],
    [`since=${END}&until=${START}`, 'since'],
    ['component=Not%20A%20Name', 'component'],
  ])('400 naming the parameter: %s', async (query, field) => {
    const reply = await get(`${server.url}/api/history?${query}`);
    expect(reply.status).toBe(400);
    expect(reply.json()).toMatchObject({ code: 'MEMTIDE_ERR_QUERY', field });
  });

  it('503 when history is off', async () => {
    const off = createMemtide({ mode: 'runner', env: {}, config: { history: { enabled: false }, server: { port: 0, tokenFile: path.join(tmp, 'token-off') } } });
    const offServer = await startServer({ memtide: off, logger: silentLogger, modules: [historyRoutes()] });
    try {
      for (const route of ['/api/history', '/api/samples', '/api/pressure']) {
        const reply = await get(`${offServer.url}${route}`);
        expect(reply.status, route).toBe(503);
        expect(reply.json().code).toBe('MEMTIDE_ERR_HISTORY_DISABLED');
      }
    } finally {
      await offServer.close();
      off.stop();
    }
  });
});

describe('the cache budget', () => {
  it('holds at most its byte budget, evicting least recently used answers; a body larger than the budget is not kept', async () => {
    const small = createHistoryQueryCache({ maxBytes: 24 * 1024 });
    const smallServer = await startServer({ memtide, logger: silentLogger, modules: [historyRoutes({ cache: small })] });
    try {
      const sizes: number[] = [];
      const quarter = `since=${START}&until=${START + (N / 4) * STEP_MS}`;
      for (let width = 40; width <= 160; width += 20) {
        const reply = await get(`${smallServer.url}/api/history?${quarter}&width=${width}&component=ollama`);
        sizes.push(Buffer.byteLength(reply.text));
        expect(small.stats().bytes).toBeLessThanOrEqual(24 * 1024);
      }
      const stats = small.stats();
      expect(sizes.reduce((a, b) => a + b, 0)).toBeGreaterThan(24 * 1024);
      expect(stats.evictions).toBeGreaterThan(0);
      expect(stats.entries).toBeLessThan(sizes.length);
      // The newest is still there, the oldest went first.
      expect((await get(`${smallServer.url}/api/history?${quarter}&width=160&component=ollama`)).headers['x-memtide-cache']).toBe('hit');
      expect((await get(`${smallServer.url}/api/history?${quarter}&width=40&component=ollama`)).headers['x-memtide-cache']).toBe('miss');

      const rejectedBefore = small.stats().rejected;
      const huge = `${smallServer.url}/api/history?${quarter}&width=3000`;
      await get(huge);
      expect(small.stats().rejected).toBe(rejectedBefore + 1);
      expect((await get(huge)).headers['x-memtide-cache']).toBe('miss');
      expect(small.stats().bytes).toBeLessThanOrEqual(24 * 1024);
    } finally {
      await smallServer.close();
    }
  });
});

/** Just enough of a ServerResponse to run a route handler in a test, recording every write. */
class RecordingResponse extends EventEmitter {
  writes: Array<{ bytes: number; rowsReadBefore: number }> = [];
  status = 0;
  headersSent = false;
  writableFinished = false;
  destroyed = false;
  ended = false;
  text = '';
  /** What `write` answers: false = the socket buffer is full (wait for 'drain'). */
  writeReturns = true;
  constructor(private readonly rowsRead: () => number) {
    super();
  }
  writeHead(status: number) {
    this.status = status;
    this.headersSent = true;
    return this;
  }
  write(chunk: Buffer | string) {
    this.writes.push({ bytes: Buffer.byteLength(chunk), rowsReadBefore: this.rowsRead() });
    this.text += chunk.toString();
    return this.writeReturns;
  }
  end(chunk?: Buffer | string) {
    if (chunk) this.write(chunk);
    this.ended = true;
    this.writableFinished = true;
    this.emit('finish');
    this.emit('close');
  }
}

function countingReader(store: HistoryStore): { reader: HistoryReader; rows: () => number } {
  let rows = 0;
  const counted = <T>(inner: Iterable<T>) =>
    (function* () {
      for (const row of inner) {
        rows += 1;
        yield row;
      }
    })();
  return {
    rows: () => rows,
    reader: {
      componentSeries: (q) => counted(store.componentSeries(q)),
      systemSeries: (q) => counted(store.systemSeries(q)),
      pressureEvents: (q) => counted(store.pressureEvents(q)),
    },
  };
}

describe('streaming', () => {
  const context = (): RouteContext => ({ memtide: {} as Memtide, logger: silentLogger, config: () => loadConfig({ env: {} }) });
  const handlerOf = (reader: HistoryReader, path: string) => {
    const module = historyRoutes({ reader: () => reader, cache: createHistoryQueryCache({ maxBytes: 0 }), chunkChars: 4096, rowsPerSlice: 1000 })(context());
    return module.routes.find((r) => r.path === path)!.handler;
  };
  const url = (query: string) => new URL(`http://127.0.0.1/api/history?${query}`);

  it('writes points while the rows are still being read', async () => {
    const store = HistoryStore.open(dbPath);
    try {
      const { reader, rows } = countingReader(store);
      const res = new RecordingResponse(rows);
      await handlerOf(reader, '/api/history')({} as IncomingMessage, res as unknown as ServerResponse, {}, url(`${RANGE}&width=800`));
      expect(res.status).toBe(200);
      expect(rows()).toBe(2 * N);
      expect(res.writes.length).toBeGreaterThan(5);
      // The first bytes went out when less than a tenth of the rows had been read, and writing went on throughout.
      expect(res.writes[0]!.rowsReadBefore).toBeLessThan(N / 5);
      const midway = res.writes.filter((w) => w.rowsReadBefore > N / 2 && w.rowsReadBefore < 1.5 * N);
      expect(midway.length).toBeGreaterThan(0);
      // No write larger than a few chunks: nothing was held back to the end.
      expect(Math.max(...res.writes.map((w) => w.bytes))).toBeLessThan(3 * 4096);
      expect(JSON.parse(res.text).rowsRead).toBe(2 * N);
    } finally {
      store.close();
    }
  });

  it('stops reading while the client does not take the bytes (backpressure), and goes on at "drain"', async () => {
    const store = HistoryStore.open(dbPath);
    try {
      const { reader, rows } = countingReader(store);
      const res = new RecordingResponse(rows);
      res.writeReturns = false;
      const done = handlerOf(reader, '/api/history')({} as IncomingMessage, res as unknown as ServerResponse, {}, url(`${RANGE}&width=800`));
      await new Promise((resolve) => setTimeout(resolve, 100));
      const stalledAt = rows();
      expect(stalledAt).toBeLessThan(2 * N);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(rows()).toBe(stalledAt);
      res.writeReturns = true;
      res.emit('drain');
      await done;
      expect(rows()).toBe(2 * N);
      expect(res.ended).toBe(true);
    } finally {
      store.close();
    }
  });

  it('a client that leaves stops the query and releases the cursor', async () => {
    const store = HistoryStore.open(dbPath);
    try {
      const { reader, rows } = countingReader(store);
      const res = new RecordingResponse(rows);
      res.writeReturns = false;
      const done = handlerOf(reader, '/api/history')({} as IncomingMessage, res as unknown as ServerResponse, {}, url(`${RANGE}&width=800`));
      await new Promise((resolve) => setTimeout(resolve, 50));
      res.destroyed = true;
      res.emit('close');
      await expect(done).rejects.toSatisfy((error: unknown) => error instanceof HttpError && error.status === 499);
      expect(rows()).toBeLessThan(2 * N);
    } finally {
      // Would throw "busy executing a query" if the cursor were still open.
      store.close();
    }
  });
});

describe('GET /api/samples', () => {
  it('pages through 100,000 samples with a total, each row with its components', async () => {
    const first = (await get(`${server.url}/api/samples?${RANGE}&offset=0&limit=100`)).json();
    expect(first).toMatchObject({ sinceMs: START, untilMs: END, offset: 0, limit: 100, total: N });
    expect(first.rows).toHaveLength(100);
    expect(first.rows[0].timestampMs).toBe(START);
    expect(first.rows[0].components.ollama.rssBytes).toBe(ollamaRss(0));
    expect(first.rows[0].components.engine).toEqual({ rssBytes: engineRss(0), pssBytes: engineRss(0) - MIB, processCount: 1 });
    const second = (await get(`${server.url}/api/samples?${RANGE}&offset=100&limit=100`)).json();
    expect(second.rows[0].timestampMs).toBe(first.rows[99].timestampMs + STEP_MS);
    expect(second.total).toBe(N);
    const middle = (await get(`${server.url}/api/samples?${RANGE}&offset=54321&limit=3`)).json();
    expect(middle.rows.map((r: { timestampMs: number }) => r.timestampMs)).toEqual([54321, 54322, 54323].map((i) => START + i * STEP_MS));
    expect(middle.rows[2].availableBytes).toBe(syntheticSample(54323).system.availableBytes);
    const last = (await get(`${server.url}/api/samples?${RANGE}&offset=${N - 50}&limit=100`)).json();
    expect(last.rows).toHaveLength(50);
    expect(last.rows.at(-1).timestampMs).toBe(END - STEP_MS);
    const past = (await get(`${server.url}/api/samples?${RANGE}&offset=${N + 10}`)).json();
    expect(past).toMatchObject({ total: N, rows: [] });
    expect((await get(`${server.url}/api/samples?${RANGE}&offset=0&limit=100`)).headers['x-memtide-cache']).toBe('hit');
  });

  it('400 for a page larger than 1000 rows or a negative offset', async () => {
    expect((await get(`${server.url}/api/samples?limit=1001`)).json().field).toBe('limit');
    expect((await get(`${server.url}/api/samples?offset=-1`)).json().field).toBe('offset');
  });
});

describe('GET /api/pressure', () => {
  it('lists the level changes in the range', async () => {
    const body = (await get(`${server.url}/api/pressure?since=${START}&until=${START + 5_000 * STEP_MS}`)).json();
    expect(body.events.map((e: PressureChange) => e.level)).toEqual(['low', 'medium', 'high', 'critical', 'low']);
    expect(body.events[1]).toEqual({ atMs: START + EVENT_EVERY * STEP_MS, level: 'medium', previous: 'low', reasons: [] });
  });
});

describe('query normalisation', () => {
  it('relative ranges snap to the pixel grid: requests within one column share a key, the next column does not', () => {
    const at = (now: number) => parseHistoryQuery(new URLSearchParams('since=1h&width=800'), now);
    const a = at(1_700_000_000_100);
    expect(a.bucketMs).toBe(4_500);
    expect(a.untilMs % 4_500).toBe(0);
    expect(a.untilMs - a.sinceMs).toBe(3_600_000);
    expect(at(1_700_000_000_100 + 1).key).toBe(a.key);
    expect(at(a.untilMs + 1).key).not.toBe(a.key);
    // Absolute ranges are taken as they are.
    const fixed = parseHistoryQuery(new URLSearchParams(`since=${START}&until=${END}&width=800`), Date.now());
    expect([fixed.sinceMs, fixed.untilMs, fixed.bucketMs]).toEqual([START, END, Math.ceil((END - START) / 800)]);
  });

  it('property: the window holds what was asked, in at most `width` columns', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 1, max: 30 * 86_400_000 }),
        fc.integer({ min: 0, max: 86_400_000 }),
        fc.integer({ min: 1_600_000_000_000, max: 1_800_000_000_000 }),
        (width, sinceAgo, untilAgo, now) => {
          fc.pre(untilAgo < sinceAgo);
          const q = parseHistoryQuery(new URLSearchParams(`since=${sinceAgo}ms&until=${untilAgo}ms&width=${width}`), now);
          expect(Math.ceil((q.untilMs - q.sinceMs) / q.bucketMs)).toBeLessThanOrEqual(width);
          expect(q.untilMs - q.sinceMs).toBe(sinceAgo - untilAgo);
          expect(q.untilMs).toBeGreaterThanOrEqual(now - untilAgo);
          expect(q.untilMs - (now - untilAgo)).toBeLessThan(q.bucketMs);
        },
      ),
    );
  });
});

describe('PixelDownsampler', () => {
  it('property: per series at most `width` points, min <= avg <= max, counts and extremes kept', () => {
    const row = fc.record({
      series: fc.constantFrom('a', 'b', 'c'),
      dt: fc.integer({ min: 0, max: 50 }),
      value: fc.integer({ min: 0, max: 1e12 }),
      spread: fc.integer({ min: 0, max: 1e9 }),
      weight: fc.integer({ min: 1, max: 60 }),
    });
    fc.assert(
      fc.property(fc.array(row, { maxLength: 400 }), fc.integer({ min: 1, max: 50 }), fc.integer({ min: 1, max: 200 }), (rows, width, bucketMs) => {
        const points: PixelPoint[] = [];
        const sampler = new PixelDownsampler({ sinceMs: 0, bucketMs, width }, (p) => points.push(p));
        let t = 0;
        const expected = new Map<string, { min: number; max: number; n: number }>();
        for (const r of rows) {
          t += r.dt;
          sampler.add(r.series, t, r.value, r.value + Math.floor(r.spread / 2), r.value + r.spread, r.weight);
          const e = expected.get(r.series) ?? { min: Infinity, max: -Infinity, n: 0 };
          expected.set(r.series, { min: Math.min(e.min, r.value), max: Math.max(e.max, r.value + r.spread), n: e.n + r.weight });
        }
        sampler.flush();
        const groups = bySeries(points);
        expect([...groups.keys()].sort()).toEqual([...expected.keys()].sort());
        for (const [name, group] of groups) {
          expect(group.length).toBeLessThanOrEqual(width);
          expect(new Set(group.map((p) => p[1])).size).toBe(group.length);
          for (const [, , min, avg, max] of group) expect(min <= avg && avg <= max).toBe(true);
          const e = expected.get(name)!;
          expect(Math.min(...group.map((p) => p[2]))).toBe(e.min);
          expect(Math.max(...group.map((p) => p[4]))).toBe(e.max);
          expect(group.reduce((s, p) => s + p[5], 0)).toBe(e.n);
        }
      }),
    );
  });
});

// ---------------------------------------------------------------------------
// The query cache against a model
// ---------------------------------------------------------------------------

interface ModelEntry {
  key: string;
  size: number;
  start: number;
  ttl: number;
  body: string;
}
interface CacheModel {
  /** Least recently used first. */
  entries: ModelEntry[];
  now: number;
  hits: number;
  misses: number;
  evictions: number;
  expirations: number;
  rejected: number;
}
interface CacheReal {
  cache: HistoryQueryCache;
  clock: { now: number };
}

const MAX_BYTES = 1_000;
const used = (m: CacheModel) => m.entries.reduce((sum, e) => sum + e.size, 0);

function checkAgainst(m: CacheModel, r: CacheReal): void {
  const stats = r.cache.stats();
  expect(stats).toMatchObject({ hits: m.hits, misses: m.misses, evictions: m.evictions, expirations: m.expirations, rejected: m.rejected, entries: m.entries.length, bytes: used(m) });
  expect(stats.bytes).toBeLessThanOrEqual(MAX_BYTES);
  expect(stats.hitRate).toBe(m.hits + m.misses === 0 ? 0 : m.hits / (m.hits + m.misses));
}

class GetCommand implements fc.Command<CacheModel, CacheReal> {
  constructor(readonly key: string) {}
  check = () => true;
  run(m: CacheModel, r: CacheReal): void {
    const index = m.entries.findIndex((e) => e.key === this.key);
    const entry = m.entries[index];
    let expected: string | undefined;
    if (entry && m.now - entry.start > entry.ttl) {
      m.entries.splice(index, 1);
      m.expirations += 1;
      m.misses += 1;
    } else if (entry) {
      m.entries.splice(index, 1);
      m.entries.push(entry);
      m.hits += 1;
      expected = entry.body;
    } else {
      m.misses += 1;
    }
    expect(r.cache.get(this.key)?.toString()).toBe(expected);
    checkAgainst(m, r);
  }
  toString = () => `get(${this.key})`;
}

class SetCommand implements fc.Command<CacheModel, CacheReal> {
  constructor(
    readonly key: string,
    readonly length: number,
    readonly ttl: number,
  ) {}
  check = () => true;
  run(m: CacheModel, r: CacheReal): void {
    const body = `${this.key}`.repeat(this.length);
    const size = entrySize(this.key, Buffer.from(body));
    m.entries = m.entries.filter((e) => e.key !== this.key);
    const fits = size <= MAX_BYTES;
    if (fits) {
      while (used(m) + size > MAX_BYTES) {
        m.entries.shift();
        m.evictions += 1;
      }
      m.entries.push({ key: this.key, size, start: m.now, ttl: this.ttl, body });
    } else {
      m.rejected += 1;
    }
    expect(r.cache.set(this.key, Buffer.from(body), this.ttl)).toBe(fits);
    checkAgainst(m, r);
  }
  toString = () => `set(${this.key}, ${this.length} chars, ttl ${this.ttl})`;
}

class RejectCommand implements fc.Command<CacheModel, CacheReal> {
  constructor(readonly key: string) {}
  check = () => true;
  run(m: CacheModel, r: CacheReal): void {
    m.entries = m.entries.filter((e) => e.key !== this.key);
    m.rejected += 1;
    r.cache.reject(this.key);
    checkAgainst(m, r);
  }
  toString = () => `reject(${this.key})`;
}

class TickCommand implements fc.Command<CacheModel, CacheReal> {
  constructor(readonly ms: number) {}
  check = () => true;
  run(m: CacheModel, r: CacheReal): void {
    m.now += this.ms;
    r.clock.now += this.ms;
    checkAgainst(m, r);
  }
  toString = () => `tick(${this.ms})`;
}

describe('HistoryQueryCache (model-based)', () => {
  it('gets, sets, evictions and expirations agree with an LRU-by-bytes model; counters stay consistent', () => {
    const key = fc.constantFrom('a', 'b', 'c', 'dd', 'eee', 'ffff');
    const commands = [
      key.map((k) => new GetCommand(k)),
      fc.tuple(key, fc.integer({ min: 0, max: 900 }), fc.integer({ min: 1, max: 100 })).map(([k, length, ttl]) => new SetCommand(k, length, ttl)),
      fc.integer({ min: 1, max: 60 }).map((ms) => new TickCommand(ms)),
      key.map((k) => new RejectCommand(k)),
    ];
    fc.assert(
      fc.property(fc.commands(commands, { maxCommands: 200 }), (cmds) => {
        // lru-cache treats a start time of 0 as "no TTL": start the clock later.
        const clock = { now: 1_000_000 };
        const real: CacheReal = { cache: createHistoryQueryCache({ maxBytes: MAX_BYTES, perf: { now: () => clock.now } }), clock };
        const model: CacheModel = { entries: [], now: clock.now, hits: 0, misses: 0, evictions: 0, expirations: 0, rejected: 0 };
        fc.modelRun(() => ({ model, real }), cmds);
      }),
      { numRuns: 300 },
    );
  });

  it('a budget of 0 caches nothing and counts misses', () => {
    const off = createHistoryQueryCache({ maxBytes: 0 });
    expect(off.set('a', Buffer.from('x'), 1000)).toBe(false);
    expect(off.get('a')).toBeUndefined();
    expect(off.stats()).toMatchObject({ misses: 1, hits: 0, bytes: 0, entries: 0 });
    expect(() => createHistoryQueryCache({ maxBytes: -1 })).toThrow(/bytes >= 0/);
  });
});
