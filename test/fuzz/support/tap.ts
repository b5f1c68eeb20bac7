/**
 * A pass-through HTTP server in front of the fake Ollama that records the
 * exact bytes of every request reaching it: the fuzz tests compare what the
 * proxy sent upstream with what the client sent.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Tapped {
  method: string;
  path: string;
  body: Buffer;
}

export interface Tap {
  url: string;
  received: Tapped[];
  close(): Promise<void>;
}

/** `cancelOnClientClose`: a client (the proxy) that leaves cancels the upstream request, as Ollama would notice. */
export async function startTap(upstream: string, options: { cancelOnClientClose?: boolean } = {}): Promise<Tap> {
  const target = new URL(upstream);
  const received: Tapped[] = [];
  const server = http.createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      received.push({ method: req.method ?? '', path: req.url ?? '', body });
      const headers = { ...req.headers, host: target.host, 'content-length': String(body.length) };
      delete headers['transfer-encoding'];
      const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers }, (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      });
      up.on('error', () => res.destroy());
      if (options.cancelOnClientClose) res.on('close', () => up.destroy());
      up.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
