/**
 * Errors the proxy itself answers (bad body, governor refusal, upstream
 * unreachable), in the shape the client expects from the API it called:
 * Ollama's `{"error": "..."}` on `/api/*`, OpenAI's
 * `{"error": {"message", "type", "param", "code"}}` on `/v1/*`. Both carry the
 * memtide code so logs and clients can tell the proxy's answers from Ollama's.
 * Requests Node's HTTP parser refused get them too, written raw on the socket
 * (`rawProxyError`).
 */
import type { ServerResponse } from 'node:http';
import { rawHttpAnswer } from '../http.js';

export interface ProxyErrorReply {
  status: number;
  message: string;
  /** `MEMTIDE_ERR_*`. */
  code: string;
  /** Offending field of the request body, when there is one. */
  field?: string;
  /** Byte offset in the request body, for malformed JSON. */
  offset?: number;
  /** Seconds, for 429/503. */
  retryAfterSeconds?: number;
}

/** `openai.NewError`'s types: 400 invalid_request_error, 404 not_found_error, else api_error. */
const openAiType = (status: number) => (status === 400 || status === 413 ? 'invalid_request_error' : status === 404 ? 'not_found_error' : 'api_error');

export function proxyErrorBody(reply: ProxyErrorReply, openAi: boolean): Record<string, unknown> {
  const where = { ...(reply.field !== undefined ? { field: reply.field } : {}), ...(reply.offset !== undefined ? { offset: reply.offset } : {}) };
  if (openAi) {
    return { error: { message: reply.message, type: openAiType(reply.status), param: reply.field ?? null, code: reply.code, ...where } };
  }
  return { error: reply.message, code: reply.code, ...where };
}

export function sendProxyError(res: ServerResponse, reply: ProxyErrorReply, openAi: boolean): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (res.destroyed) return;
  const text = JSON.stringify(proxyErrorBody(reply, openAi));
  res.writeHead(reply.status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    via: '1.1 memtide',
    ...(reply.retryAfterSeconds !== undefined ? { 'retry-after': String(reply.retryAfterSeconds) } : {}),
  });
  res.end(text);
}

/** The same error as a whole raw HTTP answer (closing the connection), for a socket Node's parser gave up on. */
export function rawProxyError(reply: ProxyErrorReply, openAi: boolean): string {
  return rawHttpAnswer(reply.status, JSON.stringify(proxyErrorBody(reply, openAi)), {
    via: '1.1 memtide',
    ...(reply.retryAfterSeconds !== undefined ? { 'retry-after': String(reply.retryAfterSeconds) } : {}),
  });
}
