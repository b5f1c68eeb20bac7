/**
 * Alert sink: the `alerts` table of the history database. One transaction
 * per notification (alerts are rare). A failed write (e.g. a query iterator
 * still open on the same connection) is reported and loses that row only.
 */
import type { AlertSink, AlertSinkErrorHandler } from './alertSink.js';
import type { HistoryStore } from './historyStore.js';

export function alertHistory(store: Pick<HistoryStore, 'appendAlerts'>, onError: AlertSinkErrorHandler): AlertSink {
  return {
    name: 'history',
    write(alert) {
      try {
        store.appendAlerts([alert]);
      } catch (error) {
        onError(error, alert);
      }
    },
    close() {},
  };
}
