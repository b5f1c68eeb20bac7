/**
 * The whisper-server client against a loopback fake of whisper.cpp's
 * examples/server: `POST /inference`, multipart/form-data with the fields
 * server.cpp reads (`file`, `temperature`, `response_format`, `language`,
 * `translate`), answering `{"text": ...}` or `{"error": ...}` with 400/500.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { lastValueFrom, toArray } from 'rxjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { audioSchema } from '../src/app/schema/audio.js';
import type { AudioChunk } from '../src/model.js';
import { createWhisperServer, inferenceUrl } from '../src/sources/transcribers/whisperServer.js';
import { transcribeFiles } from '../src/streams/transcription.js';
import { tempDir, writeWav } from './support/wav.js';

interface Part {
  name: string;
  filename: string | null;
  contentType: string | null;
  data: Buffer;
}

interface Received {
  method: string;
  url: string;
  contentType: string;
  parts: Map<string, Part>;
}

/** Splits a multipart/form-data body (RFC 7578) into its parts. */
function parseMultipart(body: Buffer, contentType: string): Map<string, Part> {
  const boundary = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(contentType);
  if (!boundary) throw new Error(`no boundary in ${contentType}`);
  const delimiter = Buffer.from(`--${boundary[1] ?? boundary[2]}`);
  const parts = new Map<string, Part>();
  let at = body.indexOf(delimiter);
  while (at >= 0) {
    const start = at + delimiter.length;
    if (body.subarray(start, start + 2).toString() === '--') break;
    const next = body.indexOf(delimiter, start);
    const raw = body.subarray(start + 2, next - 2); // skip CRLF after the delimiter and before the next
    const split = raw.indexOf('\r\n\r\n');
    const head = raw.subarray(0, split).toString('utf8');
    const disposition = /content-disposition:\s*form-data;\s*name="([^"]+)"(?:;\s*filename="([^"]*)")?/i.exec(head);
    const type = /content-type:\s*([^\r\n]+)/i.exec(head);
    if (disposition) {
      parts.set(disposition[1]!, { name: disposition[1]!, filename: disposition[2] ?? null, contentType: type?.[1] ?? null, data: raw.subarray(split + 4) });
    }
    at = next;
  }
  return parts;
}

type Behaviour = (received: Received, res: http.ServerResponse) => void;

let server: http.Server;
let baseUrl: string;
let behaviour: Behaviour;
const requests: Received[] = [];
const hanging: http.ServerResponse[] = [];
let tmp: ReturnType<typeof tempDir>;

