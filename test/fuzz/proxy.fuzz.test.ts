/**
 * Fuzzing the Ollama proxy: random bodies (bytes, broken JSON, deep nesting,
 * numbers JavaScript cannot hold, odd keys and types) and broken framing to
 * /api/chat, /api/generate, /v1/chat/completions, /api/show and /api/tags,
 * through the real proxy to the fake Ollama, with a tap in between that
 * records the exact bytes that reach upstream.
 *
 * What must hold: every answer is well-formed HTTP; malformed JSON to a model
 * endpoint is a 400 in the API's own error shape (Ollama's `{ error: "..." }`
 * on /api/*, OpenAI's `{ error: { message } }` on /v1/*) and never reaches
 * upstream; a body memtide did not rewrite reaches upstream byte for byte; a
 * body it rewrote differs only in the keys the admission sets (compared with
 * exact numbers); memtide's own answers are never 500; every admission is
 * released exactly once; the proxy keeps answering. Failures print
 * fast-check's seed and path.
 */
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProxy, type ProxyHandle } from '../../src/app/proxy/proxy.js';
import { GovernorError } from '../../src/streams/governorApi.js';
import { startFakeOllama, type FakeOllama } from '../support/fakeOllama.js';
import { createStubGovernor, type Decision, type StubGovernor } from '../support/stubGovernor.js';
import { numberText, valueTextOf } from './support/jsonText.js';
import { parseLossless, type Lossless } from './support/losslessJson.js';
import { buildRequest, jsonOf, rawRequest, type RawResponse } from './support/rawHttp.js';
import { runs } from './support/runs.js';
import { startTap, type Tap } from './support/tap.js';

const BODY_LIMIT = 64 * 1024;

let fake: FakeOllama;
let tap: Tap;
let proxy: ProxyHandle;
let governor: StubGovernor;
let port: number;
const logged: string[] = [];

beforeAll(async () => {
  fake = await startFakeOllama({ responseTokens: 2 });
  tap = await startTap(fake.url);
  governor = createStubGovernor();
  proxy = await startProxy({
    listen: { host: '127.0.0.1', port: 0 },
    upstream: tap.url,
    governor,
    config: { bodyLimitBytes: BODY_LIMIT },
    logger: { debug() {}, info() {}, warn() {}, error: (message) => void logged.push(message) },
  });
  port = Number(new URL(proxy.url).port);
});

afterAll(async () => {
  await proxy?.close();
  await tap?.close();
  await fake?.close();
});

// ---------------------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------------------

/** Strings, some with escapes JSON.stringify never writes. */
const stringText = fc.oneof(
  fc.string({ maxLength: 12 }).map((s) => JSON.stringify(s)),
  fc.constantFrom('"\\ud800"', '"\\u0000"', '"é"', '"\\/"', '"a\\"b"'),
);
const valueText = valueTextOf(stringText);

const modelText = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('"gemma3:1b"', '"qwen2.5:0.5b"', '"GEMMA3:1B"') },
  { weight: 1, arbitrary: fc.constantFrom('"nope:1b"', '""', '1', 'null', '{"a":1}', '["gemma3:1b"]', '"gemma3:1b\\u0000"') },
);
const keepAliveText = fc.oneof(fc.constantFrom('"5m"', '"-1"', '"10"', '"1h2m3.5s"', '0', '-1', '300', '1e400', '"µs"', '"5µs"', 'true', '[]', '{}', 'null', '"9999999999h"'), numberText);
const optionsText = fc
  .record(
    {
      num_ctx: fc.oneof(fc.constantFrom('2048', '0', '-1', '2.5', '"4096"', '1e400', '12345678901234567890', 'null'), numberText),
      use_mmap: fc.constantFrom('true', 'false', '"no"', 'null'),
      seed: numberText,
      temperature: numberText,
      extra: valueText,
    },
    { requiredKeys: [] },
  )
  .map((o) => `{${Object.entries(o).map(([k, v]) => `"${k}":${v}`).join(',')}}`);

/** An object body as Ollama clients send it, with random and hostile parts; always stream:false (fast). */
const objectBodyText = fc
  .record(
    {
      model: modelText,
      prompt: stringText,
      messages: fc.oneof(fc.constantFrom('[{"role":"user","content":"hi"}]', '[]', '"hi"', '[{"content":[{"type":"text","text":"x"}]}]', '[null]'), valueText),
      keep_alive: keepAliveText,
      options: fc.oneof({ weight: 3, arbitrary: optionsText }, { weight: 1, arbitrary: valueText }),
      format: valueText,
      __proto__: valueText,
      constructor: valueText,
    },
    { requiredKeys: ['model'] },
  )
  .chain((fields) =>
    fc.shuffledSubarray(Object.entries(fields), { minLength: Object.keys(fields).length }).map((entries) => `{${[...entries.map(([k, v]) => `"${k}":${v}`), '"stream":false'].join(',')}}`),
  );

