/**
 * Alerts over HTTP: list the notifications (firing, resolved, acknowledged)
 * and acknowledge the ones of a key. Built on an `AlertsProvider`, so the
 * routes do not care where alerts are kept (the history database by default,
 * see `alertsProvider.ts`).
 */
import type { Alert } from '../../model.js';
import { HttpError, readBody, sendJson } from '../http.js';
import type { Route, RouteModule, RouteContext } from '../router.js';
import { parseDuration } from '../units.js';
import { historyAlertsProvider } from '../alertsProvider.js';

/** A stored notification and when someone acknowledged it. */
export type ListedAlert = Alert & { acknowledgedAtMs: number | null };

export interface AlertListQuery {
  sinceMs: number;
  untilMs?: number;
  /** Only firing or only resolved notifications; both when omitted. */
  status?: Alert['status'];
}

export interface AlertsProvider {
  /** Notifications in `[sinceMs, untilMs)`, oldest first. Read synchronously or not: the route reads at most `limit` of them. */
  list(query: AlertListQuery): Iterable<ListedAlert> | AsyncIterable<ListedAlert>;
  /**
   * Acknowledges every not yet acknowledged notification of `key` up to
   * `atMs`; returns how many were acknowledged now (0 when all already
   * were), or null when there is no notification with this key at all.
   */
  acknowledge(key: string, atMs: number): number | null | Promise<number | null>;
}

export interface AlertsRoutesOptions {
  /** Default: the engine's history database, when it is open and has the alerts table. */
  provider?: AlertsProvider;
  now?: () => number;
}

export const MAX_ALERTS = 10_000;

function providerOf(context: RouteContext, options: AlertsRoutesOptions): AlertsProvider | undefined {
  if (options.provider) return options.provider;
  return historyAlertsProvider(context.memtide.history);
}

function sinceParam(params: URLSearchParams, nowMs: number): number {
  const raw = params.get('since') ?? '24h';
  if (/^\d+$/.test(raw) && Number.isSafeInteger(Number(raw))) return Number(raw);
  const ago = parseDuration(raw);
  if (ago === null) throw new HttpError(400, 'MEMTIDE_ERR_QUERY', `since: not a time: "${raw}" (epoch milliseconds, or a duration ago such as 1h)`, 'since');
  return nowMs - ago;
}

export function alertsRoutes(options: AlertsRoutesOptions = {}): RouteModule {
  return (context) => {
    const now = options.now ?? Date.now;
    const provider = () => {
      const found = providerOf(context, options);
      if (!found) throw new HttpError(503, 'MEMTIDE_ERR_ALERTS_UNAVAILABLE', 'alerts are not kept here (history is off, or this engine has no alerts store)');
      return found;
    };

    const routes: Route[] = [
      {
        method: 'GET',
        path: '/api/alerts',
        handler: async (_req, res, _params, url) => {
          const params = url.searchParams;
          const nowMs = now();
          const sinceMs = sinceParam(params, nowMs);
          const status = params.get('status') ?? 'all';
          if (!['firing', 'resolved', 'all', 'unacknowledged'].includes(status)) {
            throw new HttpError(400, 'MEMTIDE_ERR_QUERY', `status: expected firing, resolved, unacknowledged or all, got "${status}"`, 'status');
          }
          const limitRaw = params.get('limit') ?? '1000';
          const limit = Number(limitRaw);
          if (!/^\d+$/.test(limitRaw) || limit < 1 || limit > MAX_ALERTS) {
            throw new HttpError(400, 'MEMTIDE_ERR_QUERY', `limit: expected a whole number from 1 to ${MAX_ALERTS}, got "${limitRaw}"`, 'limit');
          }
          const query: AlertListQuery = { sinceMs, ...(status === 'firing' || status === 'resolved' ? { status } : {}) };
          const alerts: ListedAlert[] = [];
          let truncated = false;
          const take = (alert: ListedAlert): boolean => {
            if (status === 'unacknowledged' && alert.acknowledgedAtMs !== null) return true;
            if (alerts.length === limit) {
              truncated = true;
              return false;
            }
            alerts.push(alert);
            return true;
          };
          const listed = provider().list(query);
          if (Symbol.iterator in listed) {
            // A synchronous (SQLite) cursor is read to the end or closed by `break` in one go,
            // so it is never left open across an await (it would block the writer meanwhile).
            for (const alert of listed) if (!take(alert)) break;
          } else {
            for await (const alert of listed) if (!take(alert)) break;
          }
          sendJson(res, 200, { sinceMs, status, limit, truncated, alerts });
        },
      },
      {
        method: 'POST',
        path: '/api/alerts/:key/ack',
        handler: async (req, res, params) => {
          // No body is needed; one sent anyway (the dashboard sends `{}`) is read within the limit and ignored.
          await readBody(req, context.config().server.bodyLimitBytes);
          const key = params.key ?? '';
          const atMs = now();
          const acknowledged = await provider().acknowledge(key, atMs);
          if (acknowledged === null) throw new HttpError(404, 'MEMTIDE_ERR_NOT_FOUND', `no alert with key "${key}"`, 'key');
          sendJson(res, 200, { key, acknowledged, atMs });
        },
      },
    ];
    return { routes };
  };
}
