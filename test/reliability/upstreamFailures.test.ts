/**
 * Reliability: the upstream Ollama is down, restarting, slow, or answering
 * errors, while Meetily talks to it through the proxy and the governor
 * watches it.
 *
 * - `forward()` (the proxy's upstream leg) with a configured policy: retries
 *   of connections that never opened, with exponential backoff and a bound;
 *   no retry once bytes may have reached Ollama; timeouts; answers cut
 *   mid-stream; every failure a clear status + JSON body naming the upstream.
 * - The proxy with its default policy: an Ollama restart is ridden out.
 * - The proxy with a configured policy (`proxy.upstreamRetries`,
 *   `proxy.retryBackoffMs`, `proxy.upstreamTimeoutMs`): the settings reach
 *   every forwarded request, and a hot reload applies to the next one.
 * - The governor: `/api/ps` reads back off while Ollama is down, admissions
 *   get a clear refusal, everything recovers when Ollama returns, and
 *   sampling never stops.
 *
 * The upstream is the faithful fake Ollama (test/support/fakeOllama.ts) on a
 * loopback port, or a bare HTTP server where a precise misbehaviour is needed.
 */
import { Agent, createServer, type Server } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { Ollama } from 'ollama';
import { BehaviorSubject, type Subscription } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/app/configSchema.js';
import type { MemtideConfig } from '../../src/app/config.js';
import { createMemtide, type Memtide } from '../../src/app/memtide.js';
import { forward, type ForwardOutcome, type RetryNotice, type UpstreamPolicy } from '../../src/app/proxy/forward.js';
import { startProxyFromConfig } from '../../src/app/proxy/fromConfig.js';
import { startProxy, type ProxyHandle, type ProxySettings } from '../../src/app/proxy/proxy.js';
import { createOllamaApi } from '../../src/sources/ollamaApi.js';
import { createPlatformReaders } from '../../src/sources/readers.js';
import { createModelGovernor, type GovernorProblem } from '../../src/streams/modelGovernor.js';
import { startFakeOllama, type FakeOllama } from '../support/fakeOllama.js';
import { createStubGovernor } from '../support/stubGovernor.js';
import { sleep, waitFor } from '../support/wait.js';

