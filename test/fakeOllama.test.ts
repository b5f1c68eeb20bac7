/**
 * The fake Ollama server (test/support/fakeOllama.ts), driven by the real
 * `ollama` npm client and by plain fetch for the OpenAI layer: if the fake's
 * shapes drifted from what ollama-js parses, these tests would fail first.
 */
import { fc, it as propIt } from '@fast-check/vitest';
import { Ollama } from 'ollama';
import { afterEach, describe, expect, it } from 'vitest';
import { parseKeepAlive } from '../src/app/proxy/keepAlive.js';
import { DEFAULT_FAKE_MODELS, documentedEstimateBytes, runnerSizeBytes, startFakeOllama, type FakeOllama, type FakeOllamaOptions } from './support/fakeOllama.js';
import { GRAPH_RSS_SHARE, kvCacheBytes, modelSpec, promptSpeed } from './support/fakeOllamaModels.js';
import { startRealMemoryAllocator } from './support/realMemoryAllocator.js';
import { FakeScheduler, OutOfMemoryError, emptyModelStats, type Runner } from './support/fakeOllamaScheduler.js';

const GIB = 1024 ** 3;
const started: FakeOllama[] = [];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function fake(options: FakeOllamaOptions = {}): Promise<{ server: FakeOllama; client: Ollama }> {
  const server = await startFakeOllama(options);
  started.push(server);
  return { server, client: new Ollama({ host: server.url }) };
}

