/**
 * The proxy's pure parts: JSON error offsets, what the governor is told about
 * a request, how a body is rewritten, and how a mid-stream error line is read.
 */
import { fc, it as propIt } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { streamErrorOf } from '../src/app/proxy/forward.js';
import { jsonSyntaxProblem, parseJsonBody } from '../src/app/proxy/jsonBody.js';
import { parseListen } from '../src/app/proxy/listen.js';
import { ModelRequestError, admissionRequestOf, bodyChangesOf, estimatePromptTokens, modelEndpointOf, rewriteBody, rewriteBodyBytes } from '../src/app/proxy/modelRequest.js';
import type { Admission, ModelEndpoint } from '../src/streams/governorApi.js';

const NATIVE: ModelEndpoint[] = ['generate', 'chat', 'embed', 'embeddings'];
const OPENAI: ModelEndpoint[] = ['openai-chat', 'openai-completions', 'openai-embeddings'];
const admission = (a: Partial<Admission>): Admission => ({ model: 'm', numCtx: null, keepAlive: null, release: () => undefined, ...a });

describe('JSON body errors', () => {
  propIt.prop([fc.json()])('accepts every JSON text JSON.parse accepts', (text) => {
    expect(jsonSyntaxProblem(Buffer.from(text))).toBeNull();
  });

  propIt.prop([fc.string({ unit: fc.constantFrom(...'{}[]":,.-+0123456789eE tfnrulas\\\n'.split('')) })])(
    'finds a problem exactly when JSON.parse fails',
    (text) => {
      let valid = true;
      try {
        JSON.parse(text);
      } catch {
        valid = false;
      }
      expect(jsonSyntaxProblem(Buffer.from(text)) === null).toBe(valid);
    },
  );

  propIt.prop([fc.jsonValue().map((v) => JSON.stringify({ v })), fc.nat()])(
    'a truncated object fails at the end of the input, as a byte offset',
    (text, cut) => {
      const bytes = Buffer.from(text);
      const at = cut % bytes.length;
      expect(jsonSyntaxProblem(bytes.subarray(0, at))).toEqual({ offset: at, reason: 'unexpected end of input' });
    },
  );

  propIt.prop([fc.jsonValue().map((v) => JSON.stringify(v)), fc.constantFrom('x', '}', ']', '"', ',')])(
    'trailing garbage is reported at its byte offset (not its character index)',
    (text, garbage) => {
      const problem = jsonSyntaxProblem(Buffer.from(`${text} ${garbage}`));
      // '"' after a value may open a string that never ends; everything else fails where it stands.
      expect(problem?.offset).toBe(garbage === '"' && problem?.reason === 'unexpected end of input' ? Buffer.byteLength(text) + 2 : Buffer.byteLength(text) + 1);
    },
  );

  it('names the byte, not the character, after multi-byte text', () => {
    expect(parseJsonBody(Buffer.from('{"name":"Zoë 🎙","x":}'))).toEqual({ ok: false, offset: 24, reason: "unexpected '}' where a value should start" }); // character index: 21
  });
});

describe('what the governor is told', () => {
  it('classifies only POSTs to the model endpoints', () => {
    expect(modelEndpointOf('POST', '/api/chat')).toBe('chat');
    expect(modelEndpointOf('POST', '/v1/chat/completions/')).toBe('openai-chat');
    expect(modelEndpointOf('GET', '/api/chat')).toBeNull();
    expect(modelEndpointOf('POST', '/api/show')).toBeNull();
  });

  propIt.prop([fc.array(fc.string(), { maxLength: 5 }), fc.string(), fc.string()])(
    'estimates prompt tokens as chars x 0.35 over messages, prompt, system and input',
    (contents, prompt, input) => {
      const chars = contents.reduce((s, c) => s + c.length, 0) + prompt.length + input.length;
      const body = { model: 'm', messages: contents.map((content) => ({ role: 'user', content })), prompt, input };
      expect(estimatePromptTokens(body)).toBe(Math.ceil(chars * 0.35));
    },
  );

  it('counts OpenAI content parts, and passes requested num_ctx / keep_alive only where the API has them', () => {
    const parts = { model: 'm', messages: [{ role: 'user', content: [{ type: 'text', text: 'x'.repeat(20) }, { type: 'image_url', image_url: 'data:' }] }] };
    expect(admissionRequestOf(parts, 'openai-chat')).toEqual({ model: 'm', endpoint: 'openai-chat', promptTokens: 7 });
    const native = { model: 'm', prompt: '', options: { num_ctx: 8192 }, keep_alive: '10m' };
    expect(admissionRequestOf(native, 'generate')).toEqual({ model: 'm', endpoint: 'generate', promptTokens: 0, requestedNumCtx: 8192, requestedKeepAlive: '10m' });
    expect(admissionRequestOf({ ...native, keep_alive: '10' }, 'openai-completions')).not.toHaveProperty('requestedKeepAlive');
    expect(admissionRequestOf({ prompt: 'x' }, 'generate')).toBeNull();
  });

  it('refuses a keep_alive Ollama would refuse, naming the field', () => {
    expect(() => admissionRequestOf({ model: 'm', keep_alive: '10' }, 'chat')).toThrow(ModelRequestError);
    try {
      admissionRequestOf({ model: 'm', keep_alive: [] }, 'chat');
    } catch (error) {
      expect(error).toMatchObject({ field: 'keep_alive', message: "unsupported duration type: '[]interface {}'" });
    }
  });
});

