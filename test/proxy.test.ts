/**
 * The Ollama proxy end to end: real `ollama` client and plain fetch → proxy →
 * fake Ollama, with a stub governor recording every admission and release.
 */
import { once } from 'node:events';
import net from 'node:net';
import { fc, it as propIt } from '@fast-check/vitest';
import { BehaviorSubject } from 'rxjs';
import { Ollama } from 'ollama';
import { afterEach, describe, expect, it } from 'vitest';
import { startProxy, type ProxyHandle, type ProxySettings, type StartProxyOptions } from '../src/app/proxy/proxy.js';
import { GovernorError } from '../src/streams/governorApi.js';
import { buildRequest, jsonOf, rawRequest } from './fuzz/support/rawHttp.js';
import { startFakeOllama, type FakeOllama, type FakeOllamaOptions } from './support/fakeOllama.js';
import { createStubGovernor, type StubGovernor } from './support/stubGovernor.js';

const cleanups: Array<() => Promise<void>> = [];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Rig {
  fake: FakeOllama;
  proxy: ProxyHandle;
  governor: StubGovernor;
  client: Ollama;
}

async function rig(fakeOptions: FakeOllamaOptions = {}, decide?: StubGovernor['decide'], proxyOptions: Partial<StartProxyOptions> = {}): Promise<Rig> {
  const fake = await startFakeOllama(fakeOptions);
  cleanups.push(() => fake.close());
  const governor = createStubGovernor(decide);
  const proxy = await startProxy({ listen: { host: '127.0.0.1', port: 0 }, upstream: fake.url, governor, ...proxyOptions });
  cleanups.push(() => proxy.close());
  return { fake, proxy, governor, client: new Ollama({ host: proxy.url }) };
}

async function waitFor(what: string, probe: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Every admission released exactly once. */
function expectEachReleasedOnce(governor: StubGovernor): void {
  expect(governor.admissions.length).toBeGreaterThan(0);
  for (const admission of governor.admissions) expect(admission.releases, `release calls of ${admission.request.model}`).toHaveLength(1);
}

const post = (url: string, body: unknown, init: RequestInit = {}) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body), ...init });

/** Status, body and headers that must pass through a proxy unchanged. */
async function snapshot(response: Response) {
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    if (!['date', 'via', 'connection', 'keep-alive'].includes(name)) headers[name] = value;
  });
  return { status: response.status, statusText: response.statusText, headers, body: await response.text() };
}

