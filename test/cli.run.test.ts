/**
 * `memtide run` end to end, through the built CLI: the dashboard and its API,
 * the SSE feed, config hot reload (valid and invalid edits), SIGTERM flushing
 * history, `history` / `export` over what it wrote, and crash safety of the
 * database under SIGKILL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_PATH, ensureBuilt } from './setup/build.js';
import { cleanEnv } from './support/cliEnv.js';
import { sleep, waitFor } from './support/wait.js';

let tmp: string;
const children: ChildProcess[] = [];

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A child with its output collected and its exit as a promise. */
function launch(args: string[]): { child: ChildProcess; stdout: () => string; stderr: () => string; exited: Promise<Exit> } {
  const child = spawn(process.execPath, [CLI_PATH, ...args], { cwd: tmp, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<Exit>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal }));
  });
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

/** Runs a short CLI command to completion (bounded). */
async function cli(args: string[], timeoutMs = 15_000): Promise<Exit & { stdout: string; stderr: string }> {
  const run = launch(args);
  const exit = await Promise.race([run.exited, sleep(timeoutMs).then(() => null)]);
  if (!exit) {
    run.child.kill('SIGKILL');
    throw new Error(`memtide ${args.join(' ')} did not exit within ${timeoutMs} ms; stderr: ${run.stderr()}`);
  }
  return { ...exit, stdout: run.stdout(), stderr: run.stderr() };
}

interface Daemon {
  child: ChildProcess;
  url: string;
  stderr: () => string;
  exited: Promise<Exit>;
}

/** Starts `memtide run --config FILE` and waits for its "memtide running ... dashboard URL" line. */
async function startDaemon(configFile: string): Promise<Daemon> {
  const run = launch(['run', '--config', configFile]);
  let exit: Exit | undefined;
  void run.exited.then((e) => (exit = e));
  const url = await waitFor(
    'the "dashboard http://..." log line',
    () => {
      if (exit) throw new Error(`memtide run exited early (${JSON.stringify(exit)}); stderr:\n${run.stderr()}`);
      return /memtide running: .*dashboard (http:\/\/[^\s/]+)/.exec(run.stderr())?.[1];
    },
    { timeoutMs: 15_000 },
  );
  return { child: run.child, url, stderr: run.stderr, exited: run.exited };
}

interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(url: string, method = 'GET'): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

interface Frame {
  event: string;
  data: string;
  atMs: number;
}

/** An SSE client that records every frame with its arrival time. */
function subscribe(url: string): Promise<{ frames: Frame[]; status: number; contentType: string; close: () => void }> {
  return new Promise((resolve, reject) => {
    const frames: Frame[] = [];
    const req = http.get(url, (res) => {
      let buffer = '';
      res.setEncoding('utf8').on('data', (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data.push(line.slice(6));
          }
          if (data.length) frames.push({ event, data: data.join('\n'), atMs: Date.now() });
        }
      });
      res.on('error', () => undefined);
      resolve({ frames, status: res.statusCode ?? 0, contentType: String(res.headers['content-type']), close: () => req.destroy() });
    });
    req.on('error', (error) => {
      if (!req.destroyed) reject(error);
    });
  });
}

const samplesIn = (frames: Frame[], fromMs: number, toMs: number) =>
  frames.filter((f) => f.event === 'sample' && f.atMs >= fromMs && f.atMs < toMs).length;

beforeAll(async () => {
  await ensureBuilt();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memtide-cli-run-'));
});

