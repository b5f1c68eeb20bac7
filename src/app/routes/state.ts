/**
 * The live page, its SSE feed and the read-only state.
 *
 * Snapshot kinds (`sample`, `models`: each value replaces the previous) are
 * throttled per kind to at most one frame per `server.updateIntervalMs`,
 * always ending on the latest value, so a fast sampling rate or a low-memory
 * profile does not make every open page redraw at the sampler's pace. Event
 * kinds (`pressure`, `alert`, `leak`, `batch`) are never dropped.
 *
 * `batch` is the coordinator's batch hold (`memtide.batchHold$`), for hosts
 * that pause their imports while the summary model works: data
 * `{"hold": boolean, "reason": string, "atMs": number}`, sent on every
 * change and replayed (the latest) to a newly connected client. `/api/state` and
 * the replay for a new page always use the latest value, throttled or not.
 */
import type { ServerResponse } from 'node:http';
import {
  Subscription,
  asyncScheduler,
  distinctUntilChanged,
  map,
  tap,
  throttle,
  timer,
  withLatestFrom,
  type MonoTypeOperatorFunction,
  type Observable,
  type SchedulerLike,
} from 'rxjs';
import type { Alert, LeakEvent, LoadedModel, MemorySample, PressureChange } from '../../model.js';
import type { BatchHold } from '../../operators/yieldBatch.js';
import { sendJson } from '../http.js';
import type { Route, RouteModule } from '../router.js';

/** What the page needs from a sample: the process list stays out of the stream. */
function compactSample(sample: MemorySample) {
  const { timestampMs, system, components, self } = sample;
  return { timestampMs, system, components, self };
}

/** Server-sent events to every open page; exported so other modules can push their own events. */
export interface EventHub {
  broadcast(event: string, data: unknown): void;
  add(res: ServerResponse, replay: Array<[string, unknown]>): void;
  close(): void;
}

/** How often an idle event stream gets a comment line, so clients can tell a quiet runner from a dead one. */
export const EVENT_HEARTBEAT_MS = 15_000;

export function createEventHub(options: { heartbeatMs?: number } = {}): EventHub {
  const heartbeatMs = options.heartbeatMs ?? EVENT_HEARTBEAT_MS;
  const clients = new Set<ServerResponse>();
  const frame = (event: string, data: unknown) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
  // A comment every heartbeatMs while someone listens (EventSource ignores comments); unref'd: it never keeps the process alive.
  let heartbeat: NodeJS.Timeout | null = null;
  const stopHeartbeat = () => {
    if (heartbeat) clearInterval(heartbeat);
    heartbeat = null;
  };
  return {
    broadcast(event, data) {
      const text = frame(event, data);
      for (const client of clients) client.write(text);
    },
    add(res, replay) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      res.write(': memtide\n\n');
      for (const [event, data] of replay) res.write(frame(event, data));
      clients.add(res);
      heartbeat ??= setInterval(() => {
        for (const client of clients) client.write(': keep-alive\n\n');
      }, heartbeatMs).unref();
      res.on('close', () => {
        clients.delete(res);
        if (clients.size === 0) stopHeartbeat();
      });
    },
    close() {
      stopHeartbeat();
      for (const client of clients) client.end();
      clients.clear();
    },
  };
}

/**
 * At most one value per interval, leading and trailing: the first value goes
 * at once, later ones within the window are held and the latest is sent when
 * it ends (which starts the next window). The interval is read from
 * `interval$` (hot-reloadable) when each window starts; 0 only merges values
 * that arrive in the same instant.
 *
 * ```
 * interval$: 3 (frames)
 * source:    a-b-c-------d--|
 * result:    a--b--c-----d--|
 * ```
 */
export function throttleLatest<T>(interval$: Observable<number>, scheduler: SchedulerLike = asyncScheduler): MonoTypeOperatorFunction<T> {
  return (source) =>
    source.pipe(
      withLatestFrom(interval$),
      throttle(([, ms]) => timer(ms, scheduler), { leading: true, trailing: true }),
      map(([value]) => value),
    );
}

export interface StateRoutesOptions {
  /** Loaded models (the governor), pushed to the page as `models` events. */
  models$?: Observable<readonly LoadedModel[]>;
  /** Scheduler of the update throttle (tests use virtual time). */
  scheduler?: SchedulerLike;
}

/** The `batch` event's data: exactly these keys, in this order (a benchmark harness consumes it). */
export function batchEventOf(hold: BatchHold): { hold: boolean; reason: string; atMs: number } {
  return { hold: hold.hold, reason: hold.reason, atMs: hold.atMs };
}