describe('proxy: streaming', () => {
  it('delivers the first chat chunk while the upstream is still generating (no buffering)', async () => {
    const { fake, governor, client } = await rig({ tokenDelayMs: 60 });
    const stream = await client.chat({ model: 'gemma3:1b', messages: [{ role: 'user', content: 'Summarise' }], stream: true });
    const parts: string[] = [];
    let upstreamBusyAtFirstChunk: boolean | undefined;
    for await (const part of stream) {
      // The fake holds the runner until it wrote its last line: busy = not finished upstream.
      upstreamBusyAtFirstChunk ??= fake.loaded()[0]?.refCount === 1;
      parts.push(part.message.content);
    }
    expect(upstreamBusyAtFirstChunk).toBe(true);
    expect(parts.join('')).toBe('The meeting agreed to ship the release on');
    await governor.settled();
    expectEachReleasedOnce(governor);
    expect(governor.admissions[0]?.releases[0]).toEqual({ ok: true, status: 200 });
  });

  it('streams /v1/chat/completions SSE incrementally and answers JSON without stream', async () => {
    const { fake, proxy, governor } = await rig({ tokenDelayMs: 40 });
    const response = await post(`${proxy.url}/v1/chat/completions`, { model: 'gemma3:1b', messages: [{ role: 'user', content: 'hi' }], stream: true });
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    expect(response.headers.get('content-length')).toBeNull();
    const reader = response.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toMatch(/^data: \{"id":"chatcmpl-/);
    expect(fake.loaded()[0]?.refCount).toBe(1); // upstream still generating
    let rest = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    expect(rest.trimEnd().endsWith('data: [DONE]')).toBe(true);

    const json = await post(`${proxy.url}/v1/chat/completions`, { model: 'gemma3:1b', messages: [{ role: 'user', content: 'hi' }] });
    expect(((await json.json()) as { object: string }).object).toBe('chat.completion');
    await governor.settled();
    expectEachReleasedOnce(governor);
    expect(governor.admissions.map((a) => a.request.endpoint)).toEqual(['openai-chat', 'openai-chat']);
  });
});

describe('proxy: upstream errors pass through unchanged', () => {
  it('404, 500 (out of memory) and 503 (queue full) arrive as Ollama sent them', async () => {
    const { fake, proxy, governor, client } = await rig();
    for (const [kind, body] of [
      [null, { model: 'nope:1b', prompt: 'x' }],
      ['oom', { model: 'gemma3:1b', prompt: 'x' }],
      ['503', { model: 'gemma3:1b', prompt: 'x' }],
    ] as const) {
      if (kind) fake.failNext(kind);
      const direct = await snapshot(await post(`${fake.url}/api/generate`, body));
      if (kind) fake.failNext(kind);
      const proxied = await snapshot(await post(`${proxy.url}/api/generate`, body));
      expect(proxied).toEqual(direct);
      expect([404, 500, 503]).toContain(proxied.status);
    }
    fake.failNext('503');
    await expect(client.generate({ model: 'gemma3:1b', prompt: 'x' })).rejects.toMatchObject({ name: 'ResponseError', status_code: 503 });
    await governor.settled();
    expectEachReleasedOnce(governor);
    expect(governor.admissions.map((a) => a.releases[0]?.status)).toEqual([404, 500, 503, 503]);
    expect(governor.admissions.every((a) => a.releases[0]?.ok === false)).toBe(true);
    // The governor learns why: Ollama's own error text.
    expect(governor.admissions[0]?.releases[0]?.error).toBe('model "nope:1b" not found, try pulling it first');
    expect(governor.admissions[1]?.releases[0]?.error).toMatch(/^model requires more system memory \(/);
  });

  it('passes a mid-stream error line under status 200, and reports it to the governor', async () => {
    const { fake, proxy, governor, client } = await rig();
    fake.failNext('midstream');
    const raw = await post(`${proxy.url}/api/chat`, { model: 'gemma3:1b', messages: [{ role: 'user', content: 'x' }] });
    expect(raw.status).toBe(200);
    expect((await raw.text()).trim().split('\n').at(-1)).toBe('{"error":"an error was encountered while running the model: unexpected EOF"}');
    fake.failNext('midstream');
    const stream = await client.chat({ model: 'gemma3:1b', messages: [{ role: 'user', content: 'x' }], stream: true });
    await expect(
      (async () => {
        for await (const part of stream) void part;
      })(),
    ).rejects.toThrow('unexpected EOF');
    await governor.settled();
    expectEachReleasedOnce(governor);
    for (const admission of governor.admissions) {
      expect(admission.releases[0]).toEqual({ ok: false, status: 200, error: 'an error was encountered while running the model: unexpected EOF' });
    }
  });

  it('answers 502 in the API\'s shape when the upstream is unreachable, and a reset as a failed release', async () => {
    const { fake, proxy, governor } = await rig();
    fake.failNext('reset');
    const reset = await post(`${proxy.url}/api/generate`, { model: 'gemma3:1b', prompt: 'x' });
    expect(reset.status).toBe(502);
    expect(((await reset.json()) as { code: string }).code).toBe('MEMTIDE_ERR_UPSTREAM');
    await fake.close();
    const down = await post(`${proxy.url}/v1/chat/completions`, { model: 'gemma3:1b', messages: [] });
    expect(down.status).toBe(502);
    expect(((await down.json()) as { error: { type: string; code: string } }).error).toMatchObject({ type: 'api_error', code: 'MEMTIDE_ERR_UPSTREAM' });
    await governor.settled();
    expectEachReleasedOnce(governor);
    expect(governor.admissions.every((a) => a.releases[0]?.ok === false && a.releases[0]?.status === 502)).toBe(true);
  });
});

describe('proxy: client disconnects', () => {
  it('aborting a stream cancels the generation upstream and releases once', async () => {
    const { fake, governor, client } = await rig({ tokenDelayMs: 40 });
    const stream = await client.generate({ model: 'gemma3:1b', prompt: 'x', stream: true });
    let seen = 0;
    await expect(
      (async () => {
        for await (const part of stream) {
          void part;
          seen += 1;
          if (seen === 2) stream.abort();
        }
      })(),
    ).rejects.toThrow(/abort/i);
    await waitFor('the upstream cancellation', () => fake.stats.cancelled === 1);
    await governor.settled();
    expectEachReleasedOnce(governor);
    expect(governor.admissions[0]?.releases[0]).toMatchObject({ ok: false, error: 'client disconnected' });
  });

  it('a client that leaves while waiting for admission aborts the admission signal and is released once, never forwarded', async () => {
    let letThrough: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (letThrough = resolve));
    const { fake, proxy, governor } = await rig({}, async () => {
      await gate;
      return {};
    });
    const controller = new AbortController();
    const pending = post(`${proxy.url}/api/generate`, { model: 'gemma3:1b', prompt: 'x' }, { signal: controller.signal });
    await sleep(30);
    controller.abort();
    await expect(pending).rejects.toThrow();
    await sleep(20);
    letThrough();
    await waitFor('the late admission', () => governor.admissions.length === 1);
    await governor.settled();
    expectEachReleasedOnce(governor);
    expect(governor.admissions[0]?.request.signal?.aborted).toBe(true);
    expect(governor.admissions[0]?.releases[0]).toMatchObject({ ok: false, error: 'client disconnected before forwarding' });
    expect(fake.lastReceived('/api/generate')).toBeUndefined();
  });
});

describe('proxy: governor decisions', () => {
  it('a GovernorError becomes its status with Retry-After and an Ollama-style body (OpenAI-style on /v1)', async () => {
    const refusal = new GovernorError('MEMTIDE_ERR_GOVERNOR_HELD', 'memory pressure is critical: new model loads are held', 503, 2500);
    const { fake, proxy, governor, client } = await rig({}, () => refusal);
    const native = await post(`${proxy.url}/api/chat`, { model: 'gemma3:1b', messages: [{ role: 'user', content: 'x' }] });
    expect(native.status).toBe(503);
    expect(native.headers.get('retry-after')).toBe('3');
    expect(await native.json()).toEqual({ error: refusal.message, code: 'MEMTIDE_ERR_GOVERNOR_HELD' });
    const openAi = await post(`${proxy.url}/v1/chat/completions`, { model: 'gemma3:1b', messages: [] });
    expect(openAi.status).toBe(503);
    expect(await openAi.json()).toEqual({ error: { message: refusal.message, type: 'api_error', param: null, code: 'MEMTIDE_ERR_GOVERNOR_HELD' } });
    await expect(client.generate({ model: 'gemma3:1b', prompt: 'x' })).rejects.toMatchObject({ status_code: 503, error: refusal.message });
    expect(governor.refused).toHaveLength(3);
    expect(governor.admissions).toHaveLength(0);
    expect(fake.received.filter((r) => r.method === 'POST')).toHaveLength(0);
  });

  it('injects model, num_ctx, keep_alive and use_mmap on /api/*, keeping the client\'s other options', async () => {
    const { fake, proxy, governor, client } = await rig({}, () => ({ model: 'llama3.1:8b', numCtx: 2048, keepAlive: '30s' }), { config: { bodyLimitBytes: 1 << 20, useMmap: false } });
    const answer = await client.chat({
      model: 'llama3.1:8b-instruct-q8_0',
      messages: [{ role: 'user', content: 'a'.repeat(100) }],
      options: { temperature: 0.2, num_ctx: 32_768 },
      keep_alive: '1h',
    });
    expect(answer.model).toBe('llama3.1:8b');
    expect(fake.lastReceived('/api/chat')?.body).toEqual({
      model: 'llama3.1:8b',
      messages: [{ role: 'user', content: 'a'.repeat(100) }],
      stream: false,
      options: { temperature: 0.2, num_ctx: 2048, use_mmap: false },
      keep_alive: '30s',
    });
    expect(fake.loaded()[0]).toMatchObject({ name: 'llama3.1:8b', numCtx: 2048, useMmap: false, sessionMs: 30_000 });
    expect(governor.admissions[0]?.request).toMatchObject({
      model: 'llama3.1:8b-instruct-q8_0',
      endpoint: 'chat',
      promptTokens: 35, // 100 chars x 0.35
      requestedNumCtx: 32_768,
      requestedKeepAlive: '1h',
    });
    const raw = await post(`${proxy.url}/api/generate`, { model: 'gemma3:1b', prompt: 'x', stream: false });
    expect(raw.headers.get('x-memtide-model')).toBe('llama3.1:8b');
    expect(raw.headers.get('x-memtide-num-ctx')).toBe('2048');
    expect(raw.headers.get('x-memtide-keep-alive')).toBe('30s');
    expect(raw.headers.get('via')).toBe('1.1 memtide');
  });

  it('injects num_batch where the admission gives one: the runner loads with it, and the header says so', async () => {
    const { fake, proxy, governor, client } = await rig({}, (request) => ({ numCtx: 2048, numBatch: request.endpoint === 'embed' ? null : 128 }));
    await client.generate({ model: 'gemma3:1b', prompt: 'x', options: { num_batch: 512, seed: 7 } });
    expect(fake.lastReceived('/api/generate')?.body).toMatchObject({ options: { num_batch: 128, seed: 7, num_ctx: 2048 } });
    expect(governor.admissions[0]?.request.requestedNumBatch).toBe(512);
    expect(fake.loaded()[0]).toMatchObject({ name: 'gemma3:1b', numCtx: 2048, numBatch: 128 });
    const raw = await post(`${proxy.url}/api/chat`, { model: 'gemma3:1b', messages: [{ role: 'user', content: 'hi' }], stream: false });
    expect(raw.headers.get('x-memtide-num-batch')).toBe('128');
    expect(fake.stats.reloads).toBe(0); // same runner options: the runner is reused
    await client.embed({ model: 'nomic-embed-text', input: 'x' });
    expect(fake.lastReceived('/api/embed')?.body).not.toHaveProperty('options.num_batch');
  });

  it('rewrites only the model on /v1/* (Ollama\'s OpenAI layer has no keep_alive or options)', async () => {
    const { fake, proxy } = await rig({}, () => ({ model: 'gemma3:1b', numCtx: 2048, keepAlive: 0 }));
    const body = { model: 'gemma3:4b', messages: [{ role: 'user', content: 'hi' }], temperature: 0.1 };
    const response = await post(`${proxy.url}/v1/chat/completions`, body);
    expect(response.status).toBe(200);
    expect(fake.lastReceived('/v1/chat/completions')?.body).toEqual({ ...body, model: 'gemma3:1b' });
  });

  it('forwards the original bytes when the admission changes nothing', async () => {
    const { fake, proxy } = await rig();
    const text = '{ "model" : "gemma3:1b",\n  "prompt": "x", "stream": false }';
    await post(`${proxy.url}/api/generate`, text);
    const received = fake.lastReceived('/api/generate');
    expect(received?.headers['content-length']).toBe(String(Buffer.byteLength(text)));
  });
});

describe('proxy: optional requests (X-Memtide-Priority) while live summaries are paused', () => {
  const chat = { model: 'gemma3:1b', messages: [{ role: 'user', content: 'summarise so far' }], stream: false };

  it('defers an optional request with 503, Retry-After and a body saying why; it never reaches the governor or Ollama', async () => {
    const { fake, proxy, governor } = await rig();
    governor.deferOptional({ reason: 'memory pressure critical: live summaries are paused by the coordinator (optimization.level aggressive)', retryAfterMs: 120_000 });
    const native = await post(`${proxy.url}/api/chat`, chat, { headers: { 'content-type': 'application/json', 'X-Memtide-Priority': 'optional' } });
    expect(native.status).toBe(503);
    expect(native.headers.get('retry-after')).toBe('120');
    expect(await native.json()).toEqual({
      error: 'optional request deferred (X-Memtide-Priority: optional): memory pressure critical: live summaries are paused by the coordinator (optimization.level aggressive); retry in 120 s',
      code: 'MEMTIDE_ERR_OPTIONAL_DEFERRED',
    });
    const openAi = await post(`${proxy.url}/v1/chat/completions`, chat, { headers: { 'content-type': 'application/json', 'x-memtide-priority': 'Optional' } });
    expect(openAi.status).toBe(503);
    expect(((await openAi.json()) as { error: { code: string; type: string } }).error).toMatchObject({ code: 'MEMTIDE_ERR_OPTIONAL_DEFERRED', type: 'api_error' });
    expect(governor.admissions).toEqual([]);
    expect(fake.received).toEqual([]);
    // unmarked (all of Meetily's today) and normal requests are not deferred
    expect((await post(`${proxy.url}/api/chat`, chat)).status).toBe(200);
    expect((await post(`${proxy.url}/api/chat`, chat, { headers: { 'content-type': 'application/json', 'X-Memtide-Priority': 'normal' } })).status).toBe(200);
    // lifted: optional requests go through again
    governor.deferOptional(null);
    expect((await post(`${proxy.url}/api/chat`, chat, { headers: { 'content-type': 'application/json', 'X-Memtide-Priority': 'optional' } })).status).toBe(200);
    await governor.settled();
    expect(governor.admissions).toHaveLength(3);
  });

  it('an unknown priority is 400 naming the header; a proxy without a governor takes its deferral from the option', async () => {
    const { proxy } = await rig();
    const bad = await post(`${proxy.url}/api/chat`, chat, { headers: { 'content-type': 'application/json', 'X-Memtide-Priority': 'urgent' } });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: 'X-Memtide-Priority: expected normal or optional, got "urgent"', code: 'MEMTIDE_ERR_BAD_HEADER', field: 'X-Memtide-Priority' });
    const fake = await startFakeOllama();
    cleanups.push(() => fake.close());
    let deferral: { reason: string; retryAfterMs: number; sinceMs: number } | null = { reason: 'paused', retryAfterMs: 1500, sinceMs: 0 };
    const bare = await startProxy({ listen: { host: '127.0.0.1', port: 0 }, upstream: fake.url, optionalDeferral: () => deferral });
    cleanups.push(() => bare.close());
    const deferred = await post(`${bare.url}/api/generate`, { model: 'gemma3:1b', prompt: 'x', stream: false }, { headers: { 'content-type': 'application/json', 'X-Memtide-Priority': 'optional' } });
    expect(deferred.status).toBe(503);
    expect(deferred.headers.get('retry-after')).toBe('2');
    deferral = null;
    expect((await post(`${bare.url}/api/generate`, { model: 'gemma3:1b', prompt: 'x', stream: false }, { headers: { 'content-type': 'application/json', 'X-Memtide-Priority': 'optional' } })).status).toBe(200);
  });
});

