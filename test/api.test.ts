/**
 * The control API against a real runner: `startServer` over a real
 * `createMemtide()` in runner mode (real sampling, history in a temp dir,
 * port 0) with the config, actions, alerts, history and metrics routes.
 * Security: the token on every mutating route, size and type limits on
 * bodies, loopback-only by default, the Host check, no CORS. Config: invalid
 * patches name the field and change nothing, a valid one applies from the
 * next sample without a restart.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import type { Subscription } from 'rxjs';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createLiveConfig, type LiveConfig } from '../src/app/liveConfig.js';
import { createMemtide, type Memtide } from '../src/app/memtide.js';
import { loadConfig, type MemtideConfig, type MemtideConfigInput } from '../src/app/config.js';
import { startServer, ServerError, type MemtideServer } from '../src/app/server.js';
import { configRoutes } from '../src/app/routes/config.js';
import { actionsRoutes } from '../src/app/routes/actions.js';
import { alertsRoutes, type AlertsProvider, type ListedAlert } from '../src/app/routes/alerts.js';
import { historyRoutes } from '../src/app/routes/history.js';
import { metricsRoutes } from '../src/app/routes/metrics.js';
import { historyAlertsProvider } from '../src/app/alertsProvider.js';
import { HistoryStore } from '../src/sinks/historyStore.js';
import { silentLogger } from '../src/sinks/logger.js';
import type { Alert, MemorySample } from '../src/model.js';
import { issuesOf } from './support/configFiles.js';
import { createStubGovernor } from './support/stubGovernor.js';
import { coordinatorForMemtide } from '../src/streams/coordinator/forMemtide.js';
import type { LoadedModel } from '../src/model.js';

/**
 * `Memtide` does not expose its live config's runtime layer yet (the lead
 * adds `patchConfig`/`configOverrides`); until then the routes get the
 * engine's own LiveConfig, captured as `createMemtide` creates it.
 */
const captured = vi.hoisted(() => ({ lives: [] as unknown[] }));
vi.mock('../src/app/liveConfig.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../src/app/liveConfig.js')>();
  return {
    ...actual,
    createLiveConfig: (...args: Parameters<typeof actual.createLiveConfig>) => {
      const live = actual.createLiveConfig(...args);
      captured.lives.push(live);
      return live;
    },
  };
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let tmp: string;
let runCount = 0;
const cleanups: Array<() => Promise<void> | void> = [];
/** Every response any test saw: none may carry a CORS header. */
const seen: Array<{ what: string; headers: http.IncomingHttpHeaders }> = [];

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memtide-api-'));
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: () => any;
}

interface RequestOptions {
  method?: string;
  token?: string | null;
  body?: unknown;
  /** Raw body (sent as is) instead of JSON. */
  raw?: string | Buffer;
  contentType?: string | null;
  headers?: Record<string, string>;
  /** Send the body in chunks without a content-length (chunked encoding). */
  chunked?: boolean;
}

function request(base: string, pathname: string, options: RequestOptions = {}): Promise<Reply> {
  const method = options.method ?? 'GET';
  const payload = options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  const headers: Record<string, string> = { ...options.headers };
  if (payload !== undefined && options.contentType !== null) headers['content-type'] = options.contentType ?? 'application/json';
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (payload !== undefined && !options.chunked) headers['content-length'] = String(Buffer.byteLength(payload));
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${pathname}`, { method, headers, timeout: 10_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        seen.push({ what: `${method} ${pathname}`, headers: res.headers });
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${pathname} timed out`)));
    req.on('error', reject);
    if (payload !== undefined && options.chunked) {
      const buffer = Buffer.from(payload);
      for (let i = 0; i < buffer.length; i += 4096) req.write(buffer.subarray(i, i + 4096));
    } else if (payload !== undefined) {
      req.write(payload);
    }
    req.end();
  });
}

/** An in-memory alerts store: what the routes see of any provider. */
function fakeAlerts(): AlertsProvider & { acks: Array<[string, number]> } {
  const alert = (key: string, atMs: number): ListedAlert => ({
    key,
    kind: 'pressure',
    severity: 'warning',
    status: 'firing',
    component: null,
    atMs,
    sinceMs: atMs,
    repeat: 0,
    title: 'Memory pressure high',
    message: 'available 8% <= 10%',
    recommendations: [],
    acknowledgedAtMs: null,
  });
  const alerts = [alert('pressure', Date.now() - 60_000), alert('leak:ollama', Date.now() - 30_000)];
  const acks: Array<[string, number]> = [];
  return {
    acks,
    *list(query) {
      for (const a of alerts) if (a.atMs >= query.sinceMs && (!query.status || a.status === query.status)) yield a;
    },
    acknowledge(key, atMs) {
      const matching = alerts.filter((a) => a.key === key);
      if (matching.length === 0) return null;
      acks.push([key, atMs]);
      let count = 0;
      for (const a of matching) {
        if (a.acknowledgedAtMs === null) {
          a.acknowledgedAtMs = atMs;
          count += 1;
        }
      }
      return count;
    },
  };
}

