/**
 * src/sources/ollamaApi.ts over the real `ollama` client: against the fake
 * Ollama server (HTTP on loopback) for what Ollama answers, and against a
 * stub fetch for what is hard to make a server do (a flaky answer, a hang).
 */
import { VirtualTimeScheduler, BehaviorSubject } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createModelCatalog, createOllamaApi, OllamaApiError, parsePs, parseShow, pollPs, type PsModel, type PsSnapshot } from '../src/sources/ollamaApi.js';
import { startFakeOllama, type FakeOllama } from './support/fakeOllama.js';

let fake: FakeOllama;
beforeAll(async () => {
  fake = await startFakeOllama({});
});
afterAll(async () => {
  await fake.close();
});

const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

describe('createOllamaApi against the fake Ollama', () => {
  it('show: facts from model_info and details', async () => {
    const api = createOllamaApi({ host: fake.url });
    expect(await api.show('llama3.1:8b')).toEqual({
      name: 'llama3.1:8b',
      architecture: 'llama',
      parameterCount: 8.03e9,
      blockCount: 32,
      contextLength: 131_072,
      embeddingLength: 4096,
      headCount: 32,
      headCountKv: 8,
      keyLength: null,
      vocabSize: 128_256,
      quantization: 'Q4_K_M',
      fileSizeBytes: null,
    });
  });

  it('list: tags with file size, quantization and parameter size', async () => {
    const api = createOllamaApi({ host: fake.url });
    const tags = await api.list();
    expect(tags).toContainEqual({ name: 'llama3.1:8b-instruct-q8_0', sizeBytes: expect.any(Number), quantization: 'Q8_0', parameterSize: '8.0B' });
  });

  it('preload loads with num_ctx and keep_alive; ps reports it; unload (keep_alive 0) removes it', async () => {
    const api = createOllamaApi({ host: fake.url });
    await api.preload('gemma3:1b', { numCtx: 8192, numBatch: 256, keepAlive: 120, useMmap: false });
    const ps = await api.ps();
    expect(ps).toEqual([
      { name: 'gemma3:1b', sizeBytes: expect.any(Number), sizeVramBytes: 0, expiresAtMs: expect.any(Number), contextLength: 8192, quantization: 'Q4_K_M' },
    ]);
    expect(fake.loaded()).toMatchObject([{ name: 'gemma3:1b', numCtx: 8192, numBatch: 256, useMmap: false, sessionMs: 120_000 }]);
    expect(fake.lastReceived('/api/generate')?.body).toMatchObject({ model: 'gemma3:1b', prompt: '', keep_alive: 120, options: { num_ctx: 8192, num_batch: 256, use_mmap: false } });
    await api.unload('gemma3:1b');
    expect(fake.lastReceived('/api/generate')?.body).toMatchObject({ model: 'gemma3:1b', prompt: '', keep_alive: 0 });
    expect(await api.ps()).toEqual([]);
  });

  it('a model that does not exist: NOT_FOUND with the status, not retried', async () => {
    const api = createOllamaApi({ host: fake.url, retries: 3, retryBaseMs: 1 });
    const before = fake.received.filter((r) => r.path === '/api/show').length;
    const error = await api.show('nope:1b').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OllamaApiError);
    expect(error).toMatchObject({ code: 'MEMTIDE_ERR_OLLAMA_NOT_FOUND', status: 404, operation: 'show nope:1b', retryable: false });
    expect(fake.received.filter((r) => r.path === '/api/show').length).toBe(before + 1);
  });

  it('Ollama down: UNREACHABLE after the retries, with the cause', async () => {
    const closed = await startFakeOllama({});
    const url = closed.url;
    await closed.close();
    const api = createOllamaApi({ host: url, retries: 2, retryBaseMs: 1 });
    const error = await api.ps().catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'MEMTIDE_ERR_OLLAMA_UNREACHABLE', status: null, retryable: true, message: expect.stringContaining('ECONNREFUSED') });
  });
});