describe('proxy: bad requests', () => {
  it('answers 400 naming the byte offset for invalid JSON, and the field for a bad keep_alive', async () => {
    const { fake, proxy, governor } = await rig();
    const bad = await post(`${proxy.url}/api/chat`, '{"model": "gemma3:1b", "messages": [}');
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({
      error: "request body is not valid JSON: unexpected '}' where a value should start at byte 36",
      code: 'MEMTIDE_ERR_BAD_JSON',
      offset: 36,
    });
    const badOpenAi = await post(`${proxy.url}/v1/chat/completions`, '{"model": "é", x}');
    expect(((await badOpenAi.json()) as { error: { offset: number; type: string } }).error).toMatchObject({ offset: 16, type: 'invalid_request_error' });
    const keepAlive = await post(`${proxy.url}/api/generate`, { model: 'gemma3:1b', prompt: 'x', keep_alive: '10' });
    expect(keepAlive.status).toBe(400);
    expect(await keepAlive.json()).toEqual({ error: 'time: missing unit in duration "10"', code: 'MEMTIDE_ERR_BAD_FIELD', field: 'keep_alive' });
    expect(governor.admissions).toHaveLength(0);
    expect(fake.received).toHaveLength(0);
  });

  it('answers 413 past the body limit, following live config changes', async () => {
    const config$ = new BehaviorSubject<ProxySettings>({ bodyLimitBytes: 200 });
    const { proxy, governor } = await rig({}, undefined, { config$ });
    const big = { model: 'gemma3:1b', prompt: 'x'.repeat(300), stream: false };
    const refused = await post(`${proxy.url}/api/generate`, big);
    expect(refused.status).toBe(413);
    expect(((await refused.json()) as { code: string }).code).toBe('MEMTIDE_ERR_BODY_TOO_LARGE');
    config$.next({ bodyLimitBytes: 4096 });
    expect((await post(`${proxy.url}/api/generate`, big)).status).toBe(200);
    expect(governor.admissions).toHaveLength(1);
  });

  it('forwards a body without a model untouched, so Ollama answers with its own error', async () => {
    const { proxy, governor } = await rig();
    const response = await post(`${proxy.url}/api/chat`, { messages: [] });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ error: 'model is required' });
    expect(governor.admissions).toHaveLength(0);
  });
});

