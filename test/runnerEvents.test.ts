/**
 * The runner's SSE source (src/sources/runnerEvents.ts): the parser fed in
 * arbitrary pieces (fast-check splits), and the connection against tiny local
 * HTTP servers: events, drops and reconnects with backoff, `retry:`,
 * `Last-Event-ID`, non-SSE answers, refused connections, connect timeouts,
 * and a teardown that leaves no socket open.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createSseParser,
  parseBatchEvent,
  runnerEvents,
  runnerEventsUrl,
  type RunnerEventsNotice,
  type SseMessage,
} from '../src/sources/runnerEvents.js';
import { waitFor } from './support/wait.js';

function parseAll(pieces: readonly string[], maxEventChars?: number): { messages: SseMessage[]; retries: number[] } {
  const messages: SseMessage[] = [];
  const retries: number[] = [];
  const parser = createSseParser({ onMessage: (m) => messages.push(m), onRetry: (ms) => retries.push(ms) }, maxEventChars);
  for (const piece of pieces) parser.push(piece);
  return { messages, retries };
}

/** `text` cut at the given offsets. */
function cut(text: string, offsets: readonly number[]): string[] {
  const points = [...new Set(offsets.map((o) => o % (text.length + 1)))].sort((a, b) => a - b);
  const pieces: string[] = [];
  let from = 0;
  for (const p of points) {
    pieces.push(text.slice(from, p));
    from = p;
  }
  pieces.push(text.slice(from));
  return pieces;
}

const STREAM = [
  '\uFEFF: memtide',
  '',
  'event: batch',
  'data: {"hold":true,"reason":"Ollama busy","atMs":1}',
  '',
  'retry: 250',
  'id: 7',
  'data:first',
  'data:  second (one space dropped)',
  'data',
  '',
  'event: nothing',
  '',
  'unknown: field',
  ': a comment between fields',
  'event: batch',
  'data: {"hold":false,"reason":"idle","atMs":2}',
  '',
  'retry: soon',
  'data: unfinished at the end',
].join('\n');

const EXPECTED: SseMessage[] = [
  { event: 'batch', data: '{"hold":true,"reason":"Ollama busy","atMs":1}', id: '' },
  { event: 'message', data: 'first\n second (one space dropped)\n', id: '7' },
  { event: 'batch', data: '{"hold":false,"reason":"idle","atMs":2}', id: '7' },
];

describe('createSseParser', () => {
  it('parses fields, comments, multi-line data, ids and retry; drops events without data and an unfinished last event', () => {
    expect(parseAll([STREAM])).toEqual({ messages: EXPECTED, retries: [250] });
  });

  it('gives the same events with LF, CRLF or CR line ends, whatever the pieces the text arrives in', () => {
    fc.assert(
      fc.property(fc.constantFrom('\n', '\r\n', '\r'), fc.array(fc.nat(), { maxLength: 12 }), (eol, offsets) => {
        const text = STREAM.split('\n').join(eol);
        expect(parseAll(cut(text, offsets))).toEqual({ messages: EXPECTED, retries: [250] });
      }),
    );
  });

  it('a CRLF split between two pieces is one line end, not two (no empty event dispatched early)', () => {
    const { messages } = parseAll(['data: a\r', '\ndata: b\r', '\n\r', '\n']);
    expect(messages).toEqual([{ event: 'message', data: 'a\nb', id: '' }]);
  });

  it('a line or an event longer than the limit throws MEMTIDE_ERR_SSE_TOO_LONG', () => {
    expect(() => parseAll(['data: ', 'x'.repeat(100)], 50)).toThrow(expect.objectContaining({ code: 'MEMTIDE_ERR_SSE_TOO_LONG' }));
    expect(() => parseAll(['data: 0123456789\n'.repeat(10)], 50)).toThrow(/an event longer than 50/);
    expect(parseAll(['data: 0123456789\n\n'.repeat(10)], 50).messages).toHaveLength(10);
  });
});

