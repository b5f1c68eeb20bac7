/**
 * Fuzzing the runner's HTTP API: the real server (`startServer` over a real
 * `createMemtide()` in runner mode, every route module `memtide run` wires)
 * gets random methods, request targets (percent-encoding, `..`, absolute
 * form, far too long), headers (Host, Authorization, Content-Type, lying
 * Content-Length, Transfer-Encoding) and bodies (random bytes, broken JSON,
 * deep nesting, past the limit), over raw sockets and over `fetch`.
 *
 * Every answer must be well-formed HTTP; every 4xx/5xx a JSON `{ error, code }`;
 * never a 500 (every request here is a client's mistake or a valid call); the
 * server answers /healthz after each run; and without the token nothing
 * changes: not the config, not the pins, not the acknowledgements, not the
 * frontend-memory reports. Failures print fast-check's seed and path.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeWav } from '../../bench/support/makeWav.js';
import { createMemtide, type Memtide } from '../../src/app/memtide.js';
import { runnerRoutes } from '../../src/app/commands/run.js';
import type { AlertsProvider, ListedAlert } from '../../src/app/routes/alerts.js';
import { historyCacheBytesOf } from '../../src/app/routes/history.js';
import { createTranscriptionService } from '../../src/app/routes/transcribe.js';
import { startServer, type MemtideServer } from '../../src/app/server.js';
import { createHistoryQueryCache } from '../../src/sinks/historyQueryCache.js';
import type { Logger } from '../../src/sinks/logger.js';
import { createStubGovernor, type StubGovernor } from '../support/stubGovernor.js';
import { buildRequest, jsonOf, rawRequest, type RawOutcome, type RawResponse } from './support/rawHttp.js';
import { runs } from './support/runs.js';

/** The default (1 MB): deep nesting that fits in it must be a clean 400, not a stack overflow. */
const BODY_LIMIT = 1_000_000;
/** Stands for the server's port in headers written before it is known. */
const PORT_PLACEHOLDER = '{port}';

let tmp: string;
let memtide: Memtide;
let server: MemtideServer;
let port: number;
let serverClosed = false;
let governor: StubGovernor;
const acks: string[] = [];
/** Errors the server logged: every one is a request that ended in a 500 (or worse). */
const logged: string[] = [];

const logger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error(message) {
    logged.push(message);
  },
};

function alertsProvider(): AlertsProvider {
  const alert: ListedAlert = {
    key: 'pressure',
    kind: 'pressure',
    severity: 'warning',
    status: 'firing',
    component: null,
    atMs: Date.now(),
    sinceMs: Date.now(),
    repeat: 0,
    title: 'Memory pressure high',
    message: 'available 8% <= 10%',
    recommendations: [],
    acknowledgedAtMs: null,
  };
  return {
    *list() {
      yield alert;
    },
    acknowledge(key) {
      if (key !== 'pressure') return null;
      acks.push(key);
      return 1;
    },
  };
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memtide-fuzz-api-'));
  memtide = createMemtide({
    mode: 'runner',
    env: {},
    config: {
      sampling: { intervalMs: 1000 },
      history: { path: path.join(tmp, 'memtide.db'), flushIntervalMs: 1000 },
      server: { port: 0, tokenFile: path.join(tmp, 'memtide.token'), bodyLimitBytes: BODY_LIMIT },
      // Uploads are decoded and chunked, never transcribed: the parsers are what is fuzzed here.
      transcription: { transcriber: 'none', uploadLimitBytes: 64 * 1024 },
    },
  });
  governor = createStubGovernor();
  governor.setModels([]);
  server = await startServer({
    memtide,
    logger,
    state: { models$: governor.models$ },
    modules: runnerRoutes({
      governor,
      transcription: createTranscriptionService(),
      historyCache: createHistoryQueryCache({ maxBytes: historyCacheBytesOf(memtide.config()) }),
      alerts$: memtide.alerts$,
      recentActions: () => [],
      alerts: { provider: alertsProvider() },
      defaultMetrics: false,
    }),
  });
  port = Number(new URL(server.url).port);
}, 60_000);

