/**
 * History over HTTP, for the dashboard's history view:
 * - `GET /api/history`: one series per component (or the system's, or the
 *   pressure level), downsampled to the chart's width (min/avg/max per pixel
 *   column), streamed as the rows are read and cached by normalised query in
 *   a byte-bounded LRU;
 * - `GET /api/samples`: one sample per row, paged, for a virtualised list;
 * - `GET /api/pressure`: the pressure changes;
 * - `GET /api/history/cache`: the cache's size and hit/miss/eviction counts.
 *
 * Queries run on a second SQLite connection to the history file: a response
 * streaming to a slow client keeps a cursor open, and a cursor on the
 * writer's connection would make every history write fail meanwhile (WAL lets
 * the reader and the writer go on side by side).
 */
import type { ServerResponse } from 'node:http';
import { HistoryStore, type ComponentPoint, type SystemPoint } from '../../sinks/historyStore.js';
import { createHistoryQueryCache, type HistoryQueryCache } from '../../sinks/historyQueryCache.js';
import { levelRank } from '../../model.js';
import type { MemtideConfig } from '../config.js';
import { HttpError, sendJson } from '../http.js';
import type { Route, RouteModule } from '../router.js';
import { componentName } from '../schemaTypes.js';
import { parseDuration } from '../units.js';
import { forEachSliced, PIXEL_POINT_COLUMNS, PixelDownsampler, StreamedBody, type PixelPoint } from './historyStream.js';

/** What the routes read: the store's streamed queries. */
export type HistoryReader = Pick<HistoryStore, 'componentSeries' | 'systemSeries' | 'pressureEvents'>;

export interface HistoryRoutesOptions {
  /** Shared with `/metrics`; default one of `server.historyCacheBytes` (16 MiB when the schema has no such key). */
  cache?: HistoryQueryCache;
  /** Where queries read (tests); default a second connection to the engine's history file. */
  reader?: () => HistoryReader | undefined;
  now?: () => number;
  /** Rows handled between two yields to the event loop. */
  rowsPerSlice?: number;
  /** Text handed to the socket in chunks of about this many characters. */
  chunkChars?: number;
}

export const DEFAULT_HISTORY_CACHE_BYTES = 16 * 1024 * 1024;
/** Time to live of a cached range that ended before the last flush: its rows no longer change. */
export const SETTLED_TTL_MS = 10 * 60_000;
/** A sample is in the database at most one flush interval (plus the time to take it) after its timestamp. */
const SETTLE_MARGIN_MS = 1_000;
export const MAX_WIDTH = 10_000;
export const MAX_PAGE_ROWS = 1_000;
const KINDS = ['components', 'system', 'pressure'] as const;
type HistoryKind = (typeof KINDS)[number];

/** `server.historyCacheBytes` when the schema has it, else the default. */
export function historyCacheBytesOf(config: MemtideConfig): number {
  const value = (config.server as { historyCacheBytes?: unknown }).historyCacheBytes;
  return typeof value === 'number' ? value : DEFAULT_HISTORY_CACHE_BYTES;
}

// ---------------------------------------------------------------------------
// Query parameters
// ---------------------------------------------------------------------------

const badQuery = (field: string, message: string) => new HttpError(400, 'MEMTIDE_ERR_QUERY', `${field}: ${message}`, field);

/** Epoch milliseconds (digits only), or a duration before now (`15m`, `1h`, `7d`). */
type TimeParam = { absoluteMs: number } | { agoMs: number };

function timeParam(params: URLSearchParams, name: string, fallback?: string): TimeParam | undefined {
  const raw = params.get(name) ?? fallback;
  if (raw === undefined || raw === '') return undefined;
  if (/^\d+$/.test(raw)) {
    const ms = Number(raw);
    if (!Number.isSafeInteger(ms)) throw badQuery(name, `${raw} is beyond the largest safe integer`);
    return { absoluteMs: ms };
  }
  const ago = parseDuration(raw);
  if (ago === null) throw badQuery(name, `not a time: "${raw}" (epoch milliseconds, or a duration ago such as 15m, 1h, 7d)`);
  return { agoMs: ago };
}

function intParam(params: URLSearchParams, name: string, fallback: number, min: number, max: number): number {
  const raw = params.get(name);
  if (raw === null || raw === '') return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min || value > max) throw badQuery(name, `expected a whole number from ${min} to ${max}, got "${raw}"`);
  return value;
}

