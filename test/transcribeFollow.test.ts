/**
 * `memtide transcribe --follow URL`: the command follows a runner's batch
 * hold from its `/api/events` stream. One tiny local HTTP server plays both
 * the runner (`GET /api/events`, `batch` events the test sends) and a
 * whisper-server (`POST /inference`, counting calls, answering each chunk
 * when the test lets it), so every chunk the command transcribes is seen
 * (`--transcriber server`). The command runs in-process as in
 * transcribeCommand.test.ts; one test spawns the real CLI (through tsx) to
 * show the process exits by itself while the event stream is still open.
 */
import { execFile } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Subject } from 'rxjs';
import { ConfigError } from '../src/app/config.js';
import { UsageError } from '../src/app/cliArgs.js';
import { transcribeCommand, transcribeHelp } from '../src/app/commands/transcribe.js';
import { createMemtide } from '../src/app/memtide.js';
import { startServer } from '../src/app/server.js';
import type { BatchHold } from '../src/operators/yieldBatch.js';
import { silentLogger } from '../src/sinks/logger.js';
import { cleanEnv } from './support/cliEnv.js';
import { REPO_ROOT } from './setup/build.js';
import { sleep, waitFor } from './support/wait.js';
import { tempDir, writeWav } from './support/wav.js';

let tmp: ReturnType<typeof tempDir>;
let wav: string; // 4 s: four 1-second chunks
beforeAll(() => {
  tmp = tempDir('memtide-transcribe-follow-');
  wav = writeWav(path.join(tmp.dir, 'four.wav'), { seconds: 4, sampleRate: 16000 });
});
afterAll(() => tmp.cleanup());

interface Runner {
  base: string;
  /** Open event streams. */
  streams: Set<http.ServerResponse>;
  /** Requests to /api/events so far. */
  eventRequests: number;
  /** Chunk indexes posted to /inference, in arrival order. */
  inference: number[];
  /** Answers the pending /inference request of chunk `index`. */
  answer(index: number): void;
  /** Answer every chunk at once from now on. */
  answerAll(): void;
  /** Back to answering chunks only when told (between tests). */
  reset(): void;
  send(event: string, data: string): void;
  /** How /api/events answers: an open stream (default), or an error status. */
  eventsMode: 'stream' | 503;
  sockets: Set<Socket>;
  close(): Promise<void>;
}

async function startRunner(): Promise<Runner> {
  const pending = new Map<number, () => void>();
  let auto = false;
  const sockets = new Set<Socket>();
  const runner: Runner = {
    base: '',
    streams: new Set(),
    eventRequests: 0,
    inference: [],
    answer: (index) => pending.get(index)?.(),
    answerAll: () => {
      auto = true;
      for (const go of pending.values()) go();
    },
    reset: () => {
      auto = false;
      pending.clear();
      runner.eventsMode = 'stream';
      runner.inference = [];
      runner.eventRequests = 0;
      for (const res of runner.streams) res.destroy();
    },
    send: (event, data) => {
      for (const res of runner.streams) res.write(`event: ${event}\ndata: ${data}\n\n`);
    },
    eventsMode: 'stream',
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  const server = http.createServer((req, res) => {
    if (req.url === '/api/events') {
      runner.eventRequests += 1;
      if (runner.eventsMode !== 'stream') {
        res.writeHead(runner.eventsMode).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
      res.write(': memtide\n\n');
      runner.streams.add(res);
      res.on('close', () => runner.streams.delete(res));
      return;
    }
    if (req.method === 'POST' && req.url === '/inference') {
      const body: Buffer[] = [];
      req.on('data', (b: Buffer) => body.push(b));
      req.on('end', () => {
        const index = Number(/chunk-(\d+)\.wav/.exec(Buffer.concat(body).toString('latin1'))?.[1] ?? -1);
        runner.inference.push(index);
        const go = () => {
          pending.delete(index);
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ text: `chunk ${index}` }));
        };
        if (auto) go();
        else pending.set(index, go);
      });
      return;
    }
    res.writeHead(404).end();
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  runner.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return runner;
}

let runner: Runner;
beforeAll(async () => {
  runner = await startRunner();
});
afterAll(() => runner.close());
afterEach(() => runner.reset());

/** The command running in-process; stdout and stderr readable while it runs. */
function start(args: string[]) {
  const io = { stdout: '', stderr: '' };
  const result = transcribeCommand(args, (t) => (io.stdout += t), {
    stderr: (t) => (io.stderr += t),
    progress: false,
    follow: { initialRetryMs: 20, maxRetryMs: 100, connectTimeoutMs: 1000 },
  }).then(
    (code) => code,
    (error: unknown) => {
      io.stderr += `memtide transcribe: ${(error as Error).message}\n`;
      return error instanceof UsageError || error instanceof ConfigError ? 2 : 1;
    },
  );
  return { io, result };
}

const serverArgs = () => ['--transcriber', 'server', '--server', runner.base, '--chunk-seconds', '1', '--ignore-pressure', '--follow', runner.base, wav];
const batch = (hold: boolean, reason: string) => JSON.stringify({ hold, reason, atMs: Date.now() });
const segments = (stdout: string) => stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { startMs: number; text: string });

