/**
 * The shape every alert sink has. `write` is called on the path that
 * produced the alert (ultimately the sampling timer), so it must return at
 * once: a sink that does slow work (the webhook) queues it and does it
 * elsewhere. `write` never throws; a sink reports its own failures through
 * the `onError` it was created with.
 */
import type { Alert } from '../model.js';

export interface AlertSink {
  /** For log lines: `log`, `jsonl`, `history`, `webhook`. */
  readonly name: string;
  /** Takes one notification; returns at once and never throws. */
  write(alert: Alert): void;
  /** Releases what the sink holds (timers, in-flight requests). Idempotent. */
  close(): void;
}

/** How sinks report a failure they survived (the alert is lost for that sink only). */
export type AlertSinkErrorHandler = (error: unknown, alert: Alert | null) => void;
