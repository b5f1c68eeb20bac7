/**
 * `memtide transcribe` and `POST /v1/transcribe` end to end: generated WAV
 * fixtures, the real decoder, and the real whisper.cpp engine on the
 * generated random-weight model (one run: its text is nonsense, its chunks
 * and bounds are real). The command is called as a function (cli.ts maps a
 * thrown UsageError/ConfigError to exit 2 and other errors to 1, as `run`
 * does here); once cli.ts registers it, the built CLI is run as well.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../src/app/config.js';
import { UsageError } from '../src/app/cliArgs.js';
import { transcribeCommand, transcribeHelp } from '../src/app/commands/transcribe.js';
import { createMemtide, type Memtide } from '../src/app/memtide.js';
import { transcriptionRoutes } from '../src/app/routes/transcribe.js';
import { startServer, type MemtideServer } from '../src/app/server.js';
import { silentLogger } from '../src/sinks/logger.js';
import { CLI_PATH, ensureBuilt, REPO_ROOT } from './setup/build.js';
import { tempDir, wavBytes, wavHeader, writeWav } from './support/wav.js';
import { randomTinyModelPath } from './support/whisperModel.js';

let tmp: ReturnType<typeof tempDir>;
beforeAll(() => {
  tmp = tempDir('memtide-transcribe-cmd-');
});
afterAll(() => tmp.cleanup());

/** The command as cli.ts runs it: exit code, stdout, stderr. */
async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  try {
    const code = await transcribeCommand(args, (t) => (stdout += t), { stderr: (t) => (stderr += t), progress: false });
    return { code, stdout, stderr };
  } catch (error) {
    stderr += `memtide transcribe: ${(error as Error).message}\n`;
    return { code: error instanceof UsageError || error instanceof ConfigError ? 2 : 1, stdout, stderr };
  }
}

/** A WAV whose header is broken at byte 36 (a "data" chunk before "fmt "). */
function badHeaderWav(file: string): string {
  const bytes = wavBytes({ seconds: 1 });
  bytes.write('JUNK', 12, 'ascii');
  fs.writeFileSync(file, bytes);
  return file;
}

describe('memtide transcribe', () => {
  it('--transcriber none decodes and chunks only, and prints the JSON summary', async () => {
    const a = writeWav(path.join(tmp.dir, 'a.wav'), { seconds: 65, sampleRate: 44100, channels: 2 });
    const b = writeWav(path.join(tmp.dir, 'b.wav'), { seconds: 10, sampleRate: 8000 });
    const { code, stdout, stderr } = await run(['--transcriber', 'none', a, b]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toEqual({
      files: 2,
      chunks: 4,
      durationMs: 75000,
      perFile: [
        { file: a, chunks: 3, durationMs: 65000 },
        { file: b, chunks: 1, durationMs: 10000 },
      ],
    });
  });

  it('--chunk-seconds sets the chunking; a bad file fails with exit 1 naming it and the byte offset; the others are still counted', async () => {
    const a = writeWav(path.join(tmp.dir, 'c.wav'), { seconds: 5 });
    const bad = badHeaderWav(path.join(tmp.dir, 'bad.wav'));
    const { code, stdout, stderr } = await run(['--transcriber', 'none', '--chunk-seconds', '2', bad, a]);
    expect(code).toBe(1);
    expect(stderr).toMatch(new RegExp(`^memtide transcribe: ${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: byte 36: .+ \\[MEMTIDE_ERR_AUDIO_HEADER\\]\\n$`));
    const summary = JSON.parse(stdout) as { chunks: number; perFile: Array<{ file: string; error?: string }> };
    expect(summary.chunks).toBe(3);
    expect(summary.perFile[0]).toMatchObject({ file: bad, chunks: 0, error: expect.stringContaining('byte 36') });
  });

  it('whisper: a 35 s WAV gives 2 JSON lines in --out; a corrupt second file exits 1, names the file and byte offset, and the first file\'s lines are kept', async () => {
    const model = randomTinyModelPath();
    const good = writeWav(path.join(tmp.dir, 'good35.wav'), { seconds: 35, sampleRate: 22050 });
    const bad = badHeaderWav(path.join(tmp.dir, 'corrupt.wav'));
    const out = path.join(tmp.dir, 'transcript.jsonl');
    const { code, stdout, stderr } = await run(['--model', model, '--set', 'transcription.threads=2', '--out', out, good, bad]);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toContain(`${bad}: byte 36:`);
    const lines = fs.readFileSync(out, 'utf8').split('\n');
    expect(lines.at(-1)).toBe(''); // ends with a newline: no half line
    const segments = lines.slice(0, -1).map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(segments.map(({ file, startMs, endMs }) => ({ file, startMs, endMs }))).toEqual([
      { file: good, startMs: 0, endMs: 30000 },
      { file: good, startMs: 30000, endMs: 35000 },
    ]);
    expect(segments.every((s) => Object.keys(s).join() === 'file,startMs,endMs,text' && typeof s.text === 'string')).toBe(true);
  });

  it('usage errors exit 2 with a clear message', async () => {
    const wav = writeWav(path.join(tmp.dir, 'u.wav'), { seconds: 1 });
    expect(await run([])).toMatchObject({ code: 2, stderr: expect.stringContaining('no input files') });
    expect(await run(['--transcriber', 'gpu', wav])).toMatchObject({ code: 2, stderr: expect.stringContaining('--transcriber: expected one of whisper, server, none') });
    expect(await run([wav])).toMatchObject({ code: 2, stderr: expect.stringContaining('transcription.modelPath is not set') });
    expect(await run(['--model', path.join(tmp.dir, 'nope.bin'), wav])).toMatchObject({ code: 2, stderr: expect.stringContaining('nope.bin: no such file') });
    expect(await run(['--model', wav, wav])).toMatchObject({ code: 2, stderr: expect.stringContaining('byte 0: not a whisper.cpp ggml model') });
    expect(await run(['--chunk-seconds', 'x', '--transcriber', 'none', wav])).toMatchObject({ code: 2, stderr: expect.stringContaining('--chunk-seconds: expected a number') });
    expect(await run(['--concurrency', '0', '--transcriber', 'none', wav])).toMatchObject({ code: 2, stderr: expect.stringContaining('transcription.maxConcurrent') });
    expect(await run(['--help'])).toMatchObject({ code: 0, stdout: `${transcribeHelp}\n` });
  });

  it('a missing file exits 1 and names it', async () => {
    const missing = path.join(tmp.dir, 'missing.wav');
    const { code, stderr } = await run(['--transcriber', 'none', missing]);
    expect(code).toBe(1);
    expect(stderr).toContain(`${missing}: cannot read it: no such file`);
  });

  const registered = fs.readFileSync(path.join(REPO_ROOT, 'src/app/cli.ts'), 'utf8').includes('transcribeCommand');
  it.skipIf(!registered)('the built CLI: `memtide transcribe --transcriber none` prints the summary; a bad file exits 1', async () => {
    await ensureBuilt();
    const wav = writeWav(path.join(tmp.dir, 'cli.wav'), { seconds: 31 });
    const bad = badHeaderWav(path.join(tmp.dir, 'cli-bad.wav'));
    const result = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(process.execPath, [CLI_PATH, 'transcribe', '--transcriber', 'none', wav, bad], (error, stdout, stderr) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      ),
    );
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ files: 2, chunks: 2, durationMs: 31000 });
    expect(result.stderr).toContain(`${bad}: byte 36:`);
  });
});