describe('proxy: everything else is forwarded verbatim', () => {
  it('/api/tags, /api/ps, /api/show, /api/version, GET / and unknown routes', async () => {
    const { fake, proxy, governor, client } = await rig();
    await client.generate({ model: 'gemma3:1b', prompt: '' }); // something in /api/ps
    const requests: Array<[string, RequestInit?]> = [
      ['/api/tags'],
      ['/api/ps'],
      ['/api/version'],
      ['/'],
      ['/api/show', { method: 'POST', body: JSON.stringify({ model: 'gemma3:1b' }) }],
      ['/api/show', { method: 'POST', body: JSON.stringify({ model: 'missing' }) }],
      ['/v1/models'],
      ['/api/nothing'],
    ];
    for (const [path, init] of requests) {
      const direct = await snapshot(await fetch(`${fake.url}${path}`, init));
      const proxied = await snapshot(await fetch(`${proxy.url}${path}`, init));
      if (path === '/api/ps') {
        // expires_at moves with time; everything else must match.
        expect(proxied.status).toBe(direct.status);
        expect(JSON.parse(proxied.body)).toMatchObject({ models: [{ name: 'gemma3:1b', context_length: 4096 }] });
      } else {
        expect(proxied, path).toEqual(direct);
      }
    }
    expect(governor.admissions).toHaveLength(1); // only the preload
    const list = await client.list();
    expect(list.models.length).toBeGreaterThan(3);
  });

  it('is a transparent pass-through without a governor', async () => {
    const fake = await startFakeOllama();
    cleanups.push(() => fake.close());
    const proxy = await startProxy({ listen: { host: '127.0.0.1', port: 0 }, upstream: fake.url });
    cleanups.push(() => proxy.close());
    const text = '{"model":"gemma3:1b","prompt":"x","stream":false,"keep_alive":"10"}';
    const response = await post(`${proxy.url}/api/generate`, text);
    expect(response.status).toBe(400); // Ollama's own answer: nothing was parsed on the way
    expect(await response.json()).toEqual({ error: 'time: missing unit in duration "10"' });
  });
});