function enumParam<T extends string>(params: URLSearchParams, name: string, allowed: readonly T[], fallback: T): T {
  const raw = params.get(name);
  if (raw === null || raw === '') return fallback;
  if (!(allowed as readonly string[]).includes(raw)) throw badQuery(name, `expected one of ${allowed.join(', ')}, got "${raw}"`);
  return raw as T;
}

export interface TimeWindow {
  sinceMs: number;
  untilMs: number;
}

/**
 * Resolves `since`/`until` against now. When either is relative to now, now
 * is first rounded up to a multiple of `quantumMs(span)` (a pixel column for
 * charts): requests within one column resolve to the same window (one cache
 * key) and consecutive windows share their column grid, so a live chart does
 * not jitter.
 */
export function resolveWindow(since: TimeParam, until: TimeParam | undefined, nowMs: number, quantumMs: (spanMs: number) => number): TimeWindow {
  const at = (param: TimeParam, now: number) => ('absoluteMs' in param ? param.absoluteMs : now - param.agoMs);
  const resolve = (now: number): TimeWindow => ({ sinceMs: at(since, now), untilMs: until ? at(until, now) : now });
  let window = resolve(nowMs);
  if (window.untilMs <= window.sinceMs) {
    throw badQuery('since', `the range is empty: since (${window.sinceMs}) must be before until (${window.untilMs})`);
  }
  if ('agoMs' in since || !until || 'agoMs' in until) {
    const quantum = Math.max(1, quantumMs(window.untilMs - window.sinceMs));
    window = resolve(Math.ceil(nowMs / quantum) * quantum);
  }
  return window;
}

export interface HistoryQuery extends TimeWindow {
  kind: HistoryKind;
  field: 'rss' | 'pss';
  component: string | null;
  width: number;
  bucketMs: number;
  key: string;
}

export function parseHistoryQuery(params: URLSearchParams, nowMs: number): HistoryQuery {
  const kind = enumParam(params, 'kind', KINDS, 'components');
  const field = enumParam(params, 'field', ['rss', 'pss'] as const, 'rss');
  const width = intParam(params, 'width', 800, 1, MAX_WIDTH);
  const rawComponent = params.get('component');
  let component: string | null = null;
  if (rawComponent !== null && rawComponent !== '') {
    const checked = componentName.safeParse(rawComponent);
    if (!checked.success) throw badQuery('component', `"${rawComponent}" is not a component name (${checked.error.issues[0]?.message ?? 'invalid'})`);
    component = checked.data;
  }
  const window = resolveWindow(timeParam(params, 'since', '1h')!, timeParam(params, 'until'), nowMs, (span) => Math.ceil(span / width));
  const bucketMs = Math.max(1, Math.ceil((window.untilMs - window.sinceMs) / width));
  const key = ['history', kind, kind === 'components' ? field : '-', component ?? '*', width, window.sinceMs, window.untilMs].join('|');
  return { kind, field, component, width, bucketMs, key, ...window };
}

export interface SamplesQuery extends TimeWindow {
  offset: number;
  limit: number;
  key: string;
  countKey: string;
}

export function parseSamplesQuery(params: URLSearchParams, nowMs: number): SamplesQuery {
  const offset = intParam(params, 'offset', 0, 0, Number.MAX_SAFE_INTEGER);
  const limit = intParam(params, 'limit', 100, 1, MAX_PAGE_ROWS);
  const window = resolveWindow(timeParam(params, 'since', '1h')!, timeParam(params, 'until'), nowMs, () => 1_000);
  const range = `${window.sinceMs}|${window.untilMs}`;
  return { offset, limit, key: `samples|${range}|${offset}|${limit}`, countKey: `samples-count|${range}`, ...window };
}

// ---------------------------------------------------------------------------
// Producing the bodies
// ---------------------------------------------------------------------------

interface Producer {
  reader: HistoryReader;
  body: StreamedBody;
  slice: number;
}

