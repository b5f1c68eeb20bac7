/**
 * Alert sink: appends each notification as one JSON line to a file.
 *
 * One `appendFileSync` per notification: alerts are rare (a handful an
 * hour at worst, thanks to throttleAlerts), and a synchronous append means
 * the line is in the kernel before `write` returns, so exiting or crashing
 * right after an alert never loses its line (an OS crash can still lose the
 * page cache). Lines are written whole with `O_APPEND`, so two memtide
 * processes appending to one file do not interleave within a line.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Alert } from '../model.js';
import type { AlertSink, AlertSinkErrorHandler } from './alertSink.js';

export function alertJsonl(path: string, onError: AlertSinkErrorHandler): AlertSink {
  let directoryReady = false;
  return {
    name: 'jsonl',
    write(alert: Alert) {
      try {
        if (!directoryReady) {
          mkdirSync(dirname(path), { recursive: true });
          directoryReady = true;
        }
        appendFileSync(path, `${JSON.stringify(alert)}\n`);
      } catch (error) {
        onError(error, alert);
      }
    },
    close() {},
  };
}
