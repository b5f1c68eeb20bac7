/**
 * The one schema of memtide's configuration. It validates the file, the
 * environment and the flags, fills defaults, and generates both the JSON
 * Schema (`memtide config --schema`) and the reference in docs/configuration.md.
 * Every object is strict: an unknown key is an error naming its path, because
 * a misspelt setting that silently does nothing is the worst kind of bug in a
 * tool people only look at when memory is already short.
 */
import { z } from 'zod';
import { bytes, componentName, duration, percent, regex } from './schemaTypes.js';
import { alertsSchema } from './schema/alerts.js';
import { audioSchema } from './schema/audio.js';
import { leaksSchema } from './schema/leaks.js';
import { modelsSchema } from './schema/models.js';
import { optimizationSchema } from './schema/optimization.js';
import { proxySchema } from './schema/proxy.js';
import { transcriptionSchema } from './schema/transcription.js';

export { bytes, componentName, duration } from './schemaTypes.js';

export const componentRuleSchema = z
  .strictObject({
    component: componentName.describe('Component the matching processes belong to.'),
    name: regex('Regular expression matched against the whole process name (comm, e.g. "ollama").').optional(),
    cmdline: regex('Regular expression searched in the full command line.').optional(),
    childOf: regex('Only match processes that have an ancestor whose name matches this expression.').optional(),
    pidFile: z.string().min(1).optional().describe('File holding the pid of a process of this component.'),
    port: z.number().int().min(1).max(65535).optional().describe('TCP port the process listens on.'),
  })
  .refine((rule) => [rule.name, rule.cmdline, rule.pidFile, rule.port].some((m) => m !== undefined), {
    message: 'a rule needs at least one of name, cmdline, pidFile, port',
  });
export type ComponentRule = z.infer<typeof componentRuleSchema>;

/** Meetily's processes (see docs/components.md for where each name comes from). */
export const DEFAULT_COMPONENT_RULES: z.input<typeof componentRuleSchema>[] = [
  { component: 'frontend', name: '(WebKitWebProcess|WebKitNetworkProcess|WebKitGPUProcess|msedgewebview2(\\.exe)?|com\\.apple\\.WebKit\\..*)', childOf: 'meetily.*' },
  { component: 'ollama', name: '(ollama|ollama\\.exe|ollama_llama_server|llama-helper|llama-helper\\.exe)' },
  { component: 'audio', name: '(whisper-server|whisper|whisper-cli|memtide-whisper|ffmpeg|ffmpeg\\.exe)' },
  { component: 'backend', name: '(meetily|meetily\\.exe|meetily-backend)' },
  { component: 'backend', cmdline: '\\b(uvicorn|gunicorn|hypercorn)\\b.*\\bmain:app\\b' },
  { component: 'backend', cmdline: '\\bpython[0-9.]*\\b.*\\bmain\\.py\\b' },
];

const levelThresholdSchema = z
  .strictObject({
    availablePercent: percent('Enter the level when available memory is at or below this percent of the effective total.'),
    psiSomeAvg10: percent('Enter the level when PSI memory "some" avg10 is at or above this percent.'),
    psiFullAvg10: percent('Enter the level when PSI memory "full" avg10 is at or above this percent.'),
    swapUsedPercent: percent('Enter the level when swap use is at or above this percent of swap.'),
  })
  .describe('Signals that put memory at this level; any one suffices. null disables a signal.');

export const PRESETS = ['4gb', '8gb', '16gb'] as const;
export type PresetName = (typeof PRESETS)[number];

export const pressureSchema = z
  .strictObject({
    preset: z
      .enum(['auto', ...PRESETS])
      .default('auto')
      .describe('Threshold preset; "auto" picks 4gb (<= 6 GiB effective), 8gb (<= 12 GiB) or 16gb from the effective total.'),
    thresholds: z
      .strictObject({
        medium: levelThresholdSchema.optional(),
        high: levelThresholdSchema.optional(),
        critical: levelThresholdSchema.optional(),
      })
      .default({})
      .describe('Overrides of the preset, per level and signal.'),
    marginPercent: z
      .number()
      .min(0)
      .max(50)
      .default(5)
      .describe('Hysteresis: a level is left only after every signal has recovered past its threshold by this many percentage points.'),
    dwellMs: duration('Minimum time a level is held before it may fall (rises are immediate).').prefault(30_000),
  })
  .prefault({});
