import { Subscription, type Observable } from 'rxjs';
import { createLogger, type Logger, type LogLevel } from '../../sinks/logger.js';
import { createOllamaApi } from '../../sources/ollamaApi.js';
import type { GovernorAction } from '../../streams/governorApi.js';
import { createModelGovernor, type GovernorProblem, type ModelGovernorHandle } from '../../streams/modelGovernor.js';
import { CONFIG_FLAGS, parse, UsageError } from '../cliArgs.js';
import { createMemtide, type Memtide } from '../memtide.js';
import { startProxyFromConfig } from '../proxy/fromConfig.js';
import { parseListen, parseUpstream } from '../proxy/listen.js';
import type { ProxyHandle } from '../proxy/proxy.js';
import { formatBytes } from '../units.js';

export const proxyHelp = `memtide proxy [--listen 127.0.0.1:11435] [--upstream http://127.0.0.1:11434]
              [--idle-timeout 1m] [--model-budget 6GB] [--max-concurrent N]
              [--allow-remote] [--no-governor] [--config FILE] [--set KEY=VALUE]...

An Ollama-compatible proxy with the model governor in front of Ollama: point
Meetily's Ollama endpoint at http://127.0.0.1:11435 (docs/proxy.md). Every
request is forwarded and streamed back unchanged; model requests are admitted
by the governor first (idle unload, byte budget, pressure holds, context size,
quantization; config section "models"), and get num_ctx / num_batch / keep_alive
injected where the API carries them (/api/*, and /v1/chat/completions, which is
translated to /api/chat; other /v1/* requests carry only the model).

  --listen         proxy.listen (loopback unless --allow-remote)
  --upstream       models.upstream, the Ollama server
  --idle-timeout   models.idleTimeoutMs (e.g. 5m)
  --model-budget   models.budgetBytes (e.g. 6GB)
  --max-concurrent models.maxConcurrent
  --allow-remote   proxy.allowRemote (then every request needs the token)
  --no-governor    forward only (no admission, no unloads)

Logs every governor decision to stderr. SIGINT/SIGTERM stop it (exit 0).`;

export interface ProxyRunHandle {
  readonly url: string;
  readonly governor: ModelGovernorHandle | undefined;
  readonly stopped: Promise<number>;
  stop(): Promise<void>;
}

