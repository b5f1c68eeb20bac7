/**
 * Forwards one request to the upstream Ollama and streams the answer back
 * byte for byte:
 * - status, reason phrase, headers (minus hop-by-hop ones) and body pass
 *   through unchanged, errors included; only `Via` is added;
 * - no buffering: each upstream chunk is written as it arrives, headers of a
 *   streamed (unsized) answer are flushed at once, Nagle is off both ways;
 * - a client that goes away aborts the upstream request, so Ollama cancels
 *   the generation;
 * - `onDone` is called exactly once with how it ended (for the governor's
 *   `release`), including a mid-stream `{"error": ...}` line under status 200.
 *
 * When the upstream fails (docs/reliability.md):
 * - a connection that fails before it is open (refused, unreachable, no
 *   connection within `connectTimeoutMs`) has sent nothing upstream, so it is
 *   retried, `upstreamRetries` times with exponential backoff
 *   (`retryBackoffMs`, doubling); the client's own body is only piped once a
 *   connection is open, so even a streamed upload can be retried. Then the
 *   client gets 502 `MEMTIDE_ERR_UPSTREAM` naming the upstream and the cause;
 * - a failure after the connection opened is not retried (a generation may
 *   have started): 502;
 * - an upstream that sends nothing for `upstreamTimeoutMs` (before its
 *   headers, or between two chunks of the answer) is cancelled: 504
 *   `MEMTIDE_ERR_UPSTREAM_TIMEOUT`;
 * - an answer cut mid-stream ends, on a line boundary of an NDJSON/SSE
 *   stream, with an `{"error": ...}` line like Ollama's own mid-stream
 *   errors, so clients see why; otherwise the connection is cut.
 *
 * A request may go to another upstream path than the client's
 * (`upstreamPath`) and have its answer rewritten (`transformResponse`, e.g.
 * /api/chat's answer into the /v1 one the client asked for): streamed
 * through a Transform (headers sent at once, no length), or buffered up to a
 * bound and rewritten whole (past the bound, passed through unchanged).
 * Retries, timeouts, disconnects and `onDone` work the same either way.
 */
import { request as httpRequest, type Agent, type ClientRequest, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Transform } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { formatDuration } from '../units.js';
import { proxyErrorBody, sendProxyError, type ProxyErrorReply } from './errorReply.js';

export interface ForwardOutcome {
  ok: boolean;
  status?: number;
  error?: string;
}

export interface ForwardOptions {
  upstream: URL;
  agent: Agent;
  /** The body to send instead of the client's (already read); undefined streams the client's body through. */
  body?: Buffer;
  /** Extra response headers (e.g. `x-memtide-*`). */
  responseHeaders?: ReadonlyArray<[string, string]>;
  /** Path (with query) to request upstream instead of the client's. */
  upstreamPath?: string;
  /** How to rewrite the answer, decided when its status and headers arrive; null (or absent) passes it through. */
  transformResponse?(head: UpstreamHead): ResponseTransform | null;
  /** Shape of the proxy's own 502 (OpenAI on /v1/*). */
  openAi: boolean;
  /** Retries and timeouts; missing fields take {@link DEFAULT_UPSTREAM_POLICY}. */
  policy?: Partial<UpstreamPolicy>;
  /** Told before each retry (for the log). */
  onRetry?(notice: RetryNotice): void;
  onDone(outcome: ForwardOutcome): void;
}

/** The upstream answer's status and headers, before its body. */
export interface UpstreamHead {
  status: number;
  headers: IncomingHttpHeaders;
}

/** An answer rewritten as it streams: headers at once (without Content-Length), the body piped through `body`. */
export interface StreamTransform {
  kind: 'stream';
  /** Set on the upstream's headers, replacing those of the same name. */
  headers: ReadonlyArray<[string, string]>;
  body: Transform;
  /** The upstream was cut mid-answer: end the client's copy with this error, in the transformed shape. */
  fail(reply: ProxyErrorReply): void;
}

/** An answer read whole (up to `limitBytes`, else passed through), then rewritten. */
export interface BufferTransform {
  kind: 'buffer';
  limitBytes: number;
  /** The answer to send instead; null passes the upstream's through unchanged. */
  rewrite(body: Buffer): RewrittenAnswer | null;
}

