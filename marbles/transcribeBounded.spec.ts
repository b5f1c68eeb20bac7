import { BehaviorSubject, from, NEVER, Observable, Subject, tap, type ObservableInput } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import type { AudioChunk, PressureChange, PressureLevel } from '../src/model.js';
import {
  concurrencyFor,
  TranscribeError,
  transcribeBounded,
  type ChunkTranscriber,
  type TranscribeBoundedConfig,
  type TranscribedChunk,
  type TranscribeStats,
} from '../src/operators/transcribeBounded.js';

/** Chunk i of "m.wav": 4 samples each (0.25 ms), so bounds are easy to read. */
function chunk(index: number, opts: { samples?: number; last?: boolean; source?: string } = {}): AudioChunk {
  const length = opts.samples ?? 4;
  const firstSample = index * length;
  return {
    source: opts.source ?? 'm.wav',
    index,
    startMs: firstSample / 16,
    endMs: (firstSample + length) / 16,
    firstSample,
    sampleRate: 16000,
    samples: new Int16Array(length),
    last: opts.last ?? false,
  };
}

function out(index: number, transcribeMs: number, opts: { samples?: number; last?: boolean } = {}): TranscribedChunk {
  const c = chunk(index, opts);
  return {
    file: c.source,
    startMs: c.startMs,
    endMs: c.endMs,
    text: `t${index}`,
    chunkIndex: index,
    firstSample: c.firstSample,
    sampleCount: c.samples.length,
    last: c.last,
    transcribeMs,
  };
}

const cfg = (maxConcurrent: number, maxQueuedChunks: number, extra: Partial<TranscribeBoundedConfig> = {}): TranscribeBoundedConfig => ({
  maxConcurrent,
  maxQueuedChunks,
  highConcurrency: null,
  criticalConcurrency: 0,
  ...extra,
});

const pressure = (level: PressureLevel): PressureChange => ({ atMs: 0, level, previous: null, reasons: [] });
const P = { l: pressure('low'), m: pressure('medium'), h: pressure('high'), c: pressure('critical') };

/** A transcriber whose work for chunk i is `work[i]` (cold observables: their subscriptions show when work started and stopped). */
function fake(work: Record<number, ObservableInput<{ text: string }>>, now: () => number) {
  const signals = new Map<number, AbortSignal>();
  const unloads: number[] = [];
  const shrinks: Array<[number, number]> = [];
  const transcriber: ChunkTranscriber = {
    transcribe: (c, signal) => {
      signals.set(c.index, signal);
      const w = work[c.index];
      if (!w) throw new Error(`no work for chunk ${c.index}`);
      return w;
    },
    unload: () => {
      unloads.push(now());
    },
    shrinkTo: (n) => {
      shrinks.push([now(), n]);
    },
  };
  return { transcriber, signals, unloads, shrinks };
}

