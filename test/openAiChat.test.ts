/**
 * The /v1/chat/completions <-> /api/chat translation, without a network:
 * request translation (what is translated, what is refused, what falls back
 * to forwarding), the answer translation (JSON, SSE, errors), and
 * properties: contents and roles survive the round trip, and the SSE output
 * does not depend on how the upstream's bytes were split.
 */
import { Readable } from 'node:stream';
import { fc, it as propIt } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { ModelRequestError } from '../src/app/proxy/modelRequest.js';
import { translateChatRequest, type ChatTranslation } from '../src/app/proxy/openAiChatRequest.js';
import { ChatSseTransform, chatCompletionOf, chatResponseTransform, errorMessageOf } from '../src/app/proxy/openAiChatResponse.js';

type Json = Record<string, unknown>;

const translate = (body: Json, text = JSON.stringify(body)): ChatTranslation => translateChatRequest(JSON.parse(text) as Json, Buffer.from(text));
const translated = (body: Json, text?: string) => {
  const result = translate(body, text);
  if (!result.translated) throw new Error(`not translated: ${result.why.detail}`);
  return result;
};

/** The SSE text a transform makes of `chunks`. */
async function sse(chunks: Buffer[], includeUsage = false): Promise<string> {
  const transform = new ChatSseTransform({ id: 'chatcmpl-1', createdSeconds: 1700000000, includeUsage });
  const out: Buffer[] = [];
  transform.on('data', (chunk: Buffer) => out.push(Buffer.from(chunk)));
  const done = new Promise<void>((resolve, reject) => {
    transform.on('end', resolve);
    transform.on('error', reject);
  });
  Readable.from(chunks).pipe(transform);
  await done;
  return Buffer.concat(out).toString('utf8');
}

const frames = (text: string): unknown[] =>
  text
    .split('\n\n')
    .filter(Boolean)
    .map((f) => {
      expect(f.startsWith('data: ')).toBe(true);
      const payload = f.slice(6);
      return payload === '[DONE]' ? '[DONE]' : (JSON.parse(payload) as unknown);
    });