afterAll(() => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('memtide run', () => {
  let configFile: string;
  let db: string;
  let daemon: Daemon;
  let feed: Awaited<ReturnType<typeof subscribe>> | undefined;
  const config = (intervalMs: number | string) =>
    JSON.stringify({ sampling: { intervalMs }, history: { path: db, flushIntervalMs: 300 }, server: { port: 0, updateIntervalMs: 0 } }, null, 2);
  // updateIntervalMs 0: every sample reaches the feed, so its rate shows the sampling rate.

  beforeAll(async () => {
    configFile = path.join(tmp, 'memtide.json');
    db = path.join(tmp, 'm.db');
    fs.writeFileSync(configFile, config(100));
    daemon = await startDaemon(configFile);
  });

  afterAll(() => {
    feed?.close();
    if (daemon?.child.exitCode === null && daemon.child.signalCode === null) daemon.child.kill('SIGKILL');
  });

  it('logs a loopback dashboard URL on an ephemeral port', () => {
    const url = new URL(daemon.url);
    expect(url.hostname).toBe('127.0.0.1');
    expect(Number(url.port)).toBeGreaterThan(0);
    expect(url.port).not.toBe('7071');
  });

  it('GET / serves the page', async () => {
    const res = await request(`${daemon.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.body).toContain('memtide');
  });

  it('GET /api/state returns the latest sample', async () => {
    // The first scheduled sample lands right after start; allow a moment on a loaded machine.
    let body: { sample: { timestampMs: number; system: { totalBytes: number }; components: Record<string, unknown> } | null; pressure: { level: string } | null } = {
      sample: null,
      pressure: null,
    };
    const deadline = Date.now() + 3_000;
    while (!body.sample && Date.now() < deadline) {
      const res = await request(`${daemon.url}/api/state`);
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      body = JSON.parse(res.body) as typeof body;
      if (!body.sample) await sleep(50);
    }
    expect(body.sample).not.toBeNull();
    expect(body.sample!.timestampMs).toEqual(expect.any(Number));
    expect(body.sample!.system.totalBytes).toBeGreaterThan(0);
    expect(body.sample!.components).toHaveProperty('engine');
    expect(['low', 'medium', 'high', 'critical']).toContain(body.pressure?.level);
  });

  it('GET /api/events streams sample frames', async () => {
    feed = await subscribe(`${daemon.url}/api/events`);
    expect(feed.status).toBe(200);
    expect(feed.contentType).toMatch(/^text\/event-stream/);
    const frames = feed.frames;
    await waitFor('two sample frames', () => samplesIn(frames, 0, Infinity) >= 2, { timeoutMs: 2_000 });
    const sample = JSON.parse(frames.find((f) => f.event === 'sample')!.data) as { timestampMs: number; system: unknown; components: unknown };
    expect(sample.timestampMs).toEqual(expect.any(Number));
    expect(sample).toHaveProperty('system');
    expect(sample).toHaveProperty('components');
  });

  it('rejects other methods (405) and unknown paths (404)', async () => {
    const post = await request(`${daemon.url}/api/state`, 'POST');
    expect(post.status).toBe(405);
    expect(post.headers.allow).toContain('GET');
    const missing = await request(`${daemon.url}/no/such/thing`);
    expect(missing.status).toBe(404);
  });

  it('applies a valid config edit from the next sample (faster sampling)', async () => {
    const frames = feed!.frames;
    // Rate at 100 ms over a full second of the running feed.
    const beforeStart = Date.now();
    await sleep(1_000);
    const before = samplesIn(frames, beforeStart, beforeStart + 1_000);
    expect(before).toBeGreaterThanOrEqual(3);

    const stderrBefore = daemon.stderr().length;
    fs.writeFileSync(configFile, config(50));
    // The watcher debounces 150 ms; give the reload time to land, then measure.
    await sleep(600);
    const afterStart = Date.now();
    await sleep(1_000);
    const after = samplesIn(frames, afterStart, afterStart + 1_000);
    expect(after, `samples/s before ${before}, after ${after}`).toBeGreaterThan(1.3 * before);
    // Writing the file in place (truncate, then write) must not be seen as a bad edit.
    expect(daemon.stderr().slice(stderrBefore)).not.toContain('rejected');
  });

  it('rejects an invalid edit naming the key, and keeps sampling with the last good config', async () => {
    const frames = feed!.frames;
    const stderrBefore = daemon.stderr().length;
    fs.writeFileSync(configFile, config('soon'));
    const report = await waitFor(
      'the "config edit rejected" log',
      () => {
        const text = daemon.stderr().slice(stderrBefore);
        return text.includes('config edit rejected') && /sampling\.intervalMs/.test(text) ? text : undefined;
      },
      { timeoutMs: 5_000 },
    );
    expect(report).toContain('soon');
    const start = Date.now();
    await sleep(600);
    // Still at the last good 50 ms (not back at the 1 s default): ~12 frames; allow for load.
    expect(samplesIn(frames, start, start + 600)).toBeGreaterThanOrEqual(5);
    expect(daemon.child.exitCode).toBeNull();
  });

  it('exits 0 within 5 s on SIGTERM, having flushed every streamed sample', async () => {
    const streamed = feed!.frames.filter((f) => f.event === 'sample').map((f) => (JSON.parse(f.data) as { timestampMs: number }).timestampMs);
    daemon.child.kill('SIGTERM');
    const exit = await Promise.race([daemon.exited, sleep(5_000).then(() => null)]);
    expect(exit, `no exit within 5 s; stderr:\n${daemon.stderr()}`).toEqual({ code: 0, signal: null });
    expect(daemon.stderr()).toContain('SIGTERM');
    feed!.close();

    // Every sample the dashboard saw is in the history (the last batch was flushed on stop).
    const history = await cli(['history', '--db', db, '--since', '1h', '--format', 'json']);
    expect(history.code).toBe(0);
    const parsed = JSON.parse(history.stdout) as {
      components: { timestampMs: number; component: string; rssBytes: number }[];
      system: { timestampMs: number; totalBytes: number; availableBytes: number }[];
      pressure: { level: string }[];
    };
    const stored = new Set(parsed.system.map((s) => s.timestampMs));
    const missing = streamed.filter((t) => !stored.has(t));
    expect(missing, `streamed samples missing from history`).toEqual([]);
  });

  it('history --format json has component rows (engine) and system rows', async () => {
    const history = await cli(['history', '--db', db, '--since', '1h', '--format', 'json']);
    expect(history.code).toBe(0);
    const parsed = JSON.parse(history.stdout) as {
      components: { timestampMs: number; component: string; rssBytes: number }[];
      system: { timestampMs: number; totalBytes: number; availableBytes: number }[];
      pressure: { level: string }[];
    };
    const engine = parsed.components.filter((c) => c.component === 'engine');
    expect(engine.length).toBeGreaterThan(10);
    expect(engine.every((c) => c.rssBytes > 0)).toBe(true);
    expect(parsed.system.length).toBeGreaterThan(10);
    expect(parsed.system[0]!.totalBytes).toBeGreaterThan(0);
    // The first level is recorded as a pressure event.
    expect(parsed.pressure.length).toBeGreaterThanOrEqual(1);
  });

  it('history --format csv is the trace format', async () => {
    const history = await cli(['history', '--db', db, '--since', '1h', '--format', 'csv']);
    expect(history.code).toBe(0);
    const lines = history.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('timestamp_ms,component,rss_bytes');
    expect(lines.length).toBeGreaterThan(10);
    expect(lines.slice(1).every((l) => /^\d+,[a-z][a-z0-9_.-]*,\d+$/.test(l))).toBe(true);
  });

  it('export writes a trace CSV with system.total and system.available', async () => {
    const out = path.join(tmp, 't.csv');
    const result = await cli(['export', out, '--db', db]);
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/wrote \d+ rows to /);
    const lines = fs.readFileSync(out, 'utf8').trimEnd().split('\n');
    expect(lines[0]).toBe('timestamp_ms,component,rss_bytes');
    const components = new Set(lines.slice(1).map((l) => l.split(',')[1]));
    expect(components).toContain('system.total');
    expect(components).toContain('system.available');
    expect(components).toContain('engine');
    // Written under a temporary name and renamed: nothing left behind.
    expect(fs.readdirSync(tmp).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});

describe('memtide run crash safety', () => {
  it('SIGKILL leaves a consistent database missing at most one flush interval', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'crash-'));
    const dbFile = path.join(dir, 'crash.db');
    const intervalMs = 100;
    const flushIntervalMs = 200;
    const configFile = path.join(dir, 'memtide.json');
    fs.writeFileSync(configFile, JSON.stringify({ sampling: { intervalMs }, history: { path: dbFile, flushIntervalMs }, server: { port: 0 } }));
    const daemon = await startDaemon(configFile);
    try {
      await sleep(1_500);
      const killedAt = Date.now();
      daemon.child.kill('SIGKILL');
      const exit = await Promise.race([daemon.exited, sleep(5_000).then(() => null)]);
      expect(exit?.signal).toBe('SIGKILL');

      const sqlite = new Database(dbFile);
      try {
        expect(sqlite.pragma('integrity_check', { simple: true })).toBe('ok');
        const { newest, count } = sqlite.prepare('SELECT max(timestamp_ms) AS newest, count(*) AS count FROM system_samples').get() as {
          newest: number | null;
          count: number;
        };
        expect(count).toBeGreaterThanOrEqual(5);
        expect(newest).not.toBeNull();
        const lagMs = killedAt - newest!;
        expect(lagMs, `newest stored sample ${lagMs} ms before the kill`).toBeLessThanOrEqual(flushIntervalMs + intervalMs + 500);
        const components = sqlite.prepare('SELECT max(timestamp_ms) AS newest FROM component_samples').get() as { newest: number | null };
        expect(components.newest).toBe(newest);
      } finally {
        sqlite.close();
      }
    } finally {
      if (daemon.child.exitCode === null && daemon.child.signalCode === null) daemon.child.kill('SIGKILL');
    }
  });
});