export async function proxyCommand(args: string[], out: (text: string) => void): Promise<number> {
  const handle = await startProxyRunner(args, out);
  if (!handle) return 0;
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${signal}: stopping the proxy\n`);
    void handle.stop();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const code = await handle.stopped;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  return code;
}

function describeAction(action: GovernorAction): string {
  const bytes = action.bytes !== null ? ` (${formatBytes(action.bytes)})` : '';
  return `governor ${action.kind}${action.model ? ` ${action.model}` : ''}${bytes}: ${action.reason}${action.executed ? '' : ' [observe only]'}`;
}

/** The governor over the Ollama server of `models.upstream`, fed by memtide's config, pressure and samples. */
export function governorForMemtide(memtide: Memtide): ModelGovernorHandle {
  return createModelGovernor({
    api: createOllamaApi({ host: memtide.config().models.upstream }),
    config$: memtide.config$,
    pressure$: memtide.pressure$,
    samples$: memtide.samples$,
  });
}

/** Logs the governor's decisions and problems; returns the subscriptions. */
export function logGovernor(governor: { actions$: Observable<GovernorAction>; problems$?: Observable<GovernorProblem> }, logger: Logger): Subscription {
  const subscriptions = new Subscription();
  subscriptions.add(
    governor.actions$.subscribe({
      next: (action) => (action.kind === 'reject' || action.kind === 'hold' ? logger.warn(describeAction(action)) : logger.info(describeAction(action))),
      error: (error: unknown) => logger.error(`governor actions failed: ${String(error)}`),
    }),
  );
  if (governor.problems$) {
    subscriptions.add(
      governor.problems$.subscribe({
        next: (problem) => logger.warn(`governor: ${problem.operation} failed (continuing): ${problem.error instanceof Error ? problem.error.message : String(problem.error)}`),
        error: (error: unknown) => logger.error(`governor problems feed failed: ${String(error)}`),
      }),
    );
  }
  return subscriptions;
}

/** Starts memtide (sampling only), the governor and the proxy; resolves once serving (exported for tests). */
export async function startProxyRunner(args: string[], out: (text: string) => void): Promise<ProxyRunHandle | null> {
  const { values } = parse(args, {
    ...CONFIG_FLAGS,
    listen: { type: 'string' },
    upstream: { type: 'string' },
    'idle-timeout': { type: 'string' },
    'model-budget': { type: 'string' },
    'max-concurrent': { type: 'string' },
    'allow-remote': { type: 'boolean' },
    'no-governor': { type: 'boolean' },
  });
  if (values.help) {
    out(`${proxyHelp}\n`);
    return null;
  }
  if (values.listen !== undefined && typeof parseListen(values.listen) === 'string') throw new UsageError(`--listen: ${String(parseListen(values.listen))}`);
  if (values.upstream !== undefined && typeof parseUpstream(values.upstream) === 'string') throw new UsageError(`--upstream: ${String(parseUpstream(values.upstream))}`);
  let maxConcurrent: number | undefined;
  if (values['max-concurrent'] !== undefined) {
    maxConcurrent = Number(values['max-concurrent']);
    if (!Number.isInteger(maxConcurrent) || maxConcurrent < 1) throw new UsageError(`--max-concurrent: expected a whole number >= 1, got "${values['max-concurrent']}"`);
  }

  let logConfig: { level: LogLevel; format: 'text' | 'json' } = { level: 'info', format: 'text' };
  const logger = createLogger(() => logConfig);
  // Embedded mode: sampling and pressure only (no history file, no dashboard).
  const memtide = createMemtide({
    mode: 'embedded',
    configFile: values.config,
    set: values.set ?? [],
    flags: {
      'proxy.listen': values.listen,
      'proxy.allowRemote': values['allow-remote'] ? true : undefined,
      'models.upstream': values.upstream,
      'models.idleTimeoutMs': values['idle-timeout'],
      'models.budgetBytes': values['model-budget'],
      'models.maxConcurrent': maxConcurrent,
    },
    logger,
  });
  const subscriptions = new Subscription();
  subscriptions.add(memtide.config$.subscribe({ next: (c) => (logConfig = c.log), error: () => undefined }));
  subscriptions.add(
    memtide.pressure$.subscribe({
      next: (change) => {
        const text = `pressure ${change.previous ?? 'start'} -> ${change.level}`;
        if (change.level === 'critical' || change.level === 'high') logger.warn(text);
        else logger.info(text);
      },
      error: (error: unknown) => logger.error(`pressure stream failed: ${String(error)}`),
    }),
  );

  const config = memtide.config();
  let governor: ModelGovernorHandle | undefined;
  let proxy: ProxyHandle;
  try {
    if (!values['no-governor']) {
      governor = governorForMemtide(memtide);
      subscriptions.add(logGovernor(governor, logger));
    } else {
      logger.warn('--no-governor: forwarding only, no model is admitted, sized or unloaded');
    }
    proxy = await startProxyFromConfig({ config$: memtide.config$, config, ...(governor ? { governor } : {}), logger });
  } catch (error) {
    governor?.stop();
    subscriptions.unsubscribe();
    memtide.stop();
    throw error;
  }
  out(`memtide proxy on ${proxy.url} -> ${config.models.upstream}\n`);

  let resolveStopped: (code: number) => void = () => undefined;
  const stopped = new Promise<number>((resolve) => (resolveStopped = resolve));
  let stopping: Promise<void> | undefined;
  return {
    url: proxy.url,
    governor,
    stopped,
    stop() {
      stopping ??= (async () => {
        await proxy.close();
        governor?.stop();
        subscriptions.unsubscribe();
        memtide.stop();
        logger.info('proxy stopped');
        resolveStopped(0);
      })();
      return stopping;
    },
  };
}