interface Runner {
  memtide: Memtide;
  live: LiveConfig;
  server: MemtideServer;
  token: string;
  alerts: ReturnType<typeof fakeAlerts>;
}

/** A real runner on port 0 with the given config on top of test defaults. */
async function startRunner(config: MemtideConfigInput = {}): Promise<Runner> {
  runCount += 1;
  const dir = path.join(tmp, `run-${runCount}`);
  fs.mkdirSync(dir);
  const base: MemtideConfigInput = {
    sampling: { intervalMs: 200 },
    history: { path: path.join(dir, 'memtide.db'), flushIntervalMs: 200 },
    server: { port: 0, tokenFile: path.join(dir, 'memtide.token'), bodyLimitBytes: 4096 },
  };
  const merged = {
    ...base,
    ...config,
    sampling: { ...base.sampling, ...config.sampling },
    history: { ...base.history, ...config.history },
    server: { ...base.server, ...config.server },
  } as MemtideConfigInput;
  const memtide = createMemtide({ mode: 'runner', env: {}, config: merged });
  cleanups.push(() => memtide.stop());
  const live = captured.lives.at(-1) as LiveConfig;
  const alerts = fakeAlerts();
  const server = await startServer({
    memtide,
    logger: silentLogger,
    modules: [
      configRoutes({ control: live }),
      actionsRoutes({ control: live }),
      alertsRoutes({ provider: alerts }),
      historyRoutes(),
      metricsRoutes({ defaultMetrics: false }),
    ],
  });
  cleanups.push(() => server.close());
  return { memtide, live, server, token: server.token, alerts };
}

/** Every state-changing route with a body it would accept. */
const MUTATING: Array<{ method: string; path: string; body: unknown }> = [
  { method: 'PATCH', path: '/api/config', body: { sampling: { intervalMs: 300 } } },
  { method: 'POST', path: '/api/actions/preset', body: { preset: '8gb' } },
  { method: 'POST', path: '/api/actions/low-memory', body: { enabled: true } },
  { method: 'POST', path: '/api/actions/optimization-level', body: { level: 'aggressive' } },
  { method: 'POST', path: '/api/alerts/pressure/ack', body: {} },
];

