/**
 * Small HTTP helpers shared by the runner's API and the proxy: JSON replies,
 * size-limited body reading, and errors that carry a status and a field path.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

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
