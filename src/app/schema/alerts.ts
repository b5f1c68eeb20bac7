/**
 * Config section `alerts`: which conditions alert, how notifications are
 * deduplicated (Alertmanager / Netdata hygiene, see docs/alerts.md), and where
 * they go. Thresholds and timings are hot-reloadable; sink settings are read
 * when the sinks start.
 */
import { z } from 'zod';
import { ALERT_SEVERITIES } from '../../model.js';
import { bytes, componentName, duration } from '../schemaTypes.js';

const engineSchema = z
  .strictObject({
    maxRssBytes: bytes('RSS limit.')
      .nullable()
      .prefault('512MiB')
      .describe("Alert (warning) when the engine's own RSS (the host's, when embedded) is above this; null disables."),
    maxHeapUsedBytes: bytes('Heap limit.')
      .nullable()
      .prefault('256MiB')
      .describe("Alert (warning) when the engine's V8 heap in use is above this; null disables."),
    maxSampleCpuMs: duration('CPU limit.')
      .nullable()
      .prefault('100ms')
      .describe('Alert (warning) when taking one sample costs more CPU time (user + system) than this; null disables.'),
    stallIntervals: z
      .number()
      .int()
      .min(2)
      .max(1000)
      .default(5)
      .describe('Alert (critical) when no sample arrived for this many sampling intervals: memtide is blind.'),
  })
  .describe("Health of memtide itself.")
  .prefault({});

const jsonlSchema = z
  .strictObject({
    path: z
      .string()
      .min(1)
      .nullable()
      .default(null)
      .describe('Append every notification as one JSON line to this file (created with its directory); null: off.'),
  })
  .describe('JSON lines file sink.')
  .prefault({});

const webhookSchema = z
  .strictObject({
    url: z
      .url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' })
      .nullable()
      .default(null)
      .describe('POST every notification as JSON to this URL (payload in docs/alerts.md); null: no webhook.'),
    minSeverity: z.enum(ALERT_SEVERITIES).default('warning').describe('Only notifications of at least this severity are posted.'),
    timeoutMs: duration('One delivery attempt is aborted after this long.').prefault('5s'),
    retries: z
      .number()
      .int()
      .min(0)
      .max(10)
      .default(3)
      .describe('Retries after a failed attempt (network error, timeout, HTTP 408, 429 or 5xx); other 4xx answers are not retried.'),
    backoffMs: duration('Wait before the first retry; doubles with every further retry.').prefault('1s'),
    maxQueue: z
      .number()
      .int()
      .min(1)
      .max(10_000)
      .default(100)
      .describe('Notifications waiting for delivery; when full, the oldest is dropped and counted.'),
  })
  .describe('Webhook sink: delivered off the sampling path, with retries and a bounded queue.')
  .prefault({});

export const alertsSchema = z
  .strictObject({
    enabled: z.boolean().default(true).describe('Evaluate alert conditions and send notifications.'),
    groupWaitMs: duration(
      'A condition must hold this long before its first notification; one that clears sooner never notifies (Alertmanager group_wait).',
    ).prefault('30s'),
    repeatIntervalMs: duration('A condition still firing is notified again after this long (Alertmanager repeat_interval).').prefault('4h'),
    recoveryDelayMs: duration(
      'A condition must stay clear this long before the recovery is notified (Netdata delays recoveries 15 min).',
    ).prefault('2m'),
    flapMultiplier: z
      .number()
      .min(1)
      .max(10)
      .default(1.5)
      .describe('Each flap (a condition returning while its recovery is delayed) multiplies the recovery delay by this (Netdata: 1.5).'),
    maxRecoveryDelayMs: duration('Cap of the flap-multiplied recovery delay (Netdata: 1h).').prefault('1h'),
    clearMarginPercent: z
      .number()
      .min(0)
      .max(50)
      .default(5)
      .describe('Hysteresis: a budget or engine limit clears only when usage is this many percent below the limit.'),
    pressureMinLevel: z
      .enum(['medium', 'high', 'critical'])
      .default('medium')
      .describe('Lowest pressure level that alerts: medium is info, high warning, critical critical.'),
    exhaustionHorizonMs: duration(
      'Alert (critical) when a leak would exhaust available memory within this time.',
    ).prefault('2h'),
    componentBudgets: z
      .record(componentName, bytes('Budget of the component.'))
      .prefault({})
      .describe('Per-component memory budgets, e.g. { "ollama": "5GB" }: a component above its budget alerts (warning). PSS when read, else RSS.'),
    engine: engineSchema,
    log: z.boolean().default(true).describe('Log every notification (critical as error, warning as warn, info and recoveries as info).'),
    history: z.boolean().default(true).describe('Store every notification in the history database (alerts table) when history is enabled.'),
    jsonl: jsonlSchema,
    webhook: webhookSchema,
  })
  .refine((a) => a.maxRecoveryDelayMs >= a.recoveryDelayMs, {
    message: 'must be at least recoveryDelayMs',
    path: ['maxRecoveryDelayMs'],
  })
  .describe('Alerts: thresholds, repeat interval, recovery, flap damping, sinks.')
  .prefault({});
export type AlertsConfig = z.output<typeof alertsSchema>;