type BodyKind = 'object' | 'json' | 'broken' | 'bytes' | 'deep' | 'huge' | 'empty';
const bodyArb: fc.Arbitrary<{ kind: BodyKind; bytes: Buffer }> = fc.oneof(
  { weight: 6, arbitrary: objectBodyText.map((t) => ({ kind: 'object' as const, bytes: Buffer.from(t) })) },
  { weight: 1, arbitrary: valueText.map((t) => ({ kind: 'json' as const, bytes: Buffer.from(t) })) },
  {
    weight: 3,
    arbitrary: fc
      .tuple(objectBodyText, fc.nat(), fc.constantFrom('', '}', ',', '"', '\u0000', 'NaN', '\\u12', ' x', "'", '\uFEFF'))
      .map(([text, cut, junk]) => ({ kind: 'broken' as const, bytes: Buffer.from(text.slice(0, cut % text.length) + junk) })),
  },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 300 }).map((b) => ({ kind: 'bytes' as const, bytes: Buffer.from(b) })) },
  { weight: 1, arbitrary: fc.integer({ min: 100, max: 50_000 }).chain((d) => fc.constantFrom('[', '{"a":').map((o) => ({ kind: 'deep' as const, bytes: Buffer.from(o.repeat(d)) }))) },
  { weight: 1, arbitrary: fc.integer({ min: BODY_LIMIT + 1, max: 2 * BODY_LIMIT }).map((n) => ({ kind: 'huge' as const, bytes: Buffer.from(`{"model":"gemma3:1b","prompt":"${'x'.repeat(n)}"}`) })) },
  { weight: 1, arbitrary: fc.constant({ kind: 'empty' as const, bytes: Buffer.alloc(0) }) },
);

/** What JSON.parse thinks of the body: null when it is not JSON at all. */
function parsedOrNull(bytes: Buffer): { value: unknown } | null {
  try {
    return { value: JSON.parse(bytes.toString('utf8')) as unknown };
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

const ENDPOINTS = [
  ['POST', '/api/chat', true],
  ['POST', '/api/generate', true],
  ['POST', '/v1/chat/completions', true],
  ['POST', '/api/embed', true],
  ['POST', '/api/show', false],
  ['GET', '/api/tags', false],
  ['POST', '/api/tags', false],
] as const;

const DECISIONS: Decision[] = [{}, {}, { numCtx: 2048 }, { model: 'qwen2.5:0.5b' }, { keepAlive: '10m', numCtx: 8192 }, { keepAlive: 0 }, new GovernorError('MEMTIDE_ERR_GOVERNOR_HELD', 'memory pressure is critical: new model loads are held', 503, 1500)];

type Framing = 'exact' | 'chunked' | 'long' | 'badChunked' | 'twoLengths';

interface ProxyRequest {
  endpoint: (typeof ENDPOINTS)[number];
  target: string;
  body: { kind: BodyKind; bytes: Buffer };
  contentType: string | null;
  decision: number;
  framing: Framing;
  host: 'right' | 'evil' | 'missing';
}

const requestArb: fc.Arbitrary<ProxyRequest> = fc
  .record({
    endpoint: fc.constantFrom(...ENDPOINTS),
    suffix: fc.constantFrom('', '', '', '', '/', '?x=1', '%2F', '/..'),
    body: bodyArb,
    contentType: fc.constantFrom('application/json', 'application/json', 'text/plain', null),
    decision: fc.nat({ max: DECISIONS.length - 1 }),
    framing: fc.constantFrom<Framing>('exact', 'exact', 'exact', 'exact', 'chunked', 'long', 'badChunked', 'twoLengths'),
    host: fc.constantFrom<ProxyRequest['host']>('right', 'right', 'right', 'right', 'right', 'evil', 'missing'),
  })
  .map(({ suffix, endpoint, ...rest }) => {
    const request = { ...rest, endpoint, target: `${endpoint[1]}${suffix}` };
    return Object.assign(request, { [fc.toStringMethod]: () => describeRequest(request) });
  });

function describeRequest(request: ProxyRequest): string {
  const text = request.body.bytes.toString('latin1');
  return JSON.stringify({ ...request, body: { kind: request.body.kind, bytes: text.length > 300 ? `${text.slice(0, 300)}…(${text.length})` : text } });
}

function framed(request: ProxyRequest): { headers: Array<[string, string]>; payload: Buffer; incomplete: boolean } {
  const body = request.body.bytes;
  switch (request.framing) {
    case 'exact':
      return { headers: [['Content-Length', String(body.length)]], payload: body, incomplete: false };
    case 'chunked':
      return { headers: [['Transfer-Encoding', 'chunked']], payload: Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from(body.length ? '\r\n0\r\n\r\n' : '\r\n')]), incomplete: false };
    case 'long':
      return { headers: [['Content-Length', String(body.length + 7)]], payload: body, incomplete: true };
    case 'badChunked':
      return { headers: [['Transfer-Encoding', 'chunked']], payload: Buffer.concat([Buffer.from('zz\r\n'), body]), incomplete: true };
    case 'twoLengths':
      return { headers: [['Content-Length', String(body.length)], ['Content-Length', String(body.length + 1)]], payload: body, incomplete: false };
  }
}