describe('POST /v1/transcribe', () => {
  let memtide: Memtide;
  let server: MemtideServer;
  const uploadLimit = 400_000;

  beforeAll(async () => {
    memtide = createMemtide({
      config: {
        server: { port: 0, tokenFile: path.join(tmp.dir, 'token') },
        audio: { chunkSeconds: 1 },
        transcription: { transcriber: 'none', uploadLimitBytes: uploadLimit },
      },
    });
    server = await startServer({ memtide, logger: silentLogger, modules: [transcriptionRoutes] });
  });
  afterAll(async () => {
    await server.close();
    memtide.stop();
  });

  interface Reply {
    status: number;
    headers: http.IncomingHttpHeaders;
    body: string;
  }

  /** A request whose body is written by `write` (chunked unless content-length is set); resolves with the whole reply. */
  function request(
    headers: Record<string, string>,
    write: (req: http.ClientRequest, response: Promise<http.IncomingMessage>) => Promise<void> | void,
    query = '',
  ): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const url = new URL(`/v1/transcribe${query}`, server.url);
      const req = http.request(url, { method: 'POST', headers: { authorization: `Bearer ${server.token}`, ...headers } });
      const response = new Promise<http.IncomingMessage>((res) => req.once('response', res));
      response.then((res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      }, reject);
      req.on('error', () => undefined); // the server may close while we still write (413): the reply decides
      void Promise.resolve(write(req, response)).catch(reject);
    });
  }

  const lines = (body: string) => body.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);

  it('streams: segments come back while the upload is still being sent; a summary line ends the reply', async () => {
    const audio = wavBytes({ seconds: 6 });
    const reply = await request({ 'content-type': 'audio/wav' }, async (req, response) => {
      req.write(audio.subarray(0, 44 + 3 * 32000)); // header + 3 s
      const res = await response; // headers arrive with the first segment, before the rest is sent
      // the collector listens too: this only waits for the first line
      const first = await new Promise<string>((r) => res.once('data', (d: Buffer | string) => r(String(d))));
      expect(first).toContain('"startMs":0');
      req.end(audio.subarray(44 + 3 * 32000));
    }, '?name=meeting.wav');
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toBe('application/x-ndjson; charset=utf-8');
    const parsed = lines(reply.body);
    expect(parsed.slice(0, -1)).toEqual(Array.from({ length: 6 }, (_, i) => ({ file: 'meeting.wav', startMs: i * 1000, endMs: (i + 1) * 1000, text: '' })));
    expect(parsed.at(-1)).toEqual({ done: true, file: 'meeting.wav', chunks: 6, durationMs: 6000 });
  });

  it('415 for a content type that is not audio; 401 without the token (it is a mutating route)', async () => {
    const json = await request({ 'content-type': 'application/json' }, (req) => {
      req.end('{}');
    });
    expect(json.status).toBe(415);
    expect(JSON.parse(json.body)).toMatchObject({ code: 'MEMTIDE_ERR_CONTENT_TYPE' });
    const anonymous = await new Promise<number>((resolve, reject) => {
      const req = http.request(new URL('/v1/transcribe', server.url), { method: 'POST', headers: { 'content-type': 'audio/wav' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end(wavBytes({ seconds: 1 }));
    });
    expect(anonymous).toBe(401);
  });

  it('413 at once for a declared size over the limit, without reading the body', async () => {
    const reply = await request({ 'content-type': 'audio/wav', 'content-length': String(uploadLimit + 1) }, async (req, response) => {
      req.write(Buffer.alloc(1000));
      await response; // answered before the body is sent; the server closes the connection after the reply
    });
    expect(reply.status).toBe(413);
    expect(JSON.parse(reply.body)).toMatchObject({ code: 'MEMTIDE_ERR_BODY_TOO_LARGE' });
  });

  it('413 as soon as a streamed upload passes the limit (before any segment), and the server stops reading', async () => {
    const chunkSeconds = memtide.config().audio.chunkSeconds;
    expect(chunkSeconds).toBe(1);
    // chunks of 1 s; a 48 kHz 8-channel header makes the first chunk need 768 000 bytes of input,
    // so the 400 000-byte limit is passed before any segment (and any response header) exists.
    let sent = 0;
    let stillWriting = true;
    let closed: Promise<boolean> = Promise.resolve(false);
    const reply = await request({ 'content-type': 'audio/x-wav' }, async (req, response) => {
      closed = new Promise((resolve) => {
        req.once('close', () => resolve(true));
        setTimeout(() => resolve(false), 5000).unref();
      });
      const header = wavHeader(100_000_000, 48000, 8);
      req.write(header);
      // one write beyond the limit: the server must answer while the client still has data to send
      req.write(Buffer.alloc(uploadLimit + 10_000));
      sent = header.length + uploadLimit + 10_000;
      const res = await response;
      expect(res.statusCode).toBe(413);
      stillWriting = req.writable; // the client had not finished: the server did not wait for the body
    });
    expect(sent).toBeGreaterThan(uploadLimit);
    expect(stillWriting).toBe(true);
    expect(reply.status).toBe(413);
    expect(JSON.parse(reply.body)).toEqual({ error: `upload exceeds transcription.uploadLimitBytes (${uploadLimit} bytes)`, code: 'MEMTIDE_ERR_BODY_TOO_LARGE' });
    expect(reply.headers.connection).toBe('close');
    // the server closed the connection instead of draining the rest of the upload
    expect(await closed).toBe(true);
  });

  it('bad audio before any segment: 400 naming the byte offset; one upload at a time (429 while one runs)', async () => {
    const bad = await request({ 'content-type': 'audio/wav' }, (req) => {
      const bytes = wavBytes({ seconds: 1 });
      bytes.write('JUNK', 12, 'ascii');
      req.end(bytes);
    }, '?name=broken.wav');
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body)).toMatchObject({ code: 'MEMTIDE_ERR_AUDIO_HEADER', error: expect.stringContaining('broken.wav: byte 36:') });

    const audio = wavBytes({ seconds: 2 });
    let second: Reply | null = null;
    const first = await request({ 'content-type': 'audio/wav' }, async (req) => {
      req.write(audio.subarray(0, 1000)); // the first upload is open...
      await new Promise((r) => setTimeout(r, 100));
      second = await request({ 'content-type': 'audio/wav' }, (r2) => {
        r2.end(audio);
      }); // ...so this one is refused
      req.end(audio.subarray(1000));
    });
    expect(second).toMatchObject({ status: 429, headers: expect.objectContaining({ 'retry-after': '10' }) });
    expect(first.status).toBe(200);
    expect(lines(first.body).at(-1)).toEqual({ done: true, file: 'upload', chunks: 2, durationMs: 2000 });
  });

  it('an error after segments were sent ends the stream with an error line', async () => {
    const audio = wavBytes({ seconds: 3 });
    const reply = await request({ 'content-type': 'audio/wav' }, (req) => {
      req.end(audio.subarray(0, 44 + 2.5 * 32000));
    }, '?name=cut.wav'); // declared 3 s, 2.5 s sent
    expect(reply.status).toBe(200);
    const parsed = lines(reply.body);
    expect(parsed.slice(0, 2).map((l) => l.startMs)).toEqual([0, 1000]);
    expect(parsed.at(-1)).toMatchObject({ code: 'MEMTIDE_ERR_AUDIO_TRUNCATED', error: expect.stringContaining('cut.wav: byte 80044') });
  });
});
