/**
 * A running memtide runner's server-sent events (`GET <base>/api/events`),
 * read over node:http with no dependency. A source: it reads, parses and
 * reconnects; what the events mean (e.g. "hold the batch work") is the
 * caller's decision.
 *
 * {@link createSseParser} implements the event-stream format of the HTML
 * standard: lines end with LF, CRLF or CR (also when the CR and the LF arrive
 * in different chunks), `event:`/`data:`/`id:`/`retry:` fields (one optional
 * space after the colon is dropped), several `data:` lines join with "\n",
 * `:` lines are comments, a blank line dispatches, an event without data is
 * not dispatched, and an unfinished event at the end of the stream is
 * dropped. A line or an event longer than `maxEventChars` fails the
 * connection (memory stays bounded whatever the server sends).
 *
 * {@link runnerEvents} keeps one connection open while subscribed, and
 * reconnects like an EventSource, with exponential backoff: after a refused
 * connection, an HTTP answer that is not an event stream, a stream the server
 * ends, no answer within `connectTimeoutMs`, or an open stream silent for
 * `idleTimeoutMs` (the runner writes a keep-alive comment every 15 s, so
 * silence means a frozen runner), it emits `down` (with the
 * reason and the delay) and tries again; the base delay is the server's last
 * `retry:` value or `initialRetryMs`, doubled per failure in a row up to
 * `maxRetryMs`, back to the base once a connection opens. It never errors;
 * unsubscribing closes the socket and cancels the pending retry, so nothing
 * keeps the process alive afterwards.
 *
 * ```
 * server:   --[open]--batch--x(drop)------[open]--batch--
 * result:   --open----msg----down(1000ms)--open----msg----
 * ```
 */
import http from 'node:http';
import https from 'node:https';
import { asyncScheduler, Observable, type SchedulerLike, type Subscription } from 'rxjs';

/** Failures of the runner's event stream; `code` says which. */
export type RunnerEventsErrorCode =
  | 'MEMTIDE_ERR_RUNNER_UNREACHABLE'
  | 'MEMTIDE_ERR_RUNNER_TIMEOUT'
  | 'MEMTIDE_ERR_RUNNER_HTTP'
  | 'MEMTIDE_ERR_RUNNER_CLOSED'
  | 'MEMTIDE_ERR_SSE_TOO_LONG'
  | 'MEMTIDE_ERR_BATCH_EVENT';

export class RunnerEventsError extends Error {
  constructor(
    readonly code: RunnerEventsErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'RunnerEventsError';
  }
}

/** One dispatched server-sent event. `id` is the last event id seen on the stream ('' if none). */
export interface SseMessage {
  event: string;
  data: string;
  id: string;
}

export interface SseParserHandlers {
  onMessage(message: SseMessage): void;
  /** A valid `retry:` field (milliseconds). */
  onRetry?(ms: number): void;
}

export interface SseParser {
  /** Feed decoded text; throws `MEMTIDE_ERR_SSE_TOO_LONG` when a line or an event passes the limit. */
  push(text: string): void;
  /** The last event id seen (sent back as `Last-Event-ID` on a reconnect). */
  readonly lastEventId: string;
}

/** Parses an event stream fed in arbitrary pieces (see the module comment). */
export function createSseParser(handlers: SseParserHandlers, maxEventChars = 1 << 20): SseParser {
  let pending = '';
  let atStart = true;
  let skipLf = false;
  let eventType = '';
  let data: string[] = [];
  let dataChars = 0;
  let lastEventId = '';

  const tooLong = (what: string) =>
    new RunnerEventsError('MEMTIDE_ERR_SSE_TOO_LONG', `event stream: ${what} longer than ${maxEventChars} characters`);

  const line = (text: string) => {
    if (text === '') {
      if (data.length > 0) handlers.onMessage({ event: eventType || 'message', data: data.join('\n'), id: lastEventId });
      eventType = '';
      data = [];
      dataChars = 0;
      return;
    }
    if (text.startsWith(':')) return; // a comment (memtide sends ": memtide" first)
    const colon = text.indexOf(':');
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        eventType = value;
        break;
      case 'data':
        dataChars += value.length + 1;
        if (dataChars > maxEventChars) throw tooLong('an event');
        data.push(value);
        break;
      case 'id':
        if (!value.includes('\0')) lastEventId = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) handlers.onRetry?.(Number(value));
        break;
      default:
        break; // unknown fields are ignored, as the standard says
    }
  };

  return {
    get lastEventId() {
      return lastEventId;
    },
    push(text: string) {
      if (atStart && text.length > 0) {
        atStart = false;
        if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      }
      let from = 0;
      if (skipLf && text.startsWith('\n')) from = 1; // the LF of a CRLF split across two pieces
      skipLf = false;
      const breaks = /\r\n|\r|\n/g;
      breaks.lastIndex = from;
      for (let match = breaks.exec(text); match !== null; match = breaks.exec(text)) {
        const whole = pending + text.slice(from, match.index);
        pending = '';
        from = match.index + match[0].length;
        // A CR at the very end may be the first half of a CRLF.
        if (match[0] === '\r' && from === text.length) skipLf = true;
        line(whole);
      }
      pending += text.slice(from);
      if (pending.length > maxEventChars) {
        pending = '';
        throw tooLong('a line');
      }
    },
  };
}