// ---------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------

/** memtide's own error answers carry a MEMTIDE_ERR_* code (in `code` on /api/*, `error.code` on /v1/*). */
function memtideCode(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const { code, error } = body as { code?: unknown; error?: unknown };
  if (typeof code === 'string' && code.startsWith('MEMTIDE_ERR_')) return code;
  const inner = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof inner === 'string' && inner.startsWith('MEMTIDE_ERR_') ? inner : undefined;
}

function expectErrorShape(response: RawResponse, openAi: boolean, what: string): void {
  const body = jsonOf(response) as { error?: unknown } | undefined;
  expect(response.headers['content-type'], what).toMatch(/^application\/json/);
  if (openAi) expect(typeof (body?.error as { message?: unknown } | undefined)?.message, `${what}: OpenAI error shape`).toBe('string');
  else expect(typeof body?.error, `${what}: Ollama error shape`).toBe('string');
}

const withoutAdmissionKeys = (value: Lossless, openAi: boolean): Lossless => {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || '$number' in value) return value;
  const out: { [key: string]: Lossless } = {};
  for (const [key, inner] of Object.entries(value)) {
    if (key === 'model') continue;
    if (!openAi && key === 'keep_alive') continue;
    // `options: null` is "not set" (Go): the rewrite may turn it into an object holding only the admission's keys.
    if (!openAi && key === 'options' && inner === null) continue;
    if (!openAi && key === 'options' && typeof inner === 'object' && inner !== null && !Array.isArray(inner) && !('$number' in inner)) {
      const { num_ctx: _ctx, use_mmap: _mmap, ...rest } = inner as { [key: string]: Lossless };
      // The rewrite adds `options` when the client sent none: an empty one is the same as none.
      if (Object.keys(rest).length) Object.defineProperty(out, key, { value: rest, enumerable: true, writable: true, configurable: true });
      continue;
    }
    Object.defineProperty(out, key, { value: inner, enumerable: true, writable: true, configurable: true });
  }
  return out;
};

async function waitForReleases(): Promise<void> {
  await governor.settled(5_000);
  for (const admission of governor.admissions) expect(admission.releases, `releases of ${admission.request.model}`).toHaveLength(1);
}

