/**
 * What the coordinator's actions do to the parts: the transcription
 * service's concurrency cap (applied to a transcription already running),
 * the history query cache's shrink/restore, and `GET /api/actions`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { lastValueFrom, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { configSchema } from '../src/app/configSchema.js';
import { HttpError } from '../src/app/http.js';
import type { Memtide } from '../src/app/memtide.js';
import { actionsLogRoutes, recentActionsSource } from '../src/app/routes/actionsLog.js';
import { cappedBounds, createTranscriptionService, TranscriptionServiceError } from '../src/app/routes/transcribe.js';
import { audioSchema } from '../src/app/schema/audio.js';
import { transcriptionSchema } from '../src/app/schema/transcription.js';
import type { AudioChunk } from '../src/model.js';
import { createHistoryQueryCache, SHRUNK_CACHE_BYTES } from '../src/sinks/historyQueryCache.js';
import { HistoryStore, type ActionEntry } from '../src/sinks/historyStore.js';
import { silentLogger } from '../src/sinks/logger.js';
import type { Transcriber } from '../src/sources/transcribers/transcriber.js';
import { transcribeInput } from '../src/streams/transcription.js';
import { actionEntry } from './support/actions.js';

const MIB = 1024 ** 2;

describe('transcription service: concurrency cap', () => {
  it('caps maxConcurrent (and what the pressure levels allow), lifts back to the config; refuses a cap below 1', () => {
    const t = transcriptionSchema.parse({ maxConcurrent: 4, highConcurrency: 3 });
    expect(cappedBounds(t, null)).toBe(t);
    expect(cappedBounds(t, 8)).toBe(t);
    expect(cappedBounds(t, 2)).toMatchObject({ maxConcurrent: 2, highConcurrency: 2, criticalConcurrency: 0 });
    const service = createTranscriptionService();
    const seen: number[] = [];
    const sub = service.bounds(t).subscribe({ next: (b) => seen.push(b.maxConcurrent), error: (e: unknown) => seen.push(-1) });
    service.setConcurrencyCap(1);
    service.setConcurrencyCap(1);
    service.setConcurrencyCap(null);
    sub.unsubscribe();
    expect(seen).toEqual([4, 1, 4]);
    expect(service.concurrencyCap()).toBeNull();
    expect(() => service.setConcurrencyCap(0)).toThrow(TranscriptionServiceError);
    expect(() => service.setConcurrencyCap(1.5)).toThrow(/whole number of chunks >= 1/);
    expect(service.activity()).toEqual({ busy: false, inFlightChunks: 0, concurrency: 1 });
  });

  it('a cap set while a transcription runs lowers the chunks in flight from then on', async () => {
    const service = createTranscriptionService();
    let inFlight = 0;
    let most = 0;
    const afterCap: number[] = [];
    let capped = false;
    const started: number[] = [];
    const transcriber: Transcriber = {
      name: 'fake',
      loaded: true,
      modelBytes: null,
      unload: async () => undefined,
      async transcribe(chunk: AudioChunk) {
        inFlight += 1;
        most = Math.max(most, inFlight);
        started.push(chunk.index);
        if (capped) afterCap.push(inFlight);
        // the third chunk to start caps the service: the ones in flight finish, new ones go one at a time
        if (started.length === 3) {
          service.setConcurrencyCap(1);
          capped = true;
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
        inFlight -= 1;
        return { text: `chunk ${chunk.index}` };
      },
    };
    async function* chunks(): AsyncIterable<AudioChunk> {
      for (let index = 0; index < 10; index += 1) {
        yield { source: 'test', index, startMs: index * 1000, endMs: (index + 1) * 1000, firstSample: index * 16000, sampleRate: 16000, samples: new Int16Array(16), last: index === 9 };
      }
    }
    const transcription = transcriptionSchema.parse({ maxConcurrent: 3, maxQueuedChunks: 3 });
    const segments = await lastValueFrom(
      transcribeInput('test', 'test', { transcriber, audio: audioSchema.parse({}), transcription: service.bounds(transcription), openChunks: () => chunks() }).pipe(toArray()),
    );
    expect(segments.map((s) => s.text)).toEqual([...Array(10).keys()].map((i) => `chunk ${i}`));
    expect(most).toBe(3);
    // chunks started after the cap ran while at most the ones already in flight were still going, then one at a time
    expect(afterCap.slice(-4)).toEqual([1, 1, 1, 1]);
  });
});

describe('history query cache: shrink and restore', () => {
  it('shrink drops least recently used entries to the small budget and keeps to it; restore gives the budget back', () => {
    const cache = createHistoryQueryCache({ maxBytes: 32 * MIB });
    const body = Buffer.alloc(400 * 1024);
    for (let i = 0; i < 10; i += 1) cache.set(`k${i}`, body, 60_000);
    cache.get('k0'); // the most recently used now
    const freed = cache.shrink();
    expect(SHRUNK_CACHE_BYTES).toBe(MIB);
    expect(freed).toBeGreaterThan(7 * 400 * 1024);
    const shrunk = cache.stats();
    expect(shrunk).toMatchObject({ maxBytes: 32 * MIB, limitBytes: MIB, shrunk: true, entries: 2 });
    expect(shrunk.bytes).toBeLessThanOrEqual(MIB);
    expect(shrunk.evictions).toBe(8);
    expect(cache.get('k0')).toBeDefined();
    expect(cache.get('k9')).toBeDefined();
    // it stays small: more entries push older ones out; a body past the small budget is refused
    cache.set('k10', body, 60_000);
    expect(cache.stats().bytes).toBeLessThanOrEqual(MIB);
    expect(cache.set('big', Buffer.alloc(2 * MIB), 60_000)).toBe(false);
    expect(cache.maxBodyBytes('x')).toBeLessThan(MIB);
    cache.restore();
    expect(cache.stats()).toMatchObject({ limitBytes: 32 * MIB, shrunk: false });
    expect(cache.set('big', Buffer.alloc(2 * MIB), 60_000)).toBe(true);
    expect(() => cache.shrink(-1)).toThrow(expect.objectContaining({ code: 'MEMTIDE_ERR_HISTORY_CACHE' }));
  });
});

// ---- GET /api/actions ------------------------------------------------------

async function call(module: ReturnType<ReturnType<typeof actionsLogRoutes>>, query: string): Promise<{ status: number; body: any }> {
  const route = module.routes.find((r) => r.path === '/api/actions' && r.method === 'GET')!;
  let status = 0;
  let text = '';
  const res = {
    writeHead: (code: number) => {
      status = code;
      return res;
    },
    end: (chunk: string) => void (text = chunk),
  } as unknown as ServerResponse;
  try {
    await route.handler({} as IncomingMessage, res, {}, new URL(`http://x/api/actions${query}`));
  } catch (error) {
    if (!(error instanceof HttpError)) throw error;
    return { status: error.status, body: { code: error.code, error: error.message } };
  }
  return { status, body: JSON.parse(text) };
}

const contextWith = (history: unknown) => ({ memtide: { history } as unknown as Memtide, logger: silentLogger, config: () => configSchema.parse({}) });
const NOW = 10 * 3_600_000;

describe('GET /api/actions', () => {
  it('lists the history database\'s actions newest first, with since/until/limit and a truncated flag', async () => {
    const store = HistoryStore.open(':memory:');
    try {
      for (let i = 0; i < 5; i += 1) store.insertAction(actionEntry({ atMs: NOW - (5 - i) * 60_000, kind: i % 2 ? 'shrink-caches' : 'unload', ...(i % 2 ? {} : { source: 'governor' }) }));
      const module = actionsLogRoutes({ now: () => NOW })(contextWith(store));
      const all = await call(module, '?since=1h');
      expect(all.status).toBe(200);
      expect(all.body).toMatchObject({ sinceMs: NOW - 3_600_000, untilMs: null, limit: 1000, truncated: false });
      expect(all.body.actions.map((a: ActionEntry) => a.atMs)).toEqual([1, 2, 3, 4, 5].map((m) => NOW - m * 60_000));
      const two = await call(module, `?since=${NOW - 4 * 60_000}&until=${NOW - 60_000}&limit=2`);
      expect(two.body).toMatchObject({ limit: 2, truncated: true });
      expect(two.body.actions.map((a: ActionEntry) => a.atMs)).toEqual([NOW - 2 * 60_000, NOW - 3 * 60_000]);
      expect(await call(module, '?limit=0')).toMatchObject({ status: 400, body: { code: 'MEMTIDE_ERR_QUERY', error: expect.stringContaining('limit') } });
      expect(await call(module, '?since=yesterday')).toMatchObject({ status: 400, body: { error: expect.stringContaining('since') } });
    } finally {
      store.close();
    }
  });

  it('without history: the fallback (the coordinator\'s records), else 503', async () => {
    const records = [actionEntry({ atMs: NOW - 1000, kind: 'shrink-caches' }), actionEntry({ atMs: NOW - 2000, kind: 'unload-idle-models' })].map((e, i) => ({ ...e, id: 2 - i }));
    const withFallback = actionsLogRoutes({ now: () => NOW, fallback: recentActionsSource((limit) => records.slice(0, limit)) })(contextWith(undefined));
    expect((await call(withFallback, '?since=1m&limit=1')).body).toMatchObject({ truncated: true, actions: [{ id: 2, kind: 'shrink-caches' }] });
    const none = actionsLogRoutes({ now: () => NOW })(contextWith(undefined));
    expect(await call(none, '')).toMatchObject({ status: 503, body: { code: 'MEMTIDE_ERR_ACTIONS_UNAVAILABLE' } });
  });
});