describe('request: /v1/chat/completions -> /api/chat', () => {
  it('maps Meetily\'s body with the defaults Ollama\'s layer sets (temperature and top_p 1, stream false)', () => {
    const result = translated({ model: 'llama3.2', messages: [{ role: 'system', content: 'Summarise.' }, { role: 'user', content: 'Transcript…' }] });
    expect(result.body).toEqual({
      model: 'llama3.2',
      messages: [
        { role: 'system', content: 'Summarise.' },
        { role: 'user', content: 'Transcript…' },
      ],
      stream: false,
      options: { temperature: 1, top_p: 1 },
    });
    expect(result.stream).toBe(false);
    expect(JSON.parse(result.bytes.toString('utf8'))).toEqual(result.body);
  });

  it('maps sampling, stop, limits, format, tools and reasoning', () => {
    const result = translated({
      model: 'm',
      messages: [{ role: 'user', content: 'x' }],
      stream: true,
      stream_options: { include_usage: true },
      temperature: 0.2,
      top_p: 0.9,
      max_tokens: 64,
      stop: ['a', 3, 'b'],
      seed: 7,
      frequency_penalty: 0.5,
      presence_penalty: 0.25,
      response_format: { type: 'json_object' },
      tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }],
      reasoning_effort: 'none',
    });
    expect(result).toMatchObject({ stream: true, includeUsage: true });
    expect(result.body).toMatchObject({
      stream: true,
      format: 'json',
      think: false,
      tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }],
      options: { temperature: 0.2, top_p: 0.9, num_predict: 64, stop: ['a', 'b'], seed: 7, frequency_penalty: 0.5, presence_penalty: 0.25 },
    });
    expect(translated({ model: 'm', messages: [{ role: 'user', content: 'x' }], stop: 'END', max_completion_tokens: 9 }).body.options).toMatchObject({ stop: ['END'], num_predict: 9 });
  });

  it('copies a json_schema and tools as the client wrote them (numbers a double cannot hold survive)', () => {
    const text = '{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"s","schema":{"maximum":12345678901234567890}}},"tools":[{"x":1e400}]}';
    const bytes = translated({}, text).bytes.toString('utf8');
    expect(bytes).toContain('"format":{"maximum":12345678901234567890}');
    expect(bytes).toContain('"tools":[{"x":1e400}]');
  });

  it('content parts become one message each, images their base64; tool calls and tool answers as Ollama passes them', () => {
    const png = Buffer.from('not really a png').toString('base64');
    const result = translated({
      model: 'm',
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'look' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${png}` } }] },
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'weather', arguments: '{"city":"Oslo"}' } }] },
        { role: 'tool', tool_call_id: 'call_1', content: '12°C' },
      ],
    });
    expect(result.body.messages).toEqual([
      { role: 'user', content: 'look' },
      { role: 'user', content: '', images: [png] },
      { role: 'assistant', content: '', tool_calls: [{ function: { name: 'weather', arguments: { city: 'Oslo' } } }] },
      { role: 'tool', content: '12°C', tool_name: 'weather' },
    ]);
  });

  it('does not translate what it cannot reproduce exactly: the caller forwards it untouched', () => {
    const user = [{ role: 'user', content: 'x' }];
    const cases: Array<[Json, string]> = [
      [{ model: 'm', messages: user, n: 2 }, 'n'],
      [{ model: 'm', messages: user, logprobs: true }, 'logprobs'],
      [{ model: 'm', messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: {} }] }] }, 'content-part'],
      [{ model: 'm', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: 'https://x/y.png' }] }] }, 'image'],
      [{ model: 'm', messages: [{ role: 'assistant', content: null }] }, 'content'],
      [{ model: 'm', messages: [] }, 'messages'],
      [{ model: 'm', messages: user, reasoning_effort: 'max' }, 'reasoning'],
      [{ model: 'm', messages: [{ role: 'assistant', content: '', tool_calls: [{ function: { name: 'f', arguments: 'nope' } }] }] }, 'tool-call'],
    ];
    for (const [body, code] of cases) {
      const result = translate(body);
      expect(result.translated, JSON.stringify(body)).toBe(false);
      if (!result.translated) expect(result.why.code).toBe(code);
    }
    expect(translate({ model: 'm', messages: user, n: 1, logprobs: false }).translated).toBe(true);
  });

  it('refuses a field of the wrong type, naming it', () => {
    const user = [{ role: 'user', content: 'x' }];
    const cases: Array<[Json, string]> = [
      [{ model: 'm', messages: 'hi' }, 'messages'],
      [{ model: 'm', messages: user, temperature: 'hot' }, 'temperature'],
      [{ model: 'm', messages: user, max_tokens: 1.5 }, 'max_tokens'],
      [{ model: 'm', messages: user, stream: 'yes' }, 'stream'],
      [{ model: 'm', messages: [{ role: 7, content: 'x' }] }, 'messages[0].role'],
      [{ model: 'm', messages: user, stream_options: { include_usage: 1 } }, 'stream_options.include_usage'],
    ];
    for (const [body, field] of cases) {
      let caught: unknown;
      try {
        translate(body);
      } catch (error) {
        caught = error;
      }
      expect(caught, field).toBeInstanceOf(ModelRequestError);
      expect((caught as ModelRequestError).field).toBe(field);
      expect((caught as Error).message).toContain(`ChatCompletionRequest.${field}`);
    }
  });
});

describe('response: /api/chat -> /v1 shapes', () => {
  it('a JSON answer becomes a chat.completion with usage; length and tool calls set finish_reason', () => {
    const answer = { model: 'm', created_at: '2024-01-01T00:00:10Z', message: { role: 'assistant', content: 'Hi' }, done: true, done_reason: 'length', prompt_eval_count: 5, eval_count: 2 };
    expect(chatCompletionOf(answer, 'chatcmpl-9')).toEqual({
      id: 'chatcmpl-9',
      object: 'chat.completion',
      created: 1704067210,
      model: 'm',
      system_fingerprint: 'fp_ollama',
      choices: [{ index: 0, message: { role: 'assistant', content: 'Hi' }, finish_reason: 'length' }],
      usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 },
    });
    const tool = chatCompletionOf({ ...answer, done_reason: 'stop', message: { role: 'assistant', content: '', tool_calls: [{ function: { name: 'f', arguments: { a: 1 } } }] } }, 'x');
    const choice = (tool.choices as Json[])[0] as { finish_reason: string; message: { tool_calls: Json[] } };
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message.tool_calls[0]).toMatchObject({ index: 0, type: 'function', function: { name: 'f', arguments: '{"a":1}' } });
    expect(choice.message.tool_calls[0]?.id).toMatch(/^call_[0-9a-f]+$/);
  });

  it('an error answer keeps its status and takes OpenAI\'s shape; a non-JSON one its text', () => {
    const rewrite = (status: number, body: string) => {
      const t = chatResponseTransform({ stream: true, includeUsage: false })({ status, headers: {} });
      if (t?.kind !== 'buffer') throw new Error('expected a buffered rewrite');
      const r = t.rewrite(Buffer.from(body))!;
      return { status: r.status, body: JSON.parse(r.body.toString('utf8')) as unknown };
    };
    expect(rewrite(404, '{"error":"model \\"x\\" not found, try pulling it first"}')).toEqual({
      status: 404,
      body: { error: { message: 'model "x" not found, try pulling it first', type: 'not_found_error', param: null, code: null } },
    });
    expect(rewrite(500, 'boom')).toEqual({ status: 500, body: { error: { message: 'boom', type: 'api_error', param: null, code: null } } });
    expect(errorMessageOf('{"error":{"message":"m"}}')).toBe('m');
  });

  it('a stream becomes chunks, a usage chunk when asked, then [DONE]; an error line ends it with an error frame', async () => {
    const lines = [
      { model: 'm', message: { role: 'assistant', content: 'Hé' }, done: false },
      { model: 'm', message: { role: 'assistant', content: '!' }, done: false },
      { model: 'm', message: { role: 'assistant', content: '' }, done: true, done_reason: 'stop', prompt_eval_count: 3, eval_count: 2 },
    ];
    const text = await sse([Buffer.from(lines.map((l) => `${JSON.stringify(l)}\n`).join(''))], true);
    const out = frames(text) as Array<Json | string>;
    expect(out).toHaveLength(5);
    expect(out[0]).toEqual({
      id: 'chatcmpl-1',
      object: 'chat.completion.chunk',
      created: 1700000000,
      model: 'm',
      system_fingerprint: 'fp_ollama',
      choices: [{ index: 0, delta: { role: 'assistant', content: 'Hé' }, finish_reason: null }],
    });
    expect((out[2] as { choices: Json[] }).choices[0]?.finish_reason).toBe('stop');
    expect(out[3]).toMatchObject({ choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } });
    expect(out[4]).toBe('[DONE]');

    const failed = await sse([Buffer.from(`${JSON.stringify(lines[0])}\n{"error":"unexpected EOF"}\n${JSON.stringify(lines[1])}\n`)]);
    expect(frames(failed)).toEqual([expect.objectContaining({ object: 'chat.completion.chunk' }), { error: { message: 'unexpected EOF', type: 'api_error', param: null, code: null } }]);
  });
});

describe('properties', () => {
  const role = fc.constantFrom('system', 'user', 'assistant');
  const message = fc.record({ role, content: fc.string({ unit: 'grapheme', maxLength: 40 }) });
  const body = fc.record(
    {
      model: fc.constantFrom('llama3.2', 'gemma3:1b'),
      messages: fc.array(message, { minLength: 1, maxLength: 6 }),
      stream: fc.boolean(),
      temperature: fc.double({ min: 0, max: 2, noNaN: true }),
      max_tokens: fc.integer({ min: 1, max: 4096 }),
      stop: fc.oneof(fc.string(), fc.array(fc.string(), { maxLength: 3 })),
    },
    { requiredKeys: ['model', 'messages'] },
  );

  propIt.prop([body, fc.string({ unit: 'grapheme', maxLength: 30 })])('roles and contents survive the translation, and the answer comes back as sent', (openAi, reply) => {
    const result = translated(openAi as Json);
    // Ollama's /api/chat sees the same conversation...
    expect((result.body.messages as Json[]).map((m) => [m.role, m.content])).toEqual(openAi.messages.map((m) => [m.role, m.content]));
    expect(result.body.stream).toBe(openAi.stream === true);
    // ...and its answer reaches the client unchanged.
    const completion = chatCompletionOf({ model: result.body.model, message: { role: 'assistant', content: reply }, done: true, done_reason: 'stop' }, 'chatcmpl-1');
    expect((completion.choices as Array<{ message: Json }>)[0]?.message).toEqual({ role: 'assistant', content: reply });
    expect(completion.model).toBe(openAi.model);
  });

  const ndjson = fc
    .array(fc.string({ unit: 'grapheme', maxLength: 12 }), { minLength: 1, maxLength: 8 })
    .map((tokens) =>
      Buffer.from(
        [...tokens.map((t) => ({ model: 'm', message: { role: 'assistant', content: t }, done: false })), { model: 'm', message: { role: 'assistant', content: '' }, done: true, done_reason: 'stop', eval_count: tokens.length }]
          .map((l) => `${JSON.stringify(l)}\n`)
          .join(''),
      ),
    );

  propIt.prop([ndjson, fc.array(fc.nat(), { maxLength: 12 }), fc.boolean()])('the SSE output does not depend on how the NDJSON bytes were split', async (bytes, cuts, usage) => {
    const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
    const pieces: Buffer[] = [];
    let from = 0;
    for (const at of [...points, bytes.length]) {
      pieces.push(bytes.subarray(from, at));
      from = at;
    }
    expect(await sse(pieces, usage)).toBe(await sse([bytes], usage));
  });
});
