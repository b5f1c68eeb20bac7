/**
 * The soak's clients of a running `memtide run`: a dashboard-like SSE
 * subscriber connected the whole time (it records every `sample` event's
 * engine numbers), and a steady load of API requests (state, history,
 * samples, metrics, config reads, and a config patch a minute).
 */
import http from 'node:http';

export interface FeedPoint {
  timestampMs: number;
  /** The engine component's RSS / anonymous PSS (as the live leak detector sees it). */
  engineRssBytes: number;
  enginePssAnonBytes: number | null;
  heapUsedBytes: number;
  heapTotalBytes: number;
  /** V8 external memory (array buffers included: the history query cache holds its answers there). */
  externalBytes: number;
  selfRssBytes: number;
  availableBytes: number;
}

interface SampleEvent {
  timestampMs: number;
  system: { availableBytes: number };
  components: Record<string, { rssBytes: number; pssAnonBytes: number | null; processCount: number }>;
  self: { rssBytes: number; heapUsedBytes: number; heapTotalBytes: number; externalBytes: number };
}

export interface Feed {
  points: FeedPoint[];
  events: Record<string, number>;
  /** `leak` events the runner's own detector sent (any component). */
  leakEvents: unknown[];
  connects: number;
  drops: number;
  close(): void;
}

/** Subscribes to `/api/events` like the dashboard does; reconnects (and counts it) if the stream ends. */
export function connectFeed(baseUrl: string, engineComponent: string): Feed {
  const feed: Feed = { points: [], events: {}, leakEvents: [], connects: 0, drops: 0, close: () => undefined };
  let closed = false;
  let request: http.ClientRequest | undefined;
  const connect = () => {
    if (closed) return;
    feed.connects += 1;
    request = http.get(`${baseUrl}/api/events`, { headers: { accept: 'text/event-stream' } }, (res) => {
      res.setEncoding('utf8');
      let buffer = '';
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          onFrame(frame);
        }
      });
      res.on('end', () => reconnect());
      res.on('error', () => reconnect());
    });
    request.on('error', () => reconnect());
  };
  const reconnect = () => {
    if (closed) return;
    feed.drops += 1;
    setTimeout(connect, 500);
  };
  const onFrame = (frame: string) => {
    let event = 'message';
    let data = '';
    for (const line of frame.split('\n')) {
      if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('data: ')) data += line.slice(6);
    }
    if (!data) return;
    feed.events[event] = (feed.events[event] ?? 0) + 1;
    if (event === 'leak') feed.leakEvents.push(JSON.parse(data));
    if (event !== 'sample') return;
    const sample = JSON.parse(data) as SampleEvent;
    const engine = sample.components[engineComponent];
    if (!engine) return;
    // A replayed sample on reconnect repeats the last one: keep times strictly increasing.
    if ((feed.points.at(-1)?.timestampMs ?? -Infinity) >= sample.timestampMs) return;
    feed.points.push({
      timestampMs: sample.timestampMs,
      engineRssBytes: engine.rssBytes,
      enginePssAnonBytes: engine.pssAnonBytes,
      heapUsedBytes: sample.self.heapUsedBytes,
      heapTotalBytes: sample.self.heapTotalBytes,
      externalBytes: sample.self.externalBytes,
      selfRssBytes: sample.self.rssBytes,
      availableBytes: sample.system.availableBytes,
    });
  };
  connect();
  feed.close = () => {
    closed = true;
    request?.destroy();
  };
  return feed;
}

export interface LoadStats {
  requests: number;
  bytes: number;
  /** `GET /api/history` -> { "200": 12, ... } */
  byEndpoint: Record<string, Record<string, number>>;
  failures: number;
  stop(): Promise<void>;
}

/** Read-only requests a dashboard and a history view make, cycled in order. */
const READS = [
  '/api/state',
  '/api/history?since=15m&width=800',
  '/api/history?kind=system&since=1h&width=400',
  '/api/history?component=engine&since=5m&width=300&field=pss',
  '/api/history?kind=pressure&since=1h&width=200',
  '/api/samples?since=1m&limit=100',
  '/api/samples?since=10m&offset=200&limit=50',
  '/api/pressure?since=1h',
  '/api/history/cache',
  '/metrics',
  '/api/config',
  '/api/alerts',
  '/api/models',
  '/api/frontend-memory',
  '/healthz',
  '/',
];

/**
 * `ratePerSecond` requests a second, one at a time per slot (a slow answer
 * delays that slot, it does not pile up). Every minute one authenticated
 * PATCH of the config (a live edit: every config subscriber sees it) and a
 * frontend-memory report.
 */
export function startLoad(baseUrl: string, token: string, ratePerSecond: number): LoadStats {
  const stats: LoadStats = { requests: 0, bytes: 0, byEndpoint: {}, failures: 0, stop: async () => undefined };
  let next = 0;
  let running = true;
  let minute = 0;
  const count = (key: string, status: string) => {
    const entry = (stats.byEndpoint[key] ??= {});
    entry[status] = (entry[status] ?? 0) + 1;
  };
  const send = async (method: string, path: string, body?: unknown) => {
    const key = `${method} ${path.split('?')[0]}`;
    try {
      const res = await fetch(`${baseUrl}${path}`, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(30_000),
      });
      const text = await res.arrayBuffer();
      stats.bytes += text.byteLength;
      count(key, String(res.status));
      if (res.status >= 500 && path !== '/api/models') stats.failures += 1;
    } catch (error) {
      count(key, (error as Error).name);
      stats.failures += 1;
    }
    stats.requests += 1;
  };
  const tick = async () => {
    const path = READS[next % READS.length]!;
    next += 1;
    await send('GET', path);
  };
  const timer = setInterval(() => {
    if (running) void tick();
  }, 1000 / ratePerSecond);
  const edits = setInterval(() => {
    minute += 1;
    // Alternate a harmless live setting: the engine re-reads config on every change.
    void send('PATCH', '/api/config', { pressure: { dwellMs: minute % 2 ? 31_000 : 30_000 } });
    void send('POST', '/api/frontend-memory', { bytes: 50_000_000 + (minute % 7) * 1_000_000, source: 'performance.memory', atMs: Date.now(), page: `soak-${minute % 3}` });
  }, 60_000);
  stats.stop = async () => {
    running = false;
    clearInterval(timer);
    clearInterval(edits);
  };
  return stats;
}

/** VmRSS and Pss_Anon of a process read from /proc, independently of memtide (null when unreadable). */
export function procMemory(pid: number, read: (path: string) => string): { rssBytes: number; pssAnonBytes: number | null } | null {
  try {
    const status = read(`/proc/${pid}/status`);
    const rss = /VmRSS:\s+(\d+) kB/.exec(status);
    if (!rss) return null;
    let pssAnon: number | null = null;
    try {
      const smaps = /Pss_Anon:\s+(\d+) kB/.exec(read(`/proc/${pid}/smaps_rollup`));
      if (smaps) pssAnon = Number(smaps[1]) * 1024;
    } catch {
      // smaps_rollup needs kernel 4.14+ and the same user: optional.
    }
    return { rssBytes: Number(rss[1]) * 1024, pssAnonBytes: pssAnon };
  } catch {
    return null;
  }
}
