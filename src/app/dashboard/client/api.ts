/**
 * Calls to the runner's JSON API. Every call carries the bearer token when the
 * page has one (same origin only: these are relative URLs). Errors keep the
 * server's `code`, `field` and per-field `issues` so views can show them
 * where they belong; an endpoint this runner does not have (404 "no such
 * endpoint", 501, 503) is flagged `unavailable` so views can say so calmly.
 */
import { getToken } from './token.js';

export interface FieldIssue {
  path: string;
  message: string;
}

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    message: string,
    readonly status: number,
    readonly code: string | null,
    readonly issues: FieldIssue[],
    /** The runner does not offer this (yet): a missing endpoint, not implemented, or the feature is off. */
    readonly unavailable: boolean,
  ) {
    super(message);
  }
}

interface ErrorBody {
  error?: string;
  code?: string;
  field?: string;
  issues?: Array<{ path?: string | Array<string | number>; message?: string }>;
}

function issuesOf(body: ErrorBody): FieldIssue[] {
  const issues = (body.issues ?? []).map((issue) => ({
    path: Array.isArray(issue.path) ? issue.path.join('.') : (issue.path ?? ''),
    message: issue.message ?? 'invalid',
  }));
  if (issues.length === 0 && body.field) issues.push({ path: body.field, message: body.error ?? 'invalid' });
  return issues;
}

export interface ApiOptions {
  method?: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  body?: unknown;
  signal?: AbortSignal;
}

export async function api<T>(path: string, options: ApiOptions = {}): Promise<T> {
  const method = options.method ?? 'GET';
  const token = getToken();
  const headers: Record<string, string> = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers,
      ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      credentials: 'omit',
    });
  } catch (error) {
    if ((error as Error).name === 'AbortError') throw error;
    throw new ApiError(`the runner did not answer ${method} ${path} (${String(error)})`, 0, null, [], false);
  }
  const text = await response.text();
  if (response.ok) return (text ? JSON.parse(text) : null) as T;
  let body: ErrorBody = {};
  try {
    body = JSON.parse(text) as ErrorBody;
  } catch {
    body = { error: text.slice(0, 200) };
  }
  const code = body.code ?? null;
  const unavailable =
    response.status === 501 || response.status === 503 || (response.status === 404 && (code === 'MEMTIDE_ERR_NOT_FOUND' || code === null) && /no such endpoint/.test(body.error ?? 'no such endpoint'));
  let message = body.error ?? `${method} ${path} answered ${response.status}`;
  if (response.status === 401) {
    message = token
      ? 'the runner refused the token (401): open the dashboard URL that `memtide run` prints, or paste the token in Settings'
      : 'this needs the token (401): open the dashboard URL that `memtide run` prints (it carries the token), or paste the token in Settings';
  }
  throw new ApiError(message, response.status, code, issuesOf(body), unavailable);
}

/** A short line for the user: what failed and why. */
export function describeError(action: string, error: unknown): string {
  if (error instanceof ApiError) {
    if (error.unavailable) return `${action}: not available on this runner (${error.status}${error.message ? `: ${error.message}` : ''})`;
    return `${action} failed: ${error.message}`;
  }
  return `${action} failed: ${String(error)}`;
}