const FIXTURES = path.resolve(import.meta.dirname, '../fixtures');
const WAIT = { pollMs: 10 };
const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A loopback port nothing listens on (yet): connections to it are refused. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function fake(port?: number): Promise<FakeOllama> {
  const started = await startFakeOllama(port === undefined ? {} : { port });
  cleanups.push(() => started.close());
  return started;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

interface ForwardRig {
  url: string;
  retries: RetryNotice[];
  outcomes: ForwardOutcome[];
}

/** A server whose every request goes through `forward()` to `upstream` with `policy` (the client's body streamed, not buffered). */
async function forwardRig(upstream: string, policy: Partial<UpstreamPolicy>): Promise<ForwardRig> {
  const agent = new Agent({ keepAlive: true });
  cleanups.push(() => agent.destroy());
  const rig: ForwardRig = { url: '', retries: [], outcomes: [] };
  const server = createServer((req, res) =>
    forward(req, res, {
      upstream: new URL(upstream),
      agent,
      openAi: (req.url ?? '').startsWith('/v1/'),
      policy,
      onRetry: (notice) => rig.retries.push(notice),
      onDone: (outcome) => rig.outcomes.push(outcome),
    }),
  );
  rig.url = await listen(server);
  return rig;
}

const post = (url: string, body: unknown) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('forward: Ollama down or restarting', () => {
  it('retries a refused connection with exponential backoff, then answers 502 naming the upstream and the cause', async () => {
    const port = await freePort();
    const rig = await forwardRig(`http://127.0.0.1:${port}`, { upstreamRetries: 2, retryBackoffMs: 40 });
    const started = Date.now();
    const native = await fetch(`${rig.url}/api/tags`);
    const waited = Date.now() - started;
    expect(native.status).toBe(502);
    expect(native.headers.get('content-type')).toMatch(/^application\/json/);
    const body = (await native.json()) as { error: string; code: string };
    expect(body.code).toBe('MEMTIDE_ERR_UPSTREAM');
    expect(body.error).toMatch(new RegExp(`^upstream http://127\\.0\\.0\\.1:${port} \\(models\\.upstream\\) unreachable after 3 attempts: connect ECONNREFUSED`));
    // Bounded, and each wait twice the one before.
    expect(rig.retries.map((r) => [r.attempt, r.delayMs])).toEqual([
      [1, 40],
      [2, 80],
    ]);
    expect(rig.retries[0]!.error).toMatch(/ECONNREFUSED/);
    expect(waited, 'the retries did wait out their backoff').toBeGreaterThanOrEqual(110);
    expect(rig.outcomes).toEqual([{ ok: false, status: 502, error: body.error }]);

    // OpenAI clients get the OpenAI error shape.
    const openAi = await fetch(`${rig.url}/v1/models`);
    expect(openAi.status).toBe(502);
    expect(((await openAi.json()) as { error: unknown }).error).toMatchObject({ type: 'api_error', code: 'MEMTIDE_ERR_UPSTREAM', message: expect.stringMatching(/unreachable after 3 attempts/) });
  });

  it('an Ollama that comes back during the backoff answers, and gets the whole (streamed) request body', async () => {
    const port = await freePort();
    const rig = await forwardRig(`http://127.0.0.1:${port}`, { upstreamRetries: 5, retryBackoffMs: 100 });
    const request = { model: 'gemma3:1b', prompt: 'Summarise the meeting', stream: false };
    const answer = post(`${rig.url}/api/generate`, request);
    await waitFor('a first failed attempt', () => rig.retries.length >= 1, WAIT);
    const ollama = await fake(port); // Ollama is back
    const response = await answer;
    expect(response.status).toBe(200);
    expect(((await response.json()) as { done: boolean }).done).toBe(true);
    expect(rig.retries.length).toBeGreaterThanOrEqual(1);
    // The client's body was piped only into the attempt that connected: nothing of it was lost.
    expect(ollama.lastReceived('/api/generate')?.body).toEqual(request);
    expect(ollama.received.filter((r) => r.path === '/api/generate')).toHaveLength(1);
    expect(rig.outcomes).toEqual([{ ok: true, status: 200 }]);
  });

  it('does not retry once the request may have reached Ollama (a reset mid-request): 502, one request upstream', async () => {
    const ollama = await fake();
    const rig = await forwardRig(ollama.url, { upstreamRetries: 3, retryBackoffMs: 10 });
    ollama.failNext('reset');
    const response = await post(`${rig.url}/api/generate`, { model: 'gemma3:1b', prompt: 'x', stream: false });
    expect(response.status).toBe(502);
    expect(await response.json()).toMatchObject({ code: 'MEMTIDE_ERR_UPSTREAM', error: expect.stringMatching(new RegExp(`^upstream ${ollama.url} failed: `)) });
    expect(rig.retries).toEqual([]);
    expect(ollama.received.filter((r) => r.path === '/api/generate')).toHaveLength(1);
  });

  it("passes Ollama's own errors (500 out of memory, 503 queue full) through as they are, without retrying", async () => {
    const ollama = await fake();
    const rig = await forwardRig(ollama.url, { upstreamRetries: 3, retryBackoffMs: 10 });
    for (const [kind, status] of [
      ['oom', 500],
      ['503', 503],
    ] as const) {
      ollama.failNext(kind);
      const response = await post(`${rig.url}/api/generate`, { model: 'gemma3:1b', prompt: 'x', stream: false });
      expect(response.status).toBe(status);
      expect(((await response.json()) as { error: string }).error).toMatch(kind === 'oom' ? /more system memory/ : /server busy/);
    }
    expect(rig.retries).toEqual([]);
    expect(ollama.received.filter((r) => r.path === '/api/generate')).toHaveLength(2);
  });
});

describe('forward: Ollama slow', () => {
  it('cancels a request Ollama never answers after upstreamTimeoutMs: 504 naming the setting', async () => {
    const ollama = await fake();
    const rig = await forwardRig(ollama.url, { upstreamTimeoutMs: 200 });
    ollama.failNext('hang');
    const response = await post(`${rig.url}/api/chat`, { model: 'gemma3:1b', messages: [{ role: 'user', content: 'x' }], stream: false });
    expect(response.status).toBe(504);
    expect(await response.json()).toEqual({
      error: `upstream ${ollama.url} sent nothing for 200ms (proxy.upstreamTimeoutMs); the request was cancelled upstream`,
      code: 'MEMTIDE_ERR_UPSTREAM_TIMEOUT',
    });
    await waitFor('Ollama to see the cancellation', () => ollama.stats.cancelled === 1, WAIT);
    expect(rig.retries).toEqual([]);
    expect(rig.outcomes[0]).toMatchObject({ ok: false, status: 504 });
  });

  it('ends a stream that stops mid-answer with an error line clients read (silence, or a lost connection)', async () => {
    let behaviour: 'silent' | 'lost' | 'mid-line' = 'silent';
    const upstream = createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write(behaviour === 'mid-line' ? '{"model":"gemma3:1b","respo' : '{"model":"gemma3:1b","response":"The","done":false}\n');
      if (behaviour !== 'silent') setTimeout(() => res.socket?.destroy(), 30);
    });
    const upstreamUrl = await listen(upstream);
    const rig = await forwardRig(upstreamUrl, { upstreamTimeoutMs: 200 });

    const silent = await post(`${rig.url}/api/generate`, { model: 'gemma3:1b', prompt: 'x' });
    expect(silent.status).toBe(200);
    const silentLines = (await silent.text()).trim().split('\n');
    expect(silentLines).toHaveLength(2);
    expect(JSON.parse(silentLines[1]!)).toEqual({
      error: `upstream ${upstreamUrl} sent nothing for 200ms mid-answer (proxy.upstreamTimeoutMs)`,
      code: 'MEMTIDE_ERR_UPSTREAM_TIMEOUT',
    });

    behaviour = 'lost';
    const client = new Ollama({ host: rig.url });
    const stream = await client.generate({ model: 'gemma3:1b', prompt: 'x', stream: true });
    const parts: string[] = [];
    await expect(
      (async () => {
        for await (const part of stream) parts.push(part.response ?? '');
      })(),
    ).rejects.toThrow(/connection lost mid-answer/);
    expect(parts).toEqual(['The']);

    // Cut in the middle of a line, an error line would be glued to it: the connection is cut instead.
    behaviour = 'mid-line';
    const torn = await post(`${rig.url}/api/generate`, { model: 'gemma3:1b', prompt: 'x' });
    await expect(torn.text()).rejects.toThrow();
    expect(rig.outcomes.map((o) => o.ok)).toEqual([false, false, false]);
  });
});

