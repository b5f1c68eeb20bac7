import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { NEVER, Subject, of, throwError, type Observable } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { alertsSchema } from '../src/app/schema/alerts.js';
import type { Alert, AlertSeverity } from '../src/model.js';
import { alertHistory } from '../src/sinks/alertHistory.js';
import { alertJsonl } from '../src/sinks/alertJsonl.js';
import { alertLog, alertLogText } from '../src/sinks/alertLog.js';
import type { AlertSink } from '../src/sinks/alertSink.js';
import { alertWebhook, type AlertWebhookConfig, type WebhookEvent, type WebhookPayload, type WebhookResponse } from '../src/sinks/alertWebhook.js';
import { HistoryStore } from '../src/sinks/historyStore.js';
import { createLogger } from '../src/sinks/logger.js';
import { connectAlertSinks, createAlertSinks } from '../src/streams/alerts.js';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memtide-alert-sinks-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function alert(n: number, extra: Partial<Alert> = {}): Alert {
  return {
    key: `budget:c${n}`,
    kind: 'budget',
    severity: 'warning',
    status: 'firing',
    component: `c${n}`,
    atMs: 1_700_000_000_000 + n,
    sinceMs: 1_700_000_000_000,
    repeat: 0,
    title: `c${n} over its memory budget`,
    message: `c${n} uses 6.0 GiB (PSS), 1.0 GiB over its 5.0 GiB budget.`,
    recommendations: [{ action: 'Unload the idle model llama3.1:8b (idle for 25m): frees about 4.7 GiB.', command: 'memtide models unload llama3.1:8b', expectedSavingBytes: 5_046_586_573 }],
    ...extra,
  };
}

const webhookConfig = (url: string, extra: Partial<AlertWebhookConfig> = {}): AlertWebhookConfig => ({
  url,
  minSeverity: 'info',
  timeoutMs: 2000,
  retries: 3,
  backoffMs: 20,
  maxQueue: 10,
  ...extra,
});

// ---------------------------------------------------------------------------
// A real loopback server
// ---------------------------------------------------------------------------

