/**
 * The proxy as the configuration describes it (`proxy` and `models`
 * sections), for `memtide proxy` and for `memtide run` when `proxy.enabled`.
 */
import { distinctUntilChanged, map, type Observable } from 'rxjs';
import type { Logger } from '../../sinks/logger.js';
import type { ModelGovernor } from '../../streams/governorApi.js';
import type { MemtideConfig } from '../config.js';
import { loadOrCreateToken } from '../token.js';
import type { UpstreamPolicy } from './forward.js';
import { isLoopbackHost, parseListen } from './listen.js';
import { ProxyError, startProxy, type ProxyHandle, type ProxySettings } from './proxy.js';

/** The proxy's hot-reloadable settings, upstream retry and timeout policy included. */
export const proxySettingsOf = (config: MemtideConfig): ProxySettings => ({
  bodyLimitBytes: config.proxy.bodyLimitBytes,
  useMmap: config.models.useMmap,
  upstreamRetries: config.proxy.upstreamRetries,
  retryBackoffMs: config.proxy.retryBackoffMs,
  upstreamTimeoutMs: config.proxy.upstreamTimeoutMs,
  openAiChat: config.proxy.openAiChat,
  advertiseContext: config.proxy.advertiseContext,
});

/** The upstream policy part of the settings, as `forward()` takes it. */
export const upstreamPolicyOf = (settings: Partial<ProxySettings>): Partial<UpstreamPolicy> => ({
  ...(settings.upstreamRetries !== undefined ? { upstreamRetries: settings.upstreamRetries } : {}),
  ...(settings.retryBackoffMs !== undefined ? { retryBackoffMs: settings.retryBackoffMs } : {}),
  ...(settings.upstreamTimeoutMs !== undefined ? { upstreamTimeoutMs: settings.upstreamTimeoutMs } : {}),
});

const sameSettings = (a: ProxySettings, b: ProxySettings) =>
  a.bodyLimitBytes === b.bodyLimitBytes &&
  a.useMmap === b.useMmap &&
  a.upstreamRetries === b.upstreamRetries &&
  a.retryBackoffMs === b.retryBackoffMs &&
  a.upstreamTimeoutMs === b.upstreamTimeoutMs &&
  a.openAiChat === b.openAiChat &&
  a.advertiseContext === b.advertiseContext;

export interface ProxyFromConfigOptions {
  /** The live config (`memtide.config$`); its first value decides the listen address and upstream. */
  config$: Observable<MemtideConfig>;
  config: MemtideConfig;
  governor?: ModelGovernor;
  logger: Logger;
}

/** Starts the proxy on `proxy.listen`, forwarding to `models.upstream`, with hot-reloaded settings. */
export async function startProxyFromConfig(options: ProxyFromConfigOptions): Promise<ProxyHandle> {
  const { config, logger } = options;
  const listen = parseListen(config.proxy.listen);
  if (typeof listen === 'string') throw new ProxyError(`proxy.listen: ${listen}`);
  const remote = !isLoopbackHost(listen.host);
  let pendingRestart = '';
  const settings$ = options.config$.pipe(
    map((c) => {
      const wanted = `${c.proxy.listen} -> ${c.models.upstream}`;
      if (wanted !== `${config.proxy.listen} -> ${config.models.upstream}` && wanted !== pendingRestart) {
        pendingRestart = wanted;
        logger.warn(`proxy.listen / models.upstream changed to ${wanted}: the proxy keeps ${config.proxy.listen} -> ${config.models.upstream} until restarted`);
      }
      return proxySettingsOf(c);
    }),
    distinctUntilChanged(sameSettings),
  );
  return startProxy({
    listen,
    upstream: config.models.upstream,
    ...(options.governor ? { governor: options.governor } : {}),
    config: proxySettingsOf(config),
    config$: settings$,
    logger,
    allowRemote: config.proxy.allowRemote,
    ...(remote ? { token: loadOrCreateToken(config.server.tokenFile) } : {}),
  });
}
