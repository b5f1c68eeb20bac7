import { Subscription, distinctUntilChanged, map, type Observable } from 'rxjs';
import type { StoredAction } from '../../actionTypes.js';
import type { Alert } from '../../model.js';
import { createHistoryQueryCache, type HistoryQueryCache } from '../../sinks/historyQueryCache.js';
import type { Logger } from '../../sinks/logger.js';
import type { ModelGovernor } from '../../streams/governorApi.js';
import type { ModelGovernorHandle } from '../../streams/modelGovernor.js';
import type { CoordinatorHandle } from '../../streams/coordinator.js';
import { actionLabel, describeRecord } from '../../streams/coordinator/describe.js';
import { coordinatorForMemtide } from '../../streams/coordinator/forMemtide.js';
import { startProxyFromConfig } from '../proxy/fromConfig.js';
import type { ProxyHandle } from '../proxy/proxy.js';
import { actionsRoutes } from '../routes/actions.js';
import { actionsLogRoutes, recentActionsSource } from '../routes/actionsLog.js';
import { alertsRoutes, type AlertsRoutesOptions } from '../routes/alerts.js';
import { configRoutes } from '../routes/config.js';
import { dashboardRoutes } from '../routes/dashboard.js';
import { frontendMemoryRoutes } from '../routes/frontendMemory.js';
import { historyCacheBytesOf, historyRoutes } from '../routes/history.js';
import { metricsRoutes } from '../routes/metrics.js';
import { modelRoutes } from '../routes/models.js';
import { createTranscriptionService, transcriptionRoutesWith, type TranscriptionService } from '../routes/transcribe.js';
import { governorForMemtide, logGovernor } from './proxy.js';
import { createLogger } from '../../sinks/logger.js';
import { formatBytes } from '../units.js';
import { CONFIG_FLAGS, parse } from '../cliArgs.js';
import { createMemtide } from '../memtide.js';
import type { RouteModule } from '../router.js';
import { startServer, type MemtideServer } from '../server.js';

export const runHelp = `memtide run [--config FILE] [--db FILE] [--interval 1s] [--host 127.0.0.1] [--port 7071]
            [--no-server] [--no-history] [--set KEY=VALUE]...

The daemon: samples every sampling.intervalMs, classifies pressure, writes
history to SQLite (history.path, default ./memtide.db), serves the live page
and API on http://127.0.0.1:7071, logs level changes. The config file is
watched: valid edits apply from the next sample, invalid ones are reported
and the last good config stays. SIGINT/SIGTERM flush history and exit 0.`;

/** What the runner's HTTP API is built from. */
export interface RunnerRouteParts {
  governor: ModelGovernor;
  transcription: TranscriptionService;
  /** Shared by `/api/history` and `/metrics`. */
  historyCache: HistoryQueryCache;
  /** Alert notifications, counted by `/metrics`. */
  alerts$: Observable<Alert>;
  /** The coordinator's records, newest first: `GET /api/actions` when history is off. */
  recentActions: (limit: number) => readonly StoredAction[];
  /** Tests: alerts from elsewhere than the history database. */
  alerts?: AlertsRoutesOptions;
  /** Tests: without prom-client's process metrics (default with them). */
  defaultMetrics?: boolean;
}

/** Every route module `memtide run` serves (the API fuzz test serves the same list). */
export function runnerRoutes(parts: RunnerRouteParts): RouteModule[] {
  const { governor, transcription, historyCache } = parts;
  return [
    dashboardRoutes,
    configRoutes(),
    historyRoutes({ cache: historyCache }),
    alertsRoutes(parts.alerts),
    actionsRoutes(),
    actionsLogRoutes({ fallback: recentActionsSource(parts.recentActions) }),
    modelRoutes(governor),
    transcriptionRoutesWith(transcription),
    frontendMemoryRoutes(),
    metricsRoutes({ historyCache, governor, alerts$: parts.alerts$, transcription, defaultMetrics: parts.defaultMetrics }),
  ];
}

/** Governor actions as they happen; its problems once per distinct message (Ollama being down is not news every 2 s). */
function logGovernorQuietly(governor: ModelGovernorHandle, logger: Logger): Subscription {
  const subscriptions = logGovernor({ actions$: governor.actions$ }, logger);
  subscriptions.add(
    governor.problems$
      .pipe(
        map((problem) => `governor: ${problem.operation} failed (continuing): ${problem.error instanceof Error ? problem.error.message : String(problem.error)}`),
        distinctUntilChanged(),
      )
      .subscribe({ next: (message) => logger.warn(message), error: () => undefined }),
  );
  return subscriptions;
}

/** The coordinator's decisions as they happen (governor actions are logged by the governor's own log). */
function logCoordinator(coordinator: CoordinatorHandle, logger: Logger): Subscription {
  const subscriptions = new Subscription();
  subscriptions.add(
    coordinator.actions$.subscribe({
      next: ({ type, record }) => {
        if (record.source !== 'coordinator') return;
        if (type === 'recorded') logger.warn(`coordinator: ${describeRecord(record)}`);
        else if (type === 'undone') logger.info(`coordinator: ${actionLabel(record.kind)} undone${record.executed ? '' : ' (observe-only, not executed)'}`);
        else if (type === 'failed') logger.error(`coordinator: ${actionLabel(record.kind)} failed: ${record.error ?? 'unknown error'}`);
      },
      error: (error: unknown) => logger.error(`coordinator actions failed: ${String(error)}`),
    }),
  );
  subscriptions.add(
    coordinator.problems$.subscribe({
      next: (problem) => logger.warn(`coordinator: ${problem.operation} failed (continuing): ${problem.error instanceof Error ? problem.error.message : String(problem.error)}`),
      error: (error: unknown) => logger.error(`coordinator problems feed failed: ${String(error)}`),
    }),
  );
  return subscriptions;
}

