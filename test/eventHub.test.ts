/**
 * The runner's event hub (`GET /api/events`) sends a comment line while a
 * client listens, so clients (`memtide transcribe --follow`, runnerEvents'
 * idle timeout) can tell a quiet runner from a frozen one; and it stops doing
 * so when nobody listens.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createEventHub, type EventHub } from '../src/app/routes/state.js';

let closers: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const close of closers.reverse()) await close();
  closers = [];
});

async function serve(hub: EventHub): Promise<string> {
  const server = http.createServer((_req, res) => hub.add(res, [['batch', { hold: false, reason: 'r', atMs: 1 }]]));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  closers.push(() => server.closeAllConnections());
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}

function read(url: string): { text: () => string; stop: () => void } {
  let text = '';
  const req = http.get(url, (res) => {
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => (text += chunk));
  });
  req.on('error', () => undefined);
  return { text: () => text, stop: () => req.destroy() };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('event hub heartbeat', () => {
  it('writes a keep-alive comment every heartbeatMs to each listener, after the replay', async () => {
    const hub = createEventHub({ heartbeatMs: 25 });
    closers.push(() => hub.close());
    const url = await serve(hub);
    const client = read(url);
    closers.push(client.stop);
    await sleep(200);
    const text = client.text();
    expect(text.startsWith(': memtide\n\nevent: batch\ndata: {"hold":false,"reason":"r","atMs":1}\n\n')).toBe(true);
    expect(text.split(': keep-alive\n\n').length - 1).toBeGreaterThanOrEqual(3);
  });

  it('stops beating when the last listener leaves, and starts again for the next', async () => {
    const hub = createEventHub({ heartbeatMs: 25 });
    closers.push(() => hub.close());
    const url = await serve(hub);
    const started = vi.spyOn(globalThis, 'setInterval');
    const stopped = vi.spyOn(globalThis, 'clearInterval');
    closers.push(() => {
      vi.restoreAllMocks();
    });
    const first = read(url);
    const alsoFirst = read(url);
    await sleep(80);
    expect(started).toHaveBeenCalledTimes(1); // one timer for every listener
    first.stop();
    await sleep(40);
    expect(stopped).not.toHaveBeenCalled(); // one listener is left
    alsoFirst.stop();
    await sleep(40);
    expect(stopped).toHaveBeenCalledTimes(1);
    const second = read(url);
    closers.push(second.stop);
    await sleep(120);
    expect(started).toHaveBeenCalledTimes(2);
    expect(second.text().split(': keep-alive\n\n').length - 1).toBeGreaterThanOrEqual(2);
  });
});