/** `FUZZ_STATS=1`: how many answers of each status every route got (does the generator reach the handlers?). */
const stats = new Map<string, number>();
const count = (key: string) => stats.set(key, (stats.get(key) ?? 0) + 1);
afterAll(async () => {
  if (process.env.FUZZ_STATS) console.log([...stats].sort().map(([key, n]) => `${key}: ${n}`).join('\n'));
  if (!serverClosed) await server?.close();
  memtide?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------
// What is sent
// ---------------------------------------------------------------------------------------

/** Every route of the runner, with `:params` to fill. */
const ROUTES = [
  ['GET', '/healthz'],
  ['GET', '/api/state'],
  ['GET', '/api/events'],
  ['GET', '/'],
  ['GET', '/index.html'],
  ['GET', '/assets/dashboard.css'],
  ['GET', '/assets/../../package.json'],
  ['GET', '/api/config'],
  ['PATCH', '/api/config'],
  ['GET', '/api/config/schema'],
  ['GET', '/api/history'],
  ['GET', '/api/samples'],
  ['GET', '/api/pressure'],
  ['GET', '/api/history/cache'],
  ['GET', '/api/alerts'],
  ['POST', '/api/alerts/:key/ack'],
  ['POST', '/api/actions/preset'],
  ['POST', '/api/actions/low-memory'],
  ['POST', '/api/actions/optimization-level'],
  ['GET', '/api/actions'],
  ['GET', '/api/models'],
  ['POST', '/api/models/:name/unload'],
  ['POST', '/api/models/:name/pin'],
  ['POST', '/api/models/:name/unpin'],
  ['POST', '/v1/transcribe'],
  ['GET', '/api/frontend-memory'],
  ['POST', '/api/frontend-memory'],
  ['GET', '/metrics'],
  ['GET', '/nope'],
] as const;

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'PROPFIND', 'CONNECT', 'get', 'M-SEARCH'];

/** Characters of a target: printable ASCII without space (a space ends the target), plus bytes the parser may let through. */
const targetChar = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...'abcxyz019-._~/?#=&%:@[]!$\'()*+,;'.split('')) },
  { weight: 1, arbitrary: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)) },
  { weight: 1, arbitrary: fc.integer({ min: 0x80, max: 0xff }).map((c) => String.fromCharCode(c)) },
);
const segment = fc.oneof(
  fc.string({ unit: targetChar, minLength: 1, maxLength: 12 }),
  fc.constantFrom('..', '.', '%2e%2e', '%2F', '%E0%A4%A', '%', '%zz', '%00', '%C0%AF', '%ff', 'leak%3Aollama', 'gemma3%3A1b', 'pressure', ''),
  fc.uint8Array({ maxLength: 6 }).map((bytes) => Array.from(bytes, (b) => `%${b.toString(16).padStart(2, '0')}`).join('')),
);

const targetArb = (template: string) =>
  fc.oneof(
    { weight: 6, arbitrary: fc.tuple(...template.split('/').map((part) => (part.startsWith(':') ? segment : fc.constant(part)))).map((parts) => parts.join('/')) },
    { weight: 2, arbitrary: fc.tuple(fc.constant(template.replace(/:\w+/g, 'x')), fc.array(segment, { maxLength: 4 })).map(([base, extra]) => [base, ...extra].join('/')) },
    { weight: 2, arbitrary: fc.tuple(fc.constant(template.replace(/:\w+/g, 'pressure')), fc.string({ unit: targetChar, maxLength: 40 })).map(([base, query]) => `${base}?${query}`) },
    { weight: 1, arbitrary: fc.constantFrom(`//${template}`, `${template}/`, `${template}/..`, `/..${template}`, `${template}%00`, template.toUpperCase()) },
    { weight: 1, arbitrary: fc.constantFrom('*', 'http://[', '//[', 'http://localhost:99999/x', `http://127.0.0.1${template}`, 'http://a b', '/%', '/?%', '//a:b@c/') },
    { weight: 1, arbitrary: fc.integer({ min: 2_000, max: 20_000 }).map((n) => `${template}?pad=${'x'.repeat(n)}`) },
    { weight: 1, arbitrary: fc.string({ unit: targetChar, minLength: 1, maxLength: 60 }).map((text) => `/${text}`) },
  );