export interface RunHandle {
  stopped: Promise<number>;
  stop(): Promise<void>;
}

export async function runCommand(args: string[], out: (text: string) => void): Promise<number> {
  const handle = await startRunner(args, out);
  if (!handle) return 0;
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${signal}: flushing history and stopping\n`);
    void handle.stop();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return handle.stopped;
}

/** Starts the runner; resolves once it is serving (exported for tests). */
export async function startRunner(args: string[], out: (text: string) => void): Promise<RunHandle | null> {
  const { values } = parse(args, {
    ...CONFIG_FLAGS,
    db: { type: 'string' },
    interval: { type: 'string' },
    host: { type: 'string' },
    port: { type: 'string' },
    'no-server': { type: 'boolean' },
    'no-history': { type: 'boolean' },
  });
  if (values.help) {
    out(`${runHelp}\n`);
    return null;
  }
  let logConfig = { level: 'info' as const, format: 'text' as const } as { level: 'debug' | 'info' | 'warn' | 'error' | 'silent'; format: 'text' | 'json' };
  const logger = createLogger(() => logConfig);
  const memtide = createMemtide({
    mode: 'runner',
    configFile: values.config,
    set: values.set ?? [],
    flags: {
      'history.path': values.db,
      'sampling.intervalMs': values.interval,
      'server.host': values.host,
      'server.port': values.port === undefined ? undefined : Number(values.port),
      'server.enabled': values['no-server'] ? false : undefined,
      'history.enabled': values['no-history'] ? false : undefined,
    },
    logger,
  });
  const subscriptions = new Subscription();
  subscriptions.add(memtide.config$.subscribe({ next: (c) => (logConfig = c.log), error: () => undefined }));
  subscriptions.add(
    memtide.pressure$.subscribe({
      next: (change) => {
        const text = `pressure ${change.previous ?? 'start'} -> ${change.level}${change.reasons.length ? ` (${change.reasons.join('; ')})` : ''}`;
        if (change.level === 'critical' || change.level === 'high') logger.warn(text);
        else logger.info(text);
      },
      error: (error: unknown) => logger.error(`pressure stream failed: ${String(error)}`),
    }),
  );
  subscriptions.add(
    memtide.problems$.subscribe({
      next: (problem) => logger.error(`${problem.source} problem (continuing): ${String(problem.error)}`),
      error: () => undefined,
    }),
  );

  const config = memtide.config();
  // The governor watches Ollama's loaded models (and unloads idle ones) whether or not Meetily goes through the proxy.
  const governor = governorForMemtide(memtide);
  subscriptions.add(logGovernorQuietly(governor, logger));
  const transcription = createTranscriptionService();
  const historyCache = createHistoryQueryCache({ maxBytes: historyCacheBytesOf(config) });
  // Pressure answered across components: unload idle models, fewer chunks at once, small caches, no live summaries.
  const coordinator = coordinatorForMemtide(memtide, {
    governor,
    transcription,
    caches: [historyCache],
    onHistoryError: (error) => logger.warn(`coordinator: writing an action to history failed (continuing): ${String(error)}`),
  });
  subscriptions.add(logCoordinator(coordinator, logger));
  let server: MemtideServer | undefined;
  let proxy: ProxyHandle | undefined;
  const release = async () => {
    await proxy?.close();
    await server?.close();
    coordinator.stop();
    subscriptions.unsubscribe();
    governor.stop();
    memtide.stop();
  };
  try {
    if (config.server.enabled) {
      server = await startServer({
        memtide,
        logger,
        state: { models$: governor.models$ },
        modules: runnerRoutes({ governor, transcription, historyCache, alerts$: memtide.alerts$, recentActions: (limit) => coordinator.recent(limit) }),
      });
    }
    if (config.proxy.enabled) {
      proxy = await startProxyFromConfig({ config$: memtide.config$, config, governor, logger });
    }
  } catch (error) {
    await release();
    throw error;
  }
  const first = await memtide.sampleOnce();
  logger.info(
    `memtide running: ${formatBytes(first.system.availableBytes)} available of ${formatBytes(first.system.totalBytes)}, ` +
      `sampling every ${config.sampling.intervalMs} ms` +
      (config.history.enabled ? `, history in ${config.history.path}` : ', history off') +
      (server ? `, dashboard ${server.url}/#token=${server.token}` : '') +
      (proxy ? `, Ollama proxy ${proxy.url} -> ${config.models.upstream}` : ''),
  );

  let resolveStopped: (code: number) => void = () => undefined;
  const stopped = new Promise<number>((resolve) => (resolveStopped = resolve));
  let stopping: Promise<void> | undefined;
  return {
    stopped,
    stop() {
      stopping ??= (async () => {
        await release();
        logger.info('stopped');
        resolveStopped(0);
      })();
      return stopping;
    },
  };
}
