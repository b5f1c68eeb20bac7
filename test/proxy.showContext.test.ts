/**
 * `/api/show` through the proxy advertises the context memtide runs a model
 * at (minus the answer reserve), so Meetily's transcript chunks fit it; with
 * the setting off or without a governor the answer is Ollama's, byte for byte.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { configSchema } from '../src/app/configSchema.js';
import { startProxy, type ProxyHandle, type ProxySettings } from '../src/app/proxy/proxy.js';
import { rewriteShowAnswer, TRAINED_CONTEXT_KEY } from '../src/app/proxy/showContext.js';
import type { ModelsConfig } from '../src/app/schema/models.js';
import type { ModelGovernor } from '../src/streams/governorApi.js';
import { advertisedContextOf } from '../src/streams/modelGovernor.js';
import { DEFAULT_FAKE_MODELS, startFakeOllama, type FakeOllama } from './support/fakeOllama.js';
import { createStubGovernor } from './support/stubGovernor.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const MODELS: ModelsConfig = configSchema.parse({ models: { maxContext: 8192, answerReserveTokens: 1024, perModel: { 'gemma3:1b': { maxContext: 16384 } } } }).models;
const SETTINGS: ProxySettings = { bodyLimitBytes: 1024 * 1024, openAiChat: 'translate', advertiseContext: true };

/** The stub governor plus the real, pure advertisedContext over MODELS. */
function governorWithContext(): ModelGovernor {
  return Object.assign(createStubGovernor(), { advertisedContext: (model: string, trained: number, runsAt: 'governed' | 'server-default') => advertisedContextOf(MODELS, model, trained, runsAt) });
}

async function rig(settings: ProxySettings, governor: ModelGovernor | undefined): Promise<{ fake: FakeOllama; proxy: ProxyHandle }> {
  const fake = await startFakeOllama();
  cleanups.push(() => fake.close());
  const proxy = await startProxy({ listen: { host: '127.0.0.1', port: 0 }, upstream: fake.url, ...(governor ? { governor } : {}), config: settings });
  cleanups.push(() => proxy.close());
  return { fake, proxy };
}

const show = (url: string, body: unknown) => fetch(`${url}/api/show`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
const trainedOf = (name: string) => DEFAULT_FAKE_MODELS.find((m) => m.name === name)!.contextLength;

describe('advertisedContextOf', () => {
  it('is the context requests run at, minus the answer reserve, within [512, trained]', () => {
    expect(advertisedContextOf(MODELS, 'llama3.1:8b', 131072, 'governed')).toBe(8192 - 1024);
    expect(advertisedContextOf(MODELS, 'gemma3:1b', 32768, 'governed')).toBe(16384 - 1024); // its own maxContext
    expect(advertisedContextOf(MODELS, 'llama3.1:8b', 131072, 'server-default')).toBe(4096 - 1024);
    expect(advertisedContextOf(MODELS, 'tiny', 2048, 'governed')).toBe(2048 - 1024); // the trained context caps it
    expect(advertisedContextOf(MODELS, 'tiny', 1200, 'governed')).toBe(512); // floored
    expect(advertisedContextOf(MODELS, 'tiny', 300, 'governed')).toBe(300); // never above the trained context
  });
});

describe('proxy: /api/show advertises the context memtide runs the model at', () => {
  it('rewrites <arch>.context_length, keeps the trained value, and says so in a header', async () => {
    const { fake, proxy } = await rig(SETTINGS, governorWithContext());
    for (const [body, name] of [
      [{ model: 'llama3.1:8b' }, 'llama3.1:8b'],
      [{ name: 'gemma3:1b', verbose: true }, 'gemma3:1b'],
    ] as const) {
      const upstream = (await (await show(fake.url, body)).json()) as { details: { family: string }; model_info: Record<string, unknown> };
      const response = await show(proxy.url, body);
      expect(response.status).toBe(200);
      const answer = (await response.json()) as typeof upstream;
      const key = `${answer.details.family}.context_length`;
      const advertised = advertisedContextOf(MODELS, name, trainedOf(name), 'governed');
      expect(answer.model_info[key]).toBe(advertised);
      expect(answer.model_info[TRAINED_CONTEXT_KEY]).toBe(trainedOf(name));
      expect(response.headers.get('x-memtide-context')).toBe(String(advertised));
      expect(Number(response.headers.get('content-length'))).toBe(Buffer.byteLength(JSON.stringify(answer)));
      // Nothing else changed.
      expect({ ...answer, model_info: { ...answer.model_info, [key]: upstream.model_info[key], [TRAINED_CONTEXT_KEY]: undefined } }).toEqual({ ...upstream, model_info: { ...upstream.model_info, [TRAINED_CONTEXT_KEY]: undefined } });
    }
  });

  it('with openAiChat "forward", advertises what /v1 runs at: the server default context', async () => {
    const { proxy } = await rig({ ...SETTINGS, openAiChat: 'forward' }, governorWithContext());
    const answer = (await (await show(proxy.url, { model: 'llama3.1:8b' })).json()) as { model_info: Record<string, unknown> };
    expect(answer.model_info['llama.context_length']).toBe(4096 - 1024);
  });

  it('is byte for byte Ollama\'s answer with the setting off, without a governor, or for an error', async () => {
    const cases: Array<[ProxySettings, ModelGovernor | undefined]> = [
      [{ ...SETTINGS, advertiseContext: false }, governorWithContext()],
      [SETTINGS, undefined],
      [SETTINGS, createStubGovernor()], // a governor that advertises nothing
    ];
    for (const [settings, governor] of cases) {
      const { fake, proxy } = await rig(settings, governor);
      for (const body of [{ model: 'llama3.1:8b', verbose: true }, { model: 'nope:1b' }]) {
        const direct = await show(fake.url, body);
        const proxied = await show(proxy.url, body);
        expect(proxied.status).toBe(direct.status);
        expect(proxied.headers.get('x-memtide-context')).toBeNull();
        expect(await proxied.text()).toBe(await direct.text());
      }
    }
  });

  it('the rewrite touches only the context values (numbers and spacing elsewhere stay as written)', () => {
    const text = '{ "model_info" : { "general.architecture": "llama", "llama.context_length" : 131072, "general.parameter_count": 12345678901234567890 }, "x": 1.0 }';
    const result = rewriteShowAnswer(Buffer.from(text), (trained) => Math.min(trained, 4096) - 1024);
    expect(result?.advertised).toBe(3072);
    expect(result?.body.toString()).toBe(
      '{ "model_info" : { "general.architecture": "llama", "llama.context_length" : 3072, "general.parameter_count": 12345678901234567890,"memtide.trained_context_length":131072 }, "x": 1.0 }',
    );
    expect(rewriteShowAnswer(Buffer.from('not json'), () => 1)).toBeNull();
    expect(rewriteShowAnswer(Buffer.from('{"model_info":{}}'), () => 1)).toBeNull();
  });
});