async function send(request: ProxyRequest): Promise<void> {
  const what = describeRequest(request);
  const [method, , modelEndpoint] = request.endpoint;
  const openAi = request.target.startsWith('/v1/');
  governor.decide = () => DECISIONS[request.decision] as Decision;
  const { headers: framing, payload, incomplete } = framed(request);
  const headers: Array<[string, string]> = [
    ...(request.host === 'right' ? ([['Host', `127.0.0.1:${port}`]] as Array<[string, string]>) : request.host === 'evil' ? ([['Host', 'evil.example']] as Array<[string, string]>) : []),
    ...(request.contentType ? ([['Content-Type', request.contentType]] as Array<[string, string]>) : []),
    ...framing,
    ['Connection', 'close'],
  ];
  const tapped = tap.received.length;
  const admissions = governor.admissions.length;
  const loggedBefore = logged.length;
  const outcome = await rawRequest(buildRequest(method, request.target, headers, payload), method, { port, endAfterWrite: incomplete, timeoutMs: 5_000 });
  if (outcome.kind === 'timeout') throw new Error(`${what}: no answer (${outcome.bytes.length} bytes)`);
  if (outcome.kind === 'malformed') throw new Error(`${what}: malformed answer (${outcome.reason}): ${outcome.bytes.subarray(0, 300).toString('latin1')}`);
  const upstream = tap.received.slice(tapped);
  if (outcome.kind === 'closed') {
    expect(incomplete, `${what}: closed without an answer`).toBe(true);
  } else {
    const { response } = outcome;
    const body = jsonOf(response);
    const own = memtideCode(body);
    expect(response.status >= 100 && response.status < 600, what).toBe(true);
    if (own) {
      expect(response.status, `${what}: memtide's own ${own} answer`).not.toBe(500);
      expectErrorShape(response, openAi, what);
    }
    const pathIsModelEndpoint = modelEndpoint && /^\/(api\/(chat|generate|embed)|v1\/chat\/completions)\/?$/.test(request.target);
    const parsed = parsedOrNull(request.body.bytes);
    const wellFramed = request.framing === 'exact' || request.framing === 'chunked';
    if (pathIsModelEndpoint && request.host === 'right' && wellFramed && request.body.bytes.length > BODY_LIMIT) {
      expect(response.status, what).toBe(413);
      expectErrorShape(response, openAi, what);
      expect(upstream, `${what}: an oversized body reached upstream`).toEqual([]);
    }
    if (pathIsModelEndpoint && request.host === 'right' && wellFramed && request.body.bytes.length <= BODY_LIMIT) {
      if (parsed === null) {
        // Malformed JSON: a 400 in the API's own shape, naming the byte, and nothing sent upstream.
        expect(response.status, `${what}: ${response.body.toString('utf8').slice(0, 200)}`).toBe(400);
        expect(own, what).toBe('MEMTIDE_ERR_BAD_JSON');
        expectErrorShape(response, openAi, what);
        expect(upstream, `${what}: malformed JSON reached upstream`).toEqual([]);
      }
    }
    if (request.host !== 'right') expect(upstream, `${what}: a request with a foreign Host reached upstream`).toEqual([]);
    if (request.host === 'missing' && request.framing !== 'twoLengths') expect(own, `${what}: no Host`).toBe('MEMTIDE_ERR_HOST');
    // An error nobody upstream wrote is the proxy's own: JSON in the API's shape, whatever went wrong
    // (malformed framing and a missing Host included).
    if (response.status >= 400 && upstream.length === 0) expectErrorShape(response, openAi, what);
  }
  // What reached upstream: the client's bytes, or (rewritten) the same JSON with only the admission's keys changed.
  const sent = request.framing === 'exact' || request.framing === 'chunked' ? request.body.bytes : null;
  for (const forwarded of upstream) {
    if (sent === null || forwarded.body.equals(sent)) continue;
    expect(governor.admissions.length, `${what}: body changed without an admission`).toBeGreaterThan(admissions);
    const before = parseLossless(sent.toString('utf8'));
    let after: Lossless;
    try {
      after = parseLossless(forwarded.body.toString('utf8'));
    } catch (error) {
      throw new Error(`${what}: memtide sent upstream a body that is not JSON: ${forwarded.body.toString('utf8').slice(0, 300)} (${String(error)})`);
    }
    // Exact numbers: anything but the admission's keys that differs in any way is a failure.
    const got = withoutAdmissionKeys(after, openAi);
    expect(isDeepStrictEqual(got, withoutAdmissionKeys(before, openAi)), `${what}: upstream got ${forwarded.body.toString('utf8').slice(0, 400)}`).toBe(true);
  }
  expect(logged.slice(loggedBefore), what).toEqual([]);
  await waitForReleases();
  const health = await rawRequest(buildRequest('GET', '/api/version', [['Host', `127.0.0.1:${port}`], ['Connection', 'close']]), 'GET', { port });
  expect(health.kind === 'response' && health.response.status, `${what}: the proxy after the request`).toBe(200);
}

