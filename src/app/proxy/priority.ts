/**
 * Request priority: a client marks a request it can do without under memory
 * pressure with `X-Memtide-Priority: optional` (e.g. a live summary during a
 * meeting). While the coordinator has live summaries disabled, the proxy
 * answers such requests 503 with `Retry-After` instead of loading a model,
 * and they never reach the governor or Ollama. Unmarked requests (all of
 * Meetily's today: it sends no such header) are never deferred.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { OptionalDeferral } from '../../streams/governorApi.js';
import type { ProxyErrorReply } from './errorReply.js';

export const PRIORITY_HEADER = 'x-memtide-priority';
export const PRIORITIES = ['normal', 'optional'] as const;
export type RequestPriority = (typeof PRIORITIES)[number];

/** The request's priority, or a message naming the header when its value is not one we know. */
export function priorityOf(headers: IncomingHttpHeaders): RequestPriority | { error: string } {
  const raw = headers[PRIORITY_HEADER];
  if (raw === undefined) return 'normal';
  const value = (Array.isArray(raw) ? raw.join(',') : raw).trim().toLowerCase();
  if ((PRIORITIES as readonly string[]).includes(value)) return value as RequestPriority;
  return { error: `X-Memtide-Priority: expected ${PRIORITIES.join(' or ')}, got "${Array.isArray(raw) ? raw.join(',') : raw}"` };
}

/** The 503 for a deferred optional request: why, and when to come back. */
export function deferredReply(deferral: OptionalDeferral): ProxyErrorReply {
  const seconds = Math.max(1, Math.ceil(deferral.retryAfterMs / 1000));
  return {
    status: 503,
    code: 'MEMTIDE_ERR_OPTIONAL_DEFERRED',
    message: `optional request deferred (X-Memtide-Priority: optional): ${deferral.reason}; retry in ${seconds} s`,
    retryAfterSeconds: seconds,
  };
}
