/**
 * Idle-time cleanup (seed 7.5): registered cleanups (trim a cache, drop
 * off-screen data, revoke URLs) run when the page is idle, not in the middle
 * of a scroll or a chart redraw. Uses `requestIdleCallback` and falls back to
 * `setTimeout` where it does not exist (Safari, WebKitGTK in some Tauri
 * builds). Everything is cancellable; `dispose` leaves no timer behind.
 */

/** The part of `IdleDeadline` a cleanup sees (the fallback fakes it). */
export interface IdleDeadlineLike {
  readonly didTimeout: boolean;
  timeRemaining(): number;
}

export type Cancel = () => void;

export interface IdleHost {
  requestIdleCallback?: (callback: (deadline: IdleDeadlineLike) => void, options?: { timeout?: number }) => number;
  cancelIdleCallback?: (handle: number) => void;
  setTimeout: (callback: () => void, ms: number) => unknown;
  clearTimeout: (handle: never) => void;
}

/** Budget the `setTimeout` fallback pretends to have, like a short idle period. */
const FALLBACK_BUDGET_MS = 10;

function defaultHost(): IdleHost {
  const g = globalThis as unknown as IdleHost;
  return {
    ...(typeof g.requestIdleCallback === 'function'
      ? { requestIdleCallback: g.requestIdleCallback.bind(globalThis), cancelIdleCallback: g.cancelIdleCallback?.bind(globalThis) }
      : {}),
    setTimeout: g.setTimeout.bind(globalThis),
    clearTimeout: g.clearTimeout.bind(globalThis) as (handle: never) => void,
  } as IdleHost;
}

/**
 * Runs `callback` once when the page is idle (at the latest after
 * `timeoutMs`); returns a function that cancels it.
 */
export function requestIdle(callback: (deadline: IdleDeadlineLike) => void, timeoutMs = 2000, host: IdleHost = defaultHost()): Cancel {
  if (host.requestIdleCallback) {
    const handle = host.requestIdleCallback(callback, { timeout: timeoutMs });
    return () => host.cancelIdleCallback?.(handle);
  }
  const handle = host.setTimeout(() => {
    const start = Date.now();
    callback({ didTimeout: false, timeRemaining: () => Math.max(0, FALLBACK_BUDGET_MS - (Date.now() - start)) });
  }, 1);
  return () => host.clearTimeout(handle as never);
}

export interface IdleCleanupOptions {
  /** Run the cleanups this often (each run waits for idle time); omit for on-demand only (`schedule`). */
  intervalMs?: number;
  /** Longest wait for idle time before the run is forced (requestIdleCallback `timeout`). */
  timeoutMs?: number;
  /** A cleanup that throws is reported here and the others still run (default console.error). */
  onError?: (error: unknown, name: string) => void;
  host?: IdleHost;
}

export interface IdleCleanup {
  /** Adds a cleanup; returns a function that removes it. */
  register(name: string, cleanup: (deadline: IdleDeadlineLike) => void): Cancel;
  /** Requests one run at the next idle period (coalesced with a pending one). */
  schedule(): void;
  /** Runs every cleanup now, synchronously. */
  runNow(): void;
  /** Cancels the pending run and the interval; registered cleanups stay. */
  cancel(): void;
  /** Cancels everything and forgets every cleanup. Idempotent. */
  dispose(): void;
  readonly pending: boolean;
  readonly size: number;
}

export function createIdleCleanup(options: IdleCleanupOptions = {}): IdleCleanup {
  const host = options.host ?? defaultHost();
  const timeoutMs = options.timeoutMs ?? 2000;
  const onError = options.onError ?? ((error: unknown, name: string) => console.error(`idle cleanup "${name}" failed`, error));
  const cleanups = new Map<symbol, { name: string; run: (deadline: IdleDeadlineLike) => void }>();
  let cancelIdle: Cancel | null = null;
  let intervalTimer: unknown = null;
  let disposed = false;
  /** Where the last run stopped when time ran out, so every cleanup gets its turn. */
  let queue: symbol[] = [];

  const runOne = (id: symbol, deadline: IdleDeadlineLike) => {
    const entry = cleanups.get(id);
    if (!entry) return;
    try {
      entry.run(deadline);
    } catch (error) {
      onError(error, entry.name);
    }
  };

  const onIdle = (deadline: IdleDeadlineLike) => {
    cancelIdle = null;
    if (queue.length === 0) queue = [...cleanups.keys()];
    if (queue.length === 0) {
      armInterval();
      return;
    }
    // At least one cleanup a callback, so a busy page still makes progress.
    do {
      runOne(queue.shift() as symbol, deadline);
    } while (queue.length > 0 && (deadline.didTimeout || deadline.timeRemaining() > 0));
    if (queue.length > 0) schedule();
    else armInterval();
  };

  const schedule = () => {
    if (disposed || cancelIdle) return;
    cancelIdle = requestIdle(onIdle, timeoutMs, host);
  };

  const armInterval = () => {
    if (disposed || options.intervalMs === undefined || intervalTimer !== null) return;
    intervalTimer = host.setTimeout(() => {
      intervalTimer = null;
      schedule();
    }, options.intervalMs);
  };

  const cancel = () => {
    cancelIdle?.();
    cancelIdle = null;
    if (intervalTimer !== null) host.clearTimeout(intervalTimer as never);
    intervalTimer = null;
    queue = [];
  };

  armInterval();

  return {
    register(name, run) {
      const id = Symbol(name);
      if (!disposed) cleanups.set(id, { name, run });
      return () => {
        cleanups.delete(id);
      };
    },
    schedule,
    runNow() {
      if (disposed) return;
      const forced: IdleDeadlineLike = { didTimeout: true, timeRemaining: () => 0 };
      for (const id of [...cleanups.keys()]) runOne(id, forced);
    },
    cancel,
    dispose() {
      cancel();
      cleanups.clear();
      disposed = true;
    },
    get pending() {
      return cancelIdle !== null;
    },
    get size() {
      return cleanups.size;
    },
  };
}