describe('regressions found by the fuzzing', () => {
  // src/app/proxy/modelRequest.ts rewriteBody replaced a non-object `options` with `{ num_ctx }`, so a
  // body Ollama refuses (400: options must be an object) reached it as one it accepts.
  it('a non-object "options" is a 400 naming the field, in Ollama\'s shape, and nothing goes upstream', async () => {
    governor.decide = () => ({ numCtx: 2048 });
    for (const [path, options, type] of [
      ['/api/chat', '0', 'number'],
      ['/api/generate', '"fast"', 'string'],
      ['/api/embed', '[1]', 'array'],
    ] as const) {
      const tapped = tap.received.length;
      const response = await fetch(`${proxy.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"model":"gemma3:1b","prompt":"x","options":${options}}` });
      expect(response.status).toBe(400);
      const body = (await response.json()) as { error: string; code: string; field: string };
      expect(body).toMatchObject({ code: 'MEMTIDE_ERR_BAD_FIELD', field: 'options' });
      expect(body.error).toMatch(new RegExp(`^json: cannot unmarshal ${type} into Go struct field \\w+Request\\.options of type map\\[string\\]interface \\{\\}$`));
      expect(tap.received.length).toBe(tapped);
    }
    // null means "not set", as in Go: the admission's options are injected.
    const ok = await fetch(`${proxy.url}/api/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"gemma3:1b","prompt":"x","options":null,"stream":false}' });
    expect(ok.status).toBe(200);
    await ok.text();
    await waitForReleases();
  });
});

describe('fuzz: the Ollama proxy', () => {
  // Regression (src/app/proxy/proxy.ts, handleModel: `Buffer.from(JSON.stringify(rewritten))`): a body the
  // governor rewrote was JSON.parse'd and re-serialised whole, so numbers a double cannot hold changed on the
  // way: `"seed": 1e400` reached Ollama as `"seed": null`, `12345678901234567890` as `12345678901234567000`.
  // Now the admission's keys are spliced into the client's bytes (src/app/proxy/jsonSplice.ts).
  it('a rewritten body keeps every number the client wrote', async () => {
    governor.decide = () => ({ numCtx: 2048, keepAlive: '10m', model: 'qwen2.5:0.5b' });
    const tapped = tap.received.length;
    const body = '{ "model" : "gemma3:1b",\n "options":{"seed":12345678901234567890,"temperature":1e400, "num_ctx": 1.0E5, "top_p":1.0},"stream":false }';
    const response = await fetch(`${proxy.url}/api/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    await response.text();
    await waitForReleases();
    const forwarded = tap.received.slice(tapped)[0]?.body.toString('utf8') ?? '';
    // Only the admission's values changed, every other byte is the client's.
    expect(forwarded).toBe('{ "model" : "qwen2.5:0.5b",\n "options":{"seed":12345678901234567890,"temperature":1e400, "num_ctx": 2048, "top_p":1.0},"stream":false,"keep_alive":"10m" }');
  });

  // Regression (src/app/proxy/proxy.ts, startProxy's createServer): no 'clientError' handler and Node's default
  // requireHostHeader, so a request Node's parser refused (two Content-Length headers, a body cut short, a
  // bad chunk size) or one without Host got Node's bare "400 Bad Request" with no body: not Ollama's
  // `{"error": "..."}` (nor OpenAI's on /v1/*), and without Host not the proxy's own refusal.
  it('a request Node cannot parse gets an error in the API shape', async () => {
    const host: [string, string] = ['Host', `127.0.0.1:${port}`];
    const answer = async (method: string, target: string, headers: Array<[string, string]>, body: Buffer, endAfterWrite = false) => {
      const outcome = await rawRequest(buildRequest(method, target, headers, body), method, { port, endAfterWrite, timeoutMs: 5_000 });
      if (outcome.kind !== 'response') throw new Error(`${method} ${target}: ${outcome.kind}`);
      return { status: outcome.response.status, type: outcome.response.headers['content-type'], body: jsonOf(outcome.response) };
    };
    const tapped = tap.received.length;
    const ollama = (code: string) => ({ error: expect.any(String), code });
    const openAi = (code: string) => ({ error: expect.objectContaining({ message: expect.any(String), type: expect.any(String), code }) });
    // Two Content-Lengths: refused by Node's parser before any handler ran.
    expect(await answer('POST', '/api/chat', [host, ['Content-Length', '2'], ['Content-Length', '3'], ['Connection', 'close']], Buffer.from('{}'))).toEqual({
      status: 400,
      type: 'application/json; charset=utf-8',
      body: ollama('MEMTIDE_ERR_BAD_REQUEST'),
    });
    expect(await answer('POST', '/v1/chat/completions', [host, ['Content-Length', '2'], ['Content-Length', '3'], ['Connection', 'close']], Buffer.from('{}'))).toMatchObject({
      status: 400,
      body: openAi('MEMTIDE_ERR_BAD_REQUEST'),
    });
    // A bad chunk size, and a body cut short: the head was fine, the body is not.
    expect(await answer('POST', '/api/generate', [host, ['Transfer-Encoding', 'chunked'], ['Connection', 'close']], Buffer.from('zz\r\n{}'), true)).toMatchObject({
      status: 400,
      body: ollama('MEMTIDE_ERR_BAD_REQUEST'),
    });
    expect(await answer('POST', '/v1/chat/completions', [host, ['Content-Length', '100'], ['Connection', 'close']], Buffer.from('{"model":'), true)).toMatchObject({
      status: 400,
      body: openAi('MEMTIDE_ERR_BAD_REQUEST'),
    });
    // A head too large for Node: 431.
    expect(await answer('GET', `/api/tags?x=${'x'.repeat(20_000)}`, [host, ['Connection', 'close']], Buffer.alloc(0))).toMatchObject({
      status: 431,
      body: ollama('MEMTIDE_ERR_HEADERS_TOO_LARGE'),
    });
    // No Host: the proxy's own refusal (it must be a loopback name), not Node's 400.
    expect(await answer('POST', '/api/chat', [['Content-Length', '2'], ['Connection', 'close']], Buffer.from('{}'))).toEqual({
      status: 403,
      type: 'application/json; charset=utf-8',
      body: { error: 'no Host header: it must be a loopback name', code: 'MEMTIDE_ERR_HOST' },
    });
    expect(await answer('GET', '/v1/models', [['Connection', 'close']], Buffer.alloc(0))).toMatchObject({ status: 403, body: openAi('MEMTIDE_ERR_HOST') });
    // CONNECT is not forwarded (Node would just close the connection).
    expect(await answer('CONNECT', 'example.com:443', [['Host', 'example.com:443']], Buffer.alloc(0))).toMatchObject({ status: 405, body: ollama('MEMTIDE_ERR_METHOD') });
    expect(tap.received.length, 'none of these reached upstream').toBe(tapped);
    await waitForReleases();
  });

  // Regression (src/app/proxy/forward.ts): Transfer-Encoding was dropped as hop-by-hop and Node does not chunk a
  // GET/DELETE body by default, so a chunked body reached upstream unframed and was read as a second request.
  it('a chunked DELETE body cannot smuggle a second request upstream', async () => {
    const json = '{"model":"gemma3:1b","prompt":"smuggled","stream":false}';
    const inner = `POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${json.length}\r\n\r\n${json}`;
    const tapped = tap.received.length;
    const admissions = governor.admissions.length;
    await rawRequest(
      buildRequest('DELETE', '/api/delete', [['Host', `127.0.0.1:${port}`], ['Transfer-Encoding', 'chunked'], ['Connection', 'close']], Buffer.from(`${inner.length.toString(16)}\r\n${inner}\r\n0\r\n\r\n`)),
      'DELETE',
      { port },
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(tap.received.slice(tapped).map((r) => `${r.method} ${r.path}`)).toEqual(['DELETE /api/delete']);
    expect(governor.admissions.length).toBe(admissions);
  });

  it('random bodies and framing to the model and plain endpoints', async () => {
    await fc.assert(
      fc.asyncProperty(requestArb, async (request) => {
        await send(request);
      }),
      { numRuns: runs(300) },
    );
  }, 600_000);

  it('random bodies through fetch: malformed JSON is a 400 in the API shape and never reaches upstream', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('/api/chat', '/api/generate', '/v1/chat/completions'), bodyArb, async (path, body) => {
        governor.decide = () => ({});
        const tapped = tap.received.length;
        const response = await fetch(`${proxy.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body.bytes });
        const text = await response.text();
        const what = `${path} ${body.kind} ${body.bytes.subarray(0, 200).toString('latin1')}`;
        if (body.bytes.length > BODY_LIMIT) {
          expect(response.status, what).toBe(413);
        } else if (parsedOrNull(body.bytes) === null) {
          expect(response.status, `${what}: ${text.slice(0, 200)}`).toBe(400);
          const parsed = JSON.parse(text) as { error?: unknown };
          if (path.startsWith('/v1/')) expect(typeof (parsed.error as { message?: unknown }).message, what).toBe('string');
          else expect(typeof parsed.error, what).toBe('string');
          expect(tap.received.length, `${what}: reached upstream`).toBe(tapped);
        }
        await waitForReleases();
      }),
      { numRuns: runs(150) },
    );
  }, 600_000);
});
