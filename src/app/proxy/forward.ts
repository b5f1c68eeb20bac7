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
 */
import { request as httpRequest, type Agent, type ClientRequest, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { StringDecoder } from 'node:string_decoder';
import { sendProxyError } from './errorReply.js';

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
  /** Shape of the proxy's own 502 (OpenAI on /v1/*). */
  openAi: boolean;
  onDone(outcome: ForwardOutcome): void;
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
  const { upstream, body } = options;
  const basePath = upstream.pathname.replace(/\/$/, '');
  let finished = false;
  const finish = (outcome: ForwardOutcome) => {
    if (finished) return;
    finished = true;
    options.onDone(outcome);
  };
  let clientGone = false;
  let current: ClientRequest | null = null;
  res.on('close', () => {
    if (res.writableFinished) return;
    clientGone = true;
    current?.destroy();
    finish({ ok: false, error: 'client disconnected' });
  });
  req.socket.setNoDelay(true);

  // A request with no body to resend can be retried once when a reused keep-alive socket was closed under it.
  const replayable = body !== undefined || req.method === 'GET' || req.method === 'HEAD';

  const send = (attempt: number): void => {
    const open = upstream.protocol === 'https:' ? httpsRequest : httpRequest;
    const upReq = open({
      protocol: upstream.protocol,
      hostname: upstream.hostname.replace(/^\[|\]$/g, ''),
      port: upstream.port || (upstream.protocol === 'https:' ? 443 : 80),
      method: req.method,
      path: basePath + (req.url ?? '/'),
      headers: requestHeaders(req, upstream, body),
      agent: options.agent,
    });
    current = upReq;
    upReq.on('socket', (socket) => socket.setNoDelay(true));
    upReq.on('response', (upRes) => onResponse(upRes));
    upReq.on('error', (error: NodeJS.ErrnoException) => {
      if (clientGone) return;
      if (attempt === 0 && replayable && upReq.reusedSocket && error.code === 'ECONNRESET' && !res.headersSent) {
        send(1);
        return;
      }
      const message = `upstream ${upstream.origin} failed: ${error.code ?? error.message}`;
      if (res.headersSent) res.destroy();
      else sendProxyError(res, { status: 502, message, code: 'MEMTIDE_ERR_UPSTREAM' }, options.openAi);
      finish({ ok: false, status: 502, error: message });
    });
    if (body !== undefined) upReq.end(body);
    else if (attempt === 0) req.pipe(upReq);
    else upReq.end();
  };

  const onResponse = (upRes: IncomingMessage) => {
    const status = upRes.statusCode ?? 502;
    res.writeHead(status, upRes.statusMessage, responseHeaders(upRes, options.responseHeaders ?? []));
    const streamed = upRes.headers['content-length'] === undefined;
    if (streamed) res.flushHeaders();
    const errorOf =
      status >= 400 ? errorBodyWatcher(upRes, status) : STREAM_TYPES.test(upRes.headers['content-type'] ?? '') ? errorLineWatcher(upRes) : () => undefined;
    upRes.pipe(res);
    upRes.on('end', () => {
      const error = errorOf();
      finish({ ok: error === undefined, status, ...(error !== undefined ? { error } : {}) });
    });
    const lost = () => {
      if (upRes.complete) return;
      res.destroy();
      finish({ ok: false, status, error: 'upstream connection lost mid-answer' });
    };
    upRes.on('error', lost);
    upRes.on('close', lost);
  };

  send(0);
}