describe('tokens', () => {
  it('every mutating route answers 401 without a token and with a wrong one, and changes nothing', async () => {
    const { server, memtide, alerts } = await startRunner();
    const before = JSON.stringify(memtide.config());
    for (const route of MUTATING) {
      for (const token of [null, 'x'.repeat(43), `${server.token}x`]) {
        const reply = await request(server.url, route.path, { method: route.method, body: route.body, token });
        expect(reply.status, `${route.method} ${route.path} with token ${String(token)}`).toBe(401);
        expect(reply.headers['www-authenticate']).toBe('Bearer realm="memtide"');
        expect(reply.json().code).toBe('MEMTIDE_ERR_UNAUTHORIZED');
      }
    }
    expect(JSON.stringify(memtide.config())).toBe(before);
    expect(alerts.acks).toEqual([]);
  });

  it('with the token: config and preset apply (200), ack acknowledges (200), low-memory and optimization level apply', async () => {
    const { server, memtide, alerts } = await startRunner();
    const auth = { token: server.token };
    const patch = await request(server.url, '/api/config', { method: 'PATCH', body: { sampling: { intervalMs: 300 } }, ...auth });
    expect(patch.status).toBe(200);
    expect(patch.json().config.sampling.intervalMs).toBe(300);
    expect(memtide.config().sampling.intervalMs).toBe(300);

    const preset = await request(server.url, '/api/actions/preset', { method: 'POST', body: { preset: '8gb' }, ...auth });
    expect(preset.status).toBe(200);
    expect(preset.json()).toMatchObject({ action: 'preset', path: 'pressure.preset', value: '8gb' });
    expect(memtide.config().pressure.preset).toBe('8gb');

    const ack = await request(server.url, '/api/alerts/leak%3Aollama/ack', { method: 'POST', body: {}, ...auth });
    expect(ack.status).toBe(200);
    expect(ack.json()).toMatchObject({ key: 'leak:ollama', acknowledged: 1 });
    expect(alerts.acks.map(([key]) => key)).toEqual(['leak:ollama']);
    const again = await request(server.url, '/api/alerts/leak%3Aollama/ack', { method: 'POST', ...auth });
    expect(again.json()).toMatchObject({ acknowledged: 0 });
    const unknown = await request(server.url, '/api/alerts/nope/ack', { method: 'POST', ...auth });
    expect(unknown.status).toBe(404);

    const lowMemory = await request(server.url, '/api/actions/low-memory', { method: 'POST', body: { enabled: true }, ...auth });
    expect(lowMemory.status).toBe(200);
    expect(lowMemory.json()).toMatchObject({ action: 'low-memory', path: 'optimization.lowMemory', value: true });
    expect(memtide.config().optimization.lowMemory).toBe(true);
    const level = await request(server.url, '/api/actions/optimization-level', { method: 'POST', body: { level: 'maximum' }, ...auth });
    expect(level.status).toBe(200);
    expect(memtide.config().optimization.level).toBe('maximum');
    const badLevel = await request(server.url, '/api/actions/optimization-level', { method: 'POST', body: { level: 'ludicrous' }, ...auth });
    expect(badLevel.status).toBe(400);
    expect(badLevel.json().field).toBe('level');
    const badPreset = await request(server.url, '/api/actions/preset', { method: 'POST', body: { preset: '2gb' }, ...auth });
    expect(badPreset.status).toBe(400);
    expect(badPreset.json().field).toBe('preset');
    expect(memtide.config().pressure.preset).toBe('8gb');
  });

  it('the level and low-memory actions apply their profile and answer which of your settings shadow it', async () => {
    // The runner's test defaults (code options) set sampling.intervalMs 200; this one sets the model idle timeout too.
    const { server, memtide } = await startRunner({ models: { idleTimeoutMs: '10m' } });
    const auth = { token: server.token };
    const level = await request(server.url, '/api/actions/optimization-level', { method: 'POST', body: { level: 'maximum' }, ...auth });
    expect(level.status).toBe(200);
    expect(memtide.config().models.pressureGraceMs).toBe(5_000);
    expect(memtide.config().models.idleTimeoutMs).toBe(600_000);
    expect(level.json().shadowed).toEqual([
      { path: 'models.idleTimeoutMs', yours: 600_000, profile: 15_000, origin: 'createMemtide() options' },
      { path: 'sampling.intervalMs', yours: 200, profile: 1_000, origin: 'createMemtide() options' },
    ]);

    const low = await request(server.url, '/api/actions/low-memory', { method: 'POST', body: { enabled: true }, ...auth });
    expect(low.status).toBe(200);
    expect(memtide.config().models.maxConcurrent).toBe(1);
    expect(low.json().shadowed).toEqual([
      { path: 'models.idleTimeoutMs', yours: 600_000, profile: 15_000, origin: 'createMemtide() options' },
      { path: 'sampling.intervalMs', yours: 200, profile: 2_000, origin: 'createMemtide() options' },
    ]);
    // A runtime patch of a profile key is "yours" too, named by its origin.
    await request(server.url, '/api/config', { method: 'PATCH', body: { models: { maxConcurrent: 3 } }, ...auth });
    const again = await request(server.url, '/api/actions/low-memory', { method: 'POST', body: { enabled: true }, ...auth });
    expect(again.json().shadowed).toContainEqual({ path: 'models.maxConcurrent', yours: 3, profile: 1, origin: 'PATCH /api/config' });

    // Back to the file's level (none: basic) with a merge-patch null: the defaults return.
    await request(server.url, '/api/config', { method: 'PATCH', body: { optimization: { level: null, lowMemory: null }, models: { maxConcurrent: null } }, ...auth });
    expect(memtide.config().models.pressureGraceMs).toBe(15_000);
    expect(memtide.config().models.maxConcurrent).toBe(4);
    // The preset action is not about profiles: it answers no shadow list.
    const preset = await request(server.url, '/api/actions/preset', { method: 'POST', body: { preset: '8gb' }, ...auth });
    expect(preset.json()).not.toHaveProperty('shadowed');
  });

  it('through a bare Memtide handle (no layers to read), the shadowed settings still come, without their origin', async () => {
    const dir = path.join(tmp, 'bare-handle');
    fs.mkdirSync(dir, { recursive: true });
    const memtide = createMemtide({
      mode: 'runner',
      env: {},
      config: { history: { enabled: false }, models: { idleTimeoutMs: '10m' }, server: { port: 0, tokenFile: path.join(dir, 'memtide.token') } },
    });
    cleanups.push(() => memtide.stop());
    const server = await startServer({ memtide, logger: silentLogger, modules: [actionsRoutes()] });
    cleanups.push(() => server.close());
    const reply = await request(server.url, '/api/actions/optimization-level', { method: 'POST', body: { level: 'aggressive' }, token: server.token });
    expect(reply.status).toBe(200);
    expect(reply.json().shadowed).toEqual([{ path: 'models.idleTimeoutMs', yours: 600_000, profile: 30_000 }]);
    expect(memtide.config().models.pressureGraceMs).toBe(10_000);
  });

  it('reads need no token on loopback', async () => {
    const { server } = await startRunner();
    for (const route of ['/api/config', '/api/config/schema', '/api/alerts', '/api/history/cache', '/api/state']) {
      expect((await request(server.url, route)).status, route).toBe(200);
    }
  });
});