describe('proxy: binding and access', () => {
  it('refuses a non-loopback listen address unless allowed, and a foreign Host header', async () => {
    await expect(startProxy({ listen: { host: '0.0.0.0', port: 0 }, upstream: 'http://127.0.0.1:1' })).rejects.toThrow(/allowRemote/);
    await expect(startProxy({ listen: { host: '127.0.0.1', port: 0 }, upstream: 'ftp://x' })).rejects.toThrow(/upstream/);
    const { proxy } = await rig();
    const { request } = await import('node:http');
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${proxy.url}/api/tags`, { headers: { host: 'evil.example:11435' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(403);
  });

  it('beyond loopback, every request needs the token, which is not passed upstream', async () => {
    const fake = await startFakeOllama();
    cleanups.push(() => fake.close());
    const proxy = await startProxy({ listen: { host: '0.0.0.0', port: 0 }, upstream: fake.url, allowRemote: true, token: 't'.repeat(40) });
    cleanups.push(() => proxy.close());
    const port = new URL(proxy.url).port;
    expect((await fetch(`http://127.0.0.1:${port}/api/tags`)).status).toBe(401);
    const ok = await fetch(`http://127.0.0.1:${port}/api/tags`, { headers: { authorization: `Bearer ${'t'.repeat(40)}` } });
    expect(ok.status).toBe(200);
    expect(fake.lastReceived('/api/tags')?.headers.authorization).toBeUndefined();
  });

  it('beyond loopback, an HTTP/1.1 request without Host is a 400 in the API shape; HTTP/1.0 needs none', async () => {
    const fake = await startFakeOllama();
    cleanups.push(() => fake.close());
    const token = 't'.repeat(40);
    const proxy = await startProxy({ listen: { host: '0.0.0.0', port: 0 }, upstream: fake.url, allowRemote: true, token });
    cleanups.push(() => proxy.close());
    const port = Number(new URL(proxy.url).port);
    const auth: [string, string] = ['Authorization', `Bearer ${token}`];
    const noHost = await rawRequest(buildRequest('GET', '/v1/models', [auth, ['Connection', 'close']]), 'GET', { port, host: '127.0.0.1' });
    expect(noHost.kind === 'response' && { status: noHost.response.status, body: jsonOf(noHost.response) }).toEqual({
      status: 400,
      body: { error: { message: 'no Host header (HTTP/1.1 requires one)', type: 'invalid_request_error', param: null, code: 'MEMTIDE_ERR_HOST' } },
    });
    const http10 = await rawRequest(Buffer.from(`GET /api/tags HTTP/1.0\r\nAuthorization: Bearer ${token}\r\n\r\n`), 'GET', { port, host: '127.0.0.1' });
    expect(http10.kind === 'response' && http10.response.status).toBe(200);
  });

  it('close() returns promptly while clients it answered raw keep their sockets open', async () => {
    const { proxy, fake } = await rig();
    const port = Number(new URL(proxy.url).port);
    const broken = [
      'POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}', // refused before any handler ran
      'POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', // refused mid-body, while its handler reads
      'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n', // handed over by Node: no longer the server's to close
    ];
    const sockets: net.Socket[] = [];
    cleanups.push(async () => sockets.forEach((s) => s.destroy()));
    for (const request of broken) {
      // allowHalfOpen: the client neither closes when the proxy does, nor ever sends another byte.
      const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
      sockets.push(socket);
      await once(socket, 'connect');
      socket.write(request);
      const [answer] = (await once(socket, 'data')) as [Buffer];
      expect(answer.toString('latin1')).toMatch(/^HTTP\/1\.1 (400 Bad Request\r\n[^]*"code":"MEMTIDE_ERR_BAD_REQUEST"|405 Method Not Allowed\r\n[^]*"code":"MEMTIDE_ERR_METHOD")/);
      socket.pause();
    }
    const closed = await Promise.race([proxy.close().then(() => 'closed'), sleep(2_000).then(() => 'still open after 2 s')]);
    expect(closed).toBe('closed');
    expect(fake.received).toEqual([]);
  });

  it('close() aborts in-flight requests upstream and releases them', async () => {
    const { fake, proxy, governor, client } = await rig({ tokenDelayMs: 50 });
    const stream = await client.generate({ model: 'gemma3:1b', prompt: 'x', stream: true });
    const iterator = stream[Symbol.asyncIterator]();
    await iterator.next();
    expect(proxy.inFlight()).toBe(1);
    await proxy.close();
    await expect(iterator.next()).rejects.toThrow();
    await waitFor('the upstream cancellation', () => fake.stats.cancelled === 1);
    await governor.settled();
    expectEachReleasedOnce(governor);
    expect(proxy.inFlight()).toBe(0);
  });
});