describe('transcribeBounded (marbles)', () => {
  let testScheduler: TestScheduler;

  beforeEach(() => {
    testScheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  });

  it('concurrency 1: one chunk at a time, each starting when the previous is emitted', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  abc|', { a: chunk(0), b: chunk(1), c: chunk(2, { last: true }) });
      const w0 = cold('      ---(r|)', { r: { text: 't0' } });
      const w1 = cold('         ---(r|)', { r: { text: 't1' } });
      const w2 = cold('            ---(r|)', { r: { text: 't2' } });
      const { transcriber } = fake({ 0: w0, 1: w1, 2: w2 }, () => testScheduler.now());
      const expected = '    ---A--B--(C|)';
      expectObservable(source.pipe(transcribeBounded(transcriber, cfg(1, 2), undefined, {}, testScheduler))).toBe(expected, {
        A: out(0, 3),
        B: out(1, 3),
        C: out(2, 3, { last: true }),
      });
      expectSubscriptions(source.subscriptions).toBe('^--!');
      expectSubscriptions(w0.subscriptions).toBe('^--!');
      expectSubscriptions(w1.subscriptions).toBe('---^--!');
      expectSubscriptions(w2.subscriptions).toBe('------^--!');
    });
  });

  it('concurrency 2: two at once; output keeps chunk order (a fast later chunk waits and holds its slot)', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  abc|', { a: chunk(0), b: chunk(1), c: chunk(2) });
      const w0 = cold('      -----(r|)', { r: { text: 't0' } });
      const w1 = cold('       -(r|)', { r: { text: 't1' } });
      const w2 = cold('           -----(r|)', { r: { text: 't2' } });
      const { transcriber } = fake({ 0: w0, 1: w1, 2: w2 }, () => testScheduler.now());
      // b is done at 2 but waits for a (5); c starts only when a and b are out (5), done at 10
      const expected = '    -----(AB)-(C|)';
      expectObservable(source.pipe(transcribeBounded(transcriber, cfg(2, 2), undefined, {}, testScheduler))).toBe(expected, {
        A: out(0, 5),
        B: out(1, 1),
        C: out(2, 5),
      });
      expectSubscriptions(w0.subscriptions).toBe('^----!');
      expectSubscriptions(w1.subscriptions).toBe('-^!');
      expectSubscriptions(w2.subscriptions).toBe('-----^----!');
    });
  });

  it('announces demand: maxQueuedChunks at subscription, then one per chunk leaving the queue', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  a-b-c-|', { a: chunk(0), b: chunk(1), c: chunk(2) });
      const w = { r: { text: '' } };
      const { transcriber } = fake({ 0: cold('---(r|)', w), 1: cold('---(r|)', w), 2: cold('---(r|)', w) }, () => testScheduler.now());
      const demand: Array<[number, number]> = [];
      const result = source.pipe(transcribeBounded(transcriber, cfg(1, 2), undefined, { onDemand: (n) => demand.push([testScheduler.now(), n]) }, testScheduler));
      expectObservable(result).toBe('---x--y--(z|)', { x: expect.anything(), y: expect.anything(), z: expect.anything() });
      testScheduler.flush();
      // 0: 2 (empty queue); a starts at 0 -> 1; b starts at 3 -> 1; c starts at 6 -> 1; the source has completed by then
      expect(demand).toEqual([
        [0, 2],
        [0, 1],
        [3, 1],
      ]);
    });
  });

  it('a pull-based source never gets ahead: chunks read = queued + in flight <= maxQueuedChunks + maxConcurrent', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const chunks = Array.from({ length: 8 }, (_, i) => chunk(i, { last: i === 7 }));
      const demand = new Subject<number>();
      let read = 0;
      let emitted = 0;
      let maxAhead = 0;
      // Reads exactly what was asked for, at once (the fastest possible decoder).
      let next = 0;
      const source = new Observable<AudioChunk>((subscriber) => {
        const s = demand.subscribe({
          next: (n) => {
            for (let i = 0; i < n && next < chunks.length; i += 1) {
              read += 1;
              maxAhead = Math.max(maxAhead, read - emitted);
              subscriber.next(chunks[next]!);
              next += 1;
            }
            if (next === chunks.length) subscriber.complete();
          },
          error: (e: unknown) => subscriber.error(e),
        });
        return () => s.unsubscribe();
      });
      const work = Object.fromEntries(chunks.map((c) => [c.index, cold('----(r|)', { r: { text: `t${c.index}` } })]));
      const { transcriber } = fake(work, () => testScheduler.now());
      const result = source.pipe(transcribeBounded(transcriber, cfg(2, 3), undefined, { onDemand: (n) => demand.next(n) }, testScheduler));
      // pairs every 4 frames: "(AB)" spans frames 4-7, so (CD) is at 8, (EF) at 12, (GH|) at 16
      expectObservable(result.pipe(tap(() => (emitted += 1)))).toBe('----(AB)(CD)(EF)(GH|)', {
        A: out(0, 4),
        B: out(1, 4),
        C: out(2, 4),
        D: out(3, 4),
        E: out(4, 4),
        F: out(5, 4),
        G: out(6, 4),
        H: out(7, 4, { last: true }),
      });
      testScheduler.flush();
      expect(read).toBe(8);
      expect(maxAhead).toBeLessThanOrEqual(3 + 2);
      expect(maxAhead).toBe(5);
    });
  });

  it('a source that pushes past the full queue errors with MEMTIDE_ERR_TRANSCRIBE_OVERFLOW and cancels the work', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  abcd', { a: chunk(0), b: chunk(1), c: chunk(2), d: chunk(3) });
      const w0 = cold('      ----------(r|)', { r: { text: 't0' } });
      const { transcriber, signals } = fake({ 0: w0 }, () => testScheduler.now());
      // a runs; b and c fill the queue (2); d has nowhere to go
      expectObservable(source.pipe(transcribeBounded(transcriber, cfg(1, 2), undefined, {}, testScheduler))).toBe(
        '---#',
        undefined,
        expect.objectContaining({ name: 'TranscribeError', code: 'MEMTIDE_ERR_TRANSCRIBE_OVERFLOW', message: expect.stringContaining('m.wav chunk 3') }),
      );
      expectSubscriptions(source.subscriptions).toBe('^--!');
      expectSubscriptions(w0.subscriptions).toBe('^--!');
      testScheduler.flush();
      expect(signals.get(0)?.aborted).toBe(true);
    });
  });

  it('pressure high halves the concurrency at once: in-flight work finishes, new work waits; shrinkTo is asked', () => {
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const pressure$ = hot(' l-h-----------', P);
      const source = cold('  (abcd)|', { a: chunk(0), b: chunk(1), c: chunk(2), d: chunk(3) });
      const w = (i: number) => cold('----(r|)', { r: { text: `t${i}` } });
      const work = { 0: w(0), 1: w(1), 2: w(2), 3: w(3) };
      const { transcriber, shrinks } = fake(work, () => testScheduler.now());
      // a, b start at 0 (limit 2); high at 2 -> limit 1: c starts at 4, d at 8
      expectObservable(source.pipe(transcribeBounded(transcriber, cfg(2, 2), pressure$, {}, testScheduler))).toBe('----(AB)C---(D|)', {
        A: out(0, 4),
        B: out(1, 4),
        C: out(2, 4),
        D: out(3, 4),
      });
      expectSubscriptions(work[2].subscriptions).toBe('----^---!');
      expectSubscriptions(work[3].subscriptions).toBe('--------^---!');
      testScheduler.flush();
      expect(shrinks).toEqual([[2, 1]]);
    });
  });

  it('pressure critical (criticalConcurrency 0) pauses: the in-flight chunk finishes, the model is unloaded once idle, work resumes on recovery', () => {
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const pressure$ = hot(' l-c------m----', P);
      const source = cold('  (ab|)', { a: chunk(0), b: chunk(1) });
      const work = { 0: cold('----(r|)', { r: { text: 't0' } }), 1: cold('---(r|)', { r: { text: 't1' } }) };
      const { transcriber, unloads, shrinks } = fake(work, () => testScheduler.now());
      // a runs 0-4; critical at 2: b waits; a is out at 4 and the transcriber is idle -> unload at 4; medium at 9 -> b 9-12
      expectObservable(source.pipe(transcribeBounded(transcriber, cfg(1, 2), pressure$, {}, testScheduler))).toBe('----A-------(B|)', {
        A: out(0, 4),
        B: out(1, 3),
      });
      expectSubscriptions(work[1].subscriptions).toBe('---------^--!');
      testScheduler.flush();
      expect(unloads).toEqual([4]);
      expect(shrinks).toEqual([[2, 0]]);
    });
  });

  it('pressure critical with criticalConcurrency 1 keeps one chunk going (no unload while there is work)', () => {
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const pressure$ = hot(' -c------------', P);
      const source = cold('  (abc|)', { a: chunk(0), b: chunk(1), c: chunk(2) });
      const work = { 0: cold('--(r|)', { r: { text: 't0' } }), 1: cold('--(r|)', { r: { text: 't1' } }), 2: cold('----(r|)', { r: { text: 't2' } }) };
      const { transcriber, unloads, shrinks } = fake(work, () => testScheduler.now());
      // a, b start at 0 (limit 2); critical at 1 -> limit 1; c starts alone at 2
      expectObservable(source.pipe(transcribeBounded(transcriber, cfg(2, 2, { criticalConcurrency: 1 }), pressure$, {}, testScheduler))).toBe('--(AB)(C|)', {
        A: out(0, 2),
        B: out(1, 2),
        C: out(2, 4),
      });
      expectSubscriptions(work[2].subscriptions).toBe('--^---!');
      testScheduler.flush();
      expect(shrinks).toEqual([[1, 1]]);
      expect(unloads).toEqual([]);
    });
  });

  it('critical before any work: the (idle) transcriber is asked to unload at once, and nothing starts until recovery', () => {
    testScheduler.run(({ cold, hot, expectObservable }) => {
      const pressure$ = hot(' -c---l--', P);
      const source = cold('  --a|', { a: chunk(0) });
      const { transcriber, unloads } = fake({ 0: cold('-(r|)', { r: { text: 't0' } }) }, () => testScheduler.now());
      expectObservable(source.pipe(transcribeBounded(transcriber, cfg(1, 1), pressure$, {}, testScheduler))).toBe('------(A|)', { A: out(0, 1) });
      testScheduler.flush();
      expect(unloads).toEqual([1]);
    });
  });

  it('highConcurrency from config overrides the default half', () => {
    expect(concurrencyFor('high', cfg(4, 1))).toBe(2);
    expect(concurrencyFor('high', cfg(4, 1, { highConcurrency: 3 }))).toBe(3);
    expect(concurrencyFor('high', cfg(1, 1))).toBe(1);
    expect(concurrencyFor('medium', cfg(3, 1))).toBe(3);
    expect(concurrencyFor('critical', cfg(3, 1, { criticalConcurrency: 1 }))).toBe(1);
    expect(concurrencyFor('critical', cfg(3, 1))).toBe(0);
  });

  it("a chunk's failure: earlier chunks are still emitted, later ones cancelled, then MEMTIDE_ERR_TRANSCRIBE_CHUNK", () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  abc-d', { a: chunk(0), b: chunk(1), c: chunk(2), d: chunk(3) });
      const w0 = cold('      -----(r|)', { r: { text: 't0' } });
      const w1 = cold<{ text: string }>('       -#', undefined, new Error('worker died'));
      const w2 = cold('        ------(r|)', { r: { text: 't2' } });
      const { transcriber, signals } = fake({ 0: w0, 1: w1, 2: w2 }, () => testScheduler.now());
      expectObservable(source.pipe(transcribeBounded(transcriber, cfg(3, 2), undefined, {}, testScheduler))).toBe(
        '-----(A#)',
        { A: out(0, 5) },
        expect.objectContaining({
          code: 'MEMTIDE_ERR_TRANSCRIBE_CHUNK',
          message: 'm.wav chunk 1 (0.25-0.5 ms): transcription failed: worker died',
          cause: new Error('worker died'),
        }),
      );
      expectSubscriptions(source.subscriptions).toBe('^-!');
      expectSubscriptions(w0.subscriptions).toBe('^----!');
      expectSubscriptions(w2.subscriptions).toBe('--(^!)');
      testScheduler.flush();
      expect(signals.get(2)?.aborted).toBe(true);
      expect(signals.get(0)?.aborted).toBe(false); // it had finished
    });
  });

  it('a transcriber that throws synchronously fails its chunk the same way', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  a|', { a: chunk(0) });
      const transcriber: ChunkTranscriber = {
        transcribe: () => {
          throw new Error('no model');
        },
        unload: () => undefined,
      };
      expectObservable(source.pipe(transcribeBounded(transcriber, cfg(1, 1), undefined, {}, testScheduler))).toBe(
        '#',
        undefined,
        expect.objectContaining({ code: 'MEMTIDE_ERR_TRANSCRIBE_CHUNK', message: expect.stringContaining('no model') }),
      );
    });
  });

  it('an upstream error (corrupt file) comes after the chunks already accepted are transcribed', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  ab#', { a: chunk(0), b: chunk(1) }, new Error('m.wav: byte 4096: truncated'));
      const w = (i: number) => cold('---(r|)', { r: { text: `t${i}` } });
      const work = { 0: w(0), 1: w(1) };
      const { transcriber } = fake(work, () => testScheduler.now());
      expectObservable(source.pipe(transcribeBounded(transcriber, cfg(1, 2), undefined, {}, testScheduler))).toBe(
        '---A--(B#)',
        { A: out(0, 3), B: out(1, 3) },
        new Error('m.wav: byte 4096: truncated'),
      );
      expectSubscriptions(source.subscriptions).toBe('^-!');
    });
  });

  it('unsubscribing aborts in-flight work (AbortSignal) and drops the queue', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  abc-----', { a: chunk(0), b: chunk(1), c: chunk(2) });
      const w0 = cold('      ------(r|)', { r: { text: 't0' } });
      const w1 = cold('       ------(r|)', { r: { text: 't1' } });
      const { transcriber, signals } = fake({ 0: w0, 1: w1 }, () => testScheduler.now());
      const unsub = '        ^---!';
      expectObservable(source.pipe(transcribeBounded(transcriber, cfg(2, 2), undefined, {}, testScheduler)), unsub).toBe('-----');
      expectSubscriptions(source.subscriptions).toBe('^---!');
      expectSubscriptions(w0.subscriptions).toBe('^---!');
      expectSubscriptions(w1.subscriptions).toBe('-^--!');
      testScheduler.flush();
      expect(signals.get(0)?.aborted).toBe(true);
      expect(signals.get(1)?.aborted).toBe(true);
      expect(signals.has(2)).toBe(false);
    });
  });

  it('completes with nothing on an empty source (and never calls the transcriber)', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold<AudioChunk>('  |');
      const { transcriber, signals } = fake({}, () => testScheduler.now());
      expectObservable(source.pipe(transcribeBounded(transcriber, cfg(1, 1), undefined, {}, testScheduler))).toBe('|');
      expectSubscriptions(source.subscriptions).toBe('(^!)');
      testScheduler.flush();
      expect(signals.size).toBe(0);
    });
  });

  it('config as an Observable: the source is subscribed at the first value; a later value applies at once', () => {
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const config$ = hot('  --x---y------', { x: cfg(1, 2), y: cfg(2, 2) });
      const source = cold('    (abc|)', { a: chunk(0), b: chunk(1), c: chunk(2) });
      const w = (i: number) => cold('---(r|)', { r: { text: `t${i}` } });
      const work = { 0: w(0), 1: w(1), 2: w(2) };
      const { transcriber } = fake(work, () => testScheduler.now());
      // a 2-5; at 6 the limit becomes 2: b started at 5 (alone), c starts at 6
      expectObservable(source.pipe(transcribeBounded(transcriber, config$, undefined, {}, testScheduler))).toBe('-----A--B(C|)', {
        A: out(0, 3),
        B: out(1, 3),
        C: out(2, 3),
      });
      expectSubscriptions(source.subscriptions).toBe('--(^!)');
      expectSubscriptions(work[2].subscriptions).toBe('------^--!');
      expectSubscriptions(config$.subscriptions).toBe('^--------!');
    });
  });

  it('an invalid config is a MEMTIDE_ERR_TRANSCRIBE_CONFIG error before anything is read', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  a|', { a: chunk(0) });
      const { transcriber } = fake({}, () => testScheduler.now());
      expectObservable(source.pipe(transcribeBounded(transcriber, cfg(0, 2), undefined, {}, testScheduler))).toBe(
        '#',
        undefined,
        new TranscribeError('MEMTIDE_ERR_TRANSCRIBE_CONFIG', 'maxConcurrent must be an integer >= 1, got 0'),
      );
      expectSubscriptions(source.subscriptions).toBe([]);
    });
  });

  it('propagates an error of the pressure Observable and unsubscribes everything', () => {
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const pressure$ = hot(' l--#', P, new Error('sampler died'));
      const source = cold('  a-------', { a: chunk(0) });
      const w0 = cold('      ------(r|)', { r: { text: 't0' } });
      const { transcriber } = fake({ 0: w0 }, () => testScheduler.now());
      expectObservable(source.pipe(transcribeBounded(transcriber, cfg(1, 1), pressure$, {}, testScheduler))).toBe('---#', undefined, new Error('sampler died'));
      expectSubscriptions(source.subscriptions).toBe('^--!');
      expectSubscriptions(w0.subscriptions).toBe('^--!');
      expectSubscriptions(pressure$.subscriptions).toBe('^--!');
    });
  });

  it('a config Observable that completes without a value is an error', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  a|', { a: chunk(0) });
      const { transcriber } = fake({}, () => testScheduler.now());
      expectObservable(source.pipe(transcribeBounded(transcriber, cold<TranscribeBoundedConfig>('--|'), undefined, {}, testScheduler))).toBe(
        '--#',
        undefined,
        expect.objectContaining({ code: 'MEMTIDE_ERR_TRANSCRIBE_CONFIG' }),
      );
    });
  });

  it('reports queue depth and buffers in samples', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  (abc|)', { a: chunk(0, { samples: 100 }), b: chunk(1, { samples: 100 }), c: chunk(2, { samples: 50 }) });
      const w = (i: number) => cold('--(r|)', { r: { text: `t${i}` } });
      const { transcriber } = fake({ 0: w(0), 1: w(1), 2: w(2) }, () => testScheduler.now());
      const stats: Array<[number, TranscribeStats]> = [];
      expectObservable(
        source.pipe(transcribeBounded(transcriber, cfg(1, 2), undefined, { onStats: (s) => stats.push([testScheduler.now(), s]) }, testScheduler)),
      ).toBe('--A-B-(C|)', { A: expect.anything(), B: expect.anything(), C: expect.anything() });
      testScheduler.flush();
      const at = (frame: number) => stats.filter(([t]) => t === frame).at(-1)?.[1];
      expect(at(0)).toEqual({ queuedChunks: 2, queuedSamples: 150, inFlight: 1, inFlightSamples: 100, reorderChunks: 0, completed: 0, concurrency: 1, level: 'low' });
      expect(at(2)).toEqual({ queuedChunks: 1, queuedSamples: 50, inFlight: 1, inFlightSamples: 100, reorderChunks: 0, completed: 1, concurrency: 1, level: 'low' });
      expect(at(6)).toEqual({ queuedChunks: 0, queuedSamples: 0, inFlight: 0, inFlightSamples: 0, reorderChunks: 0, completed: 3, concurrency: 1, level: 'low' });
      expect(Math.max(...stats.map(([, s]) => s.queuedChunks))).toBe(2);
    });
  });

  it('works with Promise-based transcribers (a Transcriber) outside virtual time', async () => {
    const transcriber: ChunkTranscriber = {
      transcribe: async (c) => ({ text: `t${c.index}` }),
      unload: async () => undefined,
    };
    const results: TranscribedChunk[] = [];
    await new Promise<void>((resolve, reject) =>
      from([chunk(0), chunk(1), chunk(2)])
        .pipe(transcribeBounded(transcriber, cfg(2, 4)))
        .subscribe({ next: (r) => results.push(r), error: reject, complete: resolve }),
    );
    expect(results.map((r) => r.text)).toEqual(['t0', 't1', 't2']);
  });

  it('never subscribes the source while pressure has already failed', () => {
    let subscribed = false;
    const errors: unknown[] = [];
    new Observable<AudioChunk>(() => {
      subscribed = true;
    })
      .pipe(transcribeBounded({ transcribe: () => NEVER, unload: () => undefined }, cfg(1, 1), new Observable((s) => s.error(new Error('p')))))
      .subscribe({ error: (e: unknown) => errors.push(e) });
    expect(subscribed).toBe(false);
    expect(errors).toEqual([new Error('p')]);
  });
  describe('batch hold (hooks.hold$)', () => {
    const H = { f: false, t: true };

    it('held: the chunk in flight finishes and is emitted, the model is unloaded once idle, nothing starts until released', () => {
      testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
        const hold$ = hot('    f-t-------f---', H);
        const source = cold('  (ab|)', { a: chunk(0), b: chunk(1) });
        const work = { 0: cold('---(r|)', { r: { text: 't0' } }), 1: cold('---(r|)', { r: { text: 't1' } }) };
        const { transcriber, unloads } = fake(work, () => testScheduler.now());
        // a runs 0-3; held at 2: a finishes (out at 3), the transcriber is idle -> unload at 3; released at 10 -> b 10-13
        expectObservable(source.pipe(transcribeBounded(transcriber, cfg(1, 2), undefined, { hold$ }, testScheduler))).toBe('---A---------(B|)', {
          A: out(0, 3),
          B: out(1, 3),
        });
        expectSubscriptions(work[0].subscriptions).toBe('^--!');
        expectSubscriptions(work[1].subscriptions).toBe('----------^--!');
        expectSubscriptions(hold$.subscriptions).toBe('^------------!');
        testScheduler.flush();
        expect(unloads).toEqual([3]);
      });
    });

    it('held from the start: no demand is announced (a pull source reads nothing) until released; then in order', () => {
      testScheduler.run(({ cold, expectObservable }) => {
        const hold$ = new BehaviorSubject(true);
        testScheduler.schedule(() => hold$.next(false), 6);
        const chunks = [chunk(0), chunk(1), chunk(2, { last: true })];
        const demand = new Subject<number>();
        const reads: number[] = [];
        let next = 0;
        const source = new Observable<AudioChunk>((subscriber) => {
          const s = demand.subscribe({
            next: (n) => {
              for (let i = 0; i < n && next < chunks.length; i += 1) {
                reads.push(testScheduler.now());
                subscriber.next(chunks[next]!);
                next += 1;
              }
              if (next === chunks.length) subscriber.complete();
            },
            error: (e: unknown) => subscriber.error(e),
          });
          return () => s.unsubscribe();
        });
        const work = Object.fromEntries(chunks.map((c) => [c.index, cold('--(r|)', { r: { text: `t${c.index}` } })]));
        const { transcriber, unloads } = fake(work, () => testScheduler.now());
        const demands: Array<[number, number]> = [];
        const hooks = { hold$, onDemand: (n: number) => (demands.push([testScheduler.now(), n]), demand.next(n)) };
        expectObservable(source.pipe(transcribeBounded(transcriber, cfg(1, 2), undefined, hooks, testScheduler))).toBe('--------A-B-(C|)', {
          A: out(0, 2),
          B: out(1, 2),
          C: out(2, 2, { last: true }),
        });
        testScheduler.flush();
        expect(demands[0]).toEqual([6, 2]);
        expect(reads.every((t) => t >= 6)).toBe(true);
        // nothing was loaded, but the (idle) transcriber is asked to unload at once, as at critical pressure
        expect(unloads).toEqual([0]);
      });
    });

    it('holding and releasing repeatedly keeps every chunk once, in order; the model is unloaded at each idle hold', () => {
      testScheduler.run(({ cold, hot, expectObservable }) => {
        const hold$ = hot('    -t-f-t-f-t-f--', H);
        const source = cold('  (abc|)', { a: chunk(0), b: chunk(1), c: chunk(2) });
        const w = (i: number) => cold('--(r|)', { r: { text: `t${i}` } });
        const { transcriber, unloads } = fake({ 0: w(0), 1: w(1), 2: w(2) }, () => testScheduler.now());
        // a 0-2 (held at 1: finishes) -> released 3: b 3-5 (held at 5, b done at 5) -> released 7: c 7-9
        expectObservable(source.pipe(transcribeBounded(transcriber, cfg(1, 3), undefined, { hold$ }, testScheduler))).toBe('--A--B---(C|)', {
          A: out(0, 2),
          B: out(1, 2),
          C: out(2, 2),
        });
        testScheduler.flush();
        expect(unloads).toEqual([2, 5]);
      });
    });

    it('a hold and critical pressure together unload once; release under critical (criticalConcurrency 0) still waits for recovery', () => {
      testScheduler.run(({ cold, hot, expectObservable }) => {
        const hold$ = hot('    -t---f-----', H);
        const pressure$ = hot(' --c-----l--', P);
        const source = cold('  (ab|)', { a: chunk(0), b: chunk(1) });
        const w = (i: number) => cold('-(r|)', { r: { text: `t${i}` } });
        const { transcriber, unloads } = fake({ 0: w(0), 1: w(1) }, () => testScheduler.now());
        expectObservable(source.pipe(transcribeBounded(transcriber, cfg(1, 2), pressure$, { hold$ }, testScheduler))).toBe('-A-------(B|)', {
          A: out(0, 1),
          B: out(1, 1),
        });
        testScheduler.flush();
        expect(unloads).toEqual([1]);
      });
    });

    it('an error of hold$ errors the stream and cancels the work; unsubscribing drops hold$', () => {
      testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
        const hold$ = hot('    f--#', H, new Error('hold feed died'));
        const source = cold('  a-------', { a: chunk(0) });
        const w0 = cold('      ------(r|)', { r: { text: 't0' } });
        const { transcriber } = fake({ 0: w0 }, () => testScheduler.now());
        expectObservable(source.pipe(transcribeBounded(transcriber, cfg(1, 1), undefined, { hold$ }, testScheduler))).toBe('---#', undefined, new Error('hold feed died'));
        expectSubscriptions(source.subscriptions).toBe('^--!');
        expectSubscriptions(w0.subscriptions).toBe('^--!');
        expectSubscriptions(hold$.subscriptions).toBe('^--!');
        const held = hot('     t-------', H);
        const other = cold('   a-------', { a: chunk(0) });
        expectObservable(other.pipe(transcribeBounded(transcriber, cfg(1, 1), undefined, { hold$: held }, testScheduler)), '^---!').toBe('-----');
        expectSubscriptions(held.subscriptions).toBe('^---!');
        expectSubscriptions(other.subscriptions).toBe('^---!');
      });
    });
  });
});