export interface RewrittenAnswer {
  status: number;
  /** Set on the upstream's headers, replacing those of the same name; Content-Length is computed. */
  headers: ReadonlyArray<[string, string]>;
  body: Buffer;
}

export type ResponseTransform = StreamTransform | BufferTransform;

/** How the proxy deals with an upstream that is down or slow. */
export interface UpstreamPolicy {
  /** Extra attempts after a connection failure that happened before any byte was sent upstream. */
  upstreamRetries: number;
  /** Wait before the first retry; doubles at each one. */
  retryBackoffMs: number;
  /** Longest silence of the upstream (before its answer starts, and between two chunks of it); 0 = none. */
  upstreamTimeoutMs: number;
  /** Longest wait for a connection to open; past it the attempt counts as a connection failure (retried). 0 = the OS's. */
  connectTimeoutMs: number;
}

/**
 * Defaults: 3 retries 100, 200, 400 ms apart (an Ollama restart on the same
 * machine is usually back within them); 10 minutes of upstream silence, since
 * a non-streamed answer (Meetily's summaries) only starts once the whole text
 * is generated, which takes minutes on a CPU.
 */
export const DEFAULT_UPSTREAM_POLICY: Readonly<UpstreamPolicy> = Object.freeze({
  upstreamRetries: 3,
  retryBackoffMs: 100,
  upstreamTimeoutMs: 10 * 60_000,
  connectTimeoutMs: 5_000,
});

export interface RetryNotice {
  /** The attempt about to be made (1 = first retry). */
  attempt: number;
  delayMs: number;
  /** Why the previous attempt failed. */
  error: string;
}

/** Ends an upstream request that went silent or never connected (the `error` it is destroyed with). */
class UpstreamTimeoutError extends Error {
  readonly code = 'MEMTIDE_ERR_UPSTREAM_TIMEOUT';
  constructor(message: string) {
    super(message);
    this.name = 'UpstreamTimeoutError';
  }
}

function policyOf(partial: Partial<UpstreamPolicy> | undefined): UpstreamPolicy {
  const policy = { ...DEFAULT_UPSTREAM_POLICY };
  for (const key of Object.keys(policy) as (keyof UpstreamPolicy)[]) {
    const value = partial?.[key];
    if (typeof value === 'number' && Number.isFinite(value) && value >= 0) policy[key] = value;
  }
  return policy;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host']);

/** Headers named in `Connection` are hop-by-hop too (RFC 9110 7.6.1). */
function connectionTokens(value: string | string[] | undefined): Set<string> {
  const text = Array.isArray(value) ? value.join(',') : (value ?? '');
  return new Set(
    text
      .split(',')
      .map((t) => t.trim().toLowerCase())
      .filter(Boolean),
  );
}

function requestHeaders(req: IncomingMessage, upstream: URL, body: Buffer | undefined): OutgoingHttpHeaders {
  const drop = connectionTokens(req.headers.connection);
  const headers: OutgoingHttpHeaders = {};
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || drop.has(lower)) continue;
    // A buffered body is sent whole: its length is ours, and there is nothing left to "continue".
    if (body && (lower === 'content-length' || lower === 'expect')) continue;
    const value = raw[i + 1] as string;
    const existing = headers[name];
    headers[name] = existing === undefined ? value : Array.isArray(existing) ? [...existing, value] : [String(existing), value];
  }
  headers.host = upstream.host;
  if (body) headers['content-length'] = body.length;
  // A streamed chunked body must stay chunked: Node's client does not chunk a GET/DELETE body by default,
  // and unframed bytes would be read upstream as a second request (smuggled past the governor).
  else if (req.headers['transfer-encoding'] !== undefined && req.headers['content-length'] === undefined) headers['transfer-encoding'] = 'chunked';
  return headers;
}

/** The upstream's raw header list minus hop-by-hop headers, plus ours. */
function responseHeaders(upstream: IncomingMessage, extra: ReadonlyArray<[string, string]>): string[] {
  const drop = connectionTokens(upstream.headers.connection);
  const out: string[] = [];
  const raw = upstream.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const lower = (raw[i] as string).toLowerCase();
    if (lower !== 'host' && (HOP_BY_HOP.has(lower) || drop.has(lower))) continue;
    out.push(raw[i] as string, raw[i + 1] as string);
  }
  out.push('Via', '1.1 memtide');
  for (const [name, value] of extra) out.push(name, value);
  return out;
}