describe('bodies', () => {
  it('413 past server.bodyLimitBytes, declared or streamed; the config is unchanged', async () => {
    const { server, memtide } = await startRunner();
    const before = JSON.stringify(memtide.config());
    const big = { sampling: { intervalMs: 300 }, padding: 'x'.repeat(5000) };
    const declared = await request(server.url, '/api/config', { method: 'PATCH', body: big, token: server.token });
    expect(declared.status).toBe(413);
    expect(declared.json().code).toBe('MEMTIDE_ERR_BODY_TOO_LARGE');
    const streamed = await request(server.url, '/api/config', { method: 'PATCH', body: big, token: server.token, chunked: true });
    expect(streamed.status).toBe(413);
    const action = await request(server.url, '/api/actions/preset', { method: 'POST', body: { preset: '8gb', padding: 'x'.repeat(5000) }, token: server.token });
    expect(action.status).toBe(413);
    expect(JSON.stringify(memtide.config())).toBe(before);
  });

  it('415 for another content type, 400 for broken JSON', async () => {
    const { server } = await startRunner();
    const text = await request(server.url, '/api/config', { method: 'PATCH', raw: 'sampling.intervalMs=300', contentType: 'text/plain', token: server.token });
    expect(text.status).toBe(415);
    expect(text.json().code).toBe('MEMTIDE_ERR_CONTENT_TYPE');
    const none = await request(server.url, '/api/actions/preset', { method: 'POST', raw: '{"preset":"8gb"}', contentType: null, token: server.token });
    expect(none.status).toBe(415);
    const broken = await request(server.url, '/api/config', { method: 'PATCH', raw: '{"sampling": {', token: server.token });
    expect(broken.status).toBe(400);
    expect(broken.json().code).toBe('MEMTIDE_ERR_BAD_JSON');
    // RFC 7386's own media type is accepted too.
    const merge = await request(server.url, '/api/config', { method: 'PATCH', body: { log: { level: 'warn' } }, contentType: 'application/merge-patch+json', token: server.token });
    expect(merge.status).toBe(200);
  });
});

