/**
 * Alert sink: POSTs each notification as JSON to a webhook.
 *
 * It never blocks sampling: `write` only puts the alert in a bounded queue
 * and returns; a single worker, started from the scheduler (off the caller's
 * stack), delivers the queue in order. Each attempt is aborted after
 * `timeoutMs`; failures that may pass (network errors, timeouts, HTTP 408,
 * 429, 5xx) are retried `retries` times after `backoffMs`, `2 × backoffMs`,
 * `4 × backoffMs`, ...; other answers (4xx: the receiver rejects the
 * payload) are not. When the queue is full the OLDEST waiting alert is
 * dropped and counted: the newest state matters most. Timeouts and backoff
 * run on the scheduler, so the whole sink runs in virtual time in tests.
 */
import { hostname } from 'node:os';
import {
  asyncScheduler,
  catchError,
  defer,
  finalize,
  from,
  map,
  retry,
  throwError,
  timeout,
  timer,
  type Observable,
  type ObservableInput,
  type SchedulerLike,
  type Subscription,
} from 'rxjs';
import { ALERT_SEVERITIES, type Alert, type AlertSeverity } from '../model.js';
import type { AlertSink } from './alertSink.js';

export interface AlertWebhookConfig {
  url: string;
  /** Notifications below this severity are not posted. */
  minSeverity: AlertSeverity;
  timeoutMs: number;
  retries: number;
  backoffMs: number;
  maxQueue: number;
}

export interface WebhookRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
}

export interface WebhookResponse {
  status: number;
}

/** Sends one request; must abort when `signal` fires. The default uses `fetch`. */
export type WebhookTransport = (request: WebhookRequest, signal: AbortSignal) => ObservableInput<WebhookResponse>;

/** What the webhook receives (see docs/alerts.md). */
export interface WebhookPayload {
  version: 1;
  sender: 'memtide';
  /** Host name of the machine, so one receiver can serve several machines. */
  host: string;
  status: Alert['status'];
  alert: Alert;
}

export type WebhookErrorCode = 'MEMTIDE_ERR_WEBHOOK_TIMEOUT' | 'MEMTIDE_ERR_WEBHOOK_STATUS' | 'MEMTIDE_ERR_WEBHOOK_NETWORK';