type AuthKind = 'none' | 'token' | 'lowercase' | 'padded' | 'wrong' | 'tokenPlus' | 'basic' | 'empty' | 'binary' | 'twice';
const AUTH_KINDS: AuthKind[] = ['none', 'token', 'lowercase', 'padded', 'wrong', 'tokenPlus', 'basic', 'empty', 'binary', 'twice'];
/** Kinds that carry the real token (the server may accept them); every other kind must change nothing. */
const CARRIES_TOKEN = new Set<AuthKind>(['token', 'lowercase', 'padded', 'twice']);

function authHeaders(kind: AuthKind, token: string): Array<[string, string]> {
  switch (kind) {
    case 'none':
      return [];
    case 'token':
      return [['Authorization', `Bearer ${token}`]];
    case 'lowercase':
      return [['authorization', `bearer ${token}`]];
    case 'padded':
      return [['Authorization', `Bearer    ${token}   `]];
    case 'wrong':
      return [['Authorization', `Bearer ${'A'.repeat(token.length)}`]];
    case 'tokenPlus':
      return [['Authorization', `Bearer ${token} ${token}`]];
    case 'basic':
      return [['Authorization', `Basic ${Buffer.from(`user:${token}`).toString('base64')}`]];
    case 'empty':
      return [['Authorization', '']];
    case 'binary':
      return [['Authorization', `Bearer ${token.slice(0, 10)}\u00ff\u00fe`]];
    case 'twice':
      return [
        ['Authorization', `Bearer ${token}`],
        ['Authorization', `Bearer ${token}`],
      ];
  }
}

type HostKind = 'right' | 'localhost' | 'noPort' | 'wrongPort' | 'evil' | 'missing' | 'ipv6' | 'garbage' | 'twice';
const HOST_KINDS: HostKind[] = [...Array<HostKind>(10).fill('right'), 'localhost', 'noPort', 'wrongPort', 'evil', 'missing', 'ipv6', 'garbage', 'twice'];

function hostHeaders(kind: HostKind): Array<[string, string]> {
  switch (kind) {
    case 'right':
      return [['Host', `127.0.0.1:${port}`]];
    case 'localhost':
      return [['host', `LOCALHOST:${port}`]];
    case 'noPort':
      return [['Host', '127.0.0.1']];
    case 'wrongPort':
      return [['Host', `127.0.0.1:${port + 1}`]];
    case 'evil':
      return [['Host', `evil.example:${port}`]];
    case 'missing':
      return [];
    case 'ipv6':
      return [['Host', `[::1]:${port}`]];
    case 'garbage':
      return [['Host', `[::1:${port}`]];
    case 'twice':
      return [
        ['Host', `127.0.0.1:${port}`],
        ['Host', 'evil.example'],
      ];
  }
}

const CONTENT_TYPES = [
  null,
  'application/json',
  'application/json; charset=utf-8',
  'APPLICATION/JSON',
  'application/merge-patch+json',
  'application/jsonx',
  'text/plain',
  'audio/wav',
  'application/octet-stream',
  'multipart/form-data; boundary=x',
  '',
  ';;;',
];