interface Received {
  method: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

interface Loopback {
  url: string;
  received: Received[];
  /** Requests whose connection was closed by the client before an answer. */
  aborted: number;
  close(): Promise<void>;
}

/** `answer(n)` gives the status for the n-th request (0-based), or null to never answer. */
async function loopback(answer: (n: number) => number | null): Promise<Loopback> {
  const received: Received[] = [];
  const state = { aborted: 0 };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const n = received.length;
      received.push({ method: req.method ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      const status = answer(n);
      if (status === null) {
        res.on('close', () => {
          if (!res.writableEnded) state.aborted += 1;
        });
        return;
      }
      res.writeHead(status, { 'content-type': 'text/plain' }).end(status < 300 ? 'ok' : 'nope');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    get aborted() {
      return state.aborted;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const sinks: AlertSink[] = [];
const servers: Loopback[] = [];
afterEach(async () => {
  for (const sink of sinks.splice(0)) sink.close();
  for (const server of servers.splice(0)) await server.close();
});

// ---------------------------------------------------------------------------

describe('alertJsonl', () => {
  it('appends one JSON line per alert (creating the directory), readable back as the alerts', () => {
    const file = path.join(tmp, 'nested', 'dir', 'alerts.jsonl');
    const errors: unknown[] = [];
    const sink = alertJsonl(file, (e) => errors.push(e));
    const written = [alert(1), alert(2, { status: 'resolved', recommendations: [] }), alert(3, { severity: 'critical' })];
    for (const a of written) sink.write(a);
    // The lines are in the file as soon as write returns (synchronous append): nothing to flush on exit.
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    expect(lines.at(-1)).toBe('');
    expect(lines.slice(0, -1).map((l) => JSON.parse(l) as Alert)).toEqual(written);
    expect(errors).toEqual([]);
  });

  it('appends to an existing file, and reports a write failure instead of throwing', () => {
    const file = path.join(tmp, 'existing.jsonl');
    fs.writeFileSync(file, '{"old":true}\n');
    alertJsonl(file, () => undefined).write(alert(1));
    expect(fs.readFileSync(file, 'utf8').split('\n').filter(Boolean)).toHaveLength(2);

    const errors: [unknown, Alert | null][] = [];
    const bad = alertJsonl(tmp /* a directory */, (e, a) => errors.push([e, a]));
    expect(() => bad.write(alert(9))).not.toThrow();
    expect(errors).toEqual([[expect.objectContaining({ code: 'EISDIR' }), alert(9)]]);
  });
});

describe('alertLog', () => {
  it('logs critical as error, warning as warn, info and recoveries as info, with the steps as a field', () => {
    const lines: string[] = [];
    const sink = alertLog(createLogger(() => ({ level: 'debug', format: 'json' }), (l) => lines.push(l)));
    sink.write(alert(1, { severity: 'critical', repeat: 2 }));
    sink.write(alert(2));
    sink.write(alert(3, { severity: 'info' }));
    sink.write(alert(4, { severity: 'critical', status: 'resolved', recommendations: [] }));
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(parsed.map((p) => p.level)).toEqual(['error', 'warn', 'info', 'info']);
    expect(parsed[0]).toMatchObject({
      msg: 'alert firing critical budget:c1 (repeat 2): c1 over its memory budget: c1 uses 6.0 GiB (PSS), 1.0 GiB over its 5.0 GiB budget.',
      key: 'budget:c1',
      component: 'c1',
      recommendations: ['Unload the idle model llama3.1:8b (idle for 25m): frees about 4.7 GiB. (memtide models unload llama3.1:8b; frees ~4.7 GiB)'],
    });
    expect(parsed[3]).not.toHaveProperty('recommendations');
    expect(alertLogText(alert(4, { status: 'resolved' }))).toMatch(/^alert resolved warning budget:c4: /);
  });

  it('a throwing logger does not throw out of the sink', () => {
    const sink = alertLog({ debug() {}, info() {}, warn() {}, error: () => { throw new Error('stderr closed'); } });
    expect(() => sink.write(alert(1, { severity: 'critical' }))).not.toThrow();
  });
});

describe('alertHistory (SQLite alerts table)', () => {
  it('stores each notification; a failing store is reported, not thrown', () => {
    const store = HistoryStore.open(':memory:');
    const sink = alertHistory(store, () => undefined);
    sink.write(alert(1));
    sink.write(alert(2, { status: 'resolved', recommendations: [] }));
    expect([...store.alerts({ sinceMs: 0 })]).toEqual([
      { ...alert(1), acknowledgedAtMs: null },
      { ...alert(2, { status: 'resolved', recommendations: [] }), acknowledgedAtMs: null },
    ]);
    store.close();
    const errors: unknown[] = [];
    alertHistory(store, (e) => errors.push(e)).write(alert(3));
    expect(errors).toEqual([expect.objectContaining({ code: 'MEMTIDE_ERR_HISTORY_CLOSED' })]);
  });
});

describe('alertWebhook against a real loopback server', () => {
  it('a server that fails twice then succeeds: exactly one delivery, after 2 retries, with the documented payload', async () => {
    const server = await loopback((n) => (n < 2 ? 503 : 200));
    servers.push(server);
    const events: WebhookEvent[] = [];
    const sink = alertWebhook(webhookConfig(server.url), { host: 'box-1', onEvent: (e) => events.push(e) });
    sinks.push(sink);
    sink.write(alert(1));
    await sink.idle();
    expect(server.received).toHaveLength(3);
    expect(new Set(server.received.map((r) => r.body)).size).toBe(1);
    const first = server.received[0]!;
    expect(first.method).toBe('POST');
    expect(first.headers['content-type']).toBe('application/json');
    expect(JSON.parse(first.body) as WebhookPayload).toEqual({ version: 1, sender: 'memtide', host: 'box-1', status: 'firing', alert: alert(1) });
    expect(sink.stats()).toEqual({ queued: 0, inFlight: false, delivered: 1, failed: 0, dropped: 0, retries: 2, abandoned: 0 });
    expect(events.map((e) => e.type)).toEqual(['retry', 'retry', 'delivered']);
    expect(events[0]).toMatchObject({ attempt: 1, delayMs: 20, error: { code: 'MEMTIDE_ERR_WEBHOOK_STATUS', status: 503 } });
    expect(events[1]).toMatchObject({ attempt: 2, delayMs: 40 });
    expect(events[2]).toMatchObject({ attempts: 3 });
  });

  it('a hanging server is timed out (the request is aborted) and retried, then given up', async () => {
    const server = await loopback(() => null);
    servers.push(server);
    const events: WebhookEvent[] = [];
    const sink = alertWebhook(webhookConfig(server.url, { timeoutMs: 150, retries: 1, backoffMs: 10 }), { onEvent: (e) => events.push(e) });
    sinks.push(sink);
    sink.write(alert(1));
    await sink.idle();
    expect(server.received).toHaveLength(2);
    expect(sink.stats()).toMatchObject({ delivered: 0, failed: 1, retries: 1 });
    expect(events.at(-1)).toMatchObject({ type: 'failed', attempts: 2, error: { code: 'MEMTIDE_ERR_WEBHOOK_TIMEOUT' } });
    await expect.poll(() => server.aborted).toBe(2);
  });

  it('a 4xx answer (the receiver rejects the payload) is not retried', async () => {
    const server = await loopback(() => 400);
    servers.push(server);
    const sink = alertWebhook(webhookConfig(server.url));
    sinks.push(sink);
    sink.write(alert(1));
    await sink.idle();
    expect(server.received).toHaveLength(1);
    expect(sink.stats()).toMatchObject({ failed: 1, retries: 0 });
  });

  it('an unreachable URL is a network error, retried, then given up', async () => {
    const server = await loopback(() => 200);
    const url = server.url;
    await server.close(); // nothing listens there now
    const events: WebhookEvent[] = [];
    const sink = alertWebhook(webhookConfig(url, { retries: 1, backoffMs: 5 }), { onEvent: (e) => events.push(e) });
    sinks.push(sink);
    sink.write(alert(1));
    await sink.idle();
    expect(events.at(-1)).toMatchObject({ type: 'failed', attempts: 2, error: { code: 'MEMTIDE_ERR_WEBHOOK_NETWORK', retryable: true } });
  });

  it('never blocks the caller: write returns before any request is made, and the queue stays bounded', async () => {
    const server = await loopback(() => null);
    servers.push(server);
    const sink = alertWebhook(webhookConfig(server.url, { timeoutMs: 60_000, maxQueue: 5 }));
    sinks.push(sink);
    for (let i = 0; i < 50; i++) expect(sink.write(alert(i))).toBeUndefined();
    // Nothing was sent from inside write: delivery starts from the scheduler, after the caller returns.
    expect(server.received).toHaveLength(0);
    expect(sink.stats()).toMatchObject({ queued: 5, inFlight: false, dropped: 45 });
    await expect.poll(() => server.received.length).toBe(1);
    // The oldest were dropped: the one in flight is the 46th (index 45).
    expect((JSON.parse(server.received[0]!.body) as WebhookPayload).alert.key).toBe('budget:c45');
    sink.close();
    expect(sink.stats()).toMatchObject({ abandoned: 5, queued: 0, inFlight: false });
    await expect.poll(() => server.aborted).toBe(1);
  });
});

describe('alertWebhook in virtual time', () => {
  const scheduler = () => new TestScheduler((actual, expected) => expect(actual).toEqual(expected));

  it('retries with exponential backoff on the scheduler: attempts at 0, 11, 32, 73 (backoff 10, 20, 40)', () => {
    const ts = scheduler();
    ts.run(({ cold, flush }) => {
      const calls: number[] = [];
      const answers: Observable<WebhookResponse>[] = [
        cold('-#', undefined, new Error('ECONNRESET')),
        cold('-(a|)', { a: { status: 502 } }),
        cold('-(a|)', { a: { status: 429 } }),
        cold('-(a|)', { a: { status: 204 } }),
      ];
      const sink = alertWebhook(webhookConfig('http://x/', { backoffMs: 10, retries: 3 }), { host: 'h', transport: () => (calls.push(ts.now()), answers[calls.length - 1]!) }, ts);
      sink.write(alert(1));
      flush();
      expect(calls).toEqual([0, 11, 32, 73]);
      expect(sink.stats()).toMatchObject({ delivered: 1, retries: 3, failed: 0 });
    });
  });

  it('gives up after `retries` retries; times out a silent transport after timeoutMs and aborts it', () => {
    const ts = scheduler();
    ts.run(({ flush }) => {
      const signals: AbortSignal[] = [];
      const calls: number[] = [];
      const events: WebhookEvent[] = [];
      const sink = alertWebhook(
        webhookConfig('http://x/', { timeoutMs: 100, retries: 2, backoffMs: 5 }),
        { transport: (_r, signal) => (calls.push(ts.now()), signals.push(signal), NEVER), onEvent: (e) => events.push(e) },
        ts,
      );
      sink.write(alert(1));
      flush();
      // 0 → timeout 100, +5 → 105 → timeout 205, +10 → 215 → timeout 315
      expect(calls).toEqual([0, 105, 215]);
      expect(signals.every((s) => s.aborted)).toBe(true);
      expect(events.map((e) => e.type)).toEqual(['retry', 'retry', 'failed']);
      expect(sink.stats()).toMatchObject({ failed: 1, retries: 2, delivered: 0 });
    });
  });

  it('queue overflow drops the OLDEST and counts; the rest are delivered in order', () => {
    const ts = scheduler();
    ts.run(({ cold, flush }) => {
      const delivered: string[] = [];
      const events: WebhookEvent[] = [];
      const sink = alertWebhook(
        webhookConfig('http://x/', { maxQueue: 3 }),
        {
          transport: (r) => {
            delivered.push((JSON.parse(r.body) as WebhookPayload).alert.key);
            return cold('--(a|)', { a: { status: 200 } });
          },
          onEvent: (e) => events.push(e),
        },
        ts,
      );
      for (let i = 1; i <= 6; i++) sink.write(alert(i));
      flush();
      expect(delivered).toEqual(['budget:c4', 'budget:c5', 'budget:c6']);
      expect(sink.stats()).toMatchObject({ dropped: 3, delivered: 3 });
      expect(events.filter((e) => e.type === 'dropped').map((e) => [e.alert.key, (e as { dropped: number }).dropped])).toEqual([
        ['budget:c1', 1],
        ['budget:c2', 2],
        ['budget:c3', 3],
      ]);
    });
  });

  it('only notifications of at least minSeverity are posted (a recovery carries the severity it resolves)', () => {
    const ts = scheduler();
    ts.run(({ flush }) => {
      const posted: [string, AlertSeverity][] = [];
      const sink = alertWebhook(
        webhookConfig('http://x/', { minSeverity: 'warning' }),
        { transport: (r) => (posted.push([JSON.parse(r.body).alert.key, JSON.parse(r.body).alert.severity]), of({ status: 200 })) },
        ts,
      );
      sink.write(alert(1, { severity: 'info' }));
      sink.write(alert(2, { severity: 'warning' }));
      sink.write(alert(3, { severity: 'critical', status: 'resolved' }));
      flush();
      expect(posted).toEqual([
        ['budget:c2', 'warning'],
        ['budget:c3', 'critical'],
      ]);
    });
  });

  it('a transport that throws synchronously is a retried network error, not a crash', () => {
    const ts = scheduler();
    ts.run(({ flush }) => {
      let calls = 0;
      const sink = alertWebhook(webhookConfig('http://x/', { retries: 1, backoffMs: 1 }), { transport: () => (calls++, throwError(() => new TypeError('fetch failed'))) }, ts);
      sink.write(alert(1));
      flush();
      expect(calls).toBe(2);
      expect(sink.stats()).toMatchObject({ failed: 1 });
    });
  });
});

describe('connectAlertSinks and createAlertSinks', () => {
  it('every sink gets every alert; a sink that throws is logged and does not stop the others; unsubscribing closes the sinks', () => {
    const lines: string[] = [];
    const logger = createLogger(() => ({ level: 'debug', format: 'text' }), (l) => lines.push(l));
    const got: string[] = [];
    let closed = 0;
    const good: AlertSink = { name: 'good', write: (a) => got.push(a.key), close: () => (closed += 1) };
    const bad: AlertSink = { name: 'bad', write: () => { throw new Error('disk on fire'); }, close: () => (closed += 1) };
    const alerts$ = new Subject<Alert>();
    const subscription = connectAlertSinks(alerts$, [bad, good], logger);
    alerts$.next(alert(1));
    alerts$.next(alert(2));
    expect(got).toEqual(['budget:c1', 'budget:c2']);
    expect(lines.filter((l) => l.includes('alert sink bad threw for budget:c1: disk on fire'))).toHaveLength(1);
    subscription.unsubscribe();
    expect(closed).toBe(2);
    alerts$.next(alert(3));
    expect(got).toHaveLength(2);
  });

  it('an error of the alert stream is logged', () => {
    const lines: string[] = [];
    const logger = createLogger(() => ({ level: 'info', format: 'text' }), (l) => lines.push(l));
    connectAlertSinks(throwError(() => new Error('operator broke')), [], logger);
    expect(lines.join('')).toContain('alert stream failed, no more alerts: operator broke');
  });

  it('builds the sinks the config asks for', () => {
    const logger = createLogger(() => ({ level: 'silent', format: 'text' }));
    const store = { appendAlerts: () => undefined };
    const none = createAlertSinks(alertsSchema.parse({ log: false }), { logger, history: store });
    expect(none.map((s) => s.name)).toEqual(['history']);
    const all = createAlertSinks(
      alertsSchema.parse({ jsonl: { path: path.join(tmp, 'a.jsonl') }, webhook: { url: 'http://127.0.0.1:9/x' } }),
      { logger, history: store },
    );
    expect(all.map((s) => s.name)).toEqual(['log', 'jsonl', 'history', 'webhook']);
    for (const sink of all) sink.close();
    expect(createAlertSinks(alertsSchema.parse({}), { logger }).map((s) => s.name)).toEqual(['log']);
  });
});