describe('proxy: model-based (fc.commands)', () => {
  /** What the model predicts: how many requests reached the governor's admit, and how each must end. */
  interface Model {
    admitted: number;
    refused: number;
  }
  interface Real {
    rig: Rig;
  }
  type Kind = 'stream' | 'json' | 'openai' | '404' | 'oom' | '503' | 'midstream' | 'refuse' | 'badJson';
  const EXPECTED_STATUS: Record<Kind, number> = { stream: 200, json: 200, openai: 200, '404': 404, oom: 500, '503': 503, midstream: 200, refuse: 503, badJson: 400 };

  /** Invariants after every command: nothing released twice, everything finished released once, nothing in flight. */
  async function checkInvariants(model: Model, real: Real): Promise<void> {
    await real.rig.governor.settled();
    expect(real.rig.governor.admissions).toHaveLength(model.admitted);
    expect(real.rig.governor.refused).toHaveLength(model.refused);
    for (const admission of real.rig.governor.admissions) expect(admission.releases).toHaveLength(1);
    await waitFor('the proxy to be idle', () => real.rig.proxy.inFlight() === 0);
    await waitFor('the upstream slots to be free', () => real.rig.fake.loaded().every((r) => r.refCount === 0));
  }

  class Send implements fc.AsyncCommand<Model, Real> {
    constructor(readonly kind: Kind) {}
    check = () => true;
    async run(model: Model, real: Real): Promise<void> {
      const { fake, proxy } = real.rig;
      const kind = this.kind;
      if (kind === 'oom' || kind === '503' || kind === 'midstream') fake.failNext(kind);
      const url = `${proxy.url}${kind === 'openai' ? '/v1/chat/completions' : '/api/chat'}`;
      const body =
        kind === 'badJson'
          ? '{"model":'
          : { model: kind === '404' ? 'missing:1b' : kind === 'refuse' ? 'refuse:1b' : 'gemma3:1b', messages: [{ role: 'user', content: 'x' }], stream: kind !== 'json' };
      const response = await post(url, body);
      expect(response.status).toBe(EXPECTED_STATUS[kind]);
      const text = await response.text();
      if (kind === 'midstream') expect(text).toContain('{"error":');
      if (kind === 'refuse') model.refused += 1;
      else if (kind !== 'badJson') model.admitted += 1;
      await checkInvariants(model, real);
    }
    toString = () => `Send(${this.kind})`;
  }

  class AbortStream implements fc.AsyncCommand<Model, Real> {
    check = () => true;
    async run(model: Model, real: Real): Promise<void> {
      const { fake, proxy } = real.rig;
      const cancelled = fake.stats.cancelled;
      const controller = new AbortController();
      const response = await post(`${proxy.url}/api/generate`, { model: 'gemma3:1b', prompt: 'x' }, { signal: controller.signal });
      const reader = response.body!.getReader();
      await reader.read(); // the first token arrived
      controller.abort();
      await reader.read().catch(() => undefined);
      model.admitted += 1;
      await waitFor('the upstream cancellation', () => fake.stats.cancelled === cancelled + 1);
      await checkInvariants(model, real);
    }
    toString = () => 'AbortStream';
  }

  const commands = [
    fc.constantFrom<Kind>('stream', 'json', 'openai', '404', 'oom', '503', 'midstream', 'refuse', 'badJson').map((kind) => new Send(kind)),
    fc.constant(new AbortStream()),
  ];

  propIt.prop([fc.commands(commands, { maxCommands: 8 })], { numRuns: 15 })(
    'every request ends in a response or a clear error, and every admission is released exactly once',
    async (cmds) => {
      const real: Real = {
        rig: await rig({ tokenDelayMs: 5 }, (request) =>
          request.model === 'refuse:1b' ? new GovernorError('MEMTIDE_ERR_GOVERNOR_QUEUE_FULL', 'too many requests waiting', 503, 1000) : { numCtx: 4096 },
        ),
      };
      try {
        await fc.asyncModelRun(() => ({ model: { admitted: 0, refused: 0 }, real }), cmds);
      } finally {
        for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
      }
    },
  );
});