async function waitFor(what: string, probe: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** ollama-js's ResponseError (thrown for HTTP errors; the class itself is not exported by 0.6.x). */
interface ResponseError extends Error {
  error: string;
  status_code: number;
}

/** The ResponseError a call rejects with. */
async function responseError(call: Promise<unknown>): Promise<ResponseError> {
  try {
    await call;
  } catch (error) {
    if (error instanceof Error && error.name === 'ResponseError') return error as ResponseError;
    throw error;
  }
  throw new Error('expected the call to fail');
}

const spec = (name: string) => {
  const found = DEFAULT_FAKE_MODELS.find((m) => m.name === name);
  if (!found) throw new Error(name);
  return found;
};

afterEach(async () => {
  await Promise.all(started.splice(0).map((s) => s.close()));
});

describe('fake Ollama: metadata endpoints', () => {
  it('answers version, list, show and an empty ps like Ollama', async () => {
    const { client } = await fake({ version: '0.12.6' });
    expect(await client.version()).toEqual({ version: '0.12.6' });
    const list = await client.list();
    expect(list.models.map((m) => m.name)).toContain('llama3.1:8b');
    const llama = list.models.find((m) => m.name === 'llama3.1:8b')!;
    expect(llama.details.quantization_level).toBe('Q4_K_M');
    expect(llama.size).toBe(spec('llama3.1:8b').fileSizeBytes);

    const show = await client.show({ model: 'llama3.1:8b' });
    const info = show.model_info as unknown as Record<string, number | string>;
    expect(info['general.parameter_count']).toBe(8.03e9);
    expect(info['llama.block_count']).toBe(32);
    expect(info['llama.context_length']).toBe(131_072);
    expect(info['llama.embedding_length']).toBe(4096);
    expect(info['llama.attention.head_count']).toBe(32);
    expect(info['llama.attention.head_count_kv']).toBe(8);
    expect(show.details.quantization_level).toBe('Q4_K_M');
    expect((await client.show({ model: 'gemma3:4b' })).model_info).toHaveProperty(['gemma3.attention.head_count_kv'], 4);

    expect(await client.ps()).toEqual({ models: [] });
    const error = await responseError(client.show({ model: 'missing:1b' }));
    expect(error.status_code).toBe(404);
  });

  it('resolves a name without tag to :latest, and serves GET / and unknown routes like Gin', async () => {
    const { server, client } = await fake();
    expect((await client.show({ model: 'nomic-embed-text' })).details.family).toBe('nomic-bert');
    const root = await fetch(server.url);
    expect(await root.text()).toBe('Ollama is running');
    const unknown = await fetch(`${server.url}/api/nothing`);
    expect(unknown.status).toBe(404);
    expect(await unknown.text()).toBe('404 page not found');
  });
});

describe('fake Ollama: generate and chat', () => {
  it('streams NDJSON chat chunks one token at a time, ending with done_reason stop and metrics', async () => {
    const { server, client } = await fake({ tokenDelayMs: 15 });
    const arrivals: number[] = [];
    const parts: string[] = [];
    const stream = await client.chat({ model: 'llama3.1:8b', messages: [{ role: 'user', content: 'Summarise the meeting' }], stream: true });
    let last: Awaited<ReturnType<typeof client.chat>> | undefined;
    for await (const part of stream) {
      arrivals.push(Date.now());
      parts.push(part.message.content);
      last = part;
    }
    expect(parts.slice(0, 3)).toEqual(['The', ' meeting', ' agreed']);
    expect(last?.done).toBe(true);
    expect(last?.done_reason).toBe('stop');
    expect(last?.eval_count).toBe(8);
    expect(last?.prompt_eval_count).toBeGreaterThan(0);
    // Incremental: the chunks were spread over the token delays, not delivered at once.
    expect(arrivals.at(-1)! - arrivals[0]!).toBeGreaterThanOrEqual(15 * 6);
    expect(server.stats.requests).toBe(1);
    expect(server.stats.loads).toBe(1);
  });

  it('answers stream:false with one JSON, and num_predict below the answer ends with done_reason length', async () => {
    const { client } = await fake();
    const full = await client.generate({ model: 'gemma3:1b', prompt: 'hello', stream: false });
    expect(full.response).toBe('The meeting agreed to ship the release on');
    expect(full.done_reason).toBe('stop');
    const short = await client.chat({ model: 'gemma3:1b', messages: [{ role: 'user', content: 'hi' }], stream: false, options: { num_predict: 3 } });
    expect(short.message.content).toBe('The meeting agreed');
    expect(short.done_reason).toBe('length');
  });

  it('preloads on an empty prompt (done_reason load) and unloads with keep_alive 0 (done_reason unload)', async () => {
    const { server, client } = await fake();
    const load = await client.generate({ model: 'gemma3:4b', prompt: '' });
    expect(load).toMatchObject({ done: true, done_reason: 'load', response: '' });
    expect((await client.ps()).models.map((m) => m.name)).toEqual(['gemma3:4b']);
    const unload = await client.generate({ model: 'gemma3:4b', prompt: '', keep_alive: 0 });
    expect(unload).toMatchObject({ done: true, done_reason: 'unload' });
    expect((await client.ps()).models).toEqual([]);
    expect(server.stats.unloads).toBe(1);
    // Chat with no messages does the same.
    expect(await client.chat({ model: 'gemma3:4b', messages: [] })).toMatchObject({ done_reason: 'load' });
    expect(await client.chat({ model: 'gemma3:4b', messages: [], keep_alive: 0 })).toMatchObject({ done_reason: 'unload' });
    expect(server.loaded()).toEqual([]);
  });

  it('embeds through /api/embed with the model loaded like any other', async () => {
    const { server, client } = await fake();
    const result = await client.embed({ model: 'nomic-embed-text', input: ['a', 'b'] });
    expect(result.embeddings).toHaveLength(2);
    expect(result.embeddings[0]).toHaveLength(768);
    expect(server.loaded().map((r) => r.name)).toEqual(['nomic-embed-text:latest']);
  });
});

describe('fake Ollama: keep_alive and num_ctx', () => {
  it('refuses "10" (no unit) with the text Ollama gives, and other types like Ollama', async () => {
    const { client } = await fake();
    const noUnit = await responseError(client.generate({ model: 'gemma3:1b', prompt: 'x', keep_alive: '10', stream: false }));
    expect(noUnit.status_code).toBe(400);
    expect(noUnit.error).toBe('time: missing unit in duration "10"');
    const bad = await fetch(`${(client as unknown as { config: { host: string } }).config.host}/api/generate`, {
      method: 'POST',
      body: JSON.stringify({ model: 'gemma3:1b', prompt: 'x', keep_alive: true }),
    });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ error: "unsupported duration type: 'bool'" });
  });

  it('defaults to 5m, keeps a negative keep_alive forever, and unloads when a (scaled) keep_alive runs out', async () => {
    const { server, client } = await fake({ timeScale: 0.001 });
    await client.generate({ model: 'gemma3:1b', prompt: 'x', stream: false });
    const ps = await client.ps();
    expect(server.loaded()[0]?.sessionMs).toBe(300); // 5m x 0.001
    expect(Date.parse(String(ps.models[0]!.expires_at)) - Date.now()).toBeLessThanOrEqual(300);
    await client.generate({ model: 'gemma3:4b', prompt: 'x', stream: false, keep_alive: -1 });
    const forever = (await client.ps()).models.find((m) => m.name === 'gemma3:4b')!;
    expect(new Date(String(forever.expires_at)).getUTCFullYear()).toBeGreaterThan(2200);
    await waitFor('gemma3:1b to expire', () => !server.loaded().some((r) => r.name === 'gemma3:1b:latest' || r.name === 'gemma3:1b'));
    expect(server.loaded().map((r) => r.name)).toEqual(['gemma3:4b']);
    expect(server.stats.perModel['gemma3:1b']?.unloads).toBe(1);
  });

  it('keeps a loaded runner\'s keep_alive when a request names none (as /v1/* never does), changes it when one does', async () => {
    const { server, client } = await fake();
    await client.generate({ model: 'gemma3:1b', prompt: '', keep_alive: -1 });
    await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'gemma3:1b', messages: [{ role: 'user', content: 'x' }] }) });
    await client.generate({ model: 'gemma3:1b', prompt: 'x' });
    expect(server.loaded()[0]?.sessionMs).toBe(Infinity);
    await client.generate({ model: 'gemma3:1b', prompt: 'x', keep_alive: '1m' });
    expect(server.loaded()[0]?.sessionMs).toBe(60_000);
  });

  it('reloads the runner when num_ctx changes, and reports the context in /api/ps', async () => {
    const { server, client } = await fake();
    await client.chat({ model: 'llama3.1:8b', messages: [{ role: 'user', content: 'a' }], options: { num_ctx: 2048 } });
    await client.chat({ model: 'llama3.1:8b', messages: [{ role: 'user', content: 'b' }], options: { num_ctx: 2048 } });
    expect(server.stats.loads).toBe(1);
    await client.chat({ model: 'llama3.1:8b', messages: [{ role: 'user', content: 'c' }], options: { num_ctx: 8192 } });
    expect(server.stats.reloads).toBe(1);
    expect(server.stats.loads).toBe(2);
    const [running] = (await client.ps()).models as unknown as Array<{ context_length: number; size: number }>;
    expect(running?.context_length).toBe(8192);
    expect(running?.size).toBe(runnerSizeBytes(spec('llama3.1:8b'), 8192));
  });

  it('num_batch is a runner option: a new one reloads, and a smaller one makes the runner smaller by the graph difference', async () => {
    const { server, client } = await fake();
    await client.chat({ model: 'llama3.1:8b', messages: [{ role: 'user', content: 'a' }], options: { num_ctx: 4096 } });
    await client.chat({ model: 'llama3.1:8b', messages: [{ role: 'user', content: 'b' }], options: { num_ctx: 4096, num_batch: 512 } });
    expect(server.stats.reloads).toBe(0); // 512 is Ollama's default: the same runner
    const atDefault = server.loaded()[0]!.sizeBytes;
    await client.chat({ model: 'llama3.1:8b', messages: [{ role: 'user', content: 'c' }], options: { num_ctx: 4096, num_batch: 128 } });
    expect(server.stats.reloads).toBe(1);
    expect(server.loaded()[0]).toMatchObject({ numBatch: 128, sizeBytes: runnerSizeBytes(spec('llama3.1:8b'), 4096, 'f16', 128) });
    const graphSaved = 4 * (512 - 128) * (1 + 4 * 4096 + 4096 * 33); // llama3.1 8B: its attention term (Ollama's GraphSize)
    expect(documentedEstimateBytes(spec('llama3.1:8b'), 4096) - documentedEstimateBytes(spec('llama3.1:8b'), 4096, 'f16', 128)).toBe(graphSaved);
    // The runner itself holds 78% of that less (what llama.cpp's RSS showed: not every page of a larger graph is touched).
    const bias = runnerSizeBytes(spec('llama3.1:8b'), 4096) / documentedEstimateBytes(spec('llama3.1:8b'), 4096);
    expect((atDefault - server.loaded()[0]!.sizeBytes) / bias).toBeCloseTo(graphSaved * GRAPH_RSS_SHARE, -1);
    expect(atDefault).toBe(runnerSizeBytes(spec('llama3.1:8b'), 4096));
    const refused = await fetch(`${server.url}/api/chat`, { method: 'POST', body: JSON.stringify({ model: 'llama3.1:8b', messages: [{ role: 'user', content: 'd' }], options: { num_batch: 'big' } }) });
    expect(refused.status).toBe(500);
    expect(await refused.json()).toEqual({ error: 'option "num_batch" must be of type integer' });
  });

  it('prompt speed by num_batch: the llama.cpp table, linear in between, clamped at its ends, never faster than 512', () => {
    const table = [[64, 0.5], [128, 0.7], [512, 1.1]] as const;
    expect(promptSpeed(96, table)).toBeCloseTo(0.6, 10);
    expect(promptSpeed(1, table)).toBe(0.5);
    expect(promptSpeed(320, table)).toBeCloseTo(0.9, 10);
    expect(promptSpeed(8192, table)).toBe(1);
    expect(promptSpeed(500, table)).toBe(1);
    expect(promptSpeed(128)).toBe(1); // measured: no slowdown on this CPU
  });

  it('counts a prompt longer than the runner\'s context as truncated (Ollama cuts it silently), on /v1 at the default num_ctx too', async () => {
    const { server, client } = await fake();
    const long = 'word '.repeat(1000); // 5000 characters: ~1250 tokens at 4 characters a token
    await client.chat({ model: 'llama3.1:8b', messages: [{ role: 'user', content: long }], options: { num_ctx: 2048 } });
    expect(server.stats.truncated).toBe(0);
    await client.chat({ model: 'llama3.1:8b', messages: [{ role: 'user', content: long }], options: { num_ctx: 1024 } });
    expect(server.stats.truncated).toBe(1);
    const v1 = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'llama3.1:8b', messages: [{ role: 'user', content: long.repeat(4) }] }) });
    expect(v1.status).toBe(200);
    await v1.text();
    expect(server.stats.truncated).toBe(2);
    expect(server.stats.perModel['llama3.1:8b']?.truncated).toBe(2);
  });

  it('accounts memory as weights + KV(num_ctx) + overhead, off the documented estimate by a per-model bias', async () => {
    const { client } = await fake();
    await client.generate({ model: 'llama3.1:8b', prompt: 'x', options: { num_ctx: 8192 } });
    await client.generate({ model: 'gemma3:4b', prompt: 'x' });
    const sizes = Object.fromEntries((await client.ps()).models.map((m) => [m.name, m.size]));
    const llama = spec('llama3.1:8b');
    // 8B llama KV at 8192 tokens, f16: 2 x 32 layers x 8 kv heads x 128 x 8192 x 2 bytes = 1 GiB.
    expect(kvCacheBytes(llama, 8192)).toBe(GIB);
    const llamaRatio = sizes['llama3.1:8b']! / documentedEstimateBytes(llama, 8192);
    const gemmaRatio = sizes['gemma3:4b']! / documentedEstimateBytes(spec('gemma3:4b'), 4096);
    for (const ratio of [llamaRatio, gemmaRatio]) {
      expect(ratio).toBeGreaterThanOrEqual(1.04);
      expect(ratio).toBeLessThanOrEqual(1.22);
    }
    expect(llamaRatio).not.toBeCloseTo(gemmaRatio, 3);
  });

  it('halves the KV cache on a server started with OLLAMA_KV_CACHE_TYPE=q8_0', async () => {
    const { client } = await fake({ kvCacheType: 'q8_0' });
    await client.generate({ model: 'llama3.1:8b', prompt: 'x', options: { num_ctx: 8192 } });
    const [running] = (await client.ps()).models;
    const llama = spec('llama3.1:8b');
    expect(kvCacheBytes(llama, 8192, 'q8_0')).toBe(GIB / 2);
    expect(running?.size).toBe(runnerSizeBytes(llama, 8192, 'q8_0'));
    expect(runnerSizeBytes(llama, 8192) - runnerSizeBytes(llama, 8192, 'q8_0')).toBeGreaterThan(GIB / 2);
  });
});

