/**
 * Fuzzing the proxy's translation of `POST /v1/chat/completions` to Ollama's
 * `/api/chat` and back (`openAiChat: "translate"`, src/app/proxy/
 * openAiChatRequest.ts, openAiChatResponse.ts, openAiChatFields.ts), through
 * the real proxy (stub governor) to the fake Ollama, with a tap in between
 * that records the exact bytes that reach upstream.
 *
 * What is fuzzed: request bodies built field by field, each field valid, of
 * a wrong JSON type, or untranslatable, and tagged so: messages of every
 * role (odd ones too) with string content (any unicode, lone surrogates),
 * content-part arrays (text, image_url as object or string, good and bad
 * data: URLs, unknown types, non-objects), tool_calls (good, non-JSON and
 * non-object arguments, wrong types), `name` / `tool_call_id` / `reasoning`;
 * stream, stream_options.include_usage, temperature, top_p, the penalties,
 * max_tokens, max_completion_tokens, seed, stop (string, array, mixed,
 * other), response_format, tools, reasoning_effort, reasoning.effort, n,
 * logprobs, top_logprobs, unknown keys (keep_alive, options), in any order,
 * with the governor admitting, rewriting or refusing and the fake failing
 * now and then (503, out of memory, an error mid-stream). Then hostile
 * bodies: broken JSON, non-object JSON, random bytes, invalid UTF-8, deep
 * nesting in ignored keys, tools and tool-call arguments, a known field
 * holding any JSON value.
 *
 * What must hold: every answer is well-formed HTTP (Node's strict parser)
 * with a status; memtide never answers 500 of its own and logs no error;
 * malformed JSON is a 400 `MEMTIDE_ERR_BAD_JSON` in OpenAI's shape
 * `{error:{message,type,param,code}}` naming the byte offset, and a field of
 * the wrong type a 400 `MEMTIDE_ERR_BAD_FIELD` whose `param` and message name
 * that field; neither reaches upstream nor the governor. A body without a
 * model reaches /v1 byte for byte; an untranslatable one reaches
 * /v1/chat/completions byte for byte (only `model` changes when the governor
 * changes it); a translatable one reaches /api/chat as JSON with `model`
 * (the admitted one), `messages` whose roles and contents are the client's
 * text (string contents and text parts), the client's tool call arguments,
 * sampling numbers (ints digit for digit, floats as the same double), stop,
 * format, tools, think, and the admission's num_ctx / keep_alive. A
 * translated 200 is a `chat.completion` with a string content, or when
 * streamed, SSE `data:` frames of `chat.completion.chunk` ending with
 * `data: [DONE]` (after a usage chunk iff include_usage) or one error frame;
 * a translated error is OpenAI's error shape. Every admission is released
 * exactly once, also when the client disconnects mid-stream; the proxy
 * keeps answering. Failures print fast-check's seed and path.
 */
import http from 'node:http';
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProxy, type ProxyHandle } from '../../src/app/proxy/proxy.js';
import { GovernorError } from '../../src/streams/governorApi.js';
import { startFakeOllama, type FailKind, type FakeOllama } from '../support/fakeOllama.js';
import { createStubGovernor, type Decision, type StubGovernor } from '../support/stubGovernor.js';
import { valueTextOf } from './support/jsonText.js';
import { parseLossless, type Lossless } from './support/losslessJson.js';
import { runs } from './support/runs.js';
import { startTap, type Tap, type Tapped } from './support/tap.js';

const BODY_LIMIT = 256 * 1024;
const PATH = '/v1/chat/completions';
type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

// ---------------------------------------------------------------------------------------
// Rig: fake Ollama <- tap (records upstream bytes) <- proxy (translate, stub governor)
// ---------------------------------------------------------------------------------------

interface Rig {
  fake: FakeOllama;
  tap: Tap;
  proxy: ProxyHandle;
  governor: StubGovernor;
  port: number;
  logged: string[];
}

async function startRig(fakeOptions: Parameters<typeof startFakeOllama>[0]): Promise<Rig> {
  const fake = await startFakeOllama(fakeOptions);
  const tap = await startTap(fake.url, { cancelOnClientClose: true });
  const governor = createStubGovernor();
  const logged: string[] = [];
  const proxy = await startProxy({
    listen: { host: '127.0.0.1', port: 0 },
    upstream: tap.url,
    governor,
    config: { bodyLimitBytes: BODY_LIMIT, openAiChat: 'translate' },
    logger: { debug() {}, info() {}, warn() {}, error: (message) => void logged.push(message) },
  });
  return { fake, tap, proxy, governor, port: Number(new URL(proxy.url).port), logged };
}

async function stopRig(rig: Rig | undefined): Promise<void> {
  await rig?.proxy.close();
  await rig?.tap.close();
  await rig?.fake.close();
}

let rig: Rig;
beforeAll(async () => {
  // Three tokens: the fake's injected mid-stream error comes before the third.
  rig = await startRig({ responseTokens: 3 });
});
afterAll(async () => {
  await stopRig(rig);
});

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/**
 * One POST through Node's own HTTP client (its parser refuses a malformed
 * answer: that rejects). `leaveAfter` aborts once that many body bytes came
 * (0: right after the head).
 */
function post(port: number, target: string, body: Buffer, leaveAfter?: number): Promise<Answer | 'left'> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: target,
      agent: false,
      headers: { host: `127.0.0.1:${port}`, 'content-type': 'application/json', 'content-length': String(body.length), connection: 'close' },
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error('no complete answer within 5 s'));
    }, 5_000);
    req.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const leave = () => {
        clearTimeout(timer);
        req.destroy();
        resolve('left');
      };
      if (leaveAfter === 0) return leave();
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        size += chunk.length;
        if (leaveAfter !== undefined && size >= leaveAfter) leave();
      });
      res.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
      });
    });
    req.end(body);
  });
}

async function answerOf(port: number, target: string, body: Buffer): Promise<Answer> {
  const answer = await post(port, target, body);
  if (answer === 'left') throw new Error('unreachable');
  return answer;
}

// ---------------------------------------------------------------------------------------
// Tagged bodies: each piece knows whether Go would refuse its type, or Ollama's layer cannot be reproduced
// ---------------------------------------------------------------------------------------

/** A JSON text with what it makes of the request: fields of a wrong type (paths relative to it), untranslatable. */
interface Gen {
  text: string;
  bad: string[];
  skip: boolean;
}
const ok = (text: string): Gen => ({ text, bad: [], skip: false });
const wrong = (text: string): Gen => ({ text, bad: [''], skip: false });
const skipped = (text: string): Gen => ({ text, bad: [], skip: true });
const join = (prefix: string, rel: string) => (rel === '' ? prefix : rel.startsWith('[') ? `${prefix}${rel}` : `${prefix}.${rel}`);
const objectOf = (fields: ReadonlyArray<readonly [string, Gen]>, sep = ','): Gen => ({
  text: `{${fields.map(([k, g]) => `${JSON.stringify(k)}:${g.text}`).join(sep)}}`,
  bad: fields.flatMap(([k, g]) => g.bad.map((p) => join(k, p))),
  skip: fields.some(([, g]) => g.skip),
});
const arrayOf = (items: readonly Gen[]): Gen => ({
  text: `[${items.map((g) => g.text).join(',')}]`,
  bad: items.flatMap((g, i) => g.bad.map((p) => join(`[${i}]`, p))),
  skip: items.some((g) => g.skip),
});
const record = (model: Record<string, fc.Arbitrary<Gen>>, requiredKeys: string[] = []) =>
  fc.record(model, { requiredKeys }).map((r) => Object.entries(r as Record<string, Gen>));