/** Live state: `sample`, `pressure`, `alert`, `leak`, `models` and `batch` events over SSE, and `/api/state`. */
export const createStateRoutes = (options: StateRoutesOptions = {}): RouteModule => ({ memtide, logger }) => {
  let latestSample: MemorySample | undefined;
  let latestPressure: PressureChange | undefined;
  let latestModels: readonly LoadedModel[] | undefined;
  let latestBatch: ReturnType<typeof batchEventOf> | undefined;
  const firing = new Map<string, Alert>();
  const suspects = new Map<string, LeakEvent>();
  const hub = createEventHub();
  const feeds = new Subscription();
  const updateInterval$ = memtide.config$.pipe(
    map((config) => config.server.updateIntervalMs),
    distinctUntilChanged(),
  );
  const throttled = <T>() => throttleLatest<T>(updateInterval$, options.scheduler);
  // One subscription per feed: the latest value is kept before the throttle, so /api/state is never behind.
  feeds.add(
    memtide.samples$
      .pipe(
        tap((sample) => (latestSample = sample)),
        throttled<MemorySample>(),
      )
      .subscribe({
        next: (sample) => hub.broadcast('sample', compactSample(sample)),
        error: (error: unknown) => logger.error(`sample feed failed: ${String(error)}`),
      }),
  );
  feeds.add(
    memtide.pressure$.subscribe({
      next: (change) => {
        latestPressure = change;
        hub.broadcast('pressure', change);
      },
      error: (error: unknown) => logger.error(`pressure feed failed: ${String(error)}`),
    }),
  );
  feeds.add(
    memtide.alerts$.subscribe({
      next: (alert) => {
        if (alert.status === 'firing') firing.set(alert.key, alert);
        else firing.delete(alert.key);
        hub.broadcast('alert', alert);
      },
      error: (error: unknown) => logger.error(`alert feed failed: ${String(error)}`),
    }),
  );
  feeds.add(
    memtide.leaks$.subscribe({
      next: (event) => {
        if (event.kind === 'leak') suspects.set(event.component, event);
        else suspects.delete(event.component);
        hub.broadcast('leak', event);
      },
      error: (error: unknown) => logger.error(`leak feed failed: ${String(error)}`),
    }),
  );
  // Test doubles of the engine may lack batchHold$.
  const batchHold$ = memtide.batchHold$ as Observable<BatchHold> | undefined;
  if (batchHold$) {
    feeds.add(
      batchHold$.subscribe({
        next: (hold) => {
          latestBatch = batchEventOf(hold);
          hub.broadcast('batch', latestBatch);
        },
        error: (error: unknown) => logger.error(`batch hold feed failed: ${String(error)}`),
      }),
    );
  }
  if (options.models$) {
    feeds.add(
      options.models$
        .pipe(
          tap((models) => (latestModels = models)),
          throttled<readonly LoadedModel[]>(),
        )
        .subscribe({
          next: (models) => hub.broadcast('models', models),
          error: (error: unknown) => logger.error(`models feed failed: ${String(error)}`),
        }),
    );
  }
  const close = () => {
    feeds.unsubscribe();
    hub.close();
  };

  const routes: Route[] = [
    { method: 'GET', path: '/healthz', handler: (_req, res) => sendJson(res, 200, { ok: true }) },
    {
      method: 'GET',
      path: '/api/state',
      handler: (_req, res) =>
        sendJson(res, 200, {
          sample: latestSample ?? null,
          pressure: latestPressure ?? null,
          alerts: [...firing.values()],
          leaks: [...suspects.values()],
          models: latestModels ?? null,
          batch: latestBatch ?? null,
        }),
    },
    {
      method: 'GET',
      path: '/api/events',
      handler: (req, res) => {
        // A HEAD answer carries no body, so it must not wait for the first event to send its head.
        if (req.method === 'HEAD') {
          res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
          res.end();
          return;
        }
        const replay: Array<[string, unknown]> = [];
        if (latestPressure) replay.push(['pressure', latestPressure]);
        if (latestSample) replay.push(['sample', compactSample(latestSample)]);
        for (const alert of firing.values()) replay.push(['alert', alert]);
        for (const leak of suspects.values()) replay.push(['leak', leak]);
        if (latestModels) replay.push(['models', latestModels]);
        if (latestBatch) replay.push(['batch', latestBatch]);
        hub.add(res, replay);
      },
    },
  ];
  return { routes, close };
};

/** The state routes without a governor. */
export const stateRoutes: RouteModule = createStateRoutes();
