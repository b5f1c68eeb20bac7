/**
 * `GET /api/actions`: what the coordinator and the model governor did (or,
 * in observe-only mode, decided), newest first, with memory before and
 * after. Read from the history database's `actions` table; when history is
 * off, from a fallback (the coordinator's in-memory records) if one is given.
 *
 * Query: `since` (epoch ms, or a duration ago such as `1h`; default 24h),
 * `until` (epoch ms, exclusive; default none), `limit` (1..10000, default 1000).
 * Answer: `{ sinceMs, untilMs, limit, truncated, actions: StoredAction[] }`.
 */
import type { ActionQuery, StoredAction } from '../../sinks/historyStore.js';
import { MAX_ACTIONS_QUERY } from '../../sinks/historyStore.js';
import { HttpError, sendJson } from '../http.js';
import type { Route, RouteContext, RouteModule } from '../router.js';
import { parseDuration } from '../units.js';

/** Where actions are read: `limit` newest in `[sinceMs, untilMs)`, newest first. */
export interface ActionsSource {
  actions(query: ActionQuery): readonly StoredAction[];
}

export interface ActionsLogRoutesOptions {
  /** Default: the engine's history database when it is open. */
  source?: ActionsSource;
  /** Used when there is no source (history off), e.g. `actionsSourceOf(coordinator)`. */
  fallback?: ActionsSource;
  now?: () => number;
}

/** An in-memory source over records kept newest first (the coordinator's `recent`). */
export function recentActionsSource(recent: (limit: number) => readonly StoredAction[]): ActionsSource {
  return {
    actions: (query) =>
      recent(MAX_ACTIONS_QUERY)
        .filter((a) => a.atMs >= query.sinceMs && a.atMs < (query.untilMs ?? Infinity))
        .slice(0, query.limit ?? 1000),
  };
}

function isActionsSource(store: unknown): store is ActionsSource & { isOpen: boolean } {
  const candidate = store as Partial<ActionsSource & { isOpen: boolean }> | undefined;
  return typeof candidate?.actions === 'function' && candidate.isOpen === true;
}

function timeParam(params: URLSearchParams, name: string, fallback: string | null, nowMs: number): number | undefined {
  const raw = params.get(name) ?? fallback;
  if (raw === null) return undefined;
  if (/^\d+$/.test(raw) && Number.isSafeInteger(Number(raw))) return Number(raw);
  const ago = parseDuration(raw);
  if (ago === null) throw new HttpError(400, 'MEMTIDE_ERR_QUERY', `${name}: not a time: "${raw}" (epoch milliseconds, or a duration ago such as 1h)`, name);
  return nowMs - ago;
}

export function actionsLogRoutes(options: ActionsLogRoutesOptions = {}): RouteModule {
  return (context: RouteContext) => {
    const now = options.now ?? Date.now;
    const source = (): ActionsSource => {
      if (options.source) return options.source;
      const history = context.memtide.history;
      if (isActionsSource(history)) return history;
      if (options.fallback) return options.fallback;
      throw new HttpError(503, 'MEMTIDE_ERR_ACTIONS_UNAVAILABLE', 'actions are not kept here (history is off and no coordinator runs in this engine)');
    };
    const routes: Route[] = [
      {
        method: 'GET',
        path: '/api/actions',
        handler: (_req, res, _params, url) => {
          const params = url.searchParams;
          const nowMs = now();
          const sinceMs = timeParam(params, 'since', '24h', nowMs)!;
          const untilMs = timeParam(params, 'until', null, nowMs);
          const limitRaw = params.get('limit') ?? '1000';
          const limit = Number(limitRaw);
          if (!/^\d+$/.test(limitRaw) || limit < 1 || limit > MAX_ACTIONS_QUERY) {
            throw new HttpError(400, 'MEMTIDE_ERR_QUERY', `limit: expected a whole number from 1 to ${MAX_ACTIONS_QUERY}, got "${limitRaw}"`, 'limit');
          }
          // One more than asked says whether there are more.
          const rows = source().actions({ sinceMs, ...(untilMs !== undefined ? { untilMs } : {}), limit: Math.min(MAX_ACTIONS_QUERY, limit + 1) });
          const truncated = rows.length > limit;
          sendJson(res, 200, { sinceMs, untilMs: untilMs ?? null, limit, truncated, actions: rows.slice(0, limit) });
        },
      },
    ];
    return { routes };
  };
}
