/**
 * The runner's HTTP server: the live page, its SSE feed and read-only state.
 * Bound to 127.0.0.1 by default. Nothing here changes state yet; the
 * mutating control API (with its bearer token) builds on this.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Subscription } from 'rxjs';
import type { MemorySample, PressureChange } from '../model.js';
import type { Logger } from '../sinks/logger.js';
import { DASHBOARD_HTML } from './dashboardPage.js';
import type { Memtide } from './memtide.js';

export interface MemtideServer {
  readonly url: string;
  close(): Promise<void>;
}

export interface ServerOptions {
  host: string;
  port: number;
  memtide: Memtide;
  logger: Logger;
}

/** What the page needs from a sample: the process list stays out of the stream. */
function compactSample(sample: MemorySample) {
  const { timestampMs, system, components, self } = sample;
  return { timestampMs, system, components, self };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(text);
}

export async function startServer(options: ServerOptions): Promise<MemtideServer> {
  const { memtide, logger } = options;
  let latestSample: MemorySample | undefined;
  let latestPressure: PressureChange | undefined;
  const clients = new Set<ServerResponse>();
  const feeds = new Subscription();

  const broadcast = (event: string, data: unknown) => {
    const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const client of clients) client.write(frame);
  };
  feeds.add(
    memtide.samples$.subscribe({
      next: (sample) => {
        latestSample = sample;
        broadcast('sample', compactSample(sample));
      },
      error: (error: unknown) => logger.error(`sample feed failed: ${String(error)}`),
    }),
  );
  feeds.add(
    memtide.pressure$.subscribe({
      next: (change) => {
        latestPressure = change;
        broadcast('pressure', change);
      },
      error: (error: unknown) => logger.error(`pressure feed failed: ${String(error)}`),
    }),
  );

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      sendJson(res, 405, { error: `method ${req.method} not allowed on ${url.pathname}` });
      return;
    }
    switch (url.pathname) {
      case '/':
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
        res.end(DASHBOARD_HTML);
        return;
      case '/healthz':
        sendJson(res, 200, { ok: true });
        return;
      case '/api/state':
        sendJson(res, 200, {
          sample: latestSample ?? null,
          pressure: latestPressure ?? null,
        });
        return;
      case '/api/events':
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
        res.write(': memtide\n\n');
        if (latestPressure) res.write(`event: pressure\ndata: ${JSON.stringify(latestPressure)}\n\n`);
        if (latestSample) res.write(`event: sample\ndata: ${JSON.stringify(compactSample(latestSample))}\n\n`);
        clients.add(res);
        req.on('close', () => clients.delete(res));
        return;
      default:
        sendJson(res, 404, { error: `no such endpoint: ${url.pathname}` });
    }
  };

  const server: Server = createServer(handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        feeds.unsubscribe();
        for (const client of clients) client.end();
        clients.clear();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