/** `http://host:7071` (or `.../api/events`, or a base with a path prefix) → the runner's event-stream URL. */
export function runnerEventsUrl(base: string | URL): URL {
  const url = new URL(String(base));
  if (!/\/api\/events\/?$/.test(url.pathname)) url.pathname = `${url.pathname.replace(/\/+$/, '')}/api/events`;
  url.hash = '';
  return url;
}

export type RunnerEventsNotice =
  /** Connected: the server answered 200 with an event stream. */
  | { type: 'open'; url: string }
  /** One event of the stream. */
  | ({ type: 'message' } & SseMessage)
  /** The connection failed or ended; the next attempt starts in `retryInMs`. `failures`: in a row, 1 for the first. */
  | { type: 'down'; url: string; error: RunnerEventsError; retryInMs: number; failures: number };

export interface RunnerEventsOptions {
  /** First reconnect delay (the server's `retry:` replaces it). Default 1000. */
  initialRetryMs?: number;
  /** Longest reconnect delay. Default 30 000. */
  maxRetryMs?: number;
  /** No response headers within this long counts as a failed attempt. Default 5000. */
  connectTimeoutMs?: number;
  /** Longest line or event accepted. Default 1 MiB of characters. */
  maxEventChars?: number;
  /**
   * An open stream that sends nothing (not even the runner's keep-alive
   * comment, every 15 s) for this long counts as lost: a frozen runner must
   * not keep a hold in force. Default 45 000 (three keep-alives).
   */
  idleTimeoutMs?: number;
}

const describeError = (error: unknown): string => {
  const e = error as NodeJS.ErrnoException;
  return e.code ?? e.message ?? String(error);
};

/**
 * The event stream at `url` (already the full `/api/events` URL: see
 * {@link runnerEventsUrl}) as notices: `open`, `message`, `down`. Never
 * errors or completes by itself; unsubscribe to close it.
 *
 * @param url the event-stream URL (http or https).
 * @param options reconnect delays, connect timeout, size limit.
 * @param scheduler clock of the reconnect delays and the connect timeout.
 */