/** Any unicode: lone surrogates, NUL, line separators, BOM, emoji sequences, quotes. */
const text = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 16 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 16 }) },
  { weight: 2, arbitrary: fc.constantFrom('', 'é', '\u0000', '\u2028\u2029', '👩‍👩‍👧', '\uFEFF', '\ud800', '\udfff x', 'a"b\\c', '</script>', 'data: [DONE]\n\n') },
);
const textGen = text.map((s) => ok(JSON.stringify(s)));
const wrongScalar = fc.constantFrom('1', 'true', '{}', '[]', '2.5').map(wrong);
/** Mostly `good`, now and then a wrong type. */
const orWrong = (good: fc.Arbitrary<Gen>, wrongs: fc.Arbitrary<Gen> = wrongScalar) => fc.oneof({ weight: 12, arbitrary: good }, { weight: 1, arbitrary: wrongs });

const roleGen = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('system', 'user', 'assistant', 'tool', 'developer').map((r) => ok(JSON.stringify(r))) },
  { weight: 2, arbitrary: fc.constantFrom('', 'ROBOT', 'Tool', 'ü', ' user').map((r) => ok(JSON.stringify(r))) },
  { weight: 1, arbitrary: fc.constantFrom('null').map(ok) },
  { weight: 1, arbitrary: fc.constantFrom('1', 'true', '{}').map(wrong) },
);

const PNG = 'iVBORw0KGgo=';
const partGen: fc.Arbitrary<Gen> = fc.oneof(
  { weight: 8, arbitrary: text.map((t) => ok(`{"type":"text","text":${JSON.stringify(t)}}`)) },
  {
    weight: 3,
    arbitrary: fc
      .constantFrom(`data:image/png;base64,${PNG}`, 'data:image/jpeg;base64,AAAA', 'data:image/webp;base64,', 'data:;base64,AAECAw==')
      .chain((url) => fc.constantFrom(ok(`{"type":"image_url","image_url":{"url":${JSON.stringify(url)}}}`), ok(`{"type":"image_url","image_url":${JSON.stringify(url)}}`))),
  },
  {
    weight: 2,
    arbitrary: fc
      .constantFrom(
        '{"type":"image_url","image_url":{"url":"https://example.com/cat.png"}}',
        '{"type":"image_url","image_url":{"url":"data:image/gif;base64,AAAA"}}',
        '{"type":"image_url","image_url":{"url":"data:image/png;base64,AAA"}}',
        '{"type":"image_url","image_url":{}}',
        '{"type":"image_url"}',
        '{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}',
        '{"type":"TEXT","text":"x"}',
        '{"type":1,"text":"x"}',
        '{"text":"x"}',
        '{"type":"text"}',
        '{"type":"text","text":1}',
        '"x"',
        'null',
        '1',
        '[]',
      )
      .map(skipped),
  },
);

/** Tool call arguments: Go parses the string into a map (a non-JSON or non-object string is refused by Ollama: untranslatable). */
const argumentsGen = fc.oneof(
  { weight: 10, arbitrary: fc.constantFrom('{}', '{"a":1}', '{"q":"é","n":[1,2,{"x":null}]}', 'null', ' {"city":"Paris"} ').map((s) => ok(JSON.stringify(s))) },
  { weight: 2, arbitrary: fc.constantFrom('[1]', '"s"', '1', 'not json', '', '{').map((s) => skipped(JSON.stringify(s))) },
  { weight: 1, arbitrary: fc.constantFrom('{}', '1', 'true', '[]').map(wrong) },
);
const functionGen = fc.oneof(
  {
    weight: 6,
    arbitrary: record({ name: orWrong(textGen), arguments: argumentsGen }).map((fields) => {
      const gen = objectOf(fields);
      // No arguments: "" for Go, which its JSON parser refuses.
      return fields.some(([k]) => k === 'arguments') ? gen : { ...gen, skip: true };
    }),
  },
  { weight: 1, arbitrary: fc.constantFrom(skipped('null')) },
  { weight: 1, arbitrary: fc.constantFrom('"f"', '1', '[]').map(wrong) },
);
const toolCallGen: fc.Arbitrary<Gen> = fc.oneof(
  {
    weight: 6,
    arbitrary: record({
      id: orWrong(fc.constantFrom('"call_1"', '"call_2"', '""').map(ok)),
      type: orWrong(fc.constantFrom('"function"').map(ok)),
      index: orWrong(fc.constantFrom('0', '1', 'null').map(ok), fc.constantFrom('1.5', '"0"').map(wrong)),
      function: functionGen,
    }).map((fields) => {
      const gen = objectOf(fields);
      return fields.some(([k]) => k === 'function') ? gen : { ...gen, skip: true };
    }),
  },
  { weight: 1, arbitrary: fc.constantFrom(skipped('null')) },
  { weight: 1, arbitrary: fc.constantFrom('"call"', '1', '[]').map(wrong) },
);
const toolCallsGen = fc.oneof(
  { weight: 10, arbitrary: fc.array(toolCallGen, { maxLength: 2 }).map(arrayOf) },
  { weight: 1, arbitrary: fc.constantFrom('null').map(ok) },
  { weight: 1, arbitrary: fc.constantFrom('"x"', '{}', '1').map(wrong) },
);

/** Content that is neither a string nor an array: fine with tool calls (content ""), else untranslatable. */
const OTHER_CONTENT = ['null', '1', '{}', 'true'];
const contentGen = fc.oneof(
  { weight: 6, arbitrary: textGen },
  { weight: 4, arbitrary: fc.array(partGen, { minLength: 1, maxLength: 3 }).map(arrayOf) },
  { weight: 1, arbitrary: fc.constantFrom(...OTHER_CONTENT).map(ok) },
);

const messageGen: fc.Arbitrary<Gen> = fc.oneof(
  {
    weight: 12,
    arbitrary: record(
      {
        role: roleGen,
        content: contentGen,
        tool_calls: toolCallsGen,
        name: orWrong(textGen),
        tool_call_id: orWrong(fc.constantFrom('"call_1"', '"nope"', '""').map(ok)),
        reasoning: orWrong(textGen),
      },
      ['role', 'content'],
    ).map((fields) => {
      const gen = objectOf(fields);
      const content = fields.find(([k]) => k === 'content')?.[1].text;
      const calls = fields.find(([k]) => k === 'tool_calls')?.[1].text;
      const hasCalls = calls !== undefined && calls.startsWith('[');
      const other = content === undefined || OTHER_CONTENT.includes(content);
      return other && !hasCalls ? { ...gen, skip: true } : gen;
    }),
  },
  // A null message is Go's zero Message: no content, no tool calls (untranslatable); another non-object is refused.
  { weight: 1, arbitrary: fc.constantFrom(skipped('null')) },
  { weight: 1, arbitrary: fc.constantFrom('"hi"', '1', '[]', 'true').map(wrong) },
);