describe('PATCH /api/config', () => {
  it('400 naming the field of a bad value, keeping the config in force', async () => {
    const { server, memtide } = await startRunner();
    const before = JSON.stringify(memtide.config());
    const reply = await request(server.url, '/api/config', { method: 'PATCH', body: { sampling: { intervalMs: 'soon' } }, token: server.token });
    expect(reply.status).toBe(400);
    const body = reply.json();
    expect(body.code).toBe('MEMTIDE_ERR_CONFIG');
    expect(body.field).toBe('sampling.intervalMs');
    expect(body.issues).toEqual([expect.objectContaining({ path: 'sampling.intervalMs', origin: 'PATCH /api/config', message: expect.stringContaining('soon') })]);
    expect(JSON.stringify(memtide.config())).toBe(before);
    const read = await request(server.url, '/api/config');
    expect(read.json().config.sampling.intervalMs).toBe(200);
    expect(read.json().overrides.paths).toEqual([]);
  });

  it('lists every issue: unknown keys, several bad values', async () => {
    const { server } = await startRunner();
    const reply = await request(server.url, '/api/config', {
      method: 'PATCH',
      body: { sampling: { speed: 'fast', pss: 'sometimes' }, pressure: { marginPercent: 99 } },
      token: server.token,
    });
    expect(reply.status).toBe(400);
    const paths = (reply.json().issues as Array<{ path: string }>).map((i) => i.path).sort();
    expect(paths).toEqual(['pressure.marginPercent', 'sampling.pss', 'sampling.speed']);
  });

  it('refuses settings read only at start (history, server), naming them', async () => {
    const { server, memtide } = await startRunner();
    const reply = await request(server.url, '/api/config', { method: 'PATCH', body: { server: { allowRemote: true }, sampling: { intervalMs: 300 } }, token: server.token });
    expect(reply.status).toBe(400);
    expect(reply.json().field).toBe('server.allowRemote');
    expect(memtide.config().sampling.intervalMs).toBe(200);
  });

  it('a valid patch applies from the next sample, without a restart (sampling rate)', async () => {
    const { server, memtide } = await startRunner({ sampling: { intervalMs: 250 } });
    const times: number[] = [];
    const subscription: Subscription = memtide.samples$.subscribe({ next: (s: MemorySample) => times.push(s.timestampMs), error: () => undefined });
    cleanups.push(() => subscription.unsubscribe());
    await sleep(300);
    const count = (from: number, to: number) => times.filter((t) => t >= from && t < to).length;
    const beforeStart = Date.now();
    await sleep(1_000);
    const before = count(beforeStart, beforeStart + 1_000);

    const reply = await request(server.url, '/api/config', { method: 'PATCH', body: { sampling: { intervalMs: 50 } }, token: server.token });
    expect(reply.status).toBe(200);
    await sleep(300);
    const afterStart = Date.now();
    await sleep(1_000);
    const after = count(afterStart, afterStart + 1_000);
    expect(before).toBeGreaterThanOrEqual(2);
    expect(before).toBeLessThanOrEqual(6);
    expect(after, `samples/s before ${before}, after ${after}`).toBeGreaterThan(2 * before);
  });

  it('GET shows the runtime overrides; null (merge patch) hands a key back to the lower layers', async () => {
    const { server, memtide } = await startRunner();
    const auth = { token: server.token };
    await request(server.url, '/api/config', { method: 'PATCH', body: { sampling: { intervalMs: 300 }, log: { level: 'warn' } }, ...auth });
    await request(server.url, '/api/actions/preset', { method: 'POST', body: { preset: '16gb' }, ...auth });
    const read = (await request(server.url, '/api/config')).json();
    expect(read.patchable).toBe(true);
    expect(read.overrides.paths).toEqual([
      { path: 'log.level', origin: 'PATCH /api/config' },
      { path: 'pressure.preset', origin: 'POST /api/actions/preset' },
      { path: 'sampling.intervalMs', origin: 'PATCH /api/config' },
    ]);
    expect(read.overrides.values).toEqual({ sampling: { intervalMs: 300 }, log: { level: 'warn' }, pressure: { preset: '16gb' } });

    const reverted = await request(server.url, '/api/config', { method: 'PATCH', body: { sampling: { intervalMs: null } }, ...auth });
    expect(reverted.status).toBe(200);
    expect(memtide.config().sampling.intervalMs).toBe(200);
    expect(reverted.json().overrides.values).toEqual({ log: { level: 'warn' }, pressure: { preset: '16gb' } });
  });

  it('GET /api/config/schema is the JSON Schema of the config', async () => {
    const { server } = await startRunner();
    const reply = await request(server.url, '/api/config/schema');
    expect(reply.headers['content-type']).toMatch(/^application\/schema\+json/);
    const schema = reply.json();
    expect(schema.type).toBe('object');
    expect(schema.properties.sampling.properties).toHaveProperty('intervalMs');
    expect(schema.additionalProperties).toBe(false);
  });
});

describe('network exposure', () => {
  it('binds 127.0.0.1 by default', async () => {
    const memtide = createMemtide({ mode: 'runner', env: {}, config: { history: { enabled: false } } });
    cleanups.push(() => memtide.stop());
    expect(memtide.config().server.host).toBe('127.0.0.1');
    const { server } = await startRunner();
    expect(new URL(server.url).hostname).toBe('127.0.0.1');
  });

  it('a non-loopback host without server.allowRemote refuses to start', async () => {
    const memtide = createMemtide({ mode: 'runner', env: {}, config: { history: { enabled: false }, server: { host: '0.0.0.0', port: 0, tokenFile: path.join(tmp, 'remote.token') } } });
    cleanups.push(() => memtide.stop());
    await expect(startServer({ memtide, logger: silentLogger })).rejects.toThrow(ServerError);
    await expect(startServer({ memtide, logger: silentLogger })).rejects.toThrow(/allowRemote/);
  });

  it('with allowRemote, even reads need the token', async () => {
    const { server } = await startRunner({ server: { host: '0.0.0.0', allowRemote: true } });
    const local = server.url.replace('0.0.0.0', '127.0.0.1');
    for (const route of ['/api/state', '/api/config', '/metrics', '/api/history/cache']) {
      expect((await request(local, route)).status, route).toBe(401);
    }
    expect((await request(local, '/api/config', { token: server.token })).status).toBe(200);
  });

  it('421 for a Host header that is not this server (DNS rebinding)', async () => {
    const { server } = await startRunner();
    const evil = await request(server.url, '/api/config', { headers: { host: 'evil.example' } });
    expect(evil.status).toBe(421);
    expect(evil.json().code).toBe('MEMTIDE_ERR_HOST');
    const port = new URL(server.url).port;
    const rebound = await request(server.url, '/api/config', { headers: { host: `evil.example:${port}` } });
    expect(rebound.status).toBe(421);
    const mutating = await request(server.url, '/api/config', { method: 'PATCH', body: { log: { level: 'warn' } }, token: server.token, headers: { host: 'evil.example' } });
    expect(mutating.status).toBe(421);
    expect((await request(server.url, '/api/config', { headers: { host: `localhost:${port}` } })).status).toBe(200);
  });

  it('no CORS: a preflight gets no access-control-allow-origin, and no response carries a CORS header', async () => {
    const { server } = await startRunner();
    const preflight = await request(server.url, '/api/config', {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'PATCH', 'access-control-request-headers': 'authorization, content-type' },
    });
    expect(preflight.status).toBeGreaterThanOrEqual(400);
    expect(preflight.headers['access-control-allow-origin']).toBeUndefined();
    const cross = await request(server.url, '/api/config', { headers: { origin: 'https://evil.example' } });
    expect(cross.headers['access-control-allow-origin']).toBeUndefined();
    expect(seen.length).toBeGreaterThan(20);
    const withCors = seen.filter((r) => Object.keys(r.headers).some((h) => h.startsWith('access-control-')));
    expect(withCors.map((r) => r.what)).toEqual([]);
  });
});