/** Bodies: random bytes, JSON that is broken, deep, huge, or valid for some route. */
const bodyArb = fc.oneof(
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 600 }).map((b) => Buffer.from(b)) },
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => Buffer.from(JSON.stringify(v) ?? 'null')) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? 'null'), fc.nat(), fc.constantFrom('', '}', ',', '"', '\u0000', 'NaN', '\\u12'))
      .map(([text, cut, junk]) => Buffer.from(text.slice(0, cut % (text.length + 1)) + junk)),
  },
  { weight: 1, arbitrary: fc.integer({ min: 100, max: 3000 }).chain((depth) => fc.constantFrom('[', '{"a":').map((open) => Buffer.from(open.repeat(depth)))) },
  { weight: 1, arbitrary: fc.integer({ min: 100, max: 1000 }).map((depth) => Buffer.from(`${'['.repeat(depth)}${']'.repeat(depth)}`)) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.integer({ min: 30, max: 150_000 }), fc.constantFrom('sampling', 'a', 'log', 'preset'))
      .map(([depth, key]) => Buffer.from(`${`{"${key}":`.repeat(depth)}1${'}'.repeat(depth)}`)),
  },
  { weight: 1, arbitrary: fc.integer({ min: BODY_LIMIT + 1, max: 3 * BODY_LIMIT }).map((n) => Buffer.from(JSON.stringify({ padding: 'x'.repeat(n) }))) },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      { sampling: { intervalMs: 1000 } },
      { log: { level: 'info' } },
      { preset: 'auto' },
      { preset: 'auto', extra: 1 },
      { enabled: false },
      { level: 'balanced' },
      { level: 'ludicrous' },
      { bytes: 1000, source: 'uasm', atMs: 1 },
      { bytes: -1, source: 'uasm', atMs: 1 },
      { server: { allowRemote: true } },
      { history: { path: '/tmp/x' } },
      JSON.parse('{"__proto__": {"polluted": true}}') as unknown,
      { sampling: { intervalMs: 1e308 } },
      { pressure: { dwellMs: '-5s' } },
      {},
      [],
      null,
    ).map((v) => Buffer.from(JSON.stringify(v))),
  },
  { weight: 1, arbitrary: wavBodyArb() },
);

/** Small WAV uploads, valid or with one header field changed. */
function wavBodyArb(): fc.Arbitrary<Buffer> {
  const file = encodeWav({ sampleRate: 16000, channels: 1, bitsPerSample: 16, encoding: 'pcm' }, Array.from({ length: 800 }, (_, i) => Math.sin(i / 10) / 2));
  return fc.tuple(fc.integer({ min: 0, max: 44 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: file.length })).map(([at, value, cut]) => {
    const copy = Buffer.from(file.subarray(0, cut));
    if (at < copy.length) copy[at] = value;
    return copy;
  });
}

type Framing = 'exact' | 'none' | 'short' | 'long' | 'chunked' | 'badChunked' | 'chunkedAndLength' | 'gzip' | 'badLength' | 'twoLengths';
const FRAMINGS: Framing[] = [...Array<Framing>(10).fill('exact'), 'none', 'short', 'long', 'chunked', 'chunked', 'chunked', 'badChunked', 'chunkedAndLength', 'gzip', 'badLength', 'twoLengths'];

interface Framed {
  headers: Array<[string, string]>;
  payload: Buffer;
  /** The client left the request incomplete: it half-closes, and the server may see the connection end instead of the body. */
  incomplete: boolean;
  /**
   * The framing breaks after a valid head: once a route has started its answer, a parse error in what
   * follows can only close the connection (RFC 9112 6.3; Node does the same).
   */
  broken?: boolean;
}