describe('proxy (default policy): Ollama restarting', () => {
  async function proxyTo(upstream: string): Promise<{ proxy: ProxyHandle; governor: ReturnType<typeof createStubGovernor> }> {
    const governor = createStubGovernor();
    const proxy = await startProxy({ listen: { host: '127.0.0.1', port: 0 }, upstream, governor });
    cleanups.push(() => proxy.close());
    return { proxy, governor };
  }

  it('rides out a restart shorter than its retries: the client never sees it', async () => {
    const port = await freePort();
    const { proxy, governor } = await proxyTo(`http://127.0.0.1:${port}`);
    const answer = post(`${proxy.url}/api/chat`, { model: 'gemma3:1b', messages: [{ role: 'user', content: 'hi' }], stream: false });
    await sleep(150); // the default policy retries after 100, 200, 400 ms
    await fake(port);
    const response = await answer;
    expect(response.status).toBe(200);
    await governor.settled();
    expect(governor.admissions[0]?.releases).toEqual([{ ok: true, status: 200 }]);
  });

  it('answers 502 after its retries when Ollama stays down, and releases the admission as failed', async () => {
    const port = await freePort();
    const { proxy, governor } = await proxyTo(`http://127.0.0.1:${port}`);
    const response = await post(`${proxy.url}/v1/chat/completions`, { model: 'gemma3:1b', messages: [] });
    expect(response.status).toBe(502);
    const { error } = (await response.json()) as { error: { message: string; code: string } };
    expect(error.code).toBe('MEMTIDE_ERR_UPSTREAM');
    expect(error.message).toMatch(/unreachable after 4 attempts: connect ECONNREFUSED/);
    await governor.settled();
    expect(governor.admissions[0]?.releases).toEqual([{ ok: false, status: 502, error: error.message }]);
  });
});

