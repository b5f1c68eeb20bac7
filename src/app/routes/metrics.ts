/**
 * `GET /metrics`: Prometheus exposition (text format 0.0.4) of this engine's
 * own registry (see `sinks/metrics.ts`). A read, so no token on loopback;
 * with `server.allowRemote` the scraper sends the token like every client
 * (Prometheus: `authorization: { credentials_file: ... }`, docs/metrics.md).
 */
import { createMetrics, type MemtideMetrics, type MetricsSources } from '../../sinks/metrics.js';
import { HttpError } from '../http.js';
import type { RouteModule } from '../router.js';

export type MetricsRoutesOptions = Omit<MetricsSources, 'samples$' | 'pressure$' | 'onError'> & {
  /** Serve these metrics instead of creating them from the engine's streams. */
  metrics?: MemtideMetrics;
};

export function metricsRoutes(options: MetricsRoutesOptions = {}): RouteModule {
  return ({ memtide, logger }) => {
    const { metrics: given, ...providers } = options;
    const metrics =
      given ??
      createMetrics({
        ...providers,
        samples$: memtide.samples$,
        pressure$: memtide.pressure$,
        onError: (error) => logger.error(`metrics stopped following a stream: ${String(error)}`),
      });
    return {
      routes: [
        {
          method: 'GET',
          path: '/metrics',
          handler: async (_req, res) => {
            if (!metrics.ready()) {
              // Before the first sample every memory gauge would read 0: better no scrape than a false one.
              throw new HttpError(503, 'MEMTIDE_ERR_NOT_READY', 'no sample taken yet', undefined, { 'retry-after': '1' });
            }
            const text = await metrics.render();
            res.writeHead(200, { 'content-type': metrics.contentType, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
            res.end(text);
          },
        },
      ],
      // Metrics created here end with the server; given ones belong to whoever made them.
      close: () => {
        if (!given) metrics.close();
      },
    };
  };
}