beforeAll(async () => {
  tmp = tempDir('memtide-whisper-server-');
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const contentType = req.headers['content-type'] ?? '';
      const received: Received = { method: req.method ?? '', url: req.url ?? '', contentType, parts: parseMultipart(Buffer.concat(chunks), contentType) };
      requests.push(received);
      behaviour(received, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterEach(() => {
  requests.length = 0;
  for (const res of hanging.splice(0)) res.destroy();
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  tmp.cleanup();
});

const json = (res: http.ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
};

function chunk(index = 3, seconds = 0.5): AudioChunk {
  const samples = Int16Array.from({ length: seconds * 16000 }, (_, i) => (i * 37) % 20000 - 10000);
  return { source: '/recordings/standup.mp3', index, startMs: 0, endMs: seconds * 1000, firstSample: 0, sampleRate: 16000, samples, last: false };
}

describe('whisper-server transcriber', () => {
  it('posts the chunk as a 16 kHz mono WAV in "file" with temperature, response_format=json, language, translate; returns the trimmed text', async () => {
    behaviour = (_r, res) => json(res, 200, { text: '  And so my fellow Americans.\n' });
    const t = createWhisperServer({ serverUrl: baseUrl, requestTimeoutMs: 5000, temperature: 0.2, language: 'de', translate: true });
    const c = chunk();
    expect(await t.transcribe(c)).toEqual({ text: 'And so my fellow Americans.' });

    const [r] = requests;
    expect(r).toMatchObject({ method: 'POST', url: '/inference' });
    expect(r!.contentType).toMatch(/^multipart\/form-data; boundary=/);
    expect([...r!.parts.keys()].sort()).toEqual(['file', 'language', 'response_format', 'temperature', 'translate']);
    expect(r!.parts.get('temperature')!.data.toString()).toBe('0.2');
    expect(r!.parts.get('response_format')!.data.toString()).toBe('json');
    expect(r!.parts.get('language')!.data.toString()).toBe('de');
    expect(r!.parts.get('translate')!.data.toString()).toBe('true');
    const file = r!.parts.get('file')!;
    expect(file.filename).toBe('standup.mp3.chunk-3.wav');
    expect(file.contentType).toBe('audio/wav');
    const wav = file.data;
    expect(wav.toString('ascii', 0, 4)).toBe('RIFF');
    expect(wav.toString('ascii', 8, 12)).toBe('WAVE');
    expect({ format: wav.readUInt16LE(20), channels: wav.readUInt16LE(22), rate: wav.readUInt32LE(24), bits: wav.readUInt16LE(34) }).toEqual({ format: 1, channels: 1, rate: 16000, bits: 16 });
    expect(wav.readUInt32LE(40)).toBe(c.samples.length * 2);
    expect(new Int16Array(wav.buffer.slice(wav.byteOffset + 44, wav.byteOffset + wav.length))).toEqual(c.samples);
    expect(t.loaded).toBe(false);
    expect(t.modelBytes).toBeNull();
    await expect(t.unload()).resolves.toBeUndefined();
  });

  it('appends /inference to a base URL with a path, and keeps a URL that already names it', () => {
    expect(inferenceUrl('http://127.0.0.1:8178')).toBe('http://127.0.0.1:8178/inference');
    expect(inferenceUrl('http://host:8080/whisper/')).toBe('http://host:8080/whisper/inference');
    expect(inferenceUrl('http://host:8080/v2/inference')).toBe('http://host:8080/v2/inference');
  });

  it("a server error becomes MEMTIDE_ERR_TRANSCRIBER_SERVER with the server's own reason", async () => {
    const t = createWhisperServer({ serverUrl: baseUrl, requestTimeoutMs: 5000 });
    behaviour = (_r, res) => json(res, 500, { error: 'failed to process audio' });
    await expect(t.transcribe(chunk())).rejects.toMatchObject({
      code: 'MEMTIDE_ERR_TRANSCRIBER_SERVER',
      message: `whisper-server at ${baseUrl}/inference (/recordings/standup.mp3 chunk 3) answered 500: failed to process audio`,
    });
    behaviour = (_r, res) => json(res, 400, { error: "no 'file' field in the request" });
    await expect(t.transcribe(chunk())).rejects.toMatchObject({ message: expect.stringContaining("answered 400: no 'file' field in the request") });
    behaviour = (_r, res) => json(res, 200, '<html>not json</html>');
    await expect(t.transcribe(chunk())).rejects.toMatchObject({ code: 'MEMTIDE_ERR_TRANSCRIBER_SERVER', message: expect.stringContaining('not JSON') });
    behaviour = (_r, res) => json(res, 200, { result: 'x' });
    await expect(t.transcribe(chunk())).rejects.toMatchObject({ message: expect.stringContaining('without a "text" string') });
  });

  it('times out with MEMTIDE_ERR_TRANSCRIBER_TIMEOUT when the server does not answer', async () => {
    behaviour = (_r, res) => hanging.push(res);
    const t = createWhisperServer({ serverUrl: baseUrl, requestTimeoutMs: 150 });
    const started = Date.now();
    await expect(t.transcribe(chunk())).rejects.toMatchObject({
      code: 'MEMTIDE_ERR_TRANSCRIBER_TIMEOUT',
      message: expect.stringContaining('did not answer within 150 ms (transcription.requestTimeoutMs)'),
    });
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('cancels with MEMTIDE_ERR_TRANSCRIBER_ABORTED when the signal aborts', async () => {
    behaviour = (_r, res) => hanging.push(res);
    const t = createWhisperServer({ serverUrl: baseUrl, requestTimeoutMs: 10_000 });
    const controller = new AbortController();
    const pending = t.transcribe(chunk(), controller.signal);
    setTimeout(() => controller.abort(), 50);
    await expect(pending).rejects.toMatchObject({ code: 'MEMTIDE_ERR_TRANSCRIBER_ABORTED' });
  });

  it('an unreachable server is MEMTIDE_ERR_TRANSCRIBER_UNREACHABLE naming the URL and the reason', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const t = createWhisperServer({ serverUrl: `http://127.0.0.1:${port}`, requestTimeoutMs: 5000 });
    await expect(t.transcribe(chunk())).rejects.toMatchObject({
      code: 'MEMTIDE_ERR_TRANSCRIBER_UNREACHABLE',
      message: `cannot reach whisper-server at http://127.0.0.1:${port}/inference (/recordings/standup.mp3 chunk 3): ECONNREFUSED`,
    });
  });

  it('through the pipeline: a 35 s file is two requests, two segments in order', async () => {
    behaviour = (r, res) => {
      const bytes = r.parts.get('file')!.data.readUInt32LE(40);
      json(res, 200, { text: `${bytes / 2} samples` });
    };
    const file = writeWav(path.join(tmp.dir, 'meeting.wav'), { seconds: 35 });
    const transcriber = createWhisperServer({ serverUrl: baseUrl, requestTimeoutMs: 5000 });
    const events = await lastValueFrom(
      transcribeFiles([file], {
        transcriber,
        audio: audioSchema.parse({}),
        transcription: { maxConcurrent: 2, maxQueuedChunks: 2, criticalConcurrency: 0 },
      }).pipe(toArray()),
    );
    const segments = events.flatMap((e) => (e.type === 'segment' ? [e.segment] : []));
    expect(segments.map(({ startMs, endMs, text }) => ({ startMs, endMs, text }))).toEqual([
      { startMs: 0, endMs: 30000, text: '480000 samples' },
      { startMs: 30000, endMs: 35000, text: '80000 samples' },
    ]);
    expect(requests).toHaveLength(2);
  });
});