describe('proxy (configured policy): the settings reach every request', () => {
  /** A logger that keeps every line, by level. */
  const recordingLogger = () => {
    const lines: Array<[string, string]> = [];
    return { lines, logger: { debug: (m: string) => void lines.push(['debug', m]), info: (m: string) => void lines.push(['info', m]), warn: (m: string) => void lines.push(['warn', m]), error: (m: string) => void lines.push(['error', m]) } };
  };

  it('proxy.upstreamRetries and proxy.retryBackoffMs from the config, hot-reloaded, each retry logged', async () => {
    const port = await freePort();
    const configOf = (proxy: Record<string, unknown>): MemtideConfig =>
      configSchema.parse({ proxy: { listen: '127.0.0.1:0', ...proxy }, models: { upstream: `http://127.0.0.1:${port}` } });
    const config = configOf({ upstreamRetries: 0 });
    const config$ = new BehaviorSubject<MemtideConfig>(config);
    const { lines, logger } = recordingLogger();
    const proxy = await startProxyFromConfig({ config, config$, logger });
    cleanups.push(() => proxy.close());
    const retries = () => lines.filter(([level, m]) => level === 'debug' && /upstream unreachable/.test(m)).map(([, m]) => m);

    // upstreamRetries 0 (the default is 3): one attempt, no wait.
    const once = await fetch(`${proxy.url}/api/tags`);
    expect(once.status).toBe(502);
    expect(((await once.json()) as { error: string }).error).toMatch(/unreachable after 1 attempt: connect ECONNREFUSED/);
    expect(retries()).toEqual([]);

    // Hot reload: 2 retries, 30 then 60 ms apart, on the very next request.
    config$.next(configOf({ upstreamRetries: 2, retryBackoffMs: '30ms' }));
    const started = Date.now();
    const twice = await fetch(`${proxy.url}/v1/models`);
    expect(twice.status).toBe(502);
    expect(((await twice.json()) as { error: { message: string } }).error.message).toMatch(/unreachable after 3 attempts/);
    expect(Date.now() - started, 'the backoff was waited out').toBeGreaterThanOrEqual(85);
    expect(retries()).toEqual([
      expect.stringMatching(/^proxy: GET \/v1\/models: upstream unreachable \(connect ECONNREFUSED [^)]+\), retry 1 in 30 ms$/),
      expect.stringMatching(/, retry 2 in 60 ms$/),
    ]);

    // Ollama is back: the same settings ride out nothing, it just answers.
    await fake(port);
    expect((await fetch(`${proxy.url}/api/tags`)).status).toBe(200);
  });

  it('proxy.upstreamTimeoutMs: a model request Ollama is too slow to answer is cancelled with 504 through startProxy; a hot reload lets the next one wait', async () => {
    // A non-streamed answer starts only when complete: 3 tokens x 150 ms of silence first.
    const ollama = await startFakeOllama({ tokenDelayMs: 150, responseTokens: 3 });
    cleanups.push(() => ollama.close());
    const governor = createStubGovernor();
    const config$ = new BehaviorSubject<ProxySettings>({ bodyLimitBytes: 1 << 20, upstreamTimeoutMs: 200 });
    const proxy = await startProxy({ listen: { host: '127.0.0.1', port: 0 }, upstream: ollama.url, governor, config$ });
    cleanups.push(() => proxy.close());
    const request = { model: 'gemma3:1b', messages: [{ role: 'user', content: 'x' }], stream: false };
    const response = await post(`${proxy.url}/api/chat`, request);
    expect(response.status).toBe(504);
    const body = (await response.json()) as { error: string; code: string };
    expect(body).toEqual({ error: `upstream ${ollama.url} sent nothing for 200ms (proxy.upstreamTimeoutMs); the request was cancelled upstream`, code: 'MEMTIDE_ERR_UPSTREAM_TIMEOUT' });
    await waitFor('Ollama to see the cancellation', () => ollama.stats.cancelled === 1, WAIT);
    await governor.settled();
    expect(governor.admissions[0]?.releases).toEqual([{ ok: false, status: 504, error: body.error }]);

    // Hot reload: the next request waits as long as it takes.
    config$.next({ bodyLimitBytes: 1 << 20, upstreamTimeoutMs: 5_000 });
    const patient = await post(`${proxy.url}/api/chat`, request);
    expect(patient.status).toBe(200);
    expect(((await patient.json()) as { done: boolean }).done).toBe(true);
    await governor.settled();
    expect(governor.admissions[1]?.releases).toEqual([{ ok: true, status: 200 }]);
  });
});