const messagesGen = fc.oneof(
  { weight: 12, arbitrary: fc.array(messageGen, { minLength: 1, maxLength: 4 }).map(arrayOf) },
  { weight: 1, arbitrary: fc.constantFrom(skipped('[]'), skipped('null')) },
  { weight: 1, arbitrary: fc.constantFrom('"hi"', '{}', '1').map(wrong) },
);

/** Floats Go decodes (1e400 it refuses: out of range). */
const floatGen = fc.oneof(
  { weight: 10, arbitrary: fc.oneof(fc.constantFrom('0', '0.7', '1', '2', '-0', '1.0', '1E-2', '1e-400', '0.1000000000000000055511151231257827'), fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => JSON.stringify(n))).map(ok) },
  { weight: 1, arbitrary: fc.constantFrom('"warm"', 'true', '[]', '{}', '1e400', '-1e400').map(wrong) },
);
/**
 * Ints Go decodes into an int (int64). `1.0`, `1e2` and `12345678901234567890` Go refuses too, but memtide
 * (which sees doubles) lets them through, passed on as written: a known leniency, not checked as a 400.
 */
const intGen = fc.oneof(
  { weight: 10, arbitrary: fc.oneof(fc.constantFrom('0', '1', '3', '-1', '100', '9007199254740993', '-9223372036854775808'), fc.integer().map(String)).map(ok) },
  { weight: 1, arbitrary: fc.constantFrom('1.0', '1e2', '12345678901234567890').map(ok) },
  { weight: 1, arbitrary: fc.constantFrom('2.5', '"10"', 'true', '1e400', '-1e400').map(wrong) },
);
const stopGen = fc
  .oneof(
    textGen.map((g) => g.text),
    fc.array(textGen.map((g) => g.text), { maxLength: 3 }).map((a) => `[${a.join(',')}]`),
    fc.constantFrom('["a",1,null,{},"b"]', '7', '{"x":"y"}', 'true', 'null'),
  )
  .map(ok);
const SCHEMA = '{"type":"object","properties":{"n":{"type":"integer","maximum":12345678901234567890,"minimum":1e-400}},"required":["n"]}';
const responseFormatGen = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .constantFrom(
        '{"type":"json_object"}',
        '{"type":" JSON_Object "}',
        '{"type":"text"}',
        '{}',
        'null',
        '{"type":"json_schema"}',
        '{"type":"json_schema","json_schema":null}',
        '{"type":"json_schema","json_schema":{"name":"x"}}',
        '{"type":"json_schema","json_schema":{"name":"x","schema":null}}',
        `{"type":"json_schema","json_schema":{"name":"x","strict":true,"schema":${SCHEMA}}}`,
        `{"json_schema":{"schema":${SCHEMA}},"type":"json_schema"}`,
      )
      .map(ok),
  },
  { weight: 1, arbitrary: fc.constantFrom('"json"', '[]', '1').map(wrong) },
  { weight: 1, arbitrary: fc.constantFrom(objectOf([['type', wrong('1')]]), objectOf([['type', ok('"json_schema"')], ['json_schema', wrong('"x"')]])) },
);
const TOOL = '{"type":"function","function":{"name":"f","description":"é \\u00e9","parameters":{"type":"object","properties":{"x":{"type":"integer","maximum":12345678901234567890}}}}}';
const toolsGen = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('[]', `[${TOOL}]`, `[ ${TOOL} , ${TOOL} ]`, 'null').map(ok) },
  { weight: 1, arbitrary: fc.constantFrom('"x"', '{}', '1').map(wrong) },
);
const effortText = fc.constantFrom('"low"', '"medium"', '"high"', '"none"', '""', '"extreme"', '"LOW"');
const reasoningEffortGen = fc.oneof({ weight: 10, arbitrary: fc.oneof(effortText, fc.constant('null')).map(ok) }, { weight: 1, arbitrary: fc.constantFrom('5', '{}').map(wrong) });
const reasoningGen = fc.oneof(
  { weight: 10, arbitrary: fc.oneof(effortText.map((e) => `{"effort":${e}}`), fc.constantFrom('{}', 'null', '{"effort":null,"summary":"auto"}')).map(ok) },
  { weight: 1, arbitrary: fc.constantFrom('"x"', '[]', '1').map(wrong) },
  { weight: 1, arbitrary: fc.constantFrom(objectOf([['effort', wrong('1')]])) },
);
const streamOptionsGen = fc.oneof(
  { weight: 10, arbitrary: fc.constantFrom('{"include_usage":true}', '{"include_usage":false}', '{"include_usage":null}', '{}', 'null').map(ok) },
  { weight: 1, arbitrary: fc.constantFrom('"x"', '[]', 'true').map(wrong) },
  { weight: 1, arbitrary: fc.constantFrom('"yes"', '1').map((t) => objectOf([['include_usage', wrong(t)]])) },
);

const MODELS = ['"gemma3:1b"', '"qwen2.5:0.5b"'];
const modelGen = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom(...MODELS) },
  { weight: 1, arbitrary: fc.constantFrom('"nope:1b"', '"GEMMA3:1B"', '"gemma3:1b\\u0000"') },
  // No model: forwarded untouched, nothing checked.
  { weight: 1, arbitrary: fc.constantFrom('""', '1', 'null', '["gemma3:1b"]', '{}') },
);

const topLevel = {
  model: modelGen.map(ok),
  messages: messagesGen,
  stream: fc.oneof({ weight: 10, arbitrary: fc.constantFrom('true', 'false', 'null').map(ok) }, { weight: 1, arbitrary: fc.constantFrom('"true"', '1').map(wrong) }),
  stream_options: streamOptionsGen,
  temperature: floatGen,
  top_p: floatGen,
  frequency_penalty: floatGen,
  presence_penalty: floatGen,
  max_tokens: intGen,
  max_completion_tokens: intGen,
  seed: intGen,
  stop: stopGen,
  response_format: responseFormatGen,
  tools: toolsGen,
  reasoning_effort: reasoningEffortGen,
  reasoning: reasoningGen,
  n: fc.oneof(fc.constantFrom('1', 'null').map(ok), fc.constantFrom('2', '0', '"1"', '1.5').map(skipped)),
  logprobs: fc.oneof(fc.constantFrom('false', 'null').map(ok), fc.constantFrom('true', '"x"', '1').map(skipped)),
  top_logprobs: fc.oneof(fc.constantFrom('null').map(ok), fc.constantFrom('0', '2').map(skipped)),
  _debug_render_only: fc.oneof(fc.constantFrom('false').map(ok), fc.constantFrom('true').map(skipped)),
  user: textGen,
  keep_alive: fc.constantFrom('"1h"', '0', '"nonsense"').map(ok),
  options: fc.constantFrom('{"num_ctx":99999,"temperature":0}', '"x"', 'null').map(ok),
};
type TopKey = keyof typeof topLevel;
const COMMON: TopKey[] = ['model', 'messages', 'stream', 'stream_options', 'temperature', 'max_tokens', 'stop'];