describe('createOllamaApi against a stub fetch', () => {
  const psBody = { models: [{ name: 'a:1b', model: 'a:1b', size: 100, size_vram: 0, expires_at: '2030-01-01T00:00:00Z', details: {} }] };

  it('retries reads on 5xx and connection failures with a doubling backoff, then succeeds', async () => {
    const answers = [() => json(500, { error: 'boom' }), () => Promise.reject(new TypeError('fetch failed')), () => json(200, psBody)];
    const calls: number[] = [];
    const fetchStub: typeof fetch = async () => {
      calls.push(Date.now());
      return answers.shift()!();
    };
    const api = createOllamaApi({ host: 'http://127.0.0.1:1', fetch: fetchStub, retries: 2, retryBaseMs: 20 });
    expect(await api.ps()).toEqual([{ name: 'a:1b', sizeBytes: 100, sizeVramBytes: 0, expiresAtMs: Date.parse('2030-01-01T00:00:00Z'), contextLength: null, quantization: null }]);
    expect(calls).toHaveLength(3);
    expect(calls[2]! - calls[1]!).toBeGreaterThanOrEqual(35); // 20 ms, then 40 ms
  });

  it('gives up after the retries with the last error; writes are never retried', async () => {
    let calls = 0;
    const fetchStub: typeof fetch = async () => {
      calls += 1;
      return json(503, { error: 'server busy, please try again.  maximum pending requests exceeded' });
    };
    const api = createOllamaApi({ host: 'http://127.0.0.1:1', fetch: fetchStub, retries: 1, retryBaseMs: 1 });
    await expect(api.list()).rejects.toMatchObject({ code: 'MEMTIDE_ERR_OLLAMA_HTTP', status: 503, message: expect.stringContaining('maximum pending requests') });
    expect(calls).toBe(2);
    calls = 0;
    await expect(api.unload('a:1b')).rejects.toMatchObject({ code: 'MEMTIDE_ERR_OLLAMA_HTTP', status: 503 });
    expect(calls).toBe(1);
  });

  it('a hung Ollama is cut off by timeoutMs (UNREACHABLE, timed out)', async () => {
    const fetchStub: typeof fetch = (_input, init) =>
      new Promise((_resolve, reject) => init?.signal?.addEventListener('abort', () => reject(init.signal!.reason as Error)));
    const api = createOllamaApi({ host: 'http://127.0.0.1:1', fetch: fetchStub, retries: 0, timeoutMs: 30 });
    await expect(api.ps()).rejects.toMatchObject({ code: 'MEMTIDE_ERR_OLLAMA_UNREACHABLE', message: expect.stringContaining('timed out') });
  });

  it('an unload not answered with done_reason "unload" is an error naming what came', async () => {
    const fetchStub: typeof fetch = async () => json(200, { model: 'a:1b', done: true, done_reason: 'load' });
    const api = createOllamaApi({ host: 'http://127.0.0.1:1', fetch: fetchStub });
    await expect(api.unload('a:1b')).rejects.toMatchObject({ code: 'MEMTIDE_ERR_OLLAMA_RESPONSE', message: 'unload a:1b: expected done_reason "unload", got "load"' });
  });

  it('answers of the wrong shape are RESPONSE errors naming the field', async () => {
    expect(() => parsePs({ models: 'x' })).toThrow('ps: "models" is not an array');
    expect(() => parsePs({ models: [{ name: 'a' }] })).toThrow('ps: models[0] has no name or size');
    expect(() => parseShow('m', { model_info: [1] })).toThrow('show m: model_info is not an object');
    const fetchStub: typeof fetch = async () => new Response('not json', { status: 200, headers: { 'content-type': 'application/json' } });
    const api = createOllamaApi({ host: 'http://127.0.0.1:1', fetch: fetchStub, retries: 3, retryBaseMs: 1 });
    await expect(api.ps()).rejects.toMatchObject({ code: 'MEMTIDE_ERR_OLLAMA_RESPONSE' });
  });

  it('parseShow: per-layer head_count_kv arrays count their largest; key_length is read; a missing model_info gives nulls', () => {
    const facts = parseShow('m', {
      details: { quantization_level: 'Q8_0' },
      model_info: { 'general.architecture': 'openelm', 'openelm.block_count': 2, 'openelm.attention.head_count_kv': [3, 5], 'openelm.attention.key_length': 64 },
    });
    expect(facts).toMatchObject({ architecture: 'openelm', blockCount: 2, headCountKv: 5, keyLength: 64, quantization: 'Q8_0', contextLength: null });
    expect(parseShow('m', {})).toMatchObject({ architecture: null, parameterCount: null, quantization: null });
  });
});

