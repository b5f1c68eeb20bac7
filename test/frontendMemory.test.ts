/** POST /api/frontend-memory: the browser kit's reports, validated and token-protected, on a real runner. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemtide, type Memtide } from '../src/app/memtide.js';
import { frontendMemoryRoutes } from '../src/app/routes/frontendMemory.js';
import { startServer, type MemtideServer } from '../src/app/server.js';
import { silentLogger } from '../src/sinks/logger.js';

let dir: string;
let memtide: Memtide;
let server: MemtideServer;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memtide-frontend-'));
  memtide = createMemtide({
    mode: 'runner',
    env: {},
    config: {
      sampling: { intervalMs: 200 },
      history: { enabled: false },
      server: { port: 0, tokenFile: path.join(dir, 'token'), bodyLimitBytes: 1024 },
    },
  });
  server = await startServer({ memtide, logger: silentLogger, modules: [frontendMemoryRoutes(() => 42)] });
});

afterAll(async () => {
  await server.close();
  memtide.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const post = (body: string, headers: Record<string, string> = {}) =>
  fetch(`${server.url}/api/frontend-memory`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${server.token}`, ...headers },
    body,
  });

describe('POST /api/frontend-memory', () => {
  it('accepts a valid report and returns it from GET, per page', async () => {
    const res = await post(JSON.stringify({ bytes: 12_345_678, source: 'performance.memory', atMs: 1000, page: 'meetily-main' }));
    expect(res.status).toBe(202);
    const pages = (await (await fetch(`${server.url}/api/frontend-memory`)).json()) as { pages: Record<string, unknown> };
    expect(pages.pages['meetily-main']).toEqual({ bytes: 12_345_678, source: 'performance.memory', atMs: 1000, page: 'meetily-main', receivedAtMs: 42 });
  });

  it('needs the token', async () => {
    const res = await post(JSON.stringify({ bytes: 1, source: 'uasm', atMs: 1 }), { authorization: 'Bearer wrong' });
    expect(res.status).toBe(401);
  });

  it('rejects a bad field naming it, an unknown key, a wrong content type and an oversize body', async () => {
    const negative = await post(JSON.stringify({ bytes: -1, source: 'uasm', atMs: 1 }));
    expect(negative.status).toBe(400);
    expect(await negative.json()).toMatchObject({ code: 'MEMTIDE_ERR_FRONTEND_MEMORY', field: 'bytes' });
    const unknown = await post(JSON.stringify({ bytes: 1, source: 'uasm', atMs: 1, extra: true }));
    expect(unknown.status).toBe(400);
    expect(await unknown.json()).toMatchObject({ field: 'extra' });
    const text = await post('bytes=1', { 'content-type': 'text/plain' });
    expect(text.status).toBe(415);
    const big = await post(JSON.stringify({ bytes: 1, source: 'uasm', atMs: 1, page: 'x'.repeat(2000) }));
    expect(big.status).toBe(413);
  });
});