/** A body: fields in any order, most of them valid, with whitespace somewhere. */
const taggedBodyArb = fc
  .tuple(
    fc.record(topLevel, { requiredKeys: ['model', 'messages'] }),
    fc.subarray(Object.keys(topLevel) as TopKey[], { maxLength: 6 }),
    fc.constantFrom(',', ', ', ',\n  '),
    fc.nat(),
  )
  .map(([all, extra, sep, seed]) => {
    const keys = Object.keys(all).filter((k) => COMMON.includes(k as TopKey) || extra.includes(k as TopKey) || k === 'model' || k === 'messages');
    // A deterministic shuffle (fast-check shrinks `seed`).
    const order = keys.map((k, i) => [k, (seed * 31 + i * 17) % 97] as const).sort((a, b) => a[1] - b[1] || a[0].localeCompare(b[0]));
    const fields = order.map(([k]) => [k, (all as Record<string, Gen>)[k] as Gen] as const);
    const gen = objectOf(fields, sep);
    // No messages: untranslatable (/api/chat would preload instead).
    const skip = gen.skip || !fields.some(([k]) => k === 'messages');
    return { ...gen, skip, noModel: !fields.some(([k, g]) => k === 'model' && /^"[^"]/.test(g.text)) };
  });

// ---------------------------------------------------------------------------------------
// What the translation must have produced, computed from the client's body
// ---------------------------------------------------------------------------------------

/** The /api/chat messages' roles and contents Ollama's layer makes of the client's messages. */
function expectedMessages(messages: unknown[]): Array<{ role: string; content: string }> {
  return messages.flatMap((raw) => {
    const m = isObject(raw) ? raw : {};
    const role = typeof m.role === 'string' ? m.role : '';
    if (typeof m.content === 'string') return [{ role, content: m.content }];
    if (Array.isArray(m.content)) return m.content.map((p) => ({ role, content: isObject(p) && p.type === 'text' ? String(p.text) : '' }));
    return [{ role, content: '' }];
  });
}

/** Reasoning effort the translation reads (reasoning.effort first), and whether Ollama accepts it. */
function effortOf(body: Json): { effort: string; accepted: boolean } {
  const effort = isObject(body.reasoning) && typeof body.reasoning.effort === 'string' ? body.reasoning.effort : typeof body.reasoning_effort === 'string' ? body.reasoning_effort : '';
  return { effort, accepted: effort === '' || ['low', 'medium', 'high', 'none'].includes(effort) };
}

const lossless = (bytes: Buffer): Lossless => parseLossless(bytes.toString('utf8'));
const isNumberText = (value: Lossless | undefined): value is { $number: string } => isObject(value) && typeof (value as { $number?: unknown }).$number === 'string';
const member = (value: Lossless | undefined, key: string): Lossless | undefined =>
  isObject(value) && !('$number' in value) && Object.prototype.hasOwnProperty.call(value, key) ? (value as { [k: string]: Lossless })[key] : undefined;
/** The value of `key` as the client wrote it (the last occurrence, exact digits). */
const clientValue = (client: Lossless, key: string) => member(client, key);

/** Deepest nesting of arrays and objects (also inside JSON held in strings, counted loosely): the exact checks recurse. */
function nestingDepth(bytes: Buffer): number {
  let depth = 0;
  let max = 0;
  for (const b of bytes) {
    if (b === 0x5b || b === 0x7b) max = Math.max(max, (depth += 1));
    else if (b === 0x5d || b === 0x7d) depth -= 1;
  }
  return max;
}

function expectTranslatedUpstream(what: string, clientBytes: Buffer, forwarded: Buffer, decision: Exclude<Decision, GovernorError>): void {
  const client = JSON.parse(clientBytes.toString('utf8')) as Json;
  if (nestingDepth(clientBytes) > 500) {
    // Too deep for the recursive checks below (and vitest's equality): the shape only.
    const sent = JSON.parse(forwarded.toString('utf8')) as Json;
    expect(sent.model, `${what}: model`).toBe('model' in decision && decision.model !== undefined ? decision.model : client.model);
    expect((sent.messages as Json[]).map((m) => [m.role, m.content]), `${what}: messages`).toEqual(expectedMessages(client.messages as unknown[]).map((m) => [m.role, m.content]));
    return;
  }
  let sent: Json;
  let exact: Lossless;
  try {
    sent = JSON.parse(forwarded.toString('utf8')) as Json;
    exact = lossless(forwarded);
  } catch (error) {
    throw new Error(`${what}: /api/chat got a body that is not JSON: ${forwarded.toString('utf8').slice(0, 300)} (${String(error)})`);
  }
  const clientExact = lossless(clientBytes);
  const granted = 'model' in decision && decision.model !== undefined ? decision.model : client.model;
  expect(sent.model, `${what}: model`).toBe(granted);
  expect(Array.isArray(sent.messages), `${what}: messages`).toBe(true);
  const messages = (sent.messages as Json[]).map((m) => ({ role: m.role, content: m.content }));
  expect(messages, `${what}: the client's roles and text`).toEqual(expectedMessages(client.messages as unknown[]));
  // Tool calls: the client's, their arguments parsed, in order.
  const argumentsOf = (messages: unknown[], parse: boolean) =>
    messages.flatMap((m) => (isObject(m) && Array.isArray(m.tool_calls) ? m.tool_calls.map((c: unknown) => (isObject(c) && isObject(c.function) ? c.function.arguments : undefined)) : [])).map((a) => (parse ? JSON.parse(String(a)) : a) as unknown);
  expect(argumentsOf(sent.messages as unknown[], false), `${what}: tool call arguments`).toEqual(argumentsOf(client.messages as unknown[], true));
  expect(sent.stream, `${what}: stream`).toBe(client.stream === true);
  const options = sent.options as Json;
  expect(isObject(options), `${what}: options`).toBe(true);
  // Sampling numbers: the client's, digit for digit (Ollama's layer sets temperature and top_p to 1 when absent).
  // Floats are compared as the doubles Go decodes them to; ints (Go's int64) digit for digit.
  const same = (key: string, from: string, kind: 'float' | 'int', fallback?: Lossless) => {
    const want = clientValue(clientExact, from) ?? null;
    const got = member(member(exact, 'options'), key);
    if (want === null) expect(got, `${what}: options.${key} (client's ${from} absent)`).toEqual(fallback);
    else if (kind === 'float') expect(isNumberText(got) && isNumberText(want) && Number(got.$number) === Number(want.$number), `${what}: options.${key} is ${JSON.stringify(got)}, the client sent ${from}: ${JSON.stringify(want)}`).toBe(true);
    else expect(isDeepStrictEqual(got, want), `${what}: options.${key} is ${JSON.stringify(got)}, the client sent ${from}: ${JSON.stringify(want)}`).toBe(true);
  };
  same('temperature', 'temperature', 'float', { $number: '1e0' });
  same('top_p', 'top_p', 'float', { $number: '1e0' });
  same('seed', 'seed', 'int');
  same('frequency_penalty', 'frequency_penalty', 'float');
  same('presence_penalty', 'presence_penalty', 'float');
  same('num_predict', (clientValue(clientExact, 'max_tokens') ?? null) !== null ? 'max_tokens' : 'max_completion_tokens', 'int');
  const stop = client.stop;
  expect(options.stop, `${what}: stop`).toEqual(typeof stop === 'string' ? [stop] : Array.isArray(stop) ? stop.filter((s) => typeof s === 'string') : undefined);
  // The client's options and keep_alive are not part of /v1: only the admission's reach Ollama.
  expect(options.num_ctx, `${what}: num_ctx`).toBe('numCtx' in decision ? decision.numCtx : undefined);
  expect(sent.keep_alive, `${what}: keep_alive`).toBe('keepAlive' in decision ? decision.keepAlive : undefined);
  const format = isObject(client.response_format) && typeof client.response_format.type === 'string' ? client.response_format.type.trim().toLowerCase() : '';
  const jsonSchema = isObject(client.response_format) ? client.response_format.json_schema : undefined;
  const schema = format === 'json_schema' && isObject(jsonSchema) && jsonSchema.schema !== undefined && jsonSchema.schema !== null ? member(member(clientValue(clientExact, 'response_format'), 'json_schema'), 'schema') : undefined;
  if (format === 'json_object') expect(sent.format, `${what}: format`).toBe('json');
  else if (schema !== undefined) expect(isDeepStrictEqual(member(exact, 'format'), schema), `${what}: format is the client's schema, digit for digit`).toBe(true);
  else expect(sent.format, `${what}: format`).toBeUndefined();
  const { effort } = effortOf(client);
  expect(sent.think, `${what}: think`).toBe(effort === '' ? undefined : effort === 'none' ? false : effort);
  if (Array.isArray(client.tools) && client.tools.length > 0) expect(isDeepStrictEqual(member(exact, 'tools'), clientValue(clientExact, 'tools')), `${what}: tools as sent`).toBe(true);
  else expect(sent.tools, `${what}: tools`).toBeUndefined();
}

