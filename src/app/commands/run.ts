import { Subscription } from 'rxjs';
import { createLogger } from '../../sinks/logger.js';
import { formatBytes } from '../units.js';
import { CONFIG_FLAGS, parse } from '../cliArgs.js';
import { createMemtide } from '../memtide.js';
import { startServer, type MemtideServer } from '../server.js';

export const runHelp = `memtide run [--config FILE] [--db FILE] [--interval 1s] [--host 127.0.0.1] [--port 7071]
            [--no-server] [--no-history] [--set KEY=VALUE]...

The daemon: samples every sampling.intervalMs, classifies pressure, writes
history to SQLite (history.path, default ./memtide.db), serves the live page
and API on http://127.0.0.1:7071, logs level changes. The config file is
watched: valid edits apply from the next sample, invalid ones are reported
and the last good config stays. SIGINT/SIGTERM flush history and exit 0.`;

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
  let server: MemtideServer | undefined;
  if (config.server.enabled) {
    try {
      server = await startServer({ memtide, logger });
    } catch (error) {
      memtide.stop();
      subscriptions.unsubscribe();
      throw error;
    }
  }
  const first = await memtide.sampleOnce();
  logger.info(
    `memtide running: ${formatBytes(first.system.availableBytes)} available of ${formatBytes(first.system.totalBytes)}, ` +
      `sampling every ${config.sampling.intervalMs} ms` +
      (config.history.enabled ? `, history in ${config.history.path}` : ', history off') +
      (server ? `, dashboard ${server.url}` : ''),
  );

  let resolveStopped: (code: number) => void = () => undefined;
  const stopped = new Promise<number>((resolve) => (resolveStopped = resolve));
  let stopping: Promise<void> | undefined;
  return {
    stopped,
    stop() {
      stopping ??= (async () => {
        await server?.close();
        subscriptions.unsubscribe();
        memtide.stop();
        logger.info('stopped');
        resolveStopped(0);
      })();
      return stopping;
    },
  };
}