describe('governor and sampling while Ollama is down', () => {
  it('backs off its reads, refuses what it cannot size with a clear 503, keeps sampling, and recovers when Ollama returns', async () => {
    const ollama = await fake();
    const port = Number(new URL(ollama.url).port);
    const memtide: Memtide = createMemtide({
      config: { sampling: { intervalMs: 50 }, models: { upstream: ollama.url, pollIntervalMs: 200 } },
      readers: createPlatformReaders({ platform: 'linux', procRoot: path.join(FIXTURES, 'proc-tree'), sysRoot: path.join(FIXTURES, 'sys-v1') }),
    });
    cleanups.push(() => memtide.stop());
    /** Every /api/ps request the governor made, with its time. */
    const psCalls: number[] = [];
    const countingFetch: typeof fetch = (input, init) => {
      if (String(input instanceof Request ? input.url : input).endsWith('/api/ps')) psCalls.push(Date.now());
      return fetch(input, init);
    };
    const retryBaseMs = 60;
    const governor = createModelGovernor({
      api: createOllamaApi({ host: ollama.url, fetch: countingFetch, retries: 2, retryBaseMs }),
      config$: memtide.config$,
      pressure$: memtide.pressure$,
      samples$: memtide.samples$,
    });
    cleanups.push(() => governor.stop());
    const problems: GovernorProblem[] = [];
    const subscriptions: Subscription[] = [governor.problems$.subscribe({ next: (p) => problems.push(p), error: () => undefined })];
    let samples = 0;
    subscriptions.push(memtide.samples$.subscribe({ next: () => (samples += 1), error: () => undefined }));
    cleanups.push(() => subscriptions.forEach((s) => s.unsubscribe()));
    const proxy = await startProxy({ listen: { host: '127.0.0.1', port: 0 }, upstream: ollama.url, governor });
    cleanups.push(() => proxy.close());
    const client = new Ollama({ host: proxy.url });

    // Up: a model is loaded through the proxy and the governor sees it.
    await client.generate({ model: 'gemma3:1b', prompt: '' });
    await waitFor('the governor to see gemma3:1b', () => governor.list().some((m) => m.name === 'gemma3:1b' && !m.estimated), WAIT);

    // Down.
    await ollama.close();
    const downAt = Date.now();
    const samplesAtDown = samples;
    const psBefore = psCalls.length;
    await waitFor('the governor to report Ollama unreachable', () => problems.find((p) => p.operation === 'ps'), WAIT);
    const psProblem = problems.find((p) => p.operation === 'ps')!;
    expect(psProblem.error).toMatchObject({ code: 'MEMTIDE_ERR_OLLAMA_UNREACHABLE', message: expect.stringMatching(/^ps: cannot reach Ollama/) });
    // One poll = 3 attempts, each wait twice the one before (lower bounds only: a loaded machine is late, never early).
    const attempts = psCalls.slice(psBefore, psBefore + 3);
    expect(attempts).toHaveLength(3);
    expect(attempts[1]! - attempts[0]!).toBeGreaterThanOrEqual(retryBaseMs - 5);
    expect(attempts[2]! - attempts[1]!).toBeGreaterThanOrEqual(2 * retryBaseMs - 5);

    // A model it cannot size now is refused, clearly, with a hint when to retry (the request would fail upstream anyway).
    const refused = await post(`${proxy.url}/api/generate`, { model: 'llama3.1:8b', prompt: 'x', stream: false });
    expect(refused.status).toBe(503);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await refused.json()).toMatchObject({ code: 'MEMTIDE_ERR_GOVERNOR_HELD', error: expect.stringMatching(/cannot size llama3\.1:8b .*cannot reach Ollama/) });
    // A model it knows is admitted, and the proxy's own retries end in a clear 502.
    const unreachable = await post(`${proxy.url}/api/generate`, { model: 'gemma3:1b', prompt: 'x', stream: false });
    expect(unreachable.status).toBe(502);
    expect(await unreachable.json()).toMatchObject({ code: 'MEMTIDE_ERR_UPSTREAM', error: expect.stringMatching(/unreachable after 4 attempts/) });

    await sleep(600);
    const downForMs = Date.now() - downAt;
    // Monitoring goes on, and the polling does not hammer a down Ollama: at most one poll (3 attempts) per interval.
    expect(samples - samplesAtDown, 'samples keep coming while Ollama is down').toBeGreaterThanOrEqual(5);
    expect(psCalls.length - psBefore).toBeLessThanOrEqual(3 * (Math.floor(downForMs / 200) + 1));

    // Back: the governor reads /api/ps again (the restarted Ollama has nothing loaded) and admits again.
    const back = await fake(port);
    await waitFor('the governor to see the restarted Ollama', () => !governor.list().some((m) => m.name === 'gemma3:1b'), WAIT);
    const problemsWhenBack = problems.length;
    const answer = await client.generate({ model: 'gemma3:1b', prompt: 'x', stream: false });
    expect(answer.done).toBe(true);
    expect(back.received.some((r) => r.path === '/api/generate')).toBe(true);
    await sleep(450);
    expect(problems.length, 'no more problems once Ollama is back').toBe(problemsWhenBack);
  });

  it('the upstream policy settings are validated by the config schema and carried by the proxy settings', async () => {
    const { proxySettingsOf, upstreamPolicyOf } = await import('../../src/app/proxy/fromConfig.js');
    const config = configSchema.parse({ proxy: { upstreamRetries: 5, retryBackoffMs: '250ms', upstreamTimeoutMs: '2m' } });
    expect(upstreamPolicyOf(proxySettingsOf(config))).toEqual({ upstreamRetries: 5, retryBackoffMs: 250, upstreamTimeoutMs: 120_000 });
    expect(configSchema.parse({}).proxy).toMatchObject({ upstreamRetries: 3, retryBackoffMs: 100, upstreamTimeoutMs: 600_000 });
    expect(() => configSchema.parse({ proxy: { upstreamRetries: 11 } })).toThrow(/upstreamRetries/);
    expect(() => configSchema.parse({ proxy: { upstreamTimeoutMs: 'soon' } })).toThrow(/not a duration/);
  });
});