describe('fake Ollama: eviction, memory and queue', () => {
  it('evicts the idle runner with the shortest keep_alive, not the least recently used', async () => {
    const { server, client } = await fake({ maxLoadedModels: 2 });
    await client.generate({ model: 'gemma3:4b', prompt: 'x', keep_alive: '10m' }); // least recently used
    await client.generate({ model: 'gemma3:1b', prompt: 'x', keep_alive: '1m' });
    await client.generate({ model: 'qwen2.5:0.5b', prompt: 'x' });
    expect(server.loaded().map((r) => r.name).sort()).toEqual(['gemma3:4b', 'qwen2.5:0.5b']);
    expect(server.stats.evictions).toBe(1);
    expect(server.stats.perModel['gemma3:1b']?.evictions).toBe(1);
  });

  it('evicts idle runners to make room, then fails with Ollama\'s 500 when the model still does not fit', async () => {
    const llamaSize = runnerSizeBytes(spec('llama3.1:8b'), 4096);
    const { server, client } = await fake({ memoryBytes: llamaSize + 100 * 1024 ** 2 });
    await client.generate({ model: 'gemma3:1b', prompt: 'x' });
    await client.generate({ model: 'llama3.1:8b', prompt: 'x' }); // gemma goes to make room
    expect(server.loaded().map((r) => r.name)).toEqual(['llama3.1:8b']);
    server.setMemoryBytes(GIB);
    await client.generate({ model: 'gemma3:1b', prompt: '', keep_alive: 0 });
    const oom = await responseError(client.generate({ model: 'llama3.1:8b', prompt: 'x', options: { num_ctx: 8192 } }));
    expect(oom.status_code).toBe(500);
    expect(oom.error).toMatch(/^model requires more system memory \(\d+\.\d GiB\) than is available \(\d+\.\d (GiB|MiB)\)$/);
    expect(server.stats.oom).toBe(1);
  });

  it('queues past numParallel and answers 503 past maxQueue', async () => {
    const { server, client } = await fake({ maxQueue: 1, tokenDelayMs: 20 });
    const first = client.generate({ model: 'gemma3:1b', prompt: 'x', stream: false });
    await waitFor('the first request to run', () => server.loaded().some((r) => r.refCount === 1));
    const second = client.generate({ model: 'gemma3:1b', prompt: 'y', stream: false }); // waits for the slot
    await waitFor('the second request to queue', () => server.loaded()[0]?.refCount === 2);
    const third = await responseError(client.generate({ model: 'gemma3:1b', prompt: 'z', stream: false }));
    expect(third.status_code).toBe(503);
    expect(third.error).toBe('server busy, please try again.  maximum pending requests exceeded');
    expect((await first).done).toBe(true);
    expect((await second).done).toBe(true);
    expect(server.stats.rejected).toBe(1);
  });
});