describe('alerts', () => {
  it('GET /api/alerts lists with status and limit; bad parameters name the field', async () => {
    const { server } = await startRunner();
    const all = (await request(server.url, '/api/alerts?since=1h')).json();
    expect(all.alerts.map((a: Alert) => a.key)).toEqual(['pressure', 'leak:ollama']);
    const one = (await request(server.url, '/api/alerts?limit=1')).json();
    expect(one).toMatchObject({ truncated: true, limit: 1 });
    expect(one.alerts).toHaveLength(1);
    await request(server.url, '/api/alerts/pressure/ack', { method: 'POST', token: server.token });
    const open = (await request(server.url, '/api/alerts?status=unacknowledged')).json();
    expect(open.alerts.map((a: Alert) => a.key)).toEqual(['leak:ollama']);
    const bad = await request(server.url, '/api/alerts?status=loud');
    expect(bad.status).toBe(400);
    expect(bad.json().field).toBe('status');
    expect((await request(server.url, '/api/alerts?since=soon')).json().field).toBe('since');
  });

  it('the default provider reads and acknowledges the history database', () => {
    const store = HistoryStore.open(':memory:');
    try {
      if (typeof (store as unknown as { appendAlerts?: unknown }).appendAlerts !== 'function') return expect.fail('HistoryStore has no alerts table');
      const write = (store as unknown as { appendAlerts(alerts: Alert[]): void }).appendAlerts.bind(store);
      const alert: Alert = { key: 'leak:ollama', kind: 'leak', severity: 'warning', status: 'firing', component: 'ollama', atMs: 1_000, sinceMs: 1_000, repeat: 0, title: 't', message: 'm', recommendations: [] };
      write([alert, { ...alert, atMs: 2_000, repeat: 1 }]);
      const provider = historyAlertsProvider(store)!;
      expect(provider).toBeDefined();
      expect(provider.acknowledge('leak:ollama', 3_000)).toBe(2);
      expect(provider.acknowledge('leak:ollama', 4_000)).toBe(0);
      expect(provider.acknowledge('nope', 4_000)).toBeNull();
      const listed = [...(provider.list({ sinceMs: 0 }) as Iterable<ListedAlert>)];
      expect(listed.map((a) => a.acknowledgedAtMs)).toEqual([3_000, 3_000]);
    } finally {
      store.close();
    }
    expect(historyAlertsProvider(undefined)).toBeUndefined();
  });
});

