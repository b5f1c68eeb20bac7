/**
 * Small HTTP helpers shared by the runner's API and the proxy: JSON replies,
 * size-limited body reading, errors that carry a status and a field path, and
 * answers to requests Node's parser refused.
 */
import { STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Dotted path of the offending field, for validation errors. */
    readonly field?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/** The error reply every endpoint uses: `{ error, code, field? }`. */
export function sendError(res: ServerResponse, error: unknown): void {
  if (res.headersSent) {
    res.destroy(error instanceof Error ? error : undefined);
    return;
  }
  if (error instanceof HttpError) {
    sendJson(res, error.status, { error: error.message, code: error.code, ...(error.field !== undefined ? { field: error.field } : {}) }, error.headers);
    return;
  }
  sendJson(res, 500, { error: error instanceof Error ? error.message : String(error), code: 'MEMTIDE_ERR_INTERNAL' });
}

/** Reads the whole body up to `limitBytes` (413 past it), without ever holding more. */
export async function readBody(req: IncomingMessage, limitBytes: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limitBytes) {
    req.resume();
    throw new HttpError(413, 'MEMTIDE_ERR_BODY_TOO_LARGE', `request body of ${declared} bytes exceeds the limit of ${limitBytes}`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > limitBytes) {
        req.resume();
        throw new HttpError(413, 'MEMTIDE_ERR_BODY_TOO_LARGE', `request body exceeds the limit of ${limitBytes} bytes`);
      }
      chunks.push(chunk as Buffer);
    }
  } catch (error) {
    if (error instanceof HttpError) throw error;
    // The client went away mid-body or broke the framing ("aborted", ECONNRESET): its mistake, not a server failure.
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new HttpError(400, 'MEMTIDE_ERR_BODY_INCOMPLETE', `request body ended after ${size} bytes, before it was complete (${reason})`);
  }
  return Buffer.concat(chunks);
}

/** Reads and parses a JSON body; 415 for another content type, 400 naming the byte offset for bad JSON. */
export async function readJson(req: IncomingMessage, limitBytes: number): Promise<unknown> {
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/json\b/i.test(type)) {
    req.resume();
    throw new HttpError(415, 'MEMTIDE_ERR_CONTENT_TYPE', `expected content-type application/json, got "${type || 'none'}"`);
  }
  const body = await readBody(req, limitBytes);
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch (error) {
    throw new HttpError(400, 'MEMTIDE_ERR_BAD_JSON', `request body is not valid JSON: ${(error as Error).message}`);
  }
}

/** A request answered on its raw socket (Node's parser refused it, or a CONNECT): what to say. */
export interface UnparsableRequest {
  status: number;
  code: string;
  message: string;
  /** The request target when known (its head was parsed, or its request line read), e.g. to pick the answer's shape. */
  target?: string;
}

/** What to answer for an error Node's HTTP parser raised (its own defaults, with a JSON-ready code and message). */
export function clientErrorReply(error: NodeJS.ErrnoException): Omit<UnparsableRequest, 'target'> {
  switch (error.code) {
    case 'HPE_HEADER_OVERFLOW':
      return { status: 431, code: 'MEMTIDE_ERR_HEADERS_TOO_LARGE', message: 'request head (request line and headers) too large' };
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return { status: 413, code: 'MEMTIDE_ERR_BODY_TOO_LARGE', message: 'chunk extensions of the request body too large' };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { status: 408, code: 'MEMTIDE_ERR_REQUEST_TIMEOUT', message: 'request not received in time' };
    default:
      return { status: 400, code: 'MEMTIDE_ERR_BAD_REQUEST', message: `malformed HTTP request: ${(error as { reason?: string }).reason ?? error.code ?? error.message}` };
  }
}

/** A whole HTTP/1.1 answer that closes the connection, for a socket no ServerResponse can answer on. */
export function rawHttpAnswer(status: number, body: string, headers: Record<string, string> = {}): string {
  const head = Object.entries({ 'content-type': 'application/json; charset=utf-8', ...headers, 'content-length': String(Buffer.byteLength(body)), connection: 'close' })
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n${head}\r\n${body}`;
}

/** The request line's target in the bytes Node's parser choked on, if they start with one. */
function targetOf(error: NodeJS.ErrnoException, socket: Duplex): string | undefined {
  const inFlight = (socket as Duplex & { _httpMessage?: ServerResponse })._httpMessage;
  if (inFlight?.req?.url !== undefined) return inFlight.req.url;
  const raw = (error as { rawPacket?: unknown }).rawPacket;
  if (!Buffer.isBuffer(raw)) return undefined;
  return /^[A-Za-z]+ ([^\s]{1,2048})/.exec(raw.subarray(0, 4096).toString('latin1'))?.[1];
}

/**
 * Sends the answer and closes our side; input is read and dropped until the
 * client closes too (a paused socket would never see it go, and the server no
 * longer tracks it: `server.close()` would wait for it), or at most 5 s.
 */
export function answerAndClose(socket: Duplex, answer: string): void {
  socket.end(answer);
  socket.resume();
  const timer = setTimeout(() => socket.destroy(), 5_000);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

/**
 * Requests Node's parser rejects (bad framing, header bytes, an oversized
 * head, a body cut short) or cannot hand to a request handler (CONNECT) would
 * otherwise get a bare "400 Bad Request" without a body, or a closed
 * connection: `answer` writes what they get instead (e.g. with
 * {@link rawHttpAnswer}). The result destroys the sockets so answered that are
 * still open: call it when the server closes. Node hands a CONNECT's socket
 * over entirely, so `closeAllConnections()` never reaches it, and a client
 * that keeps it open would hold `close()` for the 5 s of `answerAndClose`.
 */
export function answerUnparsable(server: Server, answer: (request: UnparsableRequest) => string): { destroySockets(): void } {
  const answered = new Set<Duplex>();
  const send = (socket: Duplex, text: string) => {
    answered.add(socket);
    socket.once('close', () => answered.delete(socket));
    answerAndClose(socket, text);
  };
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    // A response already on its way (the handler answered the head before the broken body was parsed)
    // cannot be followed by another one on the same socket: close, as Node itself does.
    const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (error.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    const target = targetOf(error, socket);
    send(socket, answer({ ...clientErrorReply(error), ...(target !== undefined ? { target } : {}) }));
  });
  server.on('connect', (req: IncomingMessage, socket: Duplex) => {
    send(socket, answer({ status: 405, code: 'MEMTIDE_ERR_METHOD', message: `method ${req.method} not allowed`, ...(req.url !== undefined ? { target: req.url } : {}) }));
  });
  return {
    destroySockets() {
      for (const socket of answered) socket.destroy();
      answered.clear();
    },
  };
}
