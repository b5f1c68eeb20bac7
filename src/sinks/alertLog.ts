/**
 * Alert sink: one log line per notification. Critical alerts log as `error`,
 * warnings as `warn`, info and every recovery as `info`; the recommendations
 * go along as a field (one string per step, with its command).
 */
import type { Alert, AlertSeverity, Recommendation } from '../model.js';
import { formatBytes } from '../app/units.js';
import type { AlertSink } from './alertSink.js';
import type { Logger } from './logger.js';

const LEVEL: Record<AlertSeverity, 'error' | 'warn' | 'info'> = { critical: 'error', warning: 'warn', info: 'info' };

/** `Unload ... (memtide models unload x; frees 4.1 GiB)`. */
export function describeRecommendation(step: Recommendation): string {
  const extra = [step.command, step.expectedSavingBytes === undefined ? undefined : `frees ~${formatBytes(step.expectedSavingBytes)}`].filter(
    (x): x is string => x !== undefined,
  );
  return extra.length ? `${step.action} (${extra.join('; ')})` : step.action;
}

/** The line's text: `alert firing critical exhaustion:ollama (repeat 2): title: message`. */
export function alertLogText(alert: Alert): string {
  const repeat = alert.status === 'firing' && alert.repeat > 0 ? ` (repeat ${alert.repeat})` : '';
  return `alert ${alert.status} ${alert.severity} ${alert.key}${repeat}: ${alert.title}: ${alert.message}`;
}

export function alertLog(logger: Logger): AlertSink {
  return {
    name: 'log',
    write(alert) {
      const level = alert.status === 'resolved' ? 'info' : LEVEL[alert.severity];
      const fields: Record<string, unknown> = { key: alert.key, kind: alert.kind, sinceMs: alert.sinceMs };
      if (alert.component !== null) fields.component = alert.component;
      if (alert.recommendations.length) fields.recommendations = alert.recommendations.map(describeRecommendation);
      try {
        logger[level](alertLogText(alert), fields);
      } catch {
        // A logger that throws (a closed stderr) must not take the other sinks down; there is nowhere left to report it.
      }
    },
    close() {},
  };
}