describe('the runtime config layer (LiveConfig.patch)', () => {
  it('sits above the flags; null hands the key back to them', () => {
    const live = createLiveConfig({ env: {}, set: ['sampling.intervalMs=500'] });
    cleanups.push(() => live.stop());
    expect(live.patch({ sampling: { intervalMs: 700 } }).sampling.intervalMs).toBe(700);
    expect(live.patch({ sampling: { intervalMs: null } }).sampling.intervalMs).toBe(500);
    expect(live.overrides()).toEqual({ values: {}, paths: [] });
  });

  it('a file edit re-reads the file and keeps the runtime patches on top', () => {
    const file = path.join(tmp, 'layered.json');
    fs.writeFileSync(file, JSON.stringify({ sampling: { intervalMs: 300 }, log: { level: 'warn' } }));
    const live = createLiveConfig({ env: {}, file, watch: false });
    cleanups.push(() => live.stop());
    live.patch({ sampling: { intervalMs: 700 } }, 'test');
    fs.writeFileSync(file, JSON.stringify({ sampling: { intervalMs: 400 }, log: { level: 'error' } }));
    expect(live.reload()).toBeNull();
    expect(live.current().sampling.intervalMs).toBe(700);
    expect(live.current().log.level).toBe('error');
    expect(live.overrides().paths).toEqual([{ path: 'sampling.intervalMs', origin: 'test' }]);
  });

  it('a rejected file edit does not make patches fail: they apply over the layers in force', () => {
    const file = path.join(tmp, 'broken.json');
    fs.writeFileSync(file, JSON.stringify({ log: { level: 'warn' } }));
    const live = createLiveConfig({ env: {}, file, watch: false });
    cleanups.push(() => live.stop());
    fs.writeFileSync(file, '{"log": {"level": "loud"}}');
    expect(live.reload()?.issues[0]?.path).toBe('log.level');
    expect(live.patch({ sampling: { intervalMs: 250 } }).log.level).toBe('warn');
  });

  it('a rejected patch throws every issue with its origin, keeps the config and emits nothing', () => {
    const live = createLiveConfig({ env: {} });
    cleanups.push(() => live.stop());
    const emitted: MemtideConfig[] = [];
    const subscription = live.config$.subscribe({ next: (c) => emitted.push(c), error: () => undefined });
    cleanups.push(() => subscription.unsubscribe());
    const before = live.current();
    const issues = issuesOf(() => live.patch({ sampling: { intervalMs: 'soon', pss: 'never' }, nope: 1 }, 'dashboard'));
    expect(issues.map((i) => [i.path, i.origin]).sort()).toEqual([
      ['nope', 'dashboard'],
      ['sampling.intervalMs', 'dashboard'],
      ['sampling.pss', 'dashboard'],
    ]);
    expect(live.current()).toBe(before);
    expect(emitted).toHaveLength(1);
    expect(issuesOf(() => live.patch([1, 2]))[0]).toMatchObject({ path: '', message: expect.stringMatching(/JSON object/) });
    expect(issuesOf(() => live.patch('{}'))[0]?.path).toBe('');
  });

  it('a "__proto__" key is an unknown key, never a prototype', () => {
    const live = createLiveConfig({ env: {} });
    cleanups.push(() => live.stop());
    const issues = issuesOf(() => live.patch(JSON.parse('{"sampling": {"__proto__": {"intervalMs": 5}}}')));
    expect(issues[0]?.path).toBe('sampling.__proto__');
    expect(({} as Record<string, unknown>).intervalMs).toBeUndefined();
    expect(live.current().sampling.intervalMs).toBe(1000);
  });

  it('the caller keeps no handle on the config: later changes to the patch object do not leak in', () => {
    const live = createLiveConfig({ env: {} });
    cleanups.push(() => live.stop());
    const patch = { pressure: { thresholds: { high: { availablePercent: 12 } } } };
    live.patch(patch);
    patch.pressure.thresholds.high.availablePercent = 99;
    expect(live.current().pressure.thresholds.high?.availablePercent).toBe(12);
    expect(Object.isFrozen(live.current().pressure)).toBe(true);
  });

  /** Model: the runtime overrides as a map of dotted path → value; the config is the flags layer of those values. */
  type Model = { overrides: Map<string, unknown> };
  const KEYS = {
    'sampling.intervalMs': { valid: fc.constantFrom(100, 250, '2s', 60_000), invalid: fc.constantFrom('soon', 10, -1) },
    'log.level': { valid: fc.constantFrom('debug', 'warn', 'silent'), invalid: fc.constantFrom('loud', 3) },
    'pressure.preset': { valid: fc.constantFrom('auto', '4gb', '16gb'), invalid: fc.constantFrom('2gb', true) },
    'pressure.marginPercent': { valid: fc.integer({ min: 0, max: 50 }), invalid: fc.constantFrom(51, '5') },
  } as const;
  type Key = keyof typeof KEYS;
  const nested = (dotted: string, value: unknown) => dotted.split('.').reduceRight<unknown>((inner, key) => ({ [key]: inner }), value);
  const expected = (m: Model) => loadConfig({ env: {}, flags: Object.fromEntries(m.overrides) as never });

  class Patch implements fc.Command<Model, LiveConfig> {
    constructor(
      readonly key: Key,
      readonly value: unknown,
      readonly valid: boolean,
    ) {}
    check = () => true;
    run(m: Model, live: LiveConfig) {
      const before = live.current();
      if (this.valid) {
        live.patch(nested(this.key, this.value));
        m.overrides.set(this.key, this.value);
      } else {
        expect(issuesOf(() => live.patch(nested(this.key, this.value)))[0]?.path).toBe(this.key);
        expect(live.current()).toBe(before);
      }
      expect(live.current()).toEqual(expected(m));
      expect(live.overrides().paths.map((p) => p.path)).toEqual([...m.overrides.keys()].sort());
    }
    toString = () => `patch(${this.key} = ${JSON.stringify(this.value)}${this.valid ? '' : ', invalid'})`;
  }
  class Revert implements fc.Command<Model, LiveConfig> {
    constructor(readonly key: Key) {}
    check = () => true;
    run(m: Model, live: LiveConfig) {
      live.patch(nested(this.key, null));
      m.overrides.delete(this.key);
      expect(live.current()).toEqual(expected(m));
    }
    toString = () => `revert(${this.key})`;
  }

  it('model-based: patches, rejected patches and reverts agree with "defaults + overrides"', () => {
    const keys = Object.keys(KEYS) as Key[];
    const commands = [
      ...keys.map((key) => KEYS[key].valid.map((value: unknown) => new Patch(key, value, true))),
      ...keys.map((key) => KEYS[key].invalid.map((value: unknown) => new Patch(key, value, false))),
      fc.constantFrom(...keys).map((key) => new Revert(key)),
    ];
    fc.assert(
      fc.property(fc.commands(commands, { maxCommands: 40 }), (cmds) => {
        const live = createLiveConfig({ env: {} });
        try {
          fc.modelRun(() => ({ model: { overrides: new Map() }, real: live }), cmds);
        } finally {
          live.stop();
        }
      }),
      { numRuns: 60 },
    );
  });
});