/** Writes `{...header, "points": [...], "series": [...], "rowsRead": n}`, points as their pixel columns close. */
export async function streamHistory(query: HistoryQuery, { reader, body, slice }: Producer): Promise<number> {
  const { kind, field, component, sinceMs, untilMs, width, bucketMs } = query;
  const header = { kind, field: kind === 'components' ? field : null, component, sinceMs, untilMs, width, bucketMs, columns: PIXEL_POINT_COLUMNS };
  body.push(`${JSON.stringify(header).slice(0, -1)},"points":[`);
  let separator = '\n';
  const pixels = new PixelDownsampler({ sinceMs, bucketMs, width }, (point: PixelPoint) => {
    body.push(separator + JSON.stringify(point));
    separator = ',\n';
  });
  const range = { sinceMs, untilMs };
  let rows: number;
  if (kind === 'components') {
    const points = reader.componentSeries({ ...range, ...(component ? { component } : {}) });
    rows = await forEachSliced(points, slice, body, (p: ComponentPoint) => {
      if (field === 'rss') pixels.add(p.component, p.timestampMs, p.rssMinBytes, p.rssBytes, p.rssMaxBytes, p.sampleCount);
      else if (p.pssBytes !== null) pixels.add(p.component, p.timestampMs, p.pssBytes, p.pssBytes, p.pssBytes, p.sampleCount);
    });
  } else if (kind === 'system') {
    rows = await forEachSliced(reader.systemSeries(range), slice, body, (p: SystemPoint) => {
      const n = p.sampleCount;
      pixels.add('available', p.timestampMs, p.availableMinBytes, p.availableBytes, p.availableMaxBytes, n);
      pixels.add('total', p.timestampMs, p.totalBytes, p.totalBytes, p.totalBytes, n);
      pixels.add('swapUsed', p.timestampMs, p.swapUsedBytes, p.swapUsedBytes, p.swapUsedBytes, n);
      if (p.psiSomeAvg10 !== null) pixels.add('psiSomeAvg10', p.timestampMs, p.psiSomeAvg10, p.psiSomeAvg10, p.psiSomeAvg10, n);
      if (p.psiFullAvg10 !== null) pixels.add('psiFullAvg10', p.timestampMs, p.psiFullAvg10, p.psiFullAvg10, p.psiFullAvg10, n);
    });
  } else {
    // Level changes as ranks (low 0 ... critical 3): min/max show the best and worst level entered in a column.
    rows = await forEachSliced(reader.pressureEvents(range), slice, body, (change) => {
      const rank = levelRank(change.level);
      pixels.add('level', change.atMs, rank, rank, rank, 1);
    });
  }
  pixels.flush();
  body.push(`\n],"series":${JSON.stringify(pixels.series())},"rowsRead":${rows}}\n`);
  return rows;
}

interface SampleRow {
  timestampMs: number;
  resolution: SystemPoint['resolution'];
  totalBytes: number;
  availableBytes: number;
  swapUsedBytes: number;
  psiSomeAvg10: number | null;
  components: Record<string, { rssBytes: number; pssBytes: number | null; processCount: number }>;
}

/**
 * One page of samples. The store has no count or offset query, so rows
 * before the page are skipped while streaming (in slices), and the total is
 * counted once per range and cached beside the pages.
 */
export async function samplesPage(
  query: SamplesQuery,
  knownTotal: number | undefined,
  { reader, body, slice }: Producer,
): Promise<{ rows: SampleRow[]; total: number }> {
  const rows: SampleRow[] = [];
  const end = query.offset + query.limit;
  let index = 0;
  const points = reader.systemSeries({ sinceMs: query.sinceMs, untilMs: query.untilMs });
  for (const p of points) {
    if (index >= query.offset && index < end) {
      const { timestampMs, resolution, totalBytes, availableBytes, swapUsedBytes, psiSomeAvg10 } = p;
      rows.push({ timestampMs, resolution, totalBytes, availableBytes, swapUsedBytes, psiSomeAvg10, components: {} });
    }
    index += 1;
    if (index >= end && knownTotal !== undefined) break;
    if (index % slice === 0) await body.pause();
  }
  const first = rows[0];
  const last = rows.at(-1);
  if (first && last) {
    const byTime = new Map(rows.map((row) => [row.timestampMs, row]));
    for (const c of reader.componentSeries({ sinceMs: first.timestampMs, untilMs: last.timestampMs + 1 })) {
      const row = byTime.get(c.timestampMs);
      if (row) row.components[c.component] = { rssBytes: c.rssBytes, pssBytes: c.pssBytes, processCount: c.processCount };
    }
  }
  return { rows, total: knownTotal ?? index };
}

// ---------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------

function sendCached(res: ServerResponse, body: Buffer): void {
  res.writeHead(200, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': body.length,
    'x-memtide-cache': 'hit',
  });
  res.end(body);
}

function startStream(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'x-memtide-cache': 'miss' });
}