describe('fake Ollama: errors and cancellation', () => {
  it('answers 404 for an unknown model with Ollama\'s text', async () => {
    const { client } = await fake();
    const error = await responseError(client.chat({ model: 'llama9:70b', messages: [{ role: 'user', content: 'x' }] }));
    expect(error.status_code).toBe(404);
    expect(error.error).toBe('model "llama9:70b" not found, try pulling it first');
  });

  it('injects 500 OOM and 503 on demand', async () => {
    const { server, client } = await fake();
    server.failNext('oom');
    expect((await responseError(client.generate({ model: 'gemma3:1b', prompt: 'x' }))).status_code).toBe(500);
    server.failNext('503');
    expect((await responseError(client.generate({ model: 'gemma3:1b', prompt: 'x' }))).status_code).toBe(503);
    expect((await client.generate({ model: 'gemma3:1b', prompt: 'x' })).done).toBe(true);
  });

  it('sends a mid-stream error as an {"error"} NDJSON line under status 200, which ollama-js throws', async () => {
    const { server, client } = await fake();
    server.failNext('midstream');
    const raw = await fetch(`${server.url}/api/generate`, { method: 'POST', body: JSON.stringify({ model: 'gemma3:1b', prompt: 'x' }) });
    expect(raw.status).toBe(200);
    const lines = (await raw.text()).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(3);
    expect(lines.at(-1)).toEqual({ error: 'an error was encountered while running the model: unexpected EOF' });

    server.failNext('midstream');
    const stream = await client.generate({ model: 'gemma3:1b', prompt: 'x', stream: true });
    const seen: string[] = [];
    await expect(
      (async () => {
        for await (const part of stream) seen.push(part.response ?? '');
      })(),
    ).rejects.toThrow('unexpected EOF');
    expect(seen).toEqual(['The', ' meeting']);
  });

  it('counts a client abort mid-stream as a cancelled generation and frees the slot', async () => {
    const { server, client } = await fake({ tokenDelayMs: 30 });
    const stream = await client.chat({ model: 'gemma3:1b', messages: [{ role: 'user', content: 'x' }], stream: true });
    const seen: string[] = [];
    await expect(
      (async () => {
        for await (const part of stream) {
          seen.push(part.message.content);
          if (seen.length === 2) stream.abort();
        }
      })(),
    ).rejects.toThrow(/abort/i);
    await waitFor('the cancellation', () => server.stats.cancelled === 1);
    await waitFor('the slot to be free', () => server.loaded()[0]?.refCount === 0);
    expect(server.stats.perModel['gemma3:1b']?.cancelled).toBe(1);
  });

  it('hangs on demand until the client gives up (counted as cancelled), and resets on demand', async () => {
    const { server } = await fake();
    server.failNext('hang');
    const controller = new AbortController();
    const hung = fetch(`${server.url}/api/generate`, { method: 'POST', body: JSON.stringify({ model: 'gemma3:1b', prompt: 'x' }), signal: controller.signal });
    await sleep(50);
    controller.abort();
    await expect(hung).rejects.toThrow();
    await waitFor('the hang to count as cancelled', () => server.stats.cancelled === 1);
    server.failNext('reset');
    await expect(fetch(`${server.url}/api/generate`, { method: 'POST', body: JSON.stringify({ model: 'gemma3:1b', prompt: 'x' }) })).rejects.toThrow();
  });

  it('answers bad JSON and a missing model with 400', async () => {
    const { server } = await fake();
    const bad = await fetch(`${server.url}/api/chat`, { method: 'POST', body: '{"model":' });
    expect(bad.status).toBe(400);
    const missing = await fetch(`${server.url}/api/chat`, { method: 'POST', body: '{}' });
    expect(missing.status).toBe(400);
    expect(await missing.json()).toEqual({ error: 'model is required' });
  });
});