function frame(framing: Framing, body: Buffer): Framed {
  const chunked = (bytes: Buffer) => Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`), bytes, Buffer.from('\r\n0\r\n\r\n')]);
  switch (framing) {
    case 'exact':
      return { headers: [['Content-Length', String(body.length)]], payload: body, incomplete: false };
    case 'none':
      return { headers: [], payload: Buffer.alloc(0), incomplete: false };
    case 'short':
      // The rest of the body is read as the next request.
      return { headers: [['Content-Length', String(Math.floor(body.length / 2))]], payload: body, incomplete: false, broken: true };
    case 'long':
      return { headers: [['Content-Length', String(body.length + 10)]], payload: body, incomplete: true };
    case 'chunked':
      return { headers: [['Transfer-Encoding', 'chunked']], payload: body.length ? chunked(body) : Buffer.from('0\r\n\r\n'), incomplete: false };
    case 'badChunked':
      return { headers: [['Transfer-Encoding', 'chunked']], payload: Buffer.concat([Buffer.from('zz\r\n'), body, Buffer.from('\r\n0\r\n\r\n')]), incomplete: false, broken: true };
    case 'chunkedAndLength':
      return { headers: [['Transfer-Encoding', 'chunked'], ['Content-Length', String(body.length)]], payload: chunked(body), incomplete: false };
    case 'gzip':
      return { headers: [['Transfer-Encoding', 'gzip']], payload: body, incomplete: false, broken: true };
    case 'badLength':
      return { headers: [['Content-Length', '-1']], payload: body, incomplete: false };
    case 'twoLengths':
      return { headers: [['Content-Length', String(body.length)], ['Content-Length', String(body.length + 1)]], payload: body, incomplete: false };
  }
}

interface FuzzRequest {
  route: readonly [string, string];
  method: string;
  target: string;
  auth: AuthKind;
  host: HostKind;
  contentType: string | null;
  body: Buffer;
  framing: Framing;
  keepAlive: boolean;
}

const requestArb: fc.Arbitrary<FuzzRequest> = fc.constantFrom(...ROUTES).chain((route) =>
  fc.record({
    route: fc.constant(route),
    method: fc.oneof({ weight: 4, arbitrary: fc.constant(route[0]) }, { weight: 2, arbitrary: fc.constantFrom(...METHODS) }),
    target: fc.oneof({ weight: 2, arbitrary: fc.constant(route[1].replace(':key', 'pressure').replace(':name', 'gemma3%3A1b')) }, { weight: 5, arbitrary: targetArb(route[1]) }),
    auth: fc.constantFrom(...AUTH_KINDS),
    host: fc.constantFrom(...HOST_KINDS),
    contentType: fc.oneof(
      { weight: 3, arbitrary: fc.constant(route[1] === '/v1/transcribe' ? 'audio/wav' : 'application/json') },
      { weight: 2, arbitrary: fc.constantFrom(...CONTENT_TYPES) },
    ),
    body: route[1] === '/v1/transcribe' ? fc.oneof({ weight: 3, arbitrary: wavBodyArb() }, { weight: 1, arbitrary: bodyArb }) : bodyArb,
    framing: fc.constantFrom(...FRAMINGS),
    keepAlive: fc.boolean(),
  }).map((request) => Object.assign(request, { [fc.toStringMethod]: () => describeRequest(request) })),
);

// ---------------------------------------------------------------------------------------
// What must hold
// ---------------------------------------------------------------------------------------

/** Everything a request without the token must leave as it was. */
async function observableState(): Promise<string> {
  const reports = await fetch(`${server.url}/api/frontend-memory`).then((r) => r.text());
  return JSON.stringify({ config: memtide.config(), overrides: memtide.configOverrides(), pinned: [...governor.pinned].sort(), unloaded: governor.unloaded, acks, reports });
}

function describeRequest(request: FuzzRequest): string {
  const { body, ...rest } = request;
  return JSON.stringify({ ...rest, target: rest.target.length > 200 ? `${rest.target.slice(0, 200)}…(${rest.target.length})` : rest.target, body: body.subarray(0, 120).toString('latin1'), bodyBytes: body.length });
}

/** A 4xx/5xx answer: JSON with string `error` and `code`. */
function expectJsonError(response: RawResponse, method: string, what: string): void {
  expect(response.headers['content-type'], `${what}: content-type of ${response.status}`).toMatch(/^application\/json/);
  if (method === 'HEAD') return;
  const body = jsonOf(response) as { error?: unknown; code?: unknown } | undefined;
  expect(typeof body?.error, `${what}: error of ${response.status} ${response.body.toString('latin1').slice(0, 200)}`).toBe('string');
  expect(typeof body?.code, `${what}: code of ${response.status}`).toBe('string');
}

function expectWellFormed(outcome: RawOutcome, request: { method: string; incomplete: boolean }, what: string): RawResponse | null {
  if (outcome.kind === 'timeout') throw new Error(`${what}: no answer within the timeout (got ${outcome.bytes.length} bytes: ${outcome.bytes.subarray(0, 200).toString('latin1')})`);
  if (outcome.kind === 'malformed') throw new Error(`${what}: malformed response (${outcome.reason}): ${outcome.bytes.subarray(0, 300).toString('latin1')}`);
  if (outcome.kind === 'closed') {
    // Only a request the client never finished may end without an answer.
    if (!request.incomplete) throw new Error(`${what}: the server closed the connection without an answer`);
    return null;
  }
  const { response } = outcome;
  expect(response.status, `${what}: status`).toBeGreaterThanOrEqual(200);
  expect(response.status, `${what}: status`).toBeLessThan(600);
  expect(response.status, `${what}: a client's request must never be a 500: ${response.body.toString('utf8').slice(0, 300)}`).not.toBe(500);
  if (response.status >= 400) expectJsonError(response, request.method, what);
  expect(Object.keys(response.headers).filter((h) => h.startsWith('access-control-')), `${what}: CORS headers`).toEqual([]);
  return response;
}