describe('pollPs', () => {
  it('reads on every interval, reports failures and goes on, and follows interval changes', async () => {
    const scheduler = new VirtualTimeScheduler();
    const loaded: PsModel = { name: 'a:1b', sizeBytes: 1, sizeVramBytes: 0, expiresAtMs: null, contextLength: null, quantization: null };
    const answers: Array<PsModel[] | Error> = [[], new Error('down'), [loaded]];
    let n = 0;
    const seq = async (): Promise<PsModel[]> => {
      const answer = answers[Math.min(n, answers.length - 1)]!;
      n += 1;
      if (answer instanceof Error) throw answer;
      return answer;
    };
    const interval$ = new BehaviorSubject(1000);
    const snapshots: PsSnapshot[] = [];
    const errors: unknown[] = [];
    const sub = pollPs({ ps: seq }, interval$, (e) => errors.push(e), scheduler).subscribe({ next: (s) => snapshots.push(s), error: (e: unknown) => errors.push(e) });
    const step = async (ms: number) => {
      const target = scheduler.frame + ms;
      scheduler.maxFrames = target;
      scheduler.flush();
      scheduler.frame = target;
      await new Promise((r) => setImmediate(r));
    };
    await step(0);
    await step(1000);
    await step(1000);
    expect(snapshots.map((s) => [s.atMs, s.models.length])).toEqual([
      [0, 0],
      [2000, 1],
    ]);
    expect(errors).toEqual([new Error('down')]);
    interval$.next(5000);
    await step(0);
    await step(4999);
    expect(snapshots).toHaveLength(3); // one at the change (2000), none until 7000
    await step(1);
    expect(snapshots.map((s) => s.atMs)).toEqual([0, 2000, 2000, 7000]);
    sub.unsubscribe();
    expect(scheduler.actions).toHaveLength(0);
  });
  it('backs off while Ollama stays down (1, 2, 4... intervals, at most 30 s) and resumes its pace on the first success', async () => {
    const scheduler = new VirtualTimeScheduler();
    let down = true;
    const readsAt: number[] = [];
    const ps = async (): Promise<PsModel[]> => {
      readsAt.push(scheduler.now());
      if (down) throw new Error('ECONNREFUSED');
      return [];
    };
    const errors: unknown[] = [];
    const snapshots: PsSnapshot[] = [];
    const sub = pollPs({ ps }, new BehaviorSubject(1000), (e) => errors.push(e), scheduler).subscribe({ next: (s) => snapshots.push(s), error: (e: unknown) => errors.push(e) });
    for (let t = 0; t <= 70_000; t += 1000) {
      scheduler.maxFrames = t;
      scheduler.flush();
      scheduler.frame = t;
      await new Promise((r) => setImmediate(r));
    }
    // Reads at 0, then waits of 1, 2, 4, 8, 16, 30, 30 s.
    expect(readsAt).toEqual([0, 1000, 3000, 7000, 15_000, 31_000, 61_000]);
    expect(errors).toHaveLength(readsAt.length);
    down = false;
    for (let t = 71_000; t <= 95_000; t += 1000) {
      scheduler.maxFrames = t;
      scheduler.flush();
      scheduler.frame = t;
      await new Promise((r) => setImmediate(r));
    }
    expect(readsAt.filter((t) => t > 70_000)[0]).toBe(91_000);
    expect(readsAt.filter((t) => t > 91_000)).toEqual([92_000, 93_000, 94_000, 95_000]);
    expect(snapshots.map((s) => s.atMs)).toEqual([91_000, 92_000, 93_000, 94_000, 95_000]);
    sub.unsubscribe();
  });
});

describe('createModelCatalog', () => {
  const facts = (name: string) => parseShow(name, { details: { quantization_level: 'Q4_0' }, model_info: { 'general.architecture': 'llama' } });

  it('asks /api/show once per model while cached (concurrent asks share the call), and again after the TTL', async () => {
    const scheduler = new VirtualTimeScheduler();
    const calls: string[] = [];
    const catalog = createModelCatalog(
      { show: async (m) => (calls.push(m), facts(m)), list: async () => (calls.push('list'), []) },
      { scheduler, onError: () => undefined, factsTtlMs: 1000, tagsTtlMs: 500 },
    );
    const [a, b] = await Promise.all([catalog.facts('x:1b'), catalog.facts('x:1b')]);
    expect(a).toBe(b);
    expect(catalog.cachedFacts('x:1b')).toBe(a);
    await catalog.tags();
    await catalog.tags();
    expect(calls).toEqual(['x:1b', 'list']);
    scheduler.frame = 600;
    await catalog.tags();
    scheduler.frame = 1100;
    await catalog.facts('x:1b');
    expect(calls).toEqual(['x:1b', 'list', 'list', 'x:1b']);
  });

  it('a failure is reported and gives null (facts) or the last good list (tags), and is asked again next time', async () => {
    const errors: string[] = [];
    let fail = false;
    const catalog = createModelCatalog(
      {
        show: async () => Promise.reject(new OllamaApiError('MEMTIDE_ERR_OLLAMA_UNREACHABLE', 'show', 'down')),
        list: async () => (fail ? Promise.reject(new Error('down')) : [{ name: 'a:1b', sizeBytes: 1, quantization: null, parameterSize: null }]),
      },
      { scheduler: new VirtualTimeScheduler(), onError: (operation) => errors.push(operation), tagsTtlMs: 0 },
    );
    expect(await catalog.facts('x:1b')).toBeNull();
    expect(await catalog.facts('x:1b')).toBeNull();
    expect(await catalog.tags()).toHaveLength(1);
    fail = true;
    expect(await catalog.tags()).toHaveLength(1);
    expect(errors).toEqual(['show x:1b', 'show x:1b', 'list']);
  });
});