describe('fake Ollama: OpenAI layer', () => {
  it('streams /v1/chat/completions as SSE chunks ending with data: [DONE]', async () => {
    const { server } = await fake();
    const response = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gemma3:1b', messages: [{ role: 'user', content: 'hi' }], stream: true }),
    });
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    const events = (await response.text()).split('\n\n').filter(Boolean);
    expect(events.at(-1)).toBe('data: [DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.replace(/^data: /, '')) as { object: string; choices: Array<{ delta: { content: string }; finish_reason: string | null }> });
    expect(chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true);
    expect(chunks.map((c) => c.choices[0]!.delta.content).join('')).toBe('The meeting agreed to ship the release on');
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe('stop');
  });

  it('answers JSON without stream, ignores keep_alive and options like Ollama, and lists /v1/models', async () => {
    const { server, client } = await fake();
    const response = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      body: JSON.stringify({ model: 'gemma3:1b', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, keep_alive: -1, options: { num_ctx: 16384 } }),
    });
    const body = (await response.json()) as { object: string; choices: Array<{ message: { content: string }; finish_reason: string }>; usage: { completion_tokens: number } };
    expect(body.object).toBe('chat.completion');
    expect(body.choices[0]).toMatchObject({ message: { content: 'The meeting' }, finish_reason: 'length' });
    expect(body.usage.completion_tokens).toBe(2);
    const [running] = server.loaded();
    expect(running?.numCtx).toBe(4096); // options.num_ctx ignored
    expect(running?.sessionMs).toBe(300_000); // keep_alive ignored: a load gets the 5m default
    expect((await client.ps()).models).toHaveLength(1);
    const models = (await (await fetch(`${server.url}/v1/models`)).json()) as { object: string; data: Array<{ id: string }> };
    expect(models.object).toBe('list');
    expect(models.data.map((m) => m.id)).toContain('gemma3:1b');
    const missing = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'x', messages: [] }) });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: { message: 'model "x" not found, try pulling it first', type: 'not_found_error', param: null, code: null } });
  });
});

