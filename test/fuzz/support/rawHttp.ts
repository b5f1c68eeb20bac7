/**
 * A raw HTTP/1.1 client over `net` for fuzzing servers with requests no
 * well-behaved client would send (bad request targets, lying Content-Length,
 * broken chunked framing, binary header values), and a strict parser of what
 * comes back: a response that is not well-formed HTTP is a failure, as is a
 * server that never answers a complete request.
 */
import net from 'node:net';

export interface RawResponse {
  status: number;
  reason: string;
  /** Lower-cased names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  body: Buffer;
  /** The response was a server-sent event stream: only its head was read. */
  streaming: boolean;
}

export type RawOutcome =
  | { kind: 'response'; response: RawResponse; extra: Buffer }
  /** The server closed the connection without a byte (allowed only for requests the client left incomplete). */
  | { kind: 'closed' }
  /** Bytes came back that are not an HTTP response. */
  | { kind: 'malformed'; reason: string; bytes: Buffer }
  | { kind: 'timeout'; bytes: Buffer };

export interface RawRequestOptions {
  port: number;
  host?: string;
  /** Half-close the socket after writing (the request is complete, or deliberately cut short). */
  endAfterWrite?: boolean;
  timeoutMs?: number;
}

const HEAD_END = Buffer.from('\r\n\r\n');

/** Parses one response from `bytes`; null when more bytes are needed (or the stream ended: then `ended`). */
export function parseResponse(bytes: Buffer, ended: boolean, method: string): { response: RawResponse; rest: Buffer } | { malformed: string } | null {
  const headEnd = bytes.indexOf(HEAD_END);
  if (headEnd < 0) {
    if (ended) return bytes.length === 0 ? null : { malformed: 'the connection ended inside the response head' };
    if (bytes.length > 64 * 1024) return { malformed: 'response head beyond 64 KiB' };
    return null;
  }
  const lines = bytes.subarray(0, headEnd).toString('latin1').split('\r\n');
  const statusLine = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0] ?? '');
  if (!statusLine) return { malformed: `bad status line ${JSON.stringify(lines[0])}` };
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0 || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(line.slice(0, colon))) return { malformed: `bad header line ${JSON.stringify(line)}` };
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  const status = Number(statusLine[1]);
  const response = (body: Buffer, streaming = false): RawResponse => ({ status, reason: statusLine[2] ?? '', headers, body, streaming });
  const afterHead = bytes.subarray(headEnd + 4);
  if (method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200)) {
    return { response: response(Buffer.alloc(0)), rest: afterHead };
  }
  if (/^text\/event-stream/i.test(headers['content-type'] ?? '')) return { response: response(afterHead, true), rest: Buffer.alloc(0) };
  if (headers['transfer-encoding'] !== undefined) {
    if (!/^chunked$/i.test(headers['transfer-encoding'])) return { malformed: `transfer-encoding ${headers['transfer-encoding']}` };
    const chunks: Buffer[] = [];
    let at = 0;
    for (;;) {
      const lineEnd = afterHead.indexOf('\r\n', at);
      if (lineEnd < 0) return ended ? { malformed: 'the connection ended inside a chunk size' } : null;
      const size = Number.parseInt(afterHead.subarray(at, lineEnd).toString('latin1').split(';')[0] ?? '', 16);
      if (!Number.isFinite(size) || size < 0) return { malformed: 'bad chunk size' };
      const dataStart = lineEnd + 2;
      if (size === 0) {
        const trailerEnd = afterHead.indexOf('\r\n', dataStart);
        if (trailerEnd < 0) return ended ? { malformed: 'the connection ended before the last chunk' } : null;
        return { response: response(Buffer.concat(chunks)), rest: afterHead.subarray(trailerEnd + 2) };
      }
      if (afterHead.length < dataStart + size + 2) return ended ? { malformed: 'the connection ended inside a chunk' } : null;
      chunks.push(afterHead.subarray(dataStart, dataStart + size));
      at = dataStart + size + 2;
    }
  }
  if (headers['content-length'] !== undefined) {
    const length = Number(headers['content-length']);
    if (!/^\d+$/.test(headers['content-length']) || !Number.isSafeInteger(length)) return { malformed: `content-length ${headers['content-length']}` };
    if (afterHead.length < length) return ended ? { malformed: `the connection ended after ${afterHead.length} of ${length} body bytes` } : null;
    return { response: response(afterHead.subarray(0, length)), rest: afterHead.subarray(length) };
  }
  // Neither: the body runs until the connection closes.
  return ended ? { response: response(afterHead), rest: Buffer.alloc(0) } : null;
}

/** Writes `request` (bytes as given) and reads the first response. */
export function rawRequest(request: Buffer | string, method: string, options: RawRequestOptions): Promise<RawOutcome> {
  const { port, host = '127.0.0.1', endAfterWrite = false, timeoutMs = 5_000 } = options;
  return new Promise((resolve) => {
    let received = Buffer.alloc(0);
    let done = false;
    const socket = net.connect({ port, host });
    const settle = (outcome: RawOutcome) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    const check = (ended: boolean) => {
      const parsed = parseResponse(received, ended, method);
      if (parsed === null) {
        if (ended) settle({ kind: 'closed' });
        return;
      }
      if ('malformed' in parsed) settle({ kind: 'malformed', reason: parsed.malformed, bytes: received });
      else settle({ kind: 'response', response: parsed.response, extra: parsed.rest });
    };
    const timer = setTimeout(() => settle({ kind: 'timeout', bytes: received }), timeoutMs);
    socket.on('connect', () => {
      socket.write(request);
      if (endAfterWrite) socket.end();
    });
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      check(false);
    });
    socket.on('end', () => check(true));
    socket.on('close', () => check(true));
    // A reset after the answer (the server destroys the socket on an unread body) is not the server's failure.
    socket.on('error', () => check(true));
  });
}

/** Builds a request: the head from parts, CRLF line ends, then the body bytes. */
export function buildRequest(method: string, target: string, headers: ReadonlyArray<readonly [string, string]>, body?: Buffer): Buffer {
  const head = [`${method} ${target} HTTP/1.1`, ...headers.map(([name, value]) => `${name}: ${value}`)].join('\r\n');
  return Buffer.concat([Buffer.from(`${head}\r\n\r\n`, 'latin1'), body ?? Buffer.alloc(0)]);
}

/** JSON body of a response, or undefined when it is not JSON. */
export function jsonOf(response: RawResponse): unknown {
  try {
    return JSON.parse(response.body.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}