export class WebhookError extends Error {
  override readonly name = 'WebhookError';
  constructor(
    readonly code: WebhookErrorCode,
    message: string,
    /** Whether another attempt may succeed. */
    readonly retryable: boolean,
    readonly status: number | null = null,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export type WebhookEvent =
  | { type: 'delivered'; alert: Alert; attempts: number }
  | { type: 'retry'; alert: Alert; attempt: number; delayMs: number; error: WebhookError }
  | { type: 'failed'; alert: Alert; attempts: number; error: WebhookError }
  /** The queue was full: `alert` (the oldest waiting) was dropped; `dropped` counts all drops so far. */
  | { type: 'dropped'; alert: Alert; dropped: number };

export interface AlertWebhookStats {
  /** Waiting in the queue (not counting the one in flight). */
  queued: number;
  inFlight: boolean;
  delivered: number;
  /** Given up after the last retry, or rejected with a 4xx. */
  failed: number;
  /** Dropped from a full queue (oldest first). */
  dropped: number;
  /** Retries made (attempts after the first). */
  retries: number;
  /** Still queued or in flight when the sink was closed. */
  abandoned: number;
}

export interface AlertWebhookOptions {
  transport?: WebhookTransport;
  /** The `host` of the payload (default `os.hostname()`). */
  host?: string;
  onEvent?: (event: WebhookEvent) => void;
}

export interface AlertWebhook extends AlertSink {
  stats(): AlertWebhookStats;
  /** Resolves once the queue is empty and nothing is in flight (tests, graceful shutdown). */
  idle(): Promise<void>;
}

/** POST with `fetch`; the body of the answer is discarded (only the status matters). */
export const fetchTransport: WebhookTransport = async (request, signal) => {
  const response = await fetch(request.url, { method: 'POST', headers: request.headers, body: request.body, signal, redirect: 'manual' });
  await response.body?.cancel().catch(() => undefined);
  return { status: response.status };
};

function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

function asWebhookError(error: unknown, url: string): WebhookError {
  if (error instanceof WebhookError) return error;
  const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : '';
  const text = error instanceof Error ? error.message : String(error);
  return new WebhookError('MEMTIDE_ERR_WEBHOOK_NETWORK', `webhook ${url}: ${text}${cause}`, true, null, { cause: error });
}

function rank(severity: AlertSeverity): number {
  return ALERT_SEVERITIES.indexOf(severity);
}

/**
 * Creates the webhook sink.
 *
 * ```
 * backoffMs 10, retries 2, timeoutMs 50 (one frame = 1 ms)
 * write:     a                      write returns at once
 * attempts:  a(500) -10- a(500) -20- a(200)     → delivered once, after 2 retries
 * ```
 *
 * @param config URL, severity filter, timeout, retries, backoff, queue size.
 * @param options transport (default fetch), host name, event callback (drops, failures).
 * @param scheduler clock of timeouts, backoff and the worker's start.
 */
export function alertWebhook(config: AlertWebhookConfig, options: AlertWebhookOptions = {}, scheduler: SchedulerLike = asyncScheduler): AlertWebhook {
  const transport = options.transport ?? fetchTransport;
  const host = options.host ?? hostname();
  const report = options.onEvent ?? (() => undefined);
  const counts = { delivered: 0, failed: 0, dropped: 0, retries: 0, abandoned: 0 };
  const queue: Alert[] = [];
  let busy = false;
  let closed = false;
  let inFlight: Subscription | null = null;
  let kick: Subscription | null = null;
  let idleWaiters: (() => void)[] = [];

  const settleIdle = (): void => {
    if (busy || queue.length > 0 || kick) return;
    const waiters = idleWaiters;
    idleWaiters = [];
    for (const resolve of waiters) resolve();
  };

  const attempt = (request: WebhookRequest): Observable<void> =>
    defer(() => {
      const controller = new AbortController();
      return from(transport(request, controller.signal)).pipe(
        timeout({
          first: config.timeoutMs,
          scheduler,
          with: () =>
            throwError(() => new WebhookError('MEMTIDE_ERR_WEBHOOK_TIMEOUT', `webhook ${config.url}: no answer within ${config.timeoutMs} ms`, true)),
        }),
        map((response) => {
          if (response.status >= 200 && response.status < 300) return;
          throw new WebhookError(
            'MEMTIDE_ERR_WEBHOOK_STATUS',
            `webhook ${config.url}: HTTP ${response.status}`,
            isRetryableStatus(response.status),
            response.status,
          );
        }),
        catchError((error: unknown) => throwError(() => asWebhookError(error, config.url))),
        // Aborts the request when the attempt times out or the sink is closed (harmless once answered).
        finalize(() => controller.abort()),
      );
    });

  const deliver = (alert: Alert): void => {
    busy = true;
    const payload: WebhookPayload = { version: 1, sender: 'memtide', host, status: alert.status, alert };
    const request: WebhookRequest = {
      url: config.url,
      headers: { 'content-type': 'application/json', 'user-agent': 'memtide' },
      body: JSON.stringify(payload),
    };
    let attempts = 1;
    const done = (): void => {
      busy = false;
      inFlight = null;
      startWorker();
      settleIdle();
    };
    const subscription = attempt(request)
      .pipe(
        retry({
          count: config.retries,
          delay: (error: WebhookError) => {
            if (!error.retryable) return throwError(() => error);
            const delayMs = config.backoffMs * 2 ** (attempts - 1);
            report({ type: 'retry', alert, attempt: attempts, delayMs, error });
            return timer(delayMs, scheduler).pipe(
              map(() => {
                attempts += 1;
                counts.retries += 1;
              }),
            );
          },
        }),
      )
      .subscribe({
        complete: () => {
          counts.delivered += 1;
          report({ type: 'delivered', alert, attempts });
          done();
        },
        error: (error: WebhookError) => {
          counts.failed += 1;
          report({ type: 'failed', alert, attempts, error });
          done();
        },
      });
    // A synchronous transport may already have finished (and started the next delivery).
    if (!subscription.closed) inFlight = subscription;
  };

  /** Starts the next delivery from the scheduler, never on the caller's stack. */
  function startWorker(): void {
    if (busy || closed || kick || queue.length === 0) return;
    kick = scheduler.schedule(() => {
      kick = null;
      const next = queue.shift();
      if (next && !closed) deliver(next);
      settleIdle();
    });
  }

  return {
    name: 'webhook',
    write(alert) {
      if (closed || rank(alert.severity) < rank(config.minSeverity)) return;
      if (queue.length >= config.maxQueue) {
        const oldest = queue.shift();
        counts.dropped += 1;
        if (oldest) report({ type: 'dropped', alert: oldest, dropped: counts.dropped });
      }
      queue.push(alert);
      startWorker();
    },
    stats: () => ({ queued: queue.length, inFlight: busy, ...counts }),
    idle: () =>
      new Promise<void>((resolve) => {
        idleWaiters.push(resolve);
        settleIdle();
      }),
    close() {
      if (closed) return;
      closed = true;
      counts.abandoned += queue.length + (busy ? 1 : 0);
      queue.length = 0;
      kick?.unsubscribe();
      kick = null;
      inFlight?.unsubscribe();
      inFlight = null;
      busy = false;
      settleIdle();
    },
  };
}