describe('fake Ollama: real memory', () => {
  it('backs a loaded runner with resident memory in a child process, freed on unload', async () => {
    const allocator = startRealMemoryAllocator();
    try {
      const tiny = modelSpec({
        name: 'tiny:q8',
        arch: 'llama',
        quantization: 'Q8_0',
        parameterCount: 64e6,
        blockCount: 4,
        headCount: 4,
        headCountKv: 4,
        embeddingLength: 256,
        contextLength: 2048,
        overheadBytes: 16 * 1024 ** 2,
        bias: 1,
      });
      const { server, client } = await fake({ models: [tiny], allocator });
      const before = await allocator.rssBytes();
      await client.generate({ model: 'tiny:q8', prompt: 'x', options: { num_ctx: 2048 } });
      const size = server.loaded()[0]!.sizeBytes;
      expect(size).toBeGreaterThan(80 * 1024 ** 2);
      const loaded = await allocator.rssBytes();
      expect(loaded - before).toBeGreaterThan(size * 0.9);
      await client.generate({ model: 'tiny:q8', prompt: '', keep_alive: 0 });
      const after = await allocator.rssBytes(); // the child handles commands in order: the unload came first
      expect(loaded - after).toBeGreaterThan(size * 0.9);
    } finally {
      await allocator.close();
    }
  });
});