// ---------------------------------------------------------------------------------------
// Answer checks
// ---------------------------------------------------------------------------------------

function jsonBody(answer: Answer): unknown {
  try {
    return JSON.parse(answer.body.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

/** memtide's own errors carry a MEMTIDE_ERR_* code. */
function ownCode(body: unknown): string | undefined {
  const error = isObject(body) ? body.error : undefined;
  const code = isObject(error) ? error.code : undefined;
  return typeof code === 'string' && code.startsWith('MEMTIDE_ERR_') ? code : undefined;
}

/** OpenAI's error shape `{error: {message, type, param, code}}`. */
function expectOpenAiError(what: string, answer: Answer): { message: string; type: string; param: unknown; code: unknown } {
  expect(answer.headers['content-type'], `${what}: error content type`).toMatch(/^application\/json/);
  const body = jsonBody(answer);
  const error = isObject(body) ? body.error : undefined;
  expect(isObject(error) && typeof error.message === 'string' && typeof error.type === 'string' && 'param' in error && 'code' in error, `${what}: OpenAI error shape: ${answer.body.toString('utf8').slice(0, 300)}`).toBe(
    true,
  );
  return error as { message: string; type: string; param: unknown; code: unknown };
}

function expectCompletion(what: string, answer: Answer): void {
  const body = jsonBody(answer) as Json | undefined;
  expect(body?.object, `${what}: ${answer.body.toString('utf8').slice(0, 300)}`).toBe('chat.completion');
  expect(String(body?.id), what).toMatch(/^chatcmpl-\d+$/);
  const choices = body?.choices as Array<{ message?: { content?: unknown } }> | undefined;
  expect(typeof choices?.[0]?.message?.content, `${what}: choices[0].message.content`).toBe('string');
  expect(isObject(body?.usage), `${what}: usage`).toBe(true);
}

/** SSE `data:` frames of chunks, then `[DONE]` (usage chunk before it iff asked) or one error frame. Returns how it ended. */
function expectChunkStream(what: string, answer: Answer, includeUsage: boolean): 'done' | 'error' {
  expect(answer.headers['content-type'], what).toBe('text/event-stream');
  const textBody = answer.body.toString('utf8');
  expect(textBody.endsWith('\n\n'), `${what}: the stream ends with a whole frame: ${JSON.stringify(textBody.slice(-200))}`).toBe(true);
  const frames = textBody.slice(0, -2).split('\n\n');
  for (const frame of frames) expect(frame.startsWith('data: ') && !frame.slice(6).includes('\n'), `${what}: frame ${JSON.stringify(frame.slice(0, 200))}`).toBe(true);
  const last = (frames.at(-1) ?? '').slice(6);
  const chunks = frames.slice(0, -1).map((f) => JSON.parse(f.slice(6)) as Json);
  for (const chunk of chunks) {
    expect(chunk.object, `${what}: ${JSON.stringify(chunk)}`).toBe('chat.completion.chunk');
    expect(Array.isArray(chunk.choices), what).toBe(true);
  }
  if (last === '[DONE]') {
    const usage = chunks.filter((c) => c.usage !== undefined);
    expect(usage.length, `${what}: usage chunks (include_usage ${includeUsage})`).toBe(includeUsage ? 1 : 0);
    if (includeUsage) expect(chunks.at(-1)?.usage, `${what}: the usage chunk is last`).toBeDefined();
    const contents = chunks.filter((c) => c.usage === undefined).map((c) => (c.choices as Array<{ delta?: { content?: unknown } }>)[0]?.delta?.content);
    expect(contents.length > 0 && contents.every((c) => typeof c === 'string'), `${what}: deltas with content`).toBe(true);
    return 'done';
  }
  const error = JSON.parse(last) as Json;
  expect(isObject(error.error) && typeof error.error.message === 'string', `${what}: a stream ends with [DONE] or an error frame, not ${last.slice(0, 200)}`).toBe(true);
  return 'error';
}

async function expectAllReleasedOnce(target: Rig): Promise<void> {
  await target.governor.settled(5_000);
  for (const admission of target.governor.admissions) expect(admission.releases, `releases of ${admission.request.model}`).toHaveLength(1);
}

async function expectStillAnswering(target: Rig): Promise<void> {
  target.governor.decide = () => ({});
  const body = Buffer.from('{"model":"gemma3:1b","messages":[{"role":"user","content":"still there?"}]}');
  const answer = await answerOf(target.port, PATH, body);
  expect(answer.status, 'a plain request after the fuzzing').toBe(200);
  expectCompletion('a plain request after the fuzzing', answer);
  await expectAllReleasedOnce(target);
}

// ---------------------------------------------------------------------------------------
// One request
// ---------------------------------------------------------------------------------------

const DECISIONS: Decision[] = [{}, {}, {}, { numCtx: 2048, keepAlive: '10m' }, { model: 'qwen2.5:0.5b' }, new GovernorError('MEMTIDE_ERR_GOVERNOR_HELD', 'memory pressure is critical: new model loads are held', 503, 1500)];
const FAILURES: Array<FailKind | null> = [null, null, null, null, null, null, 'midstream', '503', 'oom'];

interface Case {
  bytes: Buffer;
  /** null: no expectation beyond the weak ones (hostile bodies). */
  tags: { bad: string[]; skip: boolean; noModel: boolean } | null;
  decision: number;
  failure: number;
  /** After the path: a query (kept on /api/chat) or a trailing slash. */
  suffix: '' | '?x=1' | '/';
}

const describeCase = (c: Case) => {
  const t = c.bytes.toString('latin1');
  return JSON.stringify({ ...c, bytes: t.length > 600 ? `${t.slice(0, 600)}…(${t.length})` : t });
};

async function send(c: Case): Promise<void> {
  const { fake, tap, governor, port, logged } = rig;
  const what = describeCase(c);
  const decision = DECISIONS[c.decision] as Decision;
  governor.decide = () => decision;
  const parsed = (() => {
    try {
      return { value: JSON.parse(c.bytes.toString('utf8')) as unknown };
    } catch {
      return null;
    }
  })();
  const body = parsed && isObject(parsed.value) ? parsed.value : null;
  const noModel = !body || typeof body.model !== 'string' || body.model === '';
  const refused = decision instanceof GovernorError;
  // Expected route, when the body's tags say it.
  let route: 'bad-json' | 'bad-field' | 'untouched' | 'v1' | 'api-chat' | 'refused' | null = null;
  if (parsed === null) route = 'bad-json';
  else if (noModel) route = 'untouched';
  else if (c.tags) {
    if (c.tags.bad.length > 0) route = 'bad-field';
    else if (refused) route = 'refused';
    else if (c.tags.skip || !effortOf(body as Json).accepted) route = 'v1';
    else route = 'api-chat';
  }
  if (c.tags) expect(noModel, `${what}: generator and oracle agree on the model`).toBe(c.tags.noModel);
  const failure = FAILURES[c.failure] ?? null;
  const knownModel = typeof body?.model === 'string' && ['gemma3:1b', 'qwen2.5:0.5b'].includes(body.model);
  // Only when the request surely runs a generation upstream (else the failure would wait for the next one).
  // (The fake has no route for /v1/chat/completions/: only the translated request drops the trailing slash.)
  const injected = failure !== null && knownModel && (route === 'api-chat' || (route === 'v1' && c.suffix !== '/')) ? failure : null;
  if (injected) fake.failNext(injected);

  const tapped = tap.received.length;
  const admissions = governor.admissions.length;
  const translatedBefore = rig.proxy.translations().translated;
  const loggedBefore = logged.length;
  let answer: Answer;
  try {
    answer = await answerOf(port, `${PATH}${c.suffix}`, c.bytes);
  } catch (error) {
    throw new Error(`${what}: no well-formed answer: ${String(error)}`);
  }
  await expectAllReleasedOnce(rig);
  const upstream = tap.received.slice(tapped);
  const newAdmissions = governor.admissions.slice(admissions);
  const json = jsonBody(answer);
  const own = ownCode(json);
  const say = `${what} -> ${answer.status} ${answer.body.toString('utf8').slice(0, 300)}`;

  expect(answer.status >= 200 && answer.status < 600, say).toBe(true);
  if (own) {
    expect(answer.status, `${say}: memtide's own ${own}`).not.toBe(500);
    expectOpenAiError(say, answer);
  }
  expect(logged.slice(loggedBefore), say).toEqual([]);
  if (upstream.length === 0 && answer.status >= 400) expectOpenAiError(say, answer);

  // Malformed JSON: 400 naming the byte, nothing upstream.
  if (parsed === null) {
    expect(answer.status, say).toBe(400);
    const error = expectOpenAiError(say, answer);
    expect(error.code, say).toBe('MEMTIDE_ERR_BAD_JSON');
    expect(error.type, say).toBe('invalid_request_error');
    expect(error.message, say).toMatch(/at byte \d+$/);
    expect((error as unknown as { offset?: unknown }).offset, say).toBe(Number(/at byte (\d+)$/.exec(error.message)?.[1]));
    expect(upstream, `${say}: malformed JSON reached upstream`).toEqual([]);
    expect(newAdmissions, say).toEqual([]);
    return;
  }
  const badField = own === 'MEMTIDE_ERR_BAD_FIELD';
  if (route === 'bad-field') expect(own, `${say}: a field of the wrong type (${c.tags?.bad.join(', ')})`).toBe('MEMTIDE_ERR_BAD_FIELD');
  else if (route !== null) expect(badField, `${say}: refused a field, expected ${route}`).toBe(false);
  if (badField) {
    expect(answer.status, say).toBe(400);
    const error = expectOpenAiError(say, answer);
    expect(error.type, say).toBe('invalid_request_error');
    expect(typeof error.param === 'string' && error.param !== '', `${say}: param names the field`).toBe(true);
    if (c.tags) expect(c.tags.bad, `${say}: param is one of the wrong fields`).toContain(error.param);
    expect(error.message, `${say}: the message names the field`).toContain(`ChatCompletionRequest.${String(error.param)} of type`);
    expect(error.message, say).toMatch(/^json: cannot unmarshal /);
    expect(upstream, `${say}: a refused body reached upstream`).toEqual([]);
    expect(newAdmissions, `${say}: a refused body was admitted`).toEqual([]);
    return;
  }
  if (route === 'refused' || (refused && !noModel)) {
    expect(answer.status, say).toBe(503);
    expect(own, say).toBe('MEMTIDE_ERR_GOVERNOR_HELD');
    expect(answer.headers['retry-after'], say).toBe('2');
    expect(upstream, say).toEqual([]);
    return;
  }

  // What reached upstream: one request (the tap sees each attempt; a replay would be a second copy).
  expect(upstream.length, `${say}: upstream requests ${JSON.stringify(upstream.map((u) => u.path))}`).toBe(1);
  const [forwarded] = upstream as [Tapped];
  const translated = forwarded.path.startsWith('/api/chat');
  if (route === 'api-chat') expect(forwarded.path, say).toBe(`/api/chat${c.suffix === '/' ? '' : c.suffix}`);
  if (route === 'v1' || route === 'untouched') expect(forwarded.path, say).toBe(`${PATH}${c.suffix}`);
  expect(rig.proxy.translations().translated - translatedBefore, say).toBe(translated ? 1 : 0);
  if (translated) {
    expect(newAdmissions.map((a) => a.request.endpoint), say).toEqual(['chat']);
    expectTranslatedUpstream(say, c.bytes, forwarded.body, decision as Exclude<Decision, GovernorError>);
  } else {
    expect(forwarded.path, say).toBe(`${PATH}${c.suffix}`);
    const modelChanged = !noModel && 'model' in decision && decision.model !== undefined && decision.model !== (body as Json).model;
    if (!modelChanged) {
      expect(forwarded.body.equals(c.bytes), `${say}: /v1 got ${forwarded.body.toString('latin1').slice(0, 300)}`).toBe(true);
    } else if (nestingDepth(c.bytes) > 500) {
      // Too deep for the lossless parser: the model, and only its bytes changed in length.
      const admitted = (decision as { model: string }).model;
      expect((JSON.parse(forwarded.body.toString('utf8')) as Json).model, say).toBe(admitted);
      expect(forwarded.body.length - Buffer.byteLength(admitted), say).toBe(c.bytes.length - Buffer.byteLength(String((body as Json).model)));
    } else {
      // Only the model changed, every other value as written.
      const got = lossless(forwarded.body) as { [k: string]: Lossless };
      const want = lossless(c.bytes) as { [k: string]: Lossless };
      expect(got.model, say).toBe((decision as { model: string }).model);
      const drop = (o: { [k: string]: Lossless }) => Object.fromEntries(Object.entries(o).filter(([k]) => k !== 'model'));
      expect(isDeepStrictEqual(drop(got), drop(want)), `${say}: /v1 got ${forwarded.body.toString('utf8').slice(0, 300)}`).toBe(true);
    }
    expect(newAdmissions.map((a) => a.request.endpoint), say).toEqual(noModel ? [] : ['openai-chat']);
  }

  // The answer of a translated request: OpenAI's shapes.
  if (translated) {
    expect(answer.headers['x-memtide-translated'], say).toBe('api/chat');
    const stream = (body as Json).stream === true;
    const includeUsage = isObject((body as Json).stream_options) && ((body as Json).stream_options as Json).include_usage === true;
    if (answer.status === 200 && stream) {
      const ended = expectChunkStream(say, answer, includeUsage);
      const limited = [(body as Json).max_tokens, (body as Json).max_completion_tokens].some((v) => v !== undefined && v !== null);
      if (injected === 'midstream' && !limited) expect(ended, `${say}: a mid-stream error`).toBe('error');
      if (ended === 'error') expect(newAdmissions[0]?.releases[0]?.ok, `${say}: the governor is told it failed`).toBe(false);
    } else if (answer.status === 200) {
      expectCompletion(say, answer);
    } else {
      const error = expectOpenAiError(say, answer);
      if (!own) expect(error.code, `${say}: Ollama's error, translated`).toBeNull();
    }
    if (injected === null && knownModel) expect(answer.status, say).toBe(200);
  }
}

// ---------------------------------------------------------------------------------------
// Hostile bodies (weaker oracle: only the route's own properties)
// ---------------------------------------------------------------------------------------

const hostileValue = valueTextOf(fc.oneof(fc.string({ maxLength: 8 }).map((s) => JSON.stringify(s)), fc.constantFrom('"\\ud800"', '"\\u0000"', '"é"')));
const GOOD = '{"model":"gemma3:1b","messages":[{"role":"user","content":"hi"}]';
const deep = (d: number, open: string, close: string) => `${open.repeat(d)}${close.repeat(d)}`;
const hostileArb: fc.Arbitrary<Buffer> = fc.oneof(
  // A known field holding any JSON value (a type Go refuses must be a 400 naming it).
  fc
    .tuple(fc.constantFrom(...(Object.keys(topLevel) as TopKey[])), hostileValue, taggedBodyArb)
    .map(([key, value, base]) => Buffer.from(base.text.replace(/}$/, `${base.text === '{}' ? '' : ','}${JSON.stringify(key)}:${value}}`))),
  // Broken JSON: a cut body with junk.
  fc
    .tuple(taggedBodyArb, fc.nat(), fc.constantFrom('', '}', ',', '"', '\u0000', 'NaN', '\\u12', ' x', "'", '\uFEFF', ']'))
    .map(([b, cut, junk]) => Buffer.from(b.text.slice(0, cut % Math.max(1, b.text.length)) + junk)),
  // Non-object JSON, and random bytes.
  hostileValue.map((t) => Buffer.from(t)),
  fc.uint8Array({ minLength: 0, maxLength: 200 }).map((b) => Buffer.from(b)),
  // Invalid UTF-8 inside strings (content, role, tool call arguments).
  fc.constantFrom(
    Buffer.concat([Buffer.from('{"model":"gemma3:1b","messages":[{"role":"user","content":"a'), Buffer.from([0xff, 0xc3]), Buffer.from('b"}]}')]),
    Buffer.concat([Buffer.from('{"model":"gemma3:1b","messages":[{"role":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('","content":"x"}]}')]),
    Buffer.concat([Buffer.from('{"model":"gemma3:1b","messages":[{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":"{\\"a\\":\\"'), Buffer.from([0xfe]), Buffer.from('\\"}"}}]}]}')]),
  ),
  // Deep nesting where it is ignored, passed on raw, or parsed (tool call arguments).
  fc.tuple(fc.integer({ min: 10, max: 20_000 }), fc.constantFrom('metadata', 'tools', 'schema', 'arguments', 'content', 'stop')).map(([d, where]) => {
    switch (where) {
      case 'metadata':
        return Buffer.from(`${GOOD},"metadata":${deep(d, '[', ']')}}`);
      case 'tools':
        return Buffer.from(`${GOOD},"tools":[{"type":"function","function":{"name":"f","parameters":${deep(d, '{"a":', '}').replace(/\{"a":}/, '{"a":1}')}}}]}`);
      case 'schema':
        return Buffer.from(`${GOOD},"response_format":{"type":"json_schema","json_schema":{"schema":${deep(d, '[', ']')}}}}`);
      case 'arguments':
        return Buffer.from(`{"model":"gemma3:1b","messages":[{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":${JSON.stringify(`{"a":${deep(d, '[', ']')}}`)}}}]}]}`);
      case 'content':
        return Buffer.from(`{"model":"gemma3:1b","messages":[{"role":"user","content":${deep(d, '[', ']')}}]}`);
      default:
        return Buffer.from(`${GOOD},"stop":${deep(d, '[', ']')}}`);
    }
  }),
);

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

const caseArb = (bodies: fc.Arbitrary<{ bytes: Buffer; tags: Case['tags'] }>): fc.Arbitrary<Case> =>
  fc
    .record({
      body: bodies,
      decision: fc.nat({ max: DECISIONS.length - 1 }),
      failure: fc.nat({ max: FAILURES.length - 1 }),
      suffix: fc.constantFrom<Case['suffix']>('', '', '', '?x=1', '/'),
    })
    .map(({ body, ...rest }) => {
      const c: Case = { ...body, ...rest };
      return Object.assign(c, { [fc.toStringMethod]: () => describeCase(c) });
    });

describe('regressions found by fuzzing the translation', () => {
  const sendOne = async (text: string) => {
    rig.governor.decide = () => ({});
    const tapped = rig.tap.received.length;
    const answer = await answerOf(rig.port, PATH, Buffer.from(text));
    await expectAllReleasedOnce(rig);
    return { answer, upstream: rig.tap.received.slice(tapped) };
  };

  // src/app/proxy/openAiChatRequest.ts serialised the parsed tool call arguments recursively: arguments nested a
  // few thousand levels deep (Go takes 10000) overflowed the stack, answered as a 400 MEMTIDE_ERR_BAD_FIELD
  // "Maximum call stack size exceeded" naming no field. Now the arguments pass on as the client's JSON text.
  it('deeply nested tool call arguments are translated', async () => {
    const args = `{"a":${'['.repeat(5000)}${']'.repeat(5000)}}`;
    const { answer, upstream } = await sendOne(JSON.stringify({ model: 'gemma3:1b', messages: [{ role: 'assistant', tool_calls: [{ function: { name: 'f', arguments: args } }] }, { role: 'user', content: 'go on' }] }));
    expect(answer.status, answer.body.toString('utf8').slice(0, 300)).toBe(200);
    expect(upstream.map((u) => u.path)).toEqual(['/api/chat']);
    expect(upstream[0]?.body.toString('utf8')).toContain(`"arguments":${args}`);
  });

  // openAiChatFields.ts took any JS number for a float64 field: `1e400` (Infinity) passed and reached Ollama as
  // `"temperature":null`, where Ollama's own decoder refuses it (out of range). Now a 400 naming the field.
  it('a float past a double\'s range is a 400 naming the field, and nothing goes upstream', async () => {
    for (const field of ['temperature', 'top_p', 'frequency_penalty', 'presence_penalty']) {
      const { answer, upstream } = await sendOne(`{"model":"gemma3:1b","messages":[{"role":"user","content":"x"}],"${field}":-1e400}`);
      expect(answer.status).toBe(400);
      expect(jsonBody(answer)).toMatchObject({ error: { type: 'invalid_request_error', param: field, code: 'MEMTIDE_ERR_BAD_FIELD', message: expect.stringContaining(`ChatCompletionRequest.${field} of type float64`) } });
      expect(upstream).toEqual([]);
    }
  });

  // openAiChatRequest.ts passed `seed` and `max_tokens` on as doubles: a seed past 2^53 (valid for Go's int64)
  // reached Ollama changed (9007199254740993 -> 9007199254740992). Now as the client wrote them.
  it('seed and max_tokens reach /api/chat digit for digit', async () => {
    const { answer, upstream } = await sendOne('{"model":"gemma3:1b","messages":[{"role":"user","content":"x"}],"seed":9007199254740993,"max_completion_tokens":1}');
    expect(answer.status).toBe(200);
    const sent = upstream[0]?.body.toString('utf8') ?? '';
    expect(sent).toContain('"seed":9007199254740993');
    expect(sent).toContain('"num_predict":1');
  });
});

describe('fuzz: /v1/chat/completions translated to /api/chat', () => {
  it('tagged bodies: the route, the upstream body and the answer shape are the ones the fields call for', async () => {
    await fc.assert(
      fc.asyncProperty(
        caseArb(
          // Most bodies have some wrong field somewhere: half the runs are picked translatable, a sixth free of wrong types.
          fc
            .oneof(
              { weight: 3, arbitrary: taggedBodyArb.filter((b) => !b.noModel && b.bad.length === 0 && !b.skip) },
              { weight: 1, arbitrary: taggedBodyArb.filter((b) => b.bad.length === 0) },
              { weight: 2, arbitrary: taggedBodyArb },
            )
            .map((b) => ({ bytes: Buffer.from(b.text), tags: { bad: b.bad, skip: b.skip, noModel: b.noModel } })),
        ),
        async (c) => {
          await send(c);
        },
      ),
      { numRuns: runs(250) },
    );
    await expectStillAnswering(rig);
  }, 600_000);

  it('hostile bodies: bad JSON is a 400 naming the byte, nothing is a 500, what goes upstream is whole', async () => {
    await fc.assert(
      fc.asyncProperty(
        caseArb(hostileArb.map((bytes) => ({ bytes, tags: null }))),
        async (c) => {
          await send(c);
        },
      ),
      { numRuns: runs(150) },
    );
    await expectStillAnswering(rig);
  }, 600_000);
});

describe('fuzz: a client leaving a translated request', () => {
  let slow: Rig | undefined;
  afterAll(async () => {
    await stopRig(slow);
  });

  it('leaving before admission, at the head or mid-stream releases the admission exactly once', async () => {
    slow = await startRig({ responseTokens: 30, tokenDelayMs: 4 });
    const target = slow;
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          stream: fc.boolean(),
          includeUsage: fc.boolean(),
          // Bytes of the answer read before leaving (0: at the head); null: leave while the governor still decides.
          leaveAfter: fc.oneof(fc.constant(null), fc.constant(0), fc.integer({ min: 1, max: 4_000 })),
        }),
        async ({ stream, includeUsage, leaveAfter }) => {
          const what = JSON.stringify({ stream, includeUsage, leaveAfter });
          const admissions = target.governor.admissions.length;
          let decided!: () => void;
          let asked!: () => void;
          const deciding = new Promise<void>((resolve) => (decided = resolve));
          const asking = new Promise<void>((resolve) => (asked = resolve));
          target.governor.decide =
            leaveAfter === null
              ? () => {
                  asked();
                  return deciding.then(() => ({ numCtx: 2048 }));
                }
              : () => ({ numCtx: 2048 });
          const body = Buffer.from(JSON.stringify({ model: 'gemma3:1b', stream, stream_options: { include_usage: includeUsage }, messages: [{ role: 'user', content: 'a long answer, please' }] }));
          if (leaveAfter === null) {
            const request = http.request({ host: '127.0.0.1', port: target.port, method: 'POST', path: PATH, agent: false, headers: { 'content-type': 'application/json', 'content-length': String(body.length) } });
            request.on('error', () => {});
            request.end(body);
            await asking;
            request.destroy();
            await new Promise((resolve) => setTimeout(resolve, 10));
            decided();
          } else {
            const outcome = await post(target.port, PATH, body, leaveAfter);
            // A short answer may end before the client leaves: then it is a whole one.
            if (outcome !== 'left') expect(outcome.status, what).toBe(200);
          }
          // The late admission is recorded once the stub's decision resolves.
          for (const deadline = Date.now() + 5_000; target.governor.admissions.length === admissions && Date.now() < deadline; ) await new Promise((resolve) => setTimeout(resolve, 5));
          await target.governor.settled(5_000);
          const mine = target.governor.admissions.slice(admissions);
          expect(mine.length, what).toBe(1);
          expect(mine[0]?.releases, what).toHaveLength(1);
          for (const admission of target.governor.admissions) expect(admission.releases, what).toHaveLength(1);
          expect(target.logged, what).toEqual([]);
        },
      ),
      { numRuns: runs(25) },
    );
    target.governor.decide = () => ({});
    await expectStillAnswering(target);
    expect(target.proxy.inFlight()).toBe(0);
  }, 600_000);
});