async function healthy(what: string): Promise<void> {
  const outcome = await rawRequest(buildRequest('GET', '/healthz', [['Host', `127.0.0.1:${port}`], ['Connection', 'close']]), 'GET', { port });
  expect(outcome.kind === 'response' && outcome.response.status, `${what}: /healthz after the request`).toBe(200);
}

async function send(request: FuzzRequest): Promise<void> {
  const what = describeRequest(request);
  const { headers: framingHeaders, payload, incomplete, broken = false } = frame(request.framing, request.body);
  const headers: Array<[string, string]> = [
    ...hostHeaders(request.host),
    ...authHeaders(request.auth, server.token),
    ...(request.contentType === null ? [] : ([['Content-Type', request.contentType]] as Array<[string, string]>)),
    ...framingHeaders,
    ['Connection', request.keepAlive ? 'keep-alive' : 'close'],
  ];
  const mayChange = CARRIES_TOKEN.has(request.auth) && ['right', 'localhost', 'noPort', 'ipv6', 'twice'].includes(request.host);
  const before = mayChange ? '' : await observableState();
  const loggedBefore = logged.length;
  const outcome = await rawRequest(buildRequest(request.method, request.target, headers, payload), request.method, {
    port,
    // Only a request left incomplete is half-closed: Node drops the answers of a connection the client half-closed.
    endAfterWrite: incomplete,
    timeoutMs: 4_000,
  });
  const answered = expectWellFormed(outcome, { method: request.method, incomplete: incomplete || broken }, what);
  count(`${request.route[1]} ${answered?.status ?? outcome.kind}`);
  if (!mayChange) expect(await observableState(), `${what}: state changed without the token`).toBe(before);
  // A non-HttpError reaching the server's catch is logged: that is a crash of a handler.
  expect(logged.slice(loggedBefore), `${what}: handler errors logged`).toEqual([]);
  await healthy(what);
}

