/**
 * `memtide models` and the runner's model routes (over a stub governor), and
 * `memtide proxy` end to end: CLI runner + real governor + fake Ollama.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Ollama } from 'ollama';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../src/app/cliArgs.js';
import { ModelsCommandError, modelsCommand } from '../src/app/commands/models.js';
import { startProxyRunner, type ProxyRunHandle } from '../src/app/commands/proxy.js';
import { createMemtide, type Memtide } from '../src/app/memtide.js';
import { modelRoutes } from '../src/app/routes/models.js';
import { startServer, type MemtideServer } from '../src/app/server.js';
import type { LoadedModel } from '../src/model.js';
import { silentLogger } from '../src/sinks/logger.js';
import { GovernorError } from '../src/streams/governorApi.js';
import { startFakeOllama, type FakeOllama } from './support/fakeOllama.js';
import { createStubGovernor, type StubGovernor } from './support/stubGovernor.js';

let tmp: string;
let tokenFile: string;
let memtide: Memtide;
let server: MemtideServer;
let governor: StubGovernor;

const MODELS: LoadedModel[] = [
  { name: 'llama3.1:8b', sizeBytes: 6.3 * 1024 ** 3, sizeVramBytes: 0, contextLength: 4096, inFlight: 1, idleSinceMs: null, pinned: false, expiresAtMs: null },
  { name: 'hf.co/org/tiny:Q4_K_M', sizeBytes: 512 * 1024 ** 2, sizeVramBytes: 0, contextLength: 2048, inFlight: 0, idleSinceMs: Date.now() - 90_000, pinned: true, expiresAtMs: null },
];

function collect(): { out: (text: string) => void; text: () => string } {
  let text = '';
  return { out: (chunk) => void (text += chunk), text: () => text };
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memtide-models-'));
  tokenFile = path.join(tmp, 'memtide.token');
  memtide = createMemtide({ env: {}, config: { server: { port: 0, tokenFile } } });
  governor = createStubGovernor();
  governor.setModels(MODELS);
  server = await startServer({ memtide, logger: silentLogger, modules: [modelRoutes(governor)] });
});

afterAll(async () => {
  await server.close();
  memtide.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

afterEach(() => {
  governor.unloadError = null;
  governor.unloaded.length = 0;
});

describe('model routes', () => {
  it('lists the governor\'s models without a token (loopback read)', async () => {
    const response = await fetch(`${server.url}/api/models`);
    expect(response.status).toBe(200);
    expect(((await response.json()) as { models: LoadedModel[] }).models.map((m) => m.name)).toEqual(['llama3.1:8b', 'hf.co/org/tiny:Q4_K_M']);
  });

  it('refuses unload, pin and unpin without the token (401), and does nothing', async () => {
    for (const action of ['unload', 'pin', 'unpin']) {
      const response = await fetch(`${server.url}/api/models/llama3.1%3A8b/${action}`, { method: 'POST' });
      expect(response.status, action).toBe(401);
      expect(response.headers.get('www-authenticate')).toBe('Bearer realm="memtide"');
    }
    const wrong = await fetch(`${server.url}/api/models/x/unload`, { method: 'POST', headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
    expect(governor.unloaded).toEqual([]);
    expect(governor.pinned.size).toBe(0);
  });

  it('unloads, pins and unpins with the token; a name with / travels URL-encoded', async () => {
    const auth = { authorization: `Bearer ${server.token}` };
    const unload = await fetch(`${server.url}/api/models/${encodeURIComponent('hf.co/org/tiny:Q4_K_M')}/unload`, { method: 'POST', headers: auth });
    expect(unload.status).toBe(200);
    expect(await unload.json()).toEqual({ model: 'hf.co/org/tiny:Q4_K_M', unloaded: true });
    expect(governor.unloaded).toEqual(['hf.co/org/tiny:Q4_K_M']);
    expect((await fetch(`${server.url}/api/models/gemma3%3A4b/pin`, { method: 'POST', headers: auth })).status).toBe(200);
    expect(governor.pinned.has('gemma3:4b')).toBe(true);
    expect(await (await fetch(`${server.url}/api/models/gemma3%3A4b/unpin`, { method: 'POST', headers: auth })).json()).toEqual({ model: 'gemma3:4b', pinned: false });
    expect(governor.pinned.has('gemma3:4b')).toBe(false);
    expect((await fetch(`${server.url}/api/models/x/unload`, { headers: auth })).status).toBe(405);
  });

  it('answers an unknown model with 404, a governor refusal with its status and Retry-After, an Ollama 404 with 404', async () => {
    const auth = { authorization: `Bearer ${server.token}` };
    governor.unloadError = new GovernorError('MEMTIDE_ERR_GOVERNOR_STOPPED', 'the model governor is stopped', 503, 4000);
    const notLoaded = await fetch(`${server.url}/api/models/a/unload`, { method: 'POST', headers: auth });
    expect(notLoaded.status).toBe(404);
    expect(await notLoaded.json()).toMatchObject({ code: 'MEMTIDE_ERR_MODEL_NOT_LOADED' });
    const stopped = await fetch(`${server.url}/api/models/llama3.1:8b/unload`, { method: 'POST', headers: auth });
    expect(stopped.status).toBe(503);
    expect(stopped.headers.get('retry-after')).toBe('4');
    expect(await stopped.json()).toMatchObject({ code: 'MEMTIDE_ERR_GOVERNOR_STOPPED' });
    governor.unloadError = Object.assign(new Error('model "llama3.1:8b" not found'), { status: 404, code: 'MEMTIDE_ERR_OLLAMA_NOT_FOUND' });
    const missing = await fetch(`${server.url}/api/models/llama3.1:8b/unload`, { method: 'POST', headers: auth });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ code: 'MEMTIDE_ERR_OLLAMA_NOT_FOUND', error: 'llama3.1:8b: model "llama3.1:8b" not found' });
  });
});

describe('memtide models', () => {
  it('lists as a table and as JSON', async () => {
    const table = collect();
    expect(await modelsCommand(['list', '--url', server.url, '--token-file', tokenFile], table.out)).toBe(0);
    const lines = table.text().trim().split('\n');
    expect(lines[0]).toMatch(/^MODEL\s+SIZE\s+CTX\s+IN FLIGHT\s+IDLE\s+PINNED$/);
    expect(lines[1]).toMatch(/^llama3\.1:8b\s+6\.3 GiB\s+4096\s+1\s+busy$/);
    expect(lines[2]).toMatch(/^hf\.co\/org\/tiny:Q4_K_M\s+512 MiB\s+2048\s+0\s+1m3\ds\s+yes$/);
    expect(lines[3]).toBe('2 loaded, 6.8 GiB');
    const json = collect();
    await modelsCommand(['--url', server.url, '--format', 'json'], json.out); // list is the default
    expect((JSON.parse(json.text()) as { models: unknown[] }).models).toHaveLength(2);
  });

  it('unloads, pins and unpins with the token file', async () => {
    const run = collect();
    expect(await modelsCommand(['unload', 'llama3.1:8b', '--url', server.url, '--token-file', tokenFile], run.out)).toBe(0);
    expect(await modelsCommand(['pin', 'gemma3:1b', '--url', server.url, '--token-file', tokenFile], run.out)).toBe(0);
    expect(await modelsCommand(['unpin', 'gemma3:1b', '--url', server.url, '--token-file', tokenFile], run.out)).toBe(0);
    expect(run.text()).toBe('llama3.1:8b unloaded\ngemma3:1b pinned\ngemma3:1b unpinned\n');
    expect(governor.unloaded).toEqual(['llama3.1:8b']);
  });

  it('fails clearly: no token file, a wrong token (401), nothing listening, bad usage', async () => {
    const { out } = collect();
    await expect(modelsCommand(['unload', 'x', '--url', server.url, '--token-file', path.join(tmp, 'none')], out)).rejects.toThrow(/cannot read the token file .*none \(ENOENT\)/);
    const wrong = path.join(tmp, 'wrong.token');
    fs.writeFileSync(wrong, 'w'.repeat(43));
    await expect(modelsCommand(['unload', 'x', '--url', server.url, '--token-file', wrong], out)).rejects.toThrow(ModelsCommandError);
    await expect(modelsCommand(['pin', 'x', '--url', server.url, '--token-file', wrong], out)).rejects.toThrow(/^401: missing or wrong bearer token/);
    const closedPort = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as net.AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    await expect(modelsCommand(['list', '--url', `http://127.0.0.1:${closedPort}`, '--token-file', tokenFile], out)).rejects.toThrow(
      `cannot reach memtide at http://127.0.0.1:${closedPort} (ECONNREFUSED)`,
    );
    await expect(modelsCommand(['unload', '--url', server.url], out)).rejects.toThrow(UsageError);
    await expect(modelsCommand(['evict', 'x', '--url', server.url], out)).rejects.toThrow(/--action: expected one of list, unload, pin, unpin/);
    const help = collect();
    expect(await modelsCommand(['--help'], help.out)).toBe(0);
    expect(help.text()).toContain('memtide models [list | unload NAME | pin NAME | unpin NAME]');
  });
});

describe('memtide proxy (CLI runner + real governor + fake Ollama)', () => {
  let fake: FakeOllama;
  let handle: ProxyRunHandle | null = null;

  afterEach(async () => {
    await handle?.stop();
    handle = null;
    await fake?.close();
  });

  it('admits through the real governor, injects its context, and unloads the model when idle', async () => {
    fake = await startFakeOllama({ tokenDelayMs: 2 });
    const out = collect();
    handle = await startProxyRunner(
      ['--listen', '127.0.0.1:0', '--upstream', fake.url, '--idle-timeout', '400ms', '--max-concurrent', '2', '--set', 'models.pollIntervalMs=100ms', '--set', 'log.level=silent'],
      out.out,
    );
    expect(handle).not.toBeNull();
    expect(out.text()).toMatch(/^memtide proxy on http:\/\/127\.0\.0\.1:\d+ -> http:\/\/127\.0\.0\.1:\d+\n$/);
    const client = new Ollama({ host: handle!.url });
    const answer = await client.chat({ model: 'gemma3:1b', messages: [{ role: 'user', content: 'Summarise the meeting.' }] });
    expect(answer.done).toBe(true);
    const received = fake.lastReceived('/api/chat')?.body as { options?: { num_ctx?: number } };
    expect(received.options?.num_ctx).toBeGreaterThan(0); // the governor sized the context
    expect(fake.loaded().map((r) => r.name)).toEqual(['gemma3:1b']);
    // Idle past models.idleTimeoutMs: the governor unloads it (keep_alive 0), long before Ollama's 5m.
    const deadline = Date.now() + 5000;
    while (fake.loaded().length > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(fake.loaded()).toEqual([]);
    expect(fake.stats.unloads).toBe(1);
    // Meetily's path: /v1/chat/completions is translated to /api/chat (proxy.openAiChat "translate"), so the
    // governor's num_ctx and keep_alive reach Ollama instead of its 5m default; the governor's unload still bounds it.
    const openAi = await fetch(`${handle!.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'gemma3:1b', messages: [{ role: 'user', content: 'x' }] }) });
    expect(openAi.status).toBe(200);
    expect(openAi.headers.get('x-memtide-translated')).toBe('api/chat');
    expect(((await openAi.json()) as { object?: string }).object).toBe('chat.completion');
    const translated = fake.lastReceived('/api/chat')?.body as { messages?: unknown[]; keep_alive?: unknown; options?: { num_ctx?: number } };
    expect(translated.messages).toEqual([{ role: 'user', content: 'x' }]);
    expect(translated.options?.num_ctx).toBeGreaterThan(0);
    expect(translated.keep_alive).toBeDefined();
    expect(fake.loaded()[0]?.sessionMs).toBeLessThan(300_000);
    const again = Date.now() + 5000;
    while (fake.loaded().length > 0 && Date.now() < again) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(fake.loaded()).toEqual([]);
    expect(fake.stats.unloads).toBe(2);
    const code = handle!.stopped;
    await handle!.stop();
    expect(await code).toBe(0);
  });

  it('refuses bad flags with the flag named', async () => {
    const { out } = collect();
    await expect(startProxyRunner(['--listen', 'nowhere'], out)).rejects.toThrow(/^--listen: expected HOST:PORT/);
    await expect(startProxyRunner(['--upstream', 'ftp://x'], out)).rejects.toThrow(/^--upstream: must be http/);
    await expect(startProxyRunner(['--max-concurrent', '0'], out)).rejects.toThrow(/^--max-concurrent: expected a whole number >= 1/);
    await expect(startProxyRunner(['--listen', '0.0.0.0:0', '--set', 'log.level=silent'], out)).rejects.toThrow(/proxy\.listen: 0\.0\.0\.0 is not a loopback address/);
  });
});