describe('parseBatchEvent', () => {
  it('accepts the runner data and names the bad key otherwise', () => {
    expect(parseBatchEvent('{"hold":true,"reason":"r","atMs":5,"extra":1}')).toEqual({ hold: true, reason: 'r', atMs: 5 });
    expect(() => parseBatchEvent('{"hold":')).toThrow(/batch event: not JSON/);
    expect(() => parseBatchEvent('[1]')).toThrow(/expected an object/);
    expect(() => parseBatchEvent('{"hold":"yes","reason":"r","atMs":1}')).toThrow(/"hold" must be true or false/);
    expect(() => parseBatchEvent('{"hold":true,"atMs":1}')).toThrow(/"reason" must be a string/);
    expect(() => parseBatchEvent('{"hold":true,"reason":"r","atMs":"now"}')).toThrow(/"atMs" must be a number/);
    expect(() => parseBatchEvent('x'.repeat(200))).toThrow(expect.objectContaining({ code: 'MEMTIDE_ERR_BATCH_EVENT', message: expect.stringContaining('…') }));
  });
});

describe('runnerEventsUrl', () => {
  it('appends /api/events to a base, keeps a path prefix, and leaves a full events URL alone', () => {
    expect(runnerEventsUrl('http://127.0.0.1:7071').toString()).toBe('http://127.0.0.1:7071/api/events');
    expect(runnerEventsUrl('http://127.0.0.1:7071/').toString()).toBe('http://127.0.0.1:7071/api/events');
    expect(runnerEventsUrl('https://host/memtide/').toString()).toBe('https://host/memtide/api/events');
    expect(runnerEventsUrl('http://h:1/api/events').toString()).toBe('http://h:1/api/events');
  });
});