describe('fake Ollama: pull, delete', () => {
  it('pulls a known model (stream of statuses) and deletes it', async () => {
    const { client } = await fake();
    expect(await client.pull({ model: 'gemma3:1b' })).toEqual({ status: 'success' });
    await client.delete({ model: 'gemma3:1b' });
    expect((await client.list()).models.map((m) => m.name)).not.toContain('gemma3:1b');
    expect((await responseError(client.delete({ model: 'gemma3:1b' }))).status_code).toBe(404);
  });
});

describe('keep_alive parsing (shared by the proxy and the fake)', () => {
  it('follows Go time.ParseDuration and Ollama Duration.UnmarshalJSON', () => {
    expect(parseKeepAlive('5m')).toEqual({ ok: true, ms: 300_000 });
    expect(parseKeepAlive('1h30m')).toEqual({ ok: true, ms: 5_400_000 });
    expect(parseKeepAlive('0')).toEqual({ ok: true, ms: 0 });
    expect(parseKeepAlive('-1m')).toEqual({ ok: true, ms: Infinity });
    expect(parseKeepAlive(-1)).toEqual({ ok: true, ms: Infinity });
    expect(parseKeepAlive(30)).toEqual({ ok: true, ms: 30_000 });
    expect(parseKeepAlive('10')).toEqual({ ok: false, error: 'time: missing unit in duration "10"' });
    expect(parseKeepAlive('10x')).toEqual({ ok: false, error: 'time: unknown unit "x" in duration "10x"' });
    expect(parseKeepAlive('')).toEqual({ ok: false, error: 'time: invalid duration ""' });
    expect(parseKeepAlive(null)).toEqual({ ok: false, error: "unsupported duration type: 'object'" });
  });

  propIt.prop([fc.integer({ min: 0, max: 10_000 }), fc.constantFrom(['ms', 1], ['s', 1000], ['m', 60_000], ['h', 3_600_000])])(
    'a whole number with a unit is that many units, a bare non-zero number is an error',
    (n, [unit, ms]) => {
      expect(parseKeepAlive(`${n}${unit}`)).toEqual({ ok: true, ms: n * (ms as number) });
      if (n !== 0) expect(parseKeepAlive(String(n))).toEqual({ ok: false, error: `time: missing unit in duration "${n}"` });
    },
  );
});

