/**
 * The page's own memory, reported to the memtide runner as the `frontend`
 * component.
 *
 * Sources, best first:
 * - `performance.measureUserAgentSpecificMemory()` (`uasm`): everything the
 *   page costs (JS heaps of all its realms, DOM, workers), only where the page
 *   is cross-origin isolated (COOP + COEP). Chromium delivers it with the next
 *   garbage collection, so it can take seconds.
 * - `performance.memory.usedJSHeapSize` (Chromium only): the JS heap alone,
 *   quantised unless Chromium runs with `--enable-precise-memory-info`.
 * - nothing (Firefox, Safari, WebKitGTK): the sampler says so and stops.
 *
 * Reports are `POST {endpoint}` with `{ bytes, source, atMs }`; failures back
 * off exponentially (interval x 2^failures, capped), so a runner that is down
 * or older than the endpoint costs one tiny request every few minutes.
 */

export type PageMemorySource = 'uasm' | 'performance.memory';

/** Body of `POST /api/frontend-memory`. */
export interface PageMemorySample {
  bytes: number;
  source: PageMemorySource;
  /** Wall-clock time of the measurement (ms since the epoch). */
  atMs: number;
}

interface ChromiumPerformance {
  measureUserAgentSpecificMemory?: () => Promise<{ bytes: number }>;
  memory?: { usedJSHeapSize: number; totalJSHeapSize: number; jsHeapSizeLimit: number };
}

function perf(): ChromiumPerformance | undefined {
  return typeof performance === 'undefined' ? undefined : (performance as unknown as ChromiumPerformance);
}

/** Which source `measurePageMemory` would use here, or null when the browser exposes none. */
export function pageMemorySource(): PageMemorySource | null {
  const p = perf();
  if (!p) return null;
  if (typeof p.measureUserAgentSpecificMemory === 'function' && (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true) return 'uasm';
  if (p.memory && typeof p.memory.usedJSHeapSize === 'number') return 'performance.memory';
  return null;
}

/** One measurement of the page's memory, or null when the browser offers no way to take one. */
export async function measurePageMemory(): Promise<PageMemorySample | null> {
  const p = perf();
  if (pageMemorySource() === 'uasm' && p?.measureUserAgentSpecificMemory) {
    try {
      const result = await p.measureUserAgentSpecificMemory();
      return { bytes: result.bytes, source: 'uasm', atMs: Date.now() };
    } catch {
      // SecurityError (isolation lost, e.g. a cross-origin iframe) or aborted: fall through.
    }
  }
  if (p?.memory && typeof p.memory.usedJSHeapSize === 'number') {
    return { bytes: p.memory.usedJSHeapSize, source: 'performance.memory', atMs: Date.now() };
  }
  return null;
}

export interface MemoryReporterOptions {
  /** Where samples are POSTed; null: measure only (see `onSample`). Default `/api/frontend-memory`. */
  endpoint?: string | null;
  /** Time between measurements (default 30 s, at least 1 s). */
  intervalMs?: number;
  /** Longest wait after repeated failures (default 5 min). */
  maxBackoffMs?: number;
  /** Bearer token for the runner (a function is read at every report, so a token set later is used). */
  token?: string | null | (() => string | null | undefined);
  /** A POST that takes longer than this is aborted and counts as a failure (default 10 s). */
  timeoutMs?: number;
  onSample?: (sample: PageMemorySample) => void;
  /** A failed report (network error or an HTTP status other than 2xx). */
  onError?: (error: MemoryReportError) => void;
  /** Injection points for tests. */
  fetch?: typeof fetch;
  measure?: () => Promise<PageMemorySample | null>;
}

export class MemoryReportError extends Error {
  override readonly name = 'MemoryReportError';
  readonly code = 'MEMTIDE_ERR_FRONTEND_MEMORY_REPORT';
  constructor(
    message: string,
    /** HTTP status, or null for a network error / timeout. */
    readonly status: number | null,
  ) {
    super(message);
  }
}

export interface MemoryReporter {
  /** Stops measuring and aborts a report in flight. Idempotent. */
  stop(): void;
  readonly latest: PageMemorySample | null;
  /** Consecutive failed reports (0 after a success). */
  readonly failures: number;
  /** False when the browser has no memory API: the reporter stopped itself after the first try. */
  readonly supported: boolean;
  readonly stopped: boolean;
  /** Milliseconds until the next measurement as last scheduled. */
  readonly nextDelayMs: number;
}

/** Delay before the next measurement after `failures` consecutive failures. */
export function backoffDelay(intervalMs: number, failures: number, maxBackoffMs: number): number {
  if (failures <= 0) return intervalMs;
  return Math.min(maxBackoffMs, intervalMs * 2 ** Math.min(failures, 30));
}

export function startMemoryReporter(options: MemoryReporterOptions = {}): MemoryReporter {
  const endpoint = options.endpoint === undefined ? '/api/frontend-memory' : options.endpoint;
  const intervalMs = Math.max(1000, options.intervalMs ?? 30_000);
  const maxBackoffMs = Math.max(intervalMs, options.maxBackoffMs ?? 5 * 60_000);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const doFetch = options.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => fetch(input, init));
  const measure = options.measure ?? measurePageMemory;
  let latest: PageMemorySample | null = null;
  let failures = 0;
  let supported = true;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let nextDelayMs = 0;
  let abort: AbortController | null = null;

  const tokenNow = () => (typeof options.token === 'function' ? options.token() : options.token) ?? null;

  const report = async (sample: PageMemorySample): Promise<void> => {
    if (endpoint === null) return;
    abort = new AbortController();
    const timeout = setTimeout(() => abort?.abort(), timeoutMs);
    try {
      const token = tokenNow();
      const response = await doFetch(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify(sample),
        signal: abort.signal,
        credentials: 'omit',
      });
      // The body is not needed: drop it so the connection is freed.
      void response.body?.cancel().catch(() => undefined);
      if (!response.ok) throw new MemoryReportError(`POST ${endpoint} answered ${response.status}`, response.status);
      failures = 0;
    } catch (error) {
      if (stopped) return;
      failures++;
      const reportError = error instanceof MemoryReportError ? error : new MemoryReportError(`POST ${endpoint} failed: ${String(error)}`, null);
      options.onError?.(reportError);
    } finally {
      clearTimeout(timeout);
      abort = null;
    }
  };

  const tick = async () => {
    timer = null;
    if (stopped) return;
    let sample: PageMemorySample | null = null;
    try {
      sample = await measure();
    } catch {
      sample = null;
    }
    if (stopped) return;
    if (sample === null) {
      if (latest === null) {
        // Never measured anything: this browser has no memory API. Nothing to report, ever.
        supported = false;
        stopped = true;
        return;
      }
    } else {
      latest = sample;
      options.onSample?.(sample);
      await report(sample);
    }
    if (stopped) return;
    nextDelayMs = backoffDelay(intervalMs, failures, maxBackoffMs);
    timer = setTimeout(() => void tick(), nextDelayMs);
  };

  timer = setTimeout(() => void tick(), 0);

  return {
    stop() {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
      timer = null;
      abort?.abort();
    },
    get latest() {
      return latest;
    },
    get failures() {
      return failures;
    },
    get supported() {
      return supported;
    },
    get stopped() {
      return stopped;
    },
    get nextDelayMs() {
      return nextDelayMs;
    },
  };
}