describe('GET /api/events: the `batch` event (batch transcription yields to the summary model)', () => {
  /** An SSE client: frames as they come, `next(event)` waits for the next one of that name. */
  function sse(server: MemtideServer) {
    const frames: Array<{ event: string; raw: string }> = [];
    let buffer = '';
    const waiters: Array<() => void> = [];
    const req = http.get(`${server.url}/api/events`, (res) => {
      res.setEncoding('utf8');
      res.on('data', (text: string) => {
        buffer += text;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const m = /^event: (\w+)\ndata: (.*)$/s.exec(block);
          if (m) frames.push({ event: m[1]!, raw: m[2]! });
          waiters.splice(0).forEach((w) => w());
        }
      });
    });
    req.on('error', () => undefined);
    cleanups.push(() => void req.destroy());
    const batches = () => frames.filter((f) => f.event === 'batch');
    const waitFor = async (count: number) => {
      const deadline = Date.now() + 5_000;
      while (batches().length < count && Date.now() < deadline) await new Promise<void>((resolve) => (waiters.push(resolve), setTimeout(resolve, 100)));
      return batches()[count - 1];
    };
    return { batches, waitFor };
  }

  const model = (inFlight: number): LoadedModel => ({
    name: 'llama3.2:3b',
    sizeBytes: 3.5 * 1024 ** 3,
    sizeVramBytes: 0,
    contextLength: 4096,
    inFlight,
    idleSinceMs: inFlight ? null : Date.now(),
    pinned: false,
    expiresAtMs: null,
  });

  it('data {"hold","reason","atMs"} on every change, the latest replayed to a new client; released when the model is unloaded', async () => {
    const runner = await startRunner({ optimization: { level: 'aggressive', batchYield: { idleAfterMs: 0 } } });
    const first = sse(runner.server);
    // Before any coordinator: released, replayed at once.
    const initial = await first.waitFor(1);
    expect(Object.keys(JSON.parse(initial!.raw) as object)).toEqual(['hold', 'reason', 'atMs']);
    expect(JSON.parse(initial!.raw)).toEqual({ hold: false, reason: expect.any(String), atMs: expect.any(Number) });

    const governor = createStubGovernor();
    const coordinator = coordinatorForMemtide(runner.memtide, { governor });
    cleanups.push(() => coordinator.stop());
    governor.setModels([model(1)]);
    const held = JSON.parse((await first.waitFor(2))!.raw) as { hold: boolean; reason: string; atMs: number };
    expect(held).toEqual({ hold: true, reason: expect.stringContaining('request(s) in flight'), atMs: expect.any(Number) });
    expect(runner.memtide.config().optimization.batchYield.enabled).toBe(true);
    // A client connecting now gets the hold in force at once.
    const late = sse(runner.server);
    expect(JSON.parse((await late.waitFor(1))!.raw)).toEqual(held);
    const state = await new Promise<{ batch: unknown }>((resolve, reject) =>
      http.get(`${runner.server.url}/api/state`, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve(JSON.parse(body) as { batch: unknown }));
      }).on('error', reject),
    );
    expect(state.batch).toEqual(held);
    // The summary is done and the governor unloads the model: released.
    governor.setModels([model(0)]);
    governor.setModels([]);
    const released = JSON.parse((await first.waitFor(3))!.raw) as { hold: boolean; reason: string };
    expect(released).toMatchObject({ hold: false, reason: expect.stringContaining('no model resident') });
    expect(coordinator.recent(10).map((r) => r.kind)).toEqual(expect.arrayContaining(['hold-batch', 'resume-batch']));
    // Stopping the coordinator leaves the engine released.
    coordinator.stop();
    const seen: boolean[] = [];
    runner.memtide.batchHold$.subscribe({ next: (h) => seen.push(h.hold), error: () => undefined }).unsubscribe();
    expect(seen).toEqual([false]);
  });
});
