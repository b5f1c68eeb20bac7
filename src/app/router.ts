/**
 * Route modules for the runner's HTTP server. Each feature (state, models,
 * alerts, transcription, ...) contributes routes from its own file; the server
 * handles auth, errors and the 404/405 answers once for all of them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../sinks/logger.js';
import type { MemtideConfig } from './config.js';
import { HttpError } from './http.js';
import type { Memtide } from './memtide.js';

export type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface RouteContext {
  memtide: Memtide;
  logger: Logger;
  config(): MemtideConfig;
}

export interface Route {
  method: Method;
  /** `/api/models/:name/unload` — `:x` segments become `params.x` (URL-decoded). */
  path: string;
  /** Needs the bearer token. Default: every method but GET/HEAD. */
  mutating?: boolean;
  handler(req: IncomingMessage, res: ServerResponse, params: Record<string, string>, url: URL): void | Promise<void>;
}

/** A feature's routes, built once when the server starts; `close` runs when it stops. */
export type RouteModule = (context: RouteContext) => { routes: Route[]; close?(): void };

interface CompiledRoute extends Route {
  pattern: RegExp;
  names: string[];
}

export function compileRoutes(routes: readonly Route[]): CompiledRoute[] {
  return routes.map((route) => {
    const names: string[] = [];
    const source = route.path
      .split('/')
      .map((segment) => {
        if (!segment.startsWith(':')) return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        names.push(segment.slice(1));
        return '([^/]+)';
      })
      .join('/');
    return { ...route, pattern: new RegExp(`^${source}$`), names };
  });
}

/** A `:param` segment, URL-decoded; bad percent-encoding (`%E0`, `%zz`) is a 400 naming the parameter. */
function decodeParam(name: string, raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new HttpError(400, 'MEMTIDE_ERR_BAD_URL', `${name}: not valid percent-encoded UTF-8: "${raw.slice(0, 200)}"`, name);
  }
}

/** The route for a request, or which methods the path allows (for 405), or nothing (404); throws a 400 HttpError for a malformed `:param`. */
export function matchRoute(
  routes: readonly CompiledRoute[],
  method: string,
  pathname: string,
): { route: CompiledRoute; params: Record<string, string> } | { allowed: Method[] } | null {
  const allowed: Method[] = [];
  for (const route of routes) {
    const match = route.pattern.exec(pathname);
    if (!match) continue;
    if (route.method === method || (method === 'HEAD' && route.method === 'GET')) {
      const params: Record<string, string> = {};
      route.names.forEach((name, index) => (params[name] = decodeParam(name, match[index + 1] ?? '')));
      return { route, params };
    }
    allowed.push(route.method);
  }
  return allowed.length ? { allowed } : null;
}