describe('body rewriting', () => {
  const body = fc.record({
    model: fc.constantFrom('a', 'b'),
    prompt: fc.string(),
    stream: fc.boolean(),
    options: fc.option(fc.record({ temperature: fc.double({ noNaN: true }), num_ctx: fc.option(fc.integer({ min: 1, max: 1 << 17 }), { nil: undefined }) }, { requiredKeys: ['temperature'] }), { nil: undefined }),
    keep_alive: fc.option(fc.oneof(fc.integer(), fc.constantFrom('5m', '1h')), { nil: undefined }),
  });
  const grant = fc.record({
    model: fc.constantFrom('a', 'b'),
    numCtx: fc.option(fc.integer({ min: 256, max: 1 << 17 })),
    keepAlive: fc.option(fc.oneof(fc.integer({ min: -1, max: 3600 }), fc.constantFrom('30s', '2m'))),
  });

  propIt.prop([body, grant, fc.constantFrom(...NATIVE), fc.boolean()])('native: injects what was granted and keeps every other key', (b, g, endpoint, mmapOff) => {
    const out = rewriteBody(b, endpoint, admission(g), mmapOff ? { useMmap: false } : {}) ?? b;
    expect(out.model).toBe(g.model);
    expect(out.prompt).toBe(b.prompt);
    expect(out.stream).toBe(b.stream);
    expect(out.keep_alive).toEqual(g.keepAlive ?? b.keep_alive);
    const options = (out.options ?? {}) as Record<string, unknown>;
    expect(options.num_ctx).toEqual(g.numCtx ?? b.options?.num_ctx);
    if (b.options) expect(options.temperature).toBe(b.options.temperature);
    expect(options.use_mmap).toBe(mmapOff ? false : undefined);
  });

  propIt.prop([body, grant, fc.constantFrom(...OPENAI)])('OpenAI layer: only the model changes', (b, g, endpoint) => {
    const out = rewriteBody(b, endpoint, admission(g), { useMmap: false }) ?? b;
    expect(out).toEqual({ ...b, model: g.model });
  });

  propIt.prop([body, fc.constantFrom(...NATIVE, ...OPENAI)])('an admission that changes nothing forwards the original bytes (null)', (b, endpoint) => {
    expect(rewriteBody(b, endpoint, admission({ model: b.model }))).toBeNull();
    expect(bodyChangesOf(b, endpoint, admission({ model: b.model }))).toBeNull();
  });

  propIt.prop([body, grant, fc.constantFrom(...NATIVE, ...OPENAI), fc.boolean(), fc.constantFrom(undefined, 1, '\t')])(
    'the spliced bytes hold exactly the rewritten body, however the client wrote it',
    (b, g, endpoint, mmapOff, indent) => {
      const settings = mmapOff ? { useMmap: false } : {};
      const changes = bodyChangesOf(b, endpoint, admission(g), settings);
      const rewritten = rewriteBody(b, endpoint, admission(g), settings);
      expect(changes === null).toBe(rewritten === null);
      if (!changes) return;
      const spliced = rewriteBodyBytes(Buffer.from(JSON.stringify(b, null, indent)), changes);
      // Through JSON.stringify on both sides: -0, Infinity as JSON writes them.
      expect(JSON.parse(spliced.toString('utf8'))).toEqual(JSON.parse(JSON.stringify(rewritten)));
    },
  );

  it('splices into the client\'s bytes: numbers a double cannot hold, spellings and whitespace survive', () => {
    const text = '{"model" : "a", "options": {"seed": 12345678901234567890, "temperature": 1e400, "top_p": 1.0}, "keep_alive": null}';
    const b = JSON.parse(text) as Record<string, unknown>;
    const changes = bodyChangesOf(b, 'chat', admission({ model: 'b', numCtx: 2048, keepAlive: '5m' }), { useMmap: false });
    expect(changes).toEqual({ set: { model: 'b', keep_alive: '5m' }, options: { num_ctx: 2048, use_mmap: false } });
    expect(rewriteBodyBytes(Buffer.from(text), changes!).toString('utf8')).toBe(
      '{"model" : "b", "options": {"seed": 12345678901234567890, "temperature": 1e400, "top_p": 1.0,"num_ctx":2048,"use_mmap":false}, "keep_alive": "5m"}',
    );
    // OpenAI layer: only the model.
    const openAi = bodyChangesOf(b, 'openai-chat', admission({ model: 'b', numCtx: 2048, keepAlive: '5m' }), { useMmap: false });
    expect(rewriteBodyBytes(Buffer.from(text), openAi!).toString('utf8')).toBe(text.replace('"a"', '"b"'));
  });
});

describe('mid-stream error lines', () => {
  it('reads Ollama\'s and its OpenAI layer\'s shapes, and ignores escaped text', () => {
    expect(streamErrorOf('{"response":"a","done":false}\n{"error":"boom"}')).toBe('boom');
    expect(streamErrorOf('data: {"id":"x"}\n\n{"error":{"message":"bad","type":"api_error","param":null,"code":null}}')).toBe('bad');
    expect(streamErrorOf('{"response":"{\\"error\\":\\"not one\\"}","done":false}')).toBeUndefined();
  });
});

describe('listen addresses', () => {
  it('parses host:port and [v6]:port, and says what is wrong otherwise', () => {
    expect(parseListen('127.0.0.1:11435')).toEqual({ host: '127.0.0.1', port: 11435 });
    expect(parseListen('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(parseListen('localhost')).toMatch(/expected HOST:PORT/);
    expect(parseListen('127.0.0.1:70000')).toBe('port 70000 is out of range (0-65535)');
  });
});