describe('fake Ollama scheduler: model-based (fc.commands)', () => {
  interface Model {
    /** Requests holding a runner, by model: num_ctx and how many. */
    held: Map<string, { numCtx: number; count: number }>;
    /** Busy models told to unload (keep_alive 0): they go when their last request ends. */
    expiring: Set<string>;
  }
  interface Real {
    scheduler: FakeScheduler;
    holds: Runner[];
  }
  const MODELS = DEFAULT_FAKE_MODELS.filter((m) => !m.embedding);
  const never = new AbortController().signal;
  /** Ollama sizes the KV cache for num_ctx x OLLAMA_NUM_PARALLEL. */
  const PARALLEL = 4;

  function invariants(real: Real): void {
    const { scheduler } = real;
    expect(scheduler.usedBytes()).toBeLessThanOrEqual(scheduler.memoryBytes);
    // A runner with requests on it is never unloaded or evicted.
    for (const runner of real.holds) expect(scheduler.runners.get(runner.name)).toBe(runner);
    for (const runner of scheduler.runners.values()) expect(runner.refCount).toBe(real.holds.filter((h) => h === runner).length);
  }

  class Acquire implements fc.AsyncCommand<Model, Real> {
    constructor(
      readonly model: number,
      readonly numCtx: number,
      readonly sessionMs: number | null,
    ) {}
    /** A different num_ctx on a busy runner (or one on its way out) waits for it to drain: not while this test holds it. */
    check = (m: Readonly<Model>) => {
      const name = MODELS[this.model]!.name;
      const held = m.held.get(name);
      return !held || (held.numCtx === this.numCtx && !m.expiring.has(name));
    };
    async run(m: Model, real: Real): Promise<void> {
      const spec = MODELS[this.model]!;
      const busyBytes = [...real.scheduler.runners.values()].filter((r) => r.refCount > 0 && r.name !== spec.name).reduce((s, r) => s + r.sizeBytes, 0);
      const before = real.scheduler.runners.get(spec.name);
      try {
        const runner = await real.scheduler.acquire(spec, { numCtx: this.numCtx, numBatch: 512, useMmap: null }, this.sessionMs, never, false);
        real.holds.push(runner);
        const held = m.held.get(spec.name) ?? { numCtx: this.numCtx, count: 0 };
        held.count += 1;
        m.held.set(spec.name, held);
        expect(runner.numCtx).toBe(this.numCtx);
        if (before && before !== runner) expect(before.numCtx).not.toBe(this.numCtx); // reloaded only for a new num_ctx
      } catch (error) {
        expect(error).toBeInstanceOf(OutOfMemoryError);
        // Refused only when it could not fit even with every idle runner gone.
        expect(busyBytes + runnerSizeBytes(spec, this.numCtx * PARALLEL)).toBeGreaterThan(real.scheduler.memoryBytes);
      }
      invariants(real);
    }
    toString = () => `Acquire(${MODELS[this.model]!.name}, ${this.numCtx}, ${this.sessionMs})`;
  }

  class Release implements fc.AsyncCommand<Model, Real> {
    constructor(readonly index: number) {}
    check = (m: Readonly<Model>) => [...m.held.values()].some((h) => h.count > 0);
    async run(m: Model, real: Real): Promise<void> {
      const runner = real.holds.splice(this.index % real.holds.length, 1)[0]!;
      real.scheduler.release(runner);
      const held = m.held.get(runner.name)!;
      held.count -= 1;
      if (held.count === 0) {
        m.held.delete(runner.name);
        m.expiring.delete(runner.name);
      }
      if (runner.refCount === 0 && runner.sessionMs === 0) expect(real.scheduler.runners.has(runner.name)).toBe(false);
      invariants(real);
    }
    toString = () => `Release(${this.index})`;
  }

  class Expire implements fc.AsyncCommand<Model, Real> {
    constructor(readonly model: number) {}
    check = () => true;
    async run(m: Model, real: Real): Promise<void> {
      const name = MODELS[this.model]!.name;
      real.scheduler.expire(name);
      if (m.held.has(name)) m.expiring.add(name);
      else expect(real.scheduler.runners.has(name)).toBe(false);
      invariants(real);
    }
    toString = () => `Expire(${MODELS[this.model]!.name})`;
  }

  const modelIndex = fc.integer({ min: 0, max: MODELS.length - 1 });
  const commands = [
    fc.tuple(modelIndex, fc.constantFrom(2048, 4096, 8192), fc.constantFrom(0, Infinity, null)).map(([m, c, k]) => new Acquire(m, c, k)),
    fc.nat().map((i) => new Release(i)),
    modelIndex.map((m) => new Expire(m)),
  ];

  propIt.prop([fc.commands(commands, { maxCommands: 30 }), fc.integer({ min: 2, max: 24 })])(
    'never exceeds memory, never unloads a busy runner, refuses a load only when it cannot fit',
    async (cmds, gib) => {
      const stats = { ...emptyModelStats(), rejected: 0, oom: 0, perModel: {} };
      const scheduler = new FakeScheduler({ memoryBytes: gib * GIB, numParallel: PARALLEL, maxLoadedModels: 16, loadDelayMsPerGb: 0, stats });
      const real: Real = { scheduler, holds: [] };
      await fc.asyncModelRun(() => ({ model: { held: new Map(), expiring: new Set<string>() }, real }), cmds);
      scheduler.close();
    },
  );
});