describe('regressions found by the fuzzing', () => {
  const host: [string, string] = ['Host', `127.0.0.1:${PORT_PLACEHOLDER}`];
  const raw = (method: string, target: string, headers: Array<[string, string]>, body?: Buffer, endAfterWrite = false) =>
    rawRequest(buildRequest(method, target, headers.map(([n, v]) => [n, v.replace(PORT_PLACEHOLDER, String(port))] as [string, string]), body), method, { port, endAfterWrite });
  const answer = (outcome: RawOutcome): { status: number; body: { error?: string; code?: string; field?: string } } => {
    if (outcome.kind !== 'response') throw new Error(`no answer: ${outcome.kind}`);
    return { status: outcome.response.status, body: jsonOf(outcome.response) as { error?: string; code?: string; field?: string } };
  };

  // src/app/server.ts parsed the target outside its try: `new URL` threw, the promise of `handle`
  // rejected unhandled (Node 20 exits on that), and the client never got an answer.
  it('a target no URL parser accepts (http://[/) is a 400, "//[" a path like any other, and the server lives on', async () => {
    for (const target of ['http://[/', 'http://localhost:99999/x']) {
      expect(answer(await raw('GET', target, [host, ['Connection', 'close']])), target).toMatchObject({ status: 400, body: { code: 'MEMTIDE_ERR_BAD_URL' } });
    }
    // Origin-form is a path even when it starts with "//" (as a relative URL it would name a host "[").
    expect(answer(await raw('GET', '//[', [host, ['Connection', 'close']]))).toMatchObject({ status: 404, body: { error: 'no such endpoint: //[' } });
    await healthy('after bad targets');
  });

  // src/app/router.ts decoded `:params` with a bare decodeURIComponent: URIError, answered as a 500.
  it('bad percent-encoding in a path parameter is a 400 naming it, not a 500', async () => {
    const reply = answer(await raw('POST', '/api/models/%80/pin', [host, ['Authorization', `Bearer ${server.token}`], ['Content-Length', '0'], ['Connection', 'close']]));
    expect(reply).toMatchObject({ status: 400, body: { code: 'MEMTIDE_ERR_BAD_URL', field: 'name' } });
    expect(answer(await raw('POST', '/api/alerts/%E0%A4%A/ack', [host, ['Connection', 'close']])).status).toBe(400);
  });

  // src/app/server.ts left Node's defaults: a bare "400 Bad Request" without a body for a request its
  // parser refused or one without Host, and a closed connection for CONNECT.
  it('requests Node cannot parse, without Host, or CONNECT get JSON errors', async () => {
    expect(answer(await raw('GET', '/healthz', [host, ['Content-Length', '1'], ['Content-Length', '2'], ['Connection', 'close']], Buffer.from('xx')))).toMatchObject({
      status: 400,
      body: { code: 'MEMTIDE_ERR_BAD_REQUEST' },
    });
    expect(answer(await raw('GET', '/healthz', [['Connection', 'close']]))).toMatchObject({ status: 400, body: { code: 'MEMTIDE_ERR_HOST', error: 'no Host header (HTTP/1.1 requires one)' } });
    const http10 = await rawRequest(Buffer.from('GET /healthz HTTP/1.0\r\n\r\n'), 'GET', { port });
    expect(answer(http10)).toMatchObject({ status: 421, body: { code: 'MEMTIDE_ERR_HOST', error: 'no Host header: it must name this server' } });
    expect(answer(await raw('CONNECT', 'example.com:443', [['Host', 'example.com:443']]))).toMatchObject({ status: 405, body: { code: 'MEMTIDE_ERR_METHOD' } });
    expect(answer(await raw('GET', `/api/state?x=${'x'.repeat(20_000)}`, [host, ['Connection', 'close']]))).toMatchObject({ status: 431, body: { code: 'MEMTIDE_ERR_HEADERS_TOO_LARGE' } });
  });

  // src/app/http.ts readBody let the "aborted" error of a client gone mid-body through: logged and answered as a 500.
  it('a client that goes away mid-body is its own mistake: nothing logged as a server failure', async () => {
    const before = logged.length;
    await raw('POST', '/api/frontend-memory', [host, ['Authorization', `Bearer ${server.token}`], ['Content-Type', 'application/json'], ['Content-Length', '100']], Buffer.from('{"bytes":'), true);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(logged.slice(before)).toEqual([]);
    await healthy('after an aborted body');
  });

  // src/app/routes/config.ts walked a patch recursively (leafPaths) before validating it: a body nested
  // 100 000 levels deep (500 KB, within the 1 MB limit) overflowed the stack and was answered with a 500.
  it('PATCH /api/config nested 100 000 levels deep is a 400 naming the path, and changes nothing', async () => {
    const before = JSON.stringify(memtide.config());
    const depth = 100_000;
    const response = await fetch(`${server.url}/api/config`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${server.token}` },
      body: `${'{"log":'.repeat(depth)}1${'}'.repeat(depth)}`,
    });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { code: string; field: string; issues: Array<{ message: string }> };
    expect(body.code).toBe('MEMTIDE_ERR_CONFIG');
    expect(body.field).toBe(Array<string>(32).fill('log').join('.'));
    expect(body.issues[0]?.message).toBe('nested more than 32 levels deep: no setting is');
    expect(JSON.stringify(memtide.config())).toBe(before);
  });
});

// src/app/routes/actions.ts quoted the bad value with JSON.stringify: {"preset":{"preset":...}} some
// thousands of levels deep (found with FUZZ_SCALE=15, seed -672116322) overflowed the stack: a 500.
describe('regressions found by the fuzzing (actions)', () => {
  it('POST /api/actions/preset with a value nested 20 000 levels deep is a 400 naming the field', async () => {
    const depth = 20_000;
    const response = await fetch(`${server.url}/api/actions/preset`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${server.token}` },
      body: `{"preset":${'{"preset":'.repeat(depth)}1${'}'.repeat(depth)}}`,
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ code: 'MEMTIDE_ERR_BAD_REQUEST', field: 'preset', error: expect.stringContaining('an object nested too deeply to show') });
  });
});