export function historyRoutes(options: HistoryRoutesOptions = {}): RouteModule {
  return ({ memtide, config }) => {
    const cache = options.cache ?? createHistoryQueryCache({ maxBytes: historyCacheBytesOf(config()) });
    const now = options.now ?? Date.now;
    const slice = options.rowsPerSlice ?? 2_000;
    const chunkChars = options.chunkChars ?? 16 * 1024;

    // The second connection, opened on first use; closed when the last stream using it ends.
    let own: HistoryStore | undefined;
    let active = 0;
    let closing = false;
    const release = () => {
      if (closing && active === 0) own?.close();
    };
    const readerOf = (): HistoryReader => {
      const reader = options.reader ? options.reader() : defaultReader();
      if (!reader) throw new HttpError(503, 'MEMTIDE_ERR_HISTORY_DISABLED', 'history is off (history.enabled: false): there is nothing to query');
      return reader;
    };
    const defaultReader = (): HistoryReader | undefined => {
      const store = memtide.history;
      if (!store?.isOpen) return undefined;
      // An in-memory database cannot be opened twice; share the writer's connection (tests).
      if (store.path === ':memory:' || store.path === '') return store;
      own ??= HistoryStore.open(store.path, store.config);
      return own;
    };
    /** Past ranges keep long; a range reaching into the last flush interval may still gain rows. */
    const ttlFor = (untilMs: number) => {
      const flushMs = config().history.flushIntervalMs;
      return untilMs <= now() - flushMs - SETTLE_MARGIN_MS ? SETTLED_TTL_MS : Math.max(250, flushMs);
    };
    /** Caches a finished body; null: it outgrew what the cache could hold and was not copied. */
    const keep = (key: string, body: Buffer | null, ttl: number) => {
      if (body) cache.set(key, body, ttl);
      else cache.reject(key);
    };
    const produce = async (res: ServerResponse, keepBytes: number, run: (producer: Producer) => Promise<void>) => {
      const reader = readerOf();
      active += 1;
      try {
        startStream(res);
        const body = new StreamedBody(res, { chunkChars, keepBytes });
        await run({ reader, body, slice });
      } finally {
        active -= 1;
        release();
      }
    };

    const routes: Route[] = [
      {
        method: 'GET',
        path: '/api/history',
        handler: async (_req, res, _params, url) => {
          const query = parseHistoryQuery(url.searchParams, now());
          readerOf(); // 503 before any header when history is off
          const cached = cache.get(query.key);
          if (cached) return sendCached(res, cached);
          const ttl = ttlFor(query.untilMs);
          await produce(res, cache.maxBodyBytes(query.key), async (producer) => {
            await streamHistory(query, producer);
            keep(query.key, producer.body.end(), ttl);
          });
        },
      },
      {
        method: 'GET',
        path: '/api/samples',
        handler: async (_req, res, _params, url) => {
          const query = parseSamplesQuery(url.searchParams, now());
          readerOf();
          const cached = cache.get(query.key);
          if (cached) return sendCached(res, cached);
          const ttl = ttlFor(query.untilMs);
          const countText = cache.get(query.countKey)?.toString('utf8');
          await produce(res, cache.maxBodyBytes(query.key), async (producer) => {
            const page = await samplesPage(query, countText === undefined ? undefined : Number(countText), producer);
            if (countText === undefined) cache.set(query.countKey, Buffer.from(String(page.total)), ttl);
            const { sinceMs, untilMs, offset, limit } = query;
            producer.body.push(JSON.stringify({ sinceMs, untilMs, offset, limit, total: page.total, rows: page.rows }));
            keep(query.key, producer.body.end(), ttl);
          });
        },
      },
      {
        method: 'GET',
        path: '/api/pressure',
        handler: async (_req, res, _params, url) => {
          const window = resolveWindow(timeParam(url.searchParams, 'since', '24h')!, timeParam(url.searchParams, 'until'), now(), () => 1_000);
          await produce(res, 0, async ({ reader, body }) => {
            body.push(`${JSON.stringify(window).slice(0, -1)},"events":[`);
            let separator = '\n';
            await forEachSliced(reader.pressureEvents(window), slice, body, (change) => {
              body.push(separator + JSON.stringify(change));
              separator = ',\n';
            });
            body.push('\n]}\n');
            body.end();
          });
        },
      },
      { method: 'GET', path: '/api/history/cache', handler: (_req, res) => sendJson(res, 200, cache.stats()) },
    ];
    return {
      routes,
      close() {
        closing = true;
        release();
      },
    };
  };
}