/** `raw` (a raw header list) without Content-Length and the headers `replaced` sets, then those. */
function replaceHeaders(raw: readonly string[], replaced: ReadonlyArray<[string, string]>): string[] {
  const names = new Set(['content-length', ...replaced.map(([name]) => name.toLowerCase())]);
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (!names.has((raw[i] as string).toLowerCase())) out.push(raw[i] as string, raw[i + 1] as string);
  for (const [name, value] of replaced) out.push(name, value);
  return out;
}

/** Streamed answers whose lines may carry an `{"error": ...}` object under status 200. */
const STREAM_TYPES = /^(application\/x-ndjson|text\/event-stream)/i;
const ERROR_LINE = /^(?:data: ?)?(\{"error"\s*:.*)$/m;

/** The message of an `{"error": ...}` line (Ollama: a string; its OpenAI layer: `{ message }`), if `lines` hold one. */
export function streamErrorOf(lines: string): string | undefined {
  const match = ERROR_LINE.exec(lines);
  if (!match?.[1]) return undefined;
  try {
    const parsed = JSON.parse(match[1]) as { error?: unknown };
    const error = parsed.error;
    if (typeof error === 'string') return error;
    if (typeof error === 'object' && error !== null && typeof (error as { message?: unknown }).message === 'string') return (error as { message: string }).message;
    return JSON.stringify(error);
  } catch {
    return match[1].slice(0, 500);
  }
}

/** Watches a streamed answer line by line for an error line; call the result after the end. */
function errorLineWatcher(stream: IncomingMessage): () => string | undefined {
  const decoder = new StringDecoder('utf8');
  let partial = '';
  let found: string | undefined;
  stream.on('data', (chunk: Buffer) => {
    if (found !== undefined) return;
    const text = partial + decoder.write(chunk);
    const end = text.lastIndexOf('\n');
    if (end >= 0) found = streamErrorOf(text.slice(0, end));
    // Only the unfinished last line is kept (bounded: a line longer than 64 KiB is not an error line).
    partial = text.slice(end + 1).slice(0, 65_536);
  });
  return () => found ?? (partial ? streamErrorOf(partial) : undefined);
}

/** The message of an error answer (`{"error": ...}`, up to 8 KiB read), so the governor learns why (e.g. out of memory). */
function errorBodyWatcher(stream: IncomingMessage, status: number): () => string {
  const chunks: Buffer[] = [];
  let size = 0;
  stream.on('data', (chunk: Buffer) => {
    if (size >= 8192) return;
    chunks.push(chunk);
    size += chunk.length;
  });
  return () => streamErrorOf(Buffer.concat(chunks).subarray(0, 8192).toString('utf8').trim()) ?? `upstream status ${status}`;
}

export function forward(req: IncomingMessage, res: ServerResponse, options: ForwardOptions): void {
  const { upstream, body, openAi } = options;
  const policy = policyOf(options.policy);
  const basePath = upstream.pathname.replace(/\/$/, '');
  let finished = false;
  const finish = (outcome: ForwardOutcome) => {
    if (finished) return;
    finished = true;
    clearTimeout(retryTimer);
    clearTimeout(waitTimer);
    options.onDone(outcome);
  };
  let clientGone = false;
  let current: ClientRequest | null = null;
  /** The backoff before the next attempt. */
  let retryTimer: NodeJS.Timeout | undefined;
  /** Connect timeout, then upstream silence (before and during the answer). */
  let waitTimer: NodeJS.Timeout | undefined;
  res.on('close', () => {
    if (res.writableFinished) return;
    clientGone = true;
    current?.destroy();
    finish({ ok: false, error: 'client disconnected' });
  });
  req.socket.setNoDelay(true);

  // A request with no body to resend can be retried once when a reused keep-alive socket was closed under it.
  const replayable = body !== undefined || req.method === 'GET' || req.method === 'HEAD';
  let staleReplayed = false;
  /** The client's body has been piped into an attempt (it cannot be read twice). */
  let clientBodyPiped = false;
  let responded = false;

  const send = (attempt: number): void => {
    const open = upstream.protocol === 'https:' ? httpsRequest : httpRequest;
    const upReq = open({
      protocol: upstream.protocol,
      hostname: upstream.hostname.replace(/^\[|\]$/g, ''),
      port: upstream.port || (upstream.protocol === 'https:' ? 443 : 80),
      method: req.method,
      path: basePath + (options.upstreamPath ?? req.url ?? '/'),
      headers: requestHeaders(req, upstream, body),
      agent: options.agent,
    });
    current = upReq;
    /** Once open, bytes may reach the upstream: from then on a failure is not retried. */
    let connected = false;
    let silentFor: number | null = null;
    const wait = (ms: number, onTimeout: () => UpstreamTimeoutError) => {
      clearTimeout(waitTimer);
      if (ms > 0) waitTimer = setTimeout(() => upReq.destroy(onTimeout()), ms);
    };
    const waitForUpstream = () =>
      wait(policy.upstreamTimeoutMs, () => {
        silentFor = policy.upstreamTimeoutMs;
        return new UpstreamTimeoutError(`upstream ${upstream.origin} sent nothing for ${formatDuration(policy.upstreamTimeoutMs)} (proxy.upstreamTimeoutMs)`);
      });
    const onConnected = () => {
      connected = true;
      clearTimeout(waitTimer);
      if (body !== undefined) return; // already handed to upReq.end(): sent now that the socket is open
      // Piped only now, so a connection that never opened has not consumed the client's body.
      if (!clientBodyPiped) {
        clientBodyPiped = true;
        req.pipe(upReq);
      } else {
        upReq.end(); // the replay of a GET/HEAD whose (empty) body the first attempt read
      }
    };
    upReq.on('socket', (socket) => {
      socket.setNoDelay(true);
      if (!socket.connecting) {
        onConnected(); // a kept-alive socket
        return;
      }
      wait(policy.connectTimeoutMs, () => new UpstreamTimeoutError(`no connection within ${formatDuration(policy.connectTimeoutMs)}`));
      socket.once('connect', onConnected);
    });
    // The request is out: from now on the upstream owes an answer.
    upReq.on('finish', waitForUpstream);
    upReq.on('response', (upRes) => onResponse(upRes, waitForUpstream, () => silentFor));
    upReq.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(waitTimer);
      // After the answer started, the response's own handlers (`lost`) tell the client.
      if (clientGone || responded || finished) return;
      if (!staleReplayed && replayable && upReq.reusedSocket && error.code === 'ECONNRESET') {
        // A kept-alive socket the upstream had closed: the request never reached it. Once, at once.
        staleReplayed = true;
        send(attempt);
        return;
      }
      if (silentFor !== null) {
        const message = `${error.message}; the request was cancelled upstream`;
        sendProxyError(res, { status: 504, message, code: 'MEMTIDE_ERR_UPSTREAM_TIMEOUT' }, openAi);
        finish({ ok: false, status: 504, error: message });
        return;
      }
      const reason = error.message || error.code || 'unknown error';
      if (!connected && attempt < policy.upstreamRetries) {
        const delayMs = policy.retryBackoffMs * 2 ** attempt;
        options.onRetry?.({ attempt: attempt + 1, delayMs, error: reason });
        retryTimer = setTimeout(() => send(attempt + 1), delayMs);
        return;
      }
      const attempts = attempt + 1;
      const message = connected
        ? `upstream ${upstream.origin} failed: ${reason}`
        : `upstream ${upstream.origin} (models.upstream) unreachable after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${reason}`;
      sendProxyError(res, { status: 502, message, code: 'MEMTIDE_ERR_UPSTREAM' }, openAi);
      finish({ ok: false, status: 502, error: message });
    });
    // A body we hold is handed over now (buffered until the socket opens, so a retry can send it again).
    if (body !== undefined) upReq.end(body);
  };

  const onResponse = (upRes: IncomingMessage, stillWaiting: () => void, silentFor: () => number | null) => {
    responded = true;
    stillWaiting(); // re-armed by every chunk: the upstream may pause, not go silent
    const status = upRes.statusCode ?? 502;
    const headers = responseHeaders(upRes, options.responseHeaders ?? []);
    // A compressed answer cannot be read: it passes through as it is.
    const transform = upRes.headers['content-encoding'] === undefined ? (options.transformResponse?.({ status, headers: upRes.headers }) ?? null) : null;
    const streamed = upRes.headers['content-length'] === undefined;
    const lineStream = streamed && STREAM_TYPES.test(upRes.headers['content-type'] ?? '') && upRes.headers['content-encoding'] === undefined;
    const errorOf = status >= 400 ? errorBodyWatcher(upRes, status) : lineStream ? errorLineWatcher(upRes) : () => undefined;
    /** The client's copy ends on a line boundary (an error line can follow). */
    let atLineEnd = true;
    upRes.on('data', (chunk: Buffer) => {
      stillWaiting();
      if (chunk.length > 0) atLineEnd = chunk[chunk.length - 1] === 0x0a;
    });
    const passThrough = () => {
      res.writeHead(status, upRes.statusMessage, headers);
      if (streamed) res.flushHeaders();
    };
    if (!transform) {
      passThrough();
      upRes.pipe(res);
    } else if (transform.kind === 'stream') {
      res.writeHead(status, replaceHeaders(headers, transform.headers));
      res.flushHeaders();
      upRes.pipe(transform.body).pipe(res);
    } else {
      readWhole(upRes, transform, passThrough);
    }
    upRes.on('end', () => {
      clearTimeout(waitTimer);
      const error = errorOf();
      finish({ ok: error === undefined, status, ...(error !== undefined ? { error } : {}) });
    });
    const lost = () => {
      if (upRes.complete || finished) return;
      clearTimeout(waitTimer);
      const silent = silentFor();
      const error =
        silent !== null
          ? `upstream ${upstream.origin} sent nothing for ${formatDuration(silent)} mid-answer (proxy.upstreamTimeoutMs)`
          : `upstream ${upstream.origin} connection lost mid-answer`;
      const reply: ProxyErrorReply = { status: silent !== null ? 504 : 502, message: error, code: silent !== null ? 'MEMTIDE_ERR_UPSTREAM_TIMEOUT' : 'MEMTIDE_ERR_UPSTREAM' };
      if (clientGone) {
        res.destroy();
      } else if (res.writableEnded) {
        // already complete (a transform that ended its copy early, e.g. on an error line)
      } else if (transform?.kind === 'stream') {
        // The transform drops an unfinished line and ends with an error in its own shape.
        upRes.unpipe(transform.body);
        transform.fail(reply);
      } else if (transform?.kind === 'buffer' && !res.headersSent) {
        sendProxyError(res, reply, openAi);
      } else if (lineStream && atLineEnd) {
        // Like Ollama's own mid-stream failures: a last {"error": ...} line, so the client knows why.
        upRes.unpipe(res);
        res.end(`${JSON.stringify(proxyErrorBody(reply, openAi))}\n`);
      } else {
        res.destroy();
      }
      finish({ ok: false, status, error });
    };
    upRes.on('error', lost);
    upRes.on('close', lost);
  };

  /** Reads the answer whole and sends the rewrite; past the limit (or with no rewrite), the upstream's answer as it is. */
  const readWhole = (upRes: IncomingMessage, transform: BufferTransform, passThrough: () => void) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let overflowed = false;
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size <= transform.limitBytes) return;
      overflowed = true;
      upRes.off('data', onData);
      passThrough();
      for (const held of chunks.splice(0)) res.write(held);
      upRes.pipe(res);
    };
    upRes.on('data', onData);
    upRes.on('end', () => {
      if (overflowed || clientGone || res.headersSent) return;
      const body = Buffer.concat(chunks);
      let rewritten: RewrittenAnswer | null;
      try {
        rewritten = transform.rewrite(body);
      } catch {
        rewritten = null; // a rewrite that cannot read the answer leaves it alone
      }
      if (!rewritten) {
        passThrough();
        res.end(body);
        return;
      }
      res.writeHead(rewritten.status, replaceHeaders(responseHeaders(upRes, options.responseHeaders ?? []), [...rewritten.headers, ['Content-Length', String(rewritten.body.length)]]));
      res.end(rewritten.body);
    });
  };

  send(0);
}