/** A local server whose /api/events handler the test writes; it tracks open sockets and requests. */
async function sseServer(handle: (req: http.IncomingMessage, res: http.ServerResponse, attempt: number) => void) {
  const sockets = new Set<import('node:net').Socket>();
  const requests: http.IncomingMessage[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req);
    handle(req, res, requests.length);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/events`;
  return {
    url,
    sockets,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const open = (res: http.ServerResponse) => {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  res.write(': memtide\n\n');
};

let cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

function collect(url: string, options: Parameters<typeof runnerEvents>[1] = {}) {
  const notices: RunnerEventsNotice[] = [];
  const subscription = runnerEvents(url, options).subscribe({
    next: (n) => notices.push(n),
    error: (error: unknown) => notices.push({ type: 'down', url, error: error as never, retryInMs: -1, failures: -1 }),
  });
  cleanups.push(() => subscription.unsubscribe());
  return { notices, subscription };
}

describe('runnerEvents', () => {
  it('delivers events split across packets; a dropped stream is reported and reconnected with Last-Event-ID and the server retry delay', async () => {
    const server = await sseServer((_req, res, attempt) => {
      open(res);
      if (attempt === 1) {
        res.write('retry: 30\nid: 41\nevent: ba');
        setTimeout(() => res.write('tch\ndata: {"hold":true,'), 10);
        setTimeout(() => res.write('"reason":"r","atMs":1}\n\n'), 20);
        setTimeout(() => res.destroy(), 40);
      } else {
        res.write('event: batch\ndata: {"hold":false,"reason":"idle","atMs":2}\n\n');
      }
    });
    cleanups.push(server.close);
    const { notices } = collect(server.url, { initialRetryMs: 5000 });
    await waitFor('the second batch event', () => notices.filter((n) => n.type === 'message').length === 2);
    expect(notices.map((n) => n.type)).toEqual(['open', 'message', 'down', 'open', 'message']);
    expect(notices[1]).toEqual({ type: 'message', event: 'batch', data: '{"hold":true,"reason":"r","atMs":1}', id: '41' });
    expect(notices[2]).toMatchObject({ type: 'down', retryInMs: 30, failures: 1, error: { code: 'MEMTIDE_ERR_RUNNER_CLOSED' } });
    expect(server.requests[1]?.headers['last-event-id']).toBe('41');
    expect(server.requests[0]?.headers.accept).toBe('text/event-stream');
  });

  it('backs off exponentially while the answer is not an event stream (404, HTML) and says so', async () => {
    const server = await sseServer((_req, res) => {
      res.writeHead(404, { 'content-type': 'text/html' });
      res.end('<h1>not here</h1>');
    });
    cleanups.push(server.close);
    const { notices } = collect(server.url, { initialRetryMs: 10, maxRetryMs: 40 });
    await waitFor('five failed attempts', () => notices.length >= 5);
    const downs = notices.filter((n): n is Extract<RunnerEventsNotice, { type: 'down' }> => n.type === 'down');
    expect(downs.slice(0, 5).map((d) => d.retryInMs)).toEqual([10, 20, 40, 40, 40]);
    expect(downs[0]?.error.code).toBe('MEMTIDE_ERR_RUNNER_HTTP');
    expect(downs[0]?.error.message).toContain('answered HTTP 404 (text/html), not an event stream');
  });

  it('a refused connection and a server that never answers are failures too, retried', async () => {
    const refused = await sseServer(() => undefined);
    const deadUrl = refused.url;
    await refused.close(); // nothing listens on that port any more
    const a = collect(deadUrl, { initialRetryMs: 10 });
    await waitFor('two refused attempts', () => a.notices.length >= 2);
    expect(a.notices[0]).toMatchObject({ type: 'down', error: { code: 'MEMTIDE_ERR_RUNNER_UNREACHABLE', message: expect.stringContaining('ECONNREFUSED') } });

    const silent = await sseServer(() => undefined); // accepts, never answers
    cleanups.push(silent.close);
    const b = collect(silent.url, { initialRetryMs: 10, connectTimeoutMs: 50 });
    await waitFor('a timeout', () => b.notices.length >= 1);
    expect(b.notices[0]).toMatchObject({ type: 'down', error: { code: 'MEMTIDE_ERR_RUNNER_TIMEOUT' } });
  });

  it('an open stream that goes quiet past idleTimeoutMs is lost (a frozen runner); keep-alive comments keep it open', async () => {
    const frozen = await sseServer((_req, res) => open(res)); // headers and one comment, then nothing
    cleanups.push(frozen.close);
    const a = collect(frozen.url, { initialRetryMs: 1000, idleTimeoutMs: 80 });
    await waitFor('the idle timeout', () => a.notices.some((n) => n.type === 'down'));
    expect(a.notices.map((n) => n.type)).toEqual(['open', 'down']);
    expect(a.notices[1]).toMatchObject({ error: { code: 'MEMTIDE_ERR_RUNNER_TIMEOUT', message: expect.stringContaining('nothing received for') } });

    const alive = await sseServer((_req, res) => {
      open(res);
      const beat = setInterval(() => res.write(': keep-alive\n\n'), 20);
      res.on('close', () => clearInterval(beat));
    });
    cleanups.push(alive.close);
    const b = collect(alive.url, { initialRetryMs: 1000, idleTimeoutMs: 80 });
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(b.notices.map((n) => n.type)).toEqual(['open']);
  });

  it('an oversized event fails the connection instead of growing memory', async () => {
    const server = await sseServer((_req, res) => {
      open(res);
      res.write(`data: ${'x'.repeat(500)}`);
    });
    cleanups.push(server.close);
    const { notices } = collect(server.url, { initialRetryMs: 1000, maxEventChars: 100 });
    await waitFor('the failure', () => notices.some((n) => n.type === 'down'));
    expect(notices.find((n) => n.type === 'down')).toMatchObject({ error: { code: 'MEMTIDE_ERR_SSE_TOO_LONG' } });
  });

  it('unsubscribing closes the socket and cancels a pending retry (no more requests)', async () => {
    const server = await sseServer((_req, res) => open(res));
    cleanups.push(server.close);
    const { notices, subscription } = collect(server.url, { initialRetryMs: 20 });
    await waitFor('open', () => notices.some((n) => n.type === 'open'));
    expect(server.sockets.size).toBe(1);
    subscription.unsubscribe();
    await waitFor('the socket to close', () => server.sockets.size === 0);

    // During a retry delay: the retry must not fire after unsubscribe.
    let answered = 0;
    const flaky = await sseServer((_req, res) => {
      answered += 1;
      res.writeHead(503).end();
    });
    cleanups.push(flaky.close);
    const c = collect(flaky.url, { initialRetryMs: 30 });
    await waitFor('the first failure', () => c.notices.length === 1);
    c.subscription.unsubscribe();
    await new Promise((r) => setTimeout(r, 100));
    expect(answered).toBe(1);
  });
});
