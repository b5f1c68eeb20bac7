/**
 * The model governor's control API on the runner's server (`memtide models`
 * talks to it):
 * - `GET  /api/models`               loaded models (size, context, in flight, idle, pinned);
 * - `POST /api/models/:name/unload`  unload now (waits for requests in flight to end);
 * - `POST /api/models/:name/pin`     never unload for idleness / budget / high pressure;
 * - `POST /api/models/:name/unpin`.
 * The POSTs change state, so they need the bearer token (the server checks it).
 * Pins made here last until the governor stops; `models.pinned` in the config
 * is the permanent list. Names with `/` (e.g. `hf.co/org/model:tag`) are sent
 * URL-encoded as one path segment.
 */
import type { IncomingMessage } from 'node:http';
import { GovernorError, type ModelGovernor } from '../../streams/governorApi.js';
import { HttpError, sendJson } from '../http.js';
import type { Route, RouteModule } from '../router.js';

/** What the listing adds when the governor can tell (ModelGovernorHandle has these). */
interface GovernorExtras {
  budgetBytes?: () => number;
  queued?: () => number;
}

function validName(name: string): string {
  if (name.length === 0 || name.length > 200 || /[\s\u0000-\u001f]/.test(name)) {
    throw new HttpError(400, 'MEMTIDE_ERR_BAD_MODEL', `not a model name: "${name.slice(0, 60)}"`, 'name');
  }
  return name;
}

/** A governor or Ollama failure as the HTTP answer of this API. */
function toHttpError(error: unknown, model: string): HttpError {
  if (error instanceof HttpError) return error;
  if (error instanceof GovernorError) {
    const headers: Record<string, string> = error.retryAfterMs !== null ? { 'retry-after': String(Math.max(1, Math.ceil(error.retryAfterMs / 1000))) } : {};
    return new HttpError(error.status, error.code, error.message, undefined, headers);
  }
  const status = (error as { status?: unknown }).status;
  const code = (error as { code?: unknown }).code;
  const message = error instanceof Error ? error.message : String(error);
  // An Ollama answer (OllamaApiError carries its HTTP status): 404 stays 404, anything else is a bad gateway.
  if (typeof status === 'number') return new HttpError(status === 404 ? 404 : 502, typeof code === 'string' ? code : 'MEMTIDE_ERR_OLLAMA', `${model}: ${message}`);
  return new HttpError(502, typeof code === 'string' ? code : 'MEMTIDE_ERR_OLLAMA', `${model}: ${message}`);
}

/** The routes over `governor`; the lead registers `modelRoutes(governor)` with the runner's server. */
export function modelRoutes(governor: ModelGovernor): RouteModule {
  return ({ logger }) => {
    const extras = governor as ModelGovernor & GovernorExtras;
    const routes: Route[] = [
      {
        method: 'GET',
        path: '/api/models',
        handler(_req, res) {
          sendJson(res, 200, {
            models: governor.list(),
            ...(typeof extras.budgetBytes === 'function' ? { budgetBytes: extras.budgetBytes() } : {}),
            ...(typeof extras.queued === 'function' ? { queued: extras.queued() } : {}),
          });
        },
      },
      {
        method: 'POST',
        path: '/api/models/:name/unload',
        async handler(req: IncomingMessage, res, params) {
          const name = validName(params.name ?? '');
          req.resume();
          if (!governor.list().some((m) => m.name === name)) {
            throw new HttpError(404, 'MEMTIDE_ERR_MODEL_NOT_LOADED', `model "${name}" is not loaded (see GET /api/models)`);
          }
          try {
            await governor.unload(name);
          } catch (error) {
            throw toHttpError(error, name);
          }
          logger.info(`models: ${name} unloaded on request`);
          sendJson(res, 200, { model: name, unloaded: true });
        },
      },
      {
        method: 'POST',
        path: '/api/models/:name/pin',
        handler(req, res, params) {
          const name = validName(params.name ?? '');
          req.resume();
          governor.pin(name);
          logger.info(`models: ${name} pinned`);
          sendJson(res, 200, { model: name, pinned: true });
        },
      },
      {
        method: 'POST',
        path: '/api/models/:name/unpin',
        handler(req, res, params) {
          const name = validName(params.name ?? '');
          req.resume();
          governor.unpin(name);
          logger.info(`models: ${name} unpinned`);
          sendJson(res, 200, { model: name, pinned: false });
        },
      },
    ];
    return { routes };
  };
}