export function runnerEvents(url: string | URL, options: RunnerEventsOptions = {}, scheduler: SchedulerLike = asyncScheduler): Observable<RunnerEventsNotice> {
  const initialRetryMs = options.initialRetryMs ?? 1000;
  const maxRetryMs = options.maxRetryMs ?? 30_000;
  const connectTimeoutMs = options.connectTimeoutMs ?? 5000;
  const maxEventChars = options.maxEventChars ?? 1 << 20;
  const idleTimeoutMs = options.idleTimeoutMs ?? 45_000;

  return new Observable<RunnerEventsNotice>((subscriber) => {
    const target = new URL(String(url));
    const href = target.toString();
    const client = target.protocol === 'https:' ? https : http;
    let stopped = false;
    let failures = 0;
    let serverRetryMs: number | null = null;
    let lastEventId = '';
    let retryTimer: Subscription | null = null;
    let closeCurrent: (() => void) | null = null;

    const connect = () => {
      retryTimer = null;
      if (stopped) return;
      let done = false;
      let request: http.ClientRequest | null = null;
      let connectTimer: Subscription | null = null;
      let idleTimer: Subscription | null = null;
      let lastDataAt = 0;

      const finish = () => {
        done = true;
        connectTimer?.unsubscribe();
        connectTimer = null;
        idleTimer?.unsubscribe();
        idleTimer = null;
        request?.destroy();
        closeCurrent = null;
      };
      const fail = (error: RunnerEventsError) => {
        if (done || stopped) return;
        finish();
        failures += 1;
        const retryInMs = Math.min(maxRetryMs, (serverRetryMs ?? initialRetryMs) * 2 ** Math.min(failures - 1, 30));
        // Scheduled before telling the subscriber: if it unsubscribes on `down`, the teardown cancels the retry.
        retryTimer = scheduler.schedule(connect, retryInMs);
        subscriber.next({ type: 'down', url: href, error, retryInMs, failures });
      };
      closeCurrent = finish;

      const parser = createSseParser(
        {
          onMessage: (message) => {
            if (!done) subscriber.next({ type: 'message', ...message });
          },
          onRetry: (ms) => {
            serverRetryMs = ms;
          },
        },
        maxEventChars,
      );

      const headers: Record<string, string> = { accept: 'text/event-stream', 'cache-control': 'no-cache' };
      if (lastEventId !== '') headers['last-event-id'] = lastEventId;
      try {
        // agent: false: a socket of its own, closed with the request (no pooled keep-alive socket left behind).
        request = client.get(target, { agent: false, headers }, (res) => {
          connectTimer?.unsubscribe();
          connectTimer = null;
          if (done) {
            res.destroy();
            return;
          }
          const type = String(res.headers['content-type'] ?? '');
          if (res.statusCode !== 200 || !/^text\/event-stream\b/i.test(type)) {
            res.resume();
            fail(
              new RunnerEventsError(
                'MEMTIDE_ERR_RUNNER_HTTP',
                `${href} answered HTTP ${res.statusCode ?? '?'}${type ? ` (${type.split(';')[0]})` : ''}, not an event stream (is it a memtide runner?)`,
              ),
            );
            return;
          }
          failures = 0;
          res.setEncoding('utf8'); // a multi-byte character split across two packets is decoded whole
          subscriber.next({ type: 'open', url: href });
          // One timer per idle period, not per chunk: it checks the time of the last data when it fires.
          lastDataAt = scheduler.now();
          const checkIdle = (delay: number) => {
            idleTimer = scheduler.schedule(() => {
              const quietMs = scheduler.now() - lastDataAt;
              if (quietMs >= idleTimeoutMs) fail(new RunnerEventsError('MEMTIDE_ERR_RUNNER_TIMEOUT', `${href}: nothing received for ${quietMs} ms (the runner sends a keep-alive every 15 s)`));
              else checkIdle(idleTimeoutMs - quietMs);
            }, delay);
          };
          checkIdle(idleTimeoutMs);
          res.on('data', (text: string) => {
            if (done) return;
            lastDataAt = scheduler.now();
            try {
              parser.push(text);
              lastEventId = parser.lastEventId;
            } catch (error) {
              fail(error instanceof RunnerEventsError ? error : new RunnerEventsError('MEMTIDE_ERR_SSE_TOO_LONG', String(error)));
            }
          });
          const closed = () => fail(new RunnerEventsError('MEMTIDE_ERR_RUNNER_CLOSED', `${href}: the runner closed the event stream`));
          res.on('end', closed);
          res.on('close', closed);
          res.on('error', (error) => fail(new RunnerEventsError('MEMTIDE_ERR_RUNNER_CLOSED', `${href}: the event stream broke (${describeError(error)})`)));
        });
      } catch (error) {
        // e.g. a URL node:http refuses: reported like a refused connection, and retried (the caller validated it).
        fail(new RunnerEventsError('MEMTIDE_ERR_RUNNER_UNREACHABLE', `${href}: ${describeError(error)}`));
        return;
      }
      request.on('error', (error) => fail(new RunnerEventsError('MEMTIDE_ERR_RUNNER_UNREACHABLE', `cannot reach ${href} (${describeError(error)})`)));
      connectTimer = scheduler.schedule(
        () => fail(new RunnerEventsError('MEMTIDE_ERR_RUNNER_TIMEOUT', `${href}: no answer within ${connectTimeoutMs} ms`)),
        connectTimeoutMs,
      );
    };

    connect();
    return () => {
      stopped = true;
      retryTimer?.unsubscribe();
      retryTimer = null;
      closeCurrent?.();
    };
  });
}

/** The data of the runner's `batch` event (src/app/routes/state.ts `batchEventOf`). */
export interface BatchEventData {
  hold: boolean;
  reason: string;
  atMs: number;
}

/**
 * Parses a `batch` event's data, `{"hold": boolean, "reason": string, "atMs": number}`;
 * throws `MEMTIDE_ERR_BATCH_EVENT` naming the bad key (extra keys are ignored).
 */
export function parseBatchEvent(data: string): BatchEventData {
  const shown = data.length > 80 ? `${data.slice(0, 80)}…` : data;
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch (error) {
    throw new RunnerEventsError('MEMTIDE_ERR_BATCH_EVENT', `batch event: not JSON (${(error as Error).message}): ${shown}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RunnerEventsError('MEMTIDE_ERR_BATCH_EVENT', `batch event: expected an object, got ${shown}`);
  }
  const { hold, reason, atMs } = value as Record<string, unknown>;
  if (typeof hold !== 'boolean') throw new RunnerEventsError('MEMTIDE_ERR_BATCH_EVENT', `batch event: "hold" must be true or false, got ${shown}`);
  if (typeof reason !== 'string') throw new RunnerEventsError('MEMTIDE_ERR_BATCH_EVENT', `batch event: "reason" must be a string, got ${shown}`);
  if (typeof atMs !== 'number' || !Number.isFinite(atMs)) throw new RunnerEventsError('MEMTIDE_ERR_BATCH_EVENT', `batch event: "atMs" must be a number, got ${shown}`);
  return { hold, reason, atMs };
}