export type PressureConfig = z.output<typeof pressureSchema>;
export type LevelThreshold = z.output<typeof levelThresholdSchema>;

export const configSchema = z
  .strictObject({
    sampling: z
      .strictObject({
        intervalMs: duration('Time between samples.')
          .pipe(z.number().min(50, 'at least 50 ms: faster sampling costs more than it tells'))
          .prefault(1000),
        pss: z
          .enum(['watched', 'all', 'off'])
          .default('watched')
          .describe('Read PSS (smaps_rollup, ~0.3 ms a process) for watched components only, all processes, or none.'),
      })
      .prefault({}),
    components: z
      .strictObject({
        rules: z
          .array(componentRuleSchema)
          .prefault(DEFAULT_COMPONENT_RULES)
          .describe('Ordered rules; the first match wins. Unmatched processes inherit their parent\'s component, else "other".'),
        engine: componentName.default('engine').describe('Component of memtide\'s own process (the host process when embedded).'),
      })
      .prefault({}),
    pressure: pressureSchema,
    history: z
      .strictObject({
        enabled: z.boolean().default(true).describe('Keep history in SQLite.'),
        path: z.string().min(1).default('memtide.db').describe('SQLite file (relative to the working directory).'),
        flushIntervalMs: duration('Samples are written in one transaction per interval; a crash loses at most this much.').prefault(5000),
        rawRetentionMs: duration('How long every sample is kept.').prefault('24h'),
        aggregateBucketMs: duration('Bucket of the downsampled history.').prefault('1m'),
        aggregateRetentionMs: duration('How long downsampled history is kept.').prefault('30d'),
        retentionIntervalMs: duration('How often old history is pruned.').prefault('1h'),
        maxPendingRecords: z
          .number()
          .int()
          .min(0)
          .default(3600)
          .describe(
            'Samples and pressure changes kept in memory while history writes fail (disk full, database locked), written with the next flush that succeeds; beyond it the oldest are dropped and counted. About 1 KB a sample.',
          ),
      })
      .superRefine((h, ctx) => {
        if (h.aggregateRetentionMs < h.rawRetentionMs) {
          ctx.addIssue({
            code: 'custom',
            path: ['aggregateRetentionMs'],
            message: `${h.aggregateRetentionMs} ms is less than history.rawRetentionMs (${h.rawRetentionMs} ms): aggregates must outlive the raw samples they summarise`,
          });
        }
      })
      .prefault({}),
    server: z
      .strictObject({
        enabled: z.boolean().default(true).describe('Serve the dashboard and the API (memtide run).'),
        host: z.string().min(1).default('127.0.0.1').describe('Address of the dashboard and API; loopback by default.'),
        port: z.number().int().min(0).max(65535).default(7071).describe('TCP port of the dashboard and API (0 picks a free one).'),
        allowRemote: z
          .boolean()
          .default(false)
          .describe('Allow binding beyond loopback; then every request, reads included, needs the token.'),
        tokenFile: z
          .string()
          .min(1)
          .default('memtide.token')
          .describe('Bearer token for state-changing calls: created on first start with mode 0600, reused after.'),
        updateIntervalMs: duration('Least time between two live updates of the same kind sent to the dashboard (SSE); the latest value is always sent.').prefault(
          '1s',
        ),
        bodyLimitBytes: bytes('Largest JSON request body accepted (413 past it).').prefault('1MB'),
        historyCacheBytes: bytes(
          'Byte budget of the history query cache (LRU of finished /api/history answers); 0 turns caching off.',
        ).prefault('16MiB'),
      })
      .prefault({}),
    leaks: leaksSchema,
    alerts: alertsSchema,
    models: modelsSchema,
    proxy: proxySchema,
    audio: audioSchema,
    transcription: transcriptionSchema,
    optimization: optimizationSchema,
    log: z
      .strictObject({
        level: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info').describe('Least severe level written to stderr.'),
        format: z.enum(['text', 'json']).default('text').describe('text for people, json (one object a line) for log shippers.'),
      })
      .prefault({}),
  })
  .prefault({});

/** The validated, defaults-filled configuration. */
export type MemtideConfig = z.output<typeof configSchema>;
/** What a user may write (every key optional, units as strings). */
export type MemtideConfigInput = z.input<typeof configSchema>;
