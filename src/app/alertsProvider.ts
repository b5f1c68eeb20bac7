/**
 * The alerts routes' provider over the history database's `alerts` table
 * (`HistoryStore#alerts` / `#acknowledgeAlert`). Typed structurally, so it
 * builds on whatever store has those two methods.
 */
import type { AlertListQuery, AlertsProvider, ListedAlert } from './routes/alerts.js';

/** The part of `HistoryStore` this provider uses. */
export interface AlertStore {
  readonly isOpen: boolean;
  alerts(query: AlertListQuery): Iterable<ListedAlert>;
  /** Returns the number of notifications acknowledged now. */
  acknowledgeAlert(key: string, atMs: number): number;
}

function isAlertStore(store: unknown): store is AlertStore {
  const candidate = store as Partial<AlertStore> | undefined;
  return typeof candidate?.alerts === 'function' && typeof candidate.acknowledgeAlert === 'function';
}

/** A provider over `store`, or undefined when there is no open store with an alerts table. */
export function historyAlertsProvider(store: unknown): AlertsProvider | undefined {
  if (!isAlertStore(store) || !store.isOpen) return undefined;
  return {
    list: (query) => store.alerts(query),
    acknowledge(key, atMs) {
      const acknowledged = store.acknowledgeAlert(key, atMs);
      if (acknowledged > 0) return acknowledged;
      // Nothing changed: already acknowledged (0), or no such key at all (null → 404).
      for (const alert of store.alerts({ sinceMs: 0, untilMs: atMs + 1 })) {
        if (alert.key === key) return 0;
      }
      return null;
    },
  };
}