describe('memtide transcribe --follow', () => {
  it('while the runner holds, no new chunk is transcribed; after the hold all chunks come out in order; both edges are reported', async () => {
    const { io, result } = start(serverArgs());
    await waitFor('the event stream', () => runner.streams.size === 1);
    runner.send('batch', '{"hold": maybe}'); // a broken event: warned about, ignored
    await waitFor('chunk 0 to be posted', () => runner.inference.length === 1);
    runner.send('batch', batch(true, 'Ollama busy (1 request(s) in flight)'));
    await waitFor('the hold line', () => io.stderr.includes('batch hold ('));
    runner.answer(0);
    await waitFor('chunk 0 line', () => io.stdout.includes('chunk 0'));
    await sleep(300); // held: nothing else may start
    expect(runner.inference).toEqual([0]);
    expect(segments(io.stdout)).toHaveLength(1);

    runner.answerAll();
    runner.send('batch', batch(false, 'Ollama idle'));
    expect(await result).toBe(0);
    expect(runner.inference).toEqual([0, 1, 2, 3]);
    expect(segments(io.stdout).map((s) => [s.startMs, s.text])).toEqual([
      [0, 'chunk 0'],
      [1000, 'chunk 1'],
      [2000, 'chunk 2'],
      [3000, 'chunk 3'],
    ]);
    const lines = io.stderr.trim().split('\n');
    expect(lines).toEqual([
      expect.stringMatching(/^memtide transcribe: warning: ignored an event from the runner: batch event: not JSON .*\{"hold": maybe\}$/),
      'memtide transcribe: batch hold (Ollama busy (1 request(s) in flight)): waiting; the chunk in flight finishes, no new chunk starts',
      'memtide transcribe: batch hold lifted (Ollama idle): going on',
    ]);
    await waitFor('the event stream to be closed', () => runner.streams.size === 0);
  });

  it('a runner that drops the stream mid-hold does not block the work: one warning, not held while it is gone', async () => {
    const { io, result } = start(serverArgs());
    await waitFor('the event stream', () => runner.streams.size === 1);
    await waitFor('chunk 0 to be posted', () => runner.inference.length === 1);
    runner.send('batch', batch(true, 'summary model loaded'));
    await waitFor('the hold line', () => io.stderr.includes('batch hold ('));
    runner.answer(0);
    await sleep(200);
    expect(runner.inference).toEqual([0]); // held

    runner.eventsMode = 503; // the runner is gone for good: every reconnect fails
    for (const res of runner.streams) res.destroy();
    await waitFor('chunk 1 to be posted', () => runner.inference.length === 2);
    await waitFor('several reconnect attempts', () => runner.eventRequests >= 4); // the first request plus 3 retries
    runner.answerAll();
    expect(await result).toBe(0);
    expect(segments(io.stdout).map((s) => s.startMs)).toEqual([0, 1000, 2000, 3000]);
    const warnings = io.stderr.split('\n').filter((l) => l.includes('warning'));
    expect(warnings).toEqual([expect.stringMatching(/^memtide transcribe: warning: http:\/\/127\.0\.0\.1:\d+\/api\/events: the (event stream broke \(ECONNRESET\)|runner closed the event stream); not held while it is unreachable, reconnecting in the background$/)]);
    expect(io.stderr).toContain('memtide transcribe: batch hold ended (lost the runner): going on\n');
    // No reconnect after the end: the retry timer was cancelled.
    const attempts = runner.eventRequests;
    await sleep(250);
    expect(runner.eventRequests).toBe(attempts);
  });

  it('a runner that is not there at all: the run goes on at once, with one warning', async () => {
    const gone = await startRunner();
    const base = gone.base;
    await gone.close();
    const { io, result } = start(['--transcriber', 'server', '--server', runner.base, '--chunk-seconds', '1', '--ignore-pressure', '--follow', base, wav]);
    await waitFor('chunk 0 to be posted', () => runner.inference.length === 1); // not waiting for the runner
    await waitFor('the warning', () => io.stderr.includes('warning'));
    await sleep(100); // more failed reconnects (every 20-100 ms): still one warning
    runner.answerAll();
    expect(await result).toBe(0);
    expect(segments(io.stdout).map((s) => s.startMs)).toEqual([0, 1000, 2000, 3000]);
    expect(io.stderr).toMatch(/^memtide transcribe: warning: cannot reach http:\/\/127\.0\.0\.1:\d+\/api\/events \(ECONNREFUSED\); not held while it is unreachable, reconnecting in the background\n$/);
  });

  it('a bad --follow URL exits 2 naming the flag; a bad transcription.follow names the key', async () => {
    for (const bad of ['not a url', 'ftp://127.0.0.1:7071', 'localhost:7071']) {
      const { io, result } = start(['--transcriber', 'none', '--follow', bad, wav]);
      expect(await result).toBe(2);
      expect(io.stderr).toBe(`memtide transcribe: --follow: expected the http:// URL of a running memtide runner (e.g. http://127.0.0.1:7071), got "${bad}"\n`);
    }
    const missing = start(['--transcriber', 'none', wav, '--follow']);
    expect(await missing.result).toBe(2);
    expect(missing.io.stderr).toContain("'--follow <value>' argument missing");
    const config = start(['--transcriber', 'none', '--set', 'transcription.follow=nope', wav]);
    expect(await config.result).toBe(2);
    expect(config.io.stderr).toContain('transcription.follow: must be an http:// or https:// URL');
    expect(transcribeHelp).toContain('--follow URL');
  });

  it('transcription.follow from config is followed like the flag', async () => {
    const { io, result } = start(['--transcriber', 'server', '--server', runner.base, '--chunk-seconds', '1', '--ignore-pressure', '--set', `transcription.follow=${runner.base}`, wav]);
    await waitFor('the event stream', () => runner.streams.size === 1);
    runner.send('batch', batch(true, 'held from config'));
    await waitFor('the hold line', () => io.stderr.includes('held from config'));
    runner.answerAll();
    await sleep(200);
    expect(runner.inference.length).toBeLessThanOrEqual(1); // at most the chunk that started before the hold
    runner.send('batch', batch(false, 'free'));
    expect(await result).toBe(0);
    expect(segments(io.stdout)).toHaveLength(4);
  });

  it('follows a real runner server: the batch hold attached to memtide, replayed on connect, over the real /api/events route', async () => {
    const memtide = createMemtide({ config: { server: { port: 0, tokenFile: path.join(tmp.dir, 'token') } } });
    const server = await startServer({ memtide, logger: silentLogger });
    const holds = new Subject<BatchHold>();
    memtide.attachBatchHold(holds);
    try {
      holds.next({ hold: true, reason: 'Ollama busy (1 request(s) in flight): batch transcription waits', atMs: Date.now() });
      const { io, result } = start(['--transcriber', 'server', '--server', runner.base, '--chunk-seconds', '1', '--ignore-pressure', '--follow', server.url, wav]);
      await waitFor('the replayed hold', () => io.stderr.includes('batch hold (Ollama busy'));
      runner.answerAll();
      await sleep(300);
      expect(runner.inference.length).toBeLessThanOrEqual(1); // at most the chunk that started before the replay arrived
      holds.next({ hold: false, reason: 'Ollama idle', atMs: Date.now() });
      expect(await result).toBe(0);
      expect(segments(io.stdout).map((s) => s.startMs)).toEqual([0, 1000, 2000, 3000]);
      expect(io.stderr).toContain('memtide transcribe: batch hold lifted (Ollama idle): going on\n');
    } finally {
      await server.close();
      memtide.stop();
    }
  });

  it('the real CLI exits by itself when done, although the runner keeps its event stream open; one connection for all files', async () => {
    const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = execFile(
        process.execPath,
        ['--import', 'tsx', path.join(REPO_ROOT, 'src/app/cli.ts'), 'transcribe', '--transcriber', 'none', '--chunk-seconds', '1', '--follow', runner.base, wav, wav],
        { cwd: REPO_ROOT, env: cleanEnv(), timeout: 15_000 },
        (error, stdout, stderr) => resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, stdout, stderr }),
      );
      child.on('error', () => undefined);
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ files: 2, chunks: 8 });
    expect(runner.eventRequests).toBe(1); // kept open between the files, not reconnected per file
  }, 20_000);
});
