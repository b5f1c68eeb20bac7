/**
 * The runner's HTTP server: the live page, its SSE feed, and the JSON API of
 * every feature (route modules). Bound to 127.0.0.1 by default; binding
 * elsewhere needs `server.allowRemote`. State-changing calls need the bearer
 * token. No CORS headers are ever sent, and requests whose Host header is not
 * this server's loopback name are refused (DNS rebinding).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../sinks/logger.js';
import { answerUnparsable, HttpError, rawHttpAnswer, sendError } from './http.js';
import type { Memtide } from './memtide.js';
import { compileRoutes, matchRoute, type RouteModule } from './router.js';
import { createStateRoutes, type StateRoutesOptions } from './routes/state.js';
import { hasToken, loadOrCreateToken } from './token.js';

export interface MemtideServer {
  readonly url: string;
  /** The bearer token for mutating calls. */
  readonly token: string;
  close(): Promise<void>;
}

export interface ServerOptions {
  memtide: Memtide;
  logger: Logger;
  /** Extra feature routes (the state routes are always there). */
  modules?: readonly RouteModule[];
  /** Live state options (e.g. the governor's models for the page). */
  state?: StateRoutesOptions;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

export class ServerError extends Error {
  readonly code = 'MEMTIDE_ERR_SERVER';
}

function hostAllowed(header: string | undefined, port: number, loopbackOnly: boolean): boolean {
  if (!loopbackOnly) return true;
  if (!header) return false;
  const match = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(header);
  if (!match?.[1]) return false;
  const host = match[1].replace(/^\[|\]$/g, '');
  return LOOPBACK.test(host) && (match[2] === undefined || Number(match[2]) === port);
}

/**
 * The request target as a URL. Origin-form ("/a/b?q") is read as a path even
 * when it starts with "//" (as a relative reference that would be a host);
 * a target no URL parser accepts (`http://[`) is the client's mistake.
 */
function requestUrl(target: string | undefined): URL {
  const raw = target ?? '/';
  try {
    return raw.startsWith('/') ? new URL(`http://localhost${raw}`) : new URL(raw, 'http://localhost');
  } catch {
    throw new HttpError(400, 'MEMTIDE_ERR_BAD_URL', `not a valid request target: "${raw.slice(0, 200)}"`);
  }
}

export async function startServer(options: ServerOptions): Promise<MemtideServer> {
  const { memtide, logger } = options;
  const config = memtide.config().server;
  const loopbackOnly = LOOPBACK.test(config.host);
  if (!loopbackOnly && !config.allowRemote) {
    throw new ServerError(`server.host is ${config.host}: binding beyond loopback needs server.allowRemote: true (and every client then needs the token)`);
  }
  const token = loadOrCreateToken(config.tokenFile);
  const context = { memtide, logger, config: () => memtide.config() };
  const modules = [createStateRoutes(options.state), ...(options.modules ?? [])].map((module) => module(context));
  const routes = compileRoutes(modules.flatMap((m) => m.routes));
  let port = config.port;

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    let pathname = req.url ?? '/';
    try {
      if (req.headers.host === undefined && req.httpVersion === '1.1') {
        throw new HttpError(400, 'MEMTIDE_ERR_HOST', 'no Host header (HTTP/1.1 requires one)');
      }
      if (!hostAllowed(req.headers.host, port, loopbackOnly)) {
        const host = req.headers.host;
        throw new HttpError(421, 'MEMTIDE_ERR_HOST', host === undefined ? 'no Host header: it must name this server' : `host "${host}" is not this server`);
      }
      // Parsed inside the try: a target `new URL` refuses must be a 400, not an unhandled rejection.
      const url = requestUrl(req.url);
      pathname = url.pathname;
      const found = matchRoute(routes, req.method ?? 'GET', url.pathname);
      if (!found) throw new HttpError(404, 'MEMTIDE_ERR_NOT_FOUND', `no such endpoint: ${url.pathname}`);
      if ('allowed' in found) {
        throw new HttpError(405, 'MEMTIDE_ERR_METHOD', `method ${req.method} not allowed on ${url.pathname}`, undefined, {
          allow: found.allowed.join(', '),
        });
      }
      const mutating = found.route.mutating ?? !['GET', 'HEAD'].includes(found.route.method);
      const needsToken = mutating || !loopbackOnly;
      if (needsToken && !hasToken(req.headers.authorization, token)) {
        throw new HttpError(401, 'MEMTIDE_ERR_UNAUTHORIZED', 'missing or wrong bearer token (see server.tokenFile)', undefined, {
          'www-authenticate': 'Bearer realm="memtide"',
        });
      }
      await found.route.handler(req, res, found.params, url);
    } catch (error) {
      if (!(error instanceof HttpError)) logger.error(`${req.method} ${pathname} failed: ${String(error)}`);
      sendError(res, error);
    }
  };

  // requireHostHeader off: Node's own answer to a missing Host is a bare 400; `handle` answers it in JSON.
  const server: Server = createServer({ requireHostHeader: false }, (req, res) => void handle(req, res));
  // Requests Node's parser refuses (or CONNECT) get the same JSON errors as every other answer.
  const unparsable = answerUnparsable(server, ({ status, code, message }) =>
    rawHttpAnswer(status, JSON.stringify({ error: message, code }), { 'cache-control': 'no-store' }),
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  port = address.port;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    token,
    close: () =>
      new Promise<void>((resolve) => {
        for (const module of modules) module.close?.();
        server.close(() => resolve());
        server.closeAllConnections();
        unparsable.destroySockets();
      }),
  };
}