describe('fuzz: the HTTP API', () => {
  // Regression: the event hub sent its head with the first write, which a HEAD answer drops (the client waited forever).
  it('HEAD /api/events answers with its head', async () => {
    const outcome = await rawRequest(buildRequest('HEAD', '/api/events', [['Host', `127.0.0.1:${port}`], ['Connection', 'close']]), 'HEAD', { port, timeoutMs: 1_000 });
    expect(outcome.kind === 'response' && outcome.response.status).toBe(200);
  });

  it('random requests over raw sockets: well-formed answers, JSON errors, never 500, no change without the token, server stays up', async () => {
    await fc.assert(
      fc.asyncProperty(requestArb, async (request) => {
        await send(request);
      }),
      { numRuns: runs(350) },
    );
  }, 600_000);

  it('random bodies through fetch to every JSON route, with and without the token', async () => {
    const routes = ROUTES.filter(([method]) => method !== 'GET');
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...routes), bodyArb, fc.boolean(), fc.constantFrom(...CONTENT_TYPES), async ([method, template], body, withToken, type) => {
        const target = template.replace(':key', 'pressure').replace(':name', 'gemma3%3A1b');
        const before = withToken ? '' : await observableState();
        const headers: Record<string, string> = {};
        if (type) headers['content-type'] = type;
        if (withToken) headers.authorization = `Bearer ${server.token}`;
        const loggedBefore = logged.length;
        const response = await fetch(`${server.url}${target}`, { method, headers, body });
        const text = await response.text();
        const what = `${method} ${target} ${type} ${body.subarray(0, 80).toString('latin1')}`;
        expect(response.status, `${what}: ${text.slice(0, 200)}`).not.toBe(500);
        if (response.status >= 400) {
          expect(response.headers.get('content-type'), what).toMatch(/^application\/json/);
          const parsed = JSON.parse(text) as { error?: unknown; code?: unknown };
          expect(typeof parsed.error, what).toBe('string');
          expect(typeof parsed.code, what).toBe('string');
        }
        if (!withToken) {
          expect(response.status, what).toBe(401);
          expect(await observableState(), `${what}: state changed without the token`).toBe(before);
        }
        expect(logged.slice(loggedBefore), what).toEqual([]);
        await healthy(what);
      }),
      { numRuns: runs(120) },
    );
  }, 600_000);

  // Regression (src/app/server.ts): sockets answered from 'clientError' leave the server's connection
  // tracking; one left paused never saw its client go, and `close()` waited for it forever.
  it('closes within seconds after all of that', async () => {
    serverClosed = true;
    const closed = server.close().then(() => 'closed');
    const timeout = new Promise((resolve) => setTimeout(() => resolve('still open after 5 s'), 5_000).unref());
    expect(await Promise.race([closed, timeout])).toBe('closed');
  });
});
