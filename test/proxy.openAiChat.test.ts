/**
 * Meetily's /v1/chat/completions through the real proxy to the fake Ollama,
 * with `openAiChat: "translate"`: it reaches Ollama as /api/chat with the
 * governor's num_ctx and keep_alive, and the client gets the /v1 answer
 * shapes back (JSON, SSE, errors). What cannot be translated goes to /v1
 * byte for byte.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startProxy, type ProxyHandle, type ProxySettings } from '../src/app/proxy/proxy.js';
import { startFakeOllama, type FakeOllama, type FakeOllamaOptions } from './support/fakeOllama.js';
import { createStubGovernor, type StubGovernor } from './support/stubGovernor.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const SETTINGS: ProxySettings = { bodyLimitBytes: 1024 * 1024, openAiChat: 'translate' };

async function rig(fakeOptions: FakeOllamaOptions = {}, settings: ProxySettings = SETTINGS): Promise<{ fake: FakeOllama; proxy: ProxyHandle; governor: StubGovernor }> {
  const fake = await startFakeOllama(fakeOptions);
  cleanups.push(() => fake.close());
  // What the real governor does for a `chat` request: a sized num_ctx and a keep_alive.
  const governor = createStubGovernor((request) => (request.endpoint === 'chat' ? { numCtx: 8192, keepAlive: '7m' } : {}));
  const proxy = await startProxy({ listen: { host: '127.0.0.1', port: 0 }, upstream: fake.url, governor, config: settings });
  cleanups.push(() => proxy.close());
  return { fake, proxy, governor };
}

const post = (url: string, body: unknown, init: RequestInit = {}) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body), ...init });

const MEETILY = { model: 'gemma3:1b', messages: [{ role: 'system', content: 'Summarise the meeting.' }, { role: 'user', content: 'Alice: ship Friday. Bob: agreed.' }] };

type Json = Record<string, unknown>;

describe('proxy: /v1/chat/completions translated to /api/chat', () => {
  it('answers a chat.completion with the content /api/chat gives, having injected num_ctx and keep_alive upstream', async () => {
    const { fake, proxy, governor } = await rig();
    const response = await post(`${proxy.url}/v1/chat/completions`, MEETILY);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json');
    expect(response.headers.get('x-memtide-translated')).toBe('api/chat');
    expect(response.headers.get('x-memtide-num-ctx')).toBe('8192');
    expect(response.headers.get('x-memtide-keep-alive')).toBe('7m');
    const completion = (await response.json()) as Json;
    expect(fake.loaded()[0]?.numCtx).toBe(8192); // the runner got the governor's context, not the server's 4096

    // What the fake's /api/chat itself answers for the same conversation.
    const native = (await (await post(`${fake.url}/api/chat`, { ...MEETILY, stream: false })).json()) as { message: Json; prompt_eval_count: number; eval_count: number };
    expect(completion).toMatchObject({
      object: 'chat.completion',
      model: 'gemma3:1b',
      system_fingerprint: 'fp_ollama',
      choices: [{ index: 0, message: { role: 'assistant', content: native.message.content }, finish_reason: 'stop' }],
      usage: { prompt_tokens: native.prompt_eval_count, completion_tokens: native.eval_count, total_tokens: native.prompt_eval_count + native.eval_count },
    });
    expect(completion.id).toMatch(/^chatcmpl-\d+$/);
    expect(typeof completion.created).toBe('number');

    const upstream = fake.received.find((r) => r.path === '/api/chat' && r.body !== undefined && (r.body as Json).keep_alive !== undefined);
    expect(upstream?.body).toMatchObject({ model: 'gemma3:1b', stream: false, keep_alive: '7m', options: { num_ctx: 8192, temperature: 1, top_p: 1 }, messages: MEETILY.messages });
    expect(fake.received.some((r) => r.path === '/v1/chat/completions')).toBe(false);
    // Admitted as the native request it became, with the same prompt estimate.
    await governor.settled();
    expect(governor.admissions.map((a) => a.request.endpoint)).toEqual(['chat']);
    expect(governor.admissions[0]?.request.promptTokens).toBe(Math.ceil((MEETILY.messages[0]!.content.length + MEETILY.messages[1]!.content.length) * 0.35));
    expect(governor.admissions[0]?.releases).toEqual([{ ok: true, status: 200 }]);
    expect(proxy.translations()).toEqual({ translated: 1, forwarded: {} });
  });

  it('max_tokens reaches Ollama as num_predict: finish_reason "length"', async () => {
    const { proxy } = await rig();
    const completion = (await (await post(`${proxy.url}/v1/chat/completions`, { ...MEETILY, max_tokens: 3 })).json()) as { choices: Json[]; usage: Json };
    expect(completion.choices[0]).toMatchObject({ message: { content: 'The meeting agreed' }, finish_reason: 'length' });
    expect(completion.usage.completion_tokens).toBe(3);
  });

  it('streams SSE chunks incrementally, with the usage chunk and [DONE]', async () => {
    const { fake, proxy, governor } = await rig({ tokenDelayMs: 30 });
    const response = await post(`${proxy.url}/v1/chat/completions`, { ...MEETILY, stream: true, stream_options: { include_usage: true } });
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    expect(response.headers.get('content-length')).toBeNull();
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    const first = decoder.decode((await reader.read()).value, { stream: true });
    expect(first).toMatch(/^data: \{"id":"chatcmpl-\d+","object":"chat.completion.chunk"/);
    expect(fake.loaded()[0]?.refCount).toBe(1); // the upstream is still generating: nothing was buffered
    let text = first;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    const frames = text.split('\n\n').filter(Boolean);
    expect(frames.at(-1)).toBe('data: [DONE]');
    const chunks = frames.slice(0, -1).map((f) => JSON.parse(f.slice('data: '.length)) as { choices: Array<{ delta: { content: string }; finish_reason: string | null }>; usage?: Json });
    const usage = chunks.at(-1)!;
    expect(usage.choices).toEqual([]);
    expect(usage.usage).toMatchObject({ completion_tokens: 8 });
    const content = chunks.slice(0, -1).map((c) => c.choices[0]?.delta.content).join('');
    expect(content).toBe('The meeting agreed to ship the release on');
    expect(chunks.at(-2)?.choices[0]?.finish_reason).toBe('stop');
    expect(fake.lastReceived('/api/chat')?.body).toMatchObject({ stream: true, options: { num_ctx: 8192 }, keep_alive: '7m' });
    await governor.settled();
    expect(governor.admissions[0]?.releases).toEqual([{ ok: true, status: 200 }]);
  });

  it('forwards what it cannot translate (n: 2) to /v1 byte for byte', async () => {
    const { fake, proxy, governor } = await rig();
    const text = JSON.stringify({ ...MEETILY, n: 2, seed: 12345678901234567890 }).replace('12345678901234567000', '12345678901234567890');
    const response = await post(`${proxy.url}/v1/chat/completions`, text);
    expect(response.status).toBe(200);
    expect(response.headers.get('x-memtide-translated')).toBeNull();
    expect(((await response.json()) as Json).object).toBe('chat.completion');
    const upstream = fake.lastReceived('/v1/chat/completions');
    expect(upstream?.body).toEqual(JSON.parse(text));
    expect(fake.received.some((r) => r.path === '/api/chat')).toBe(false);
    await governor.settled();
    expect(governor.admissions.map((a) => a.request.endpoint)).toEqual(['openai-chat']);
    expect(proxy.translations()).toEqual({ translated: 0, forwarded: { n: 1 } });
  });

  it('"forward" keeps /v1 a pass-through', async () => {
    const { fake, proxy } = await rig({}, { ...SETTINGS, openAiChat: 'forward' });
    await (await post(`${proxy.url}/v1/chat/completions`, MEETILY)).json();
    expect(fake.lastReceived('/v1/chat/completions')?.body).toEqual(MEETILY);
    expect(fake.received.some((r) => r.path === '/api/chat')).toBe(false);
  });

  it('answers 400 in OpenAI\'s shape naming a field of the wrong type, without asking the governor', async () => {
    const { fake, proxy, governor } = await rig();
    const response = await post(`${proxy.url}/v1/chat/completions`, { ...MEETILY, temperature: 'warm' });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { type: 'invalid_request_error', param: 'temperature', code: 'MEMTIDE_ERR_BAD_FIELD', message: expect.stringContaining('temperature') } });
    expect(governor.admissions).toHaveLength(0);
    expect(fake.received.filter((r) => r.method === 'POST')).toHaveLength(0);
  });

  it('turns upstream errors into OpenAI\'s shape with the same status (and tells the governor)', async () => {
    const { fake, proxy, governor } = await rig();
    const missing = await post(`${proxy.url}/v1/chat/completions`, { ...MEETILY, model: 'nope:1b' });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: { message: 'model "nope:1b" not found, try pulling it first', type: 'not_found_error', param: null, code: null } });
    fake.failNext('503');
    const busy = await post(`${proxy.url}/v1/chat/completions`, { ...MEETILY, stream: true });
    expect(busy.status).toBe(503);
    expect(await busy.json()).toMatchObject({ error: { type: 'api_error', message: expect.stringContaining('server busy') } });
    await governor.settled();
    expect(governor.admissions.map((a) => a.releases[0]?.ok)).toEqual([false, false]);
  });

  it('a mid-stream error line becomes an SSE error frame that ends the stream; the release says it failed', async () => {
    const { fake, proxy, governor } = await rig();
    fake.failNext('midstream');
    const response = await post(`${proxy.url}/v1/chat/completions`, { ...MEETILY, stream: true });
    expect(response.status).toBe(200);
    const frames = (await response.text()).split('\n\n').filter(Boolean);
    expect(frames.at(-1)).toBe('data: {"error":{"message":"an error was encountered while running the model: unexpected EOF","type":"api_error","param":null,"code":null}}');
    expect(frames).not.toContain('data: [DONE]');
    await governor.settled();
    expect(governor.admissions[0]?.releases).toEqual([{ ok: false, status: 200, error: 'an error was encountered while running the model: unexpected EOF' }]);
  });

  it('a client that leaves mid-stream cancels the generation and releases the admission once', async () => {
    const { fake, proxy, governor } = await rig({ tokenDelayMs: 50 });
    const controller = new AbortController();
    const response = await post(`${proxy.url}/v1/chat/completions`, { ...MEETILY, stream: true }, { signal: controller.signal });
    const reader = response.body!.getReader();
    await reader.read();
    controller.abort();
    await governor.settled();
    expect(governor.admissions[0]?.releases).toEqual([{ ok: false, error: 'client disconnected' }]);
    const deadline = Date.now() + 1000;
    while ((proxy.inFlight() > 0 || fake.stats.cancelled === 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(proxy.inFlight()).toBe(0);
    expect(fake.stats.cancelled).toBe(1);
  });

  it('an upstream cut mid-stream (half a line sent) ends the SSE stream with an error frame', async () => {
    // An upstream that sends one whole line, half of the next, then drops the connection.
    const upstream = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        res.write('{"model":"m","message":{"role":"assistant","content":"Hi"},"done":false}\n{"model":"m","mess');
        setTimeout(() => res.socket?.destroy(), 20);
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => upstream.close(() => resolve())));
    const governor = createStubGovernor();
    const proxy = await startProxy({ listen: { host: '127.0.0.1', port: 0 }, upstream: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, governor, config: SETTINGS });
    cleanups.push(() => proxy.close());
    const response = await post(`${proxy.url}/v1/chat/completions`, { ...MEETILY, stream: true });
    const frames = (await response.text()).split('\n\n').filter(Boolean);
    expect(frames).toHaveLength(2);
    expect(JSON.parse(frames[0]!.slice(6))).toMatchObject({ choices: [{ delta: { content: 'Hi' } }] });
    expect(JSON.parse(frames[1]!.slice(6))).toMatchObject({ error: { type: 'api_error', code: 'MEMTIDE_ERR_UPSTREAM', message: expect.stringContaining('connection lost mid-answer') } });
    await governor.settled();
    expect(governor.admissions[0]?.releases[0]).toMatchObject({ ok: false, status: 200 });
  });
});
