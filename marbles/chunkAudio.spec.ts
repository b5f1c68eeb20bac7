import { from, tap } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import type { AudioChunk } from '../src/model.js';
import { ChunkAudioError, chunkAudio, chunkSamples, type ChunkAudioConfig } from '../src/operators/chunkAudio.js';

/** 4-sample chunks: chunkSeconds = 4 / 16000. */
const four: ChunkAudioConfig = { source: 'm.wav', chunkSeconds: 4 / 16000, overlapSeconds: 0 };

/** A block of consecutive sample values from..to-1 (the value is the sample's position, so bounds are visible). */
const block = (fromSample: number, toSample: number) => Int16Array.from({ length: toSample - fromSample }, (_, i) => fromSample + i);

function chunk(index: number, firstSample: number, length: number, last: boolean, source = 'm.wav'): AudioChunk {
  return {
    source,
    index,
    startMs: firstSample / 16,
    endMs: (firstSample + length) / 16,
    firstSample,
    sampleRate: 16000,
    samples: block(firstSample, firstSample + length),
    last,
  };
}

describe('chunkAudio (marbles)', () => {
  let testScheduler: TestScheduler;

  beforeEach(() => {
    testScheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  });

  it('cuts blocks into 4-sample chunks; a full chunk goes out when the next sample arrives; the partial last chunk is flushed on complete', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  -a-------b-----|', { a: block(0, 6), b: block(6, 9) });
      const subs = '        ^--------------!';
      const expected = '    -x-------y-----(z|)';
      expectObservable(source.pipe(chunkAudio(four, testScheduler))).toBe(expected, {
        x: chunk(0, 0, 4, false),
        y: chunk(1, 4, 4, false),
        z: chunk(2, 8, 1, true),
      });
      expectSubscriptions(source.subscriptions).toBe(subs);
    });
  });

  it('one big block makes several chunks in the same frame', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  -a----|', { a: block(0, 10) });
      expectObservable(source.pipe(chunkAudio(four, testScheduler))).toBe('-(xy)-(z|)', {
        x: chunk(0, 0, 4, false),
        y: chunk(1, 4, 4, false),
        z: chunk(2, 8, 2, true),
      });
    });
  });

  it('a stream of exactly n chunks: the last full chunk is held until complete, then flagged last', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  a-b---|', { a: block(0, 4), b: block(4, 8) });
      const expected = '    --x---(y|)';
      expectObservable(source.pipe(chunkAudio(four, testScheduler))).toBe(expected, {
        x: chunk(0, 0, 4, false),
        y: chunk(1, 4, 4, true),
      });
    });
  });

  it('samples arriving one at a time', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const values = Object.fromEntries(Array.from({ length: 6 }, (_, i) => [String.fromCharCode(97 + i), block(i, i + 1)]));
      const source = cold('  abcdef|', values);
      expectObservable(source.pipe(chunkAudio(four, testScheduler))).toBe('----x-(y|)', {
        x: chunk(0, 0, 4, false),
        y: chunk(1, 4, 2, true),
      });
    });
  });

  it('overlap: each chunk repeats the last samples of the previous one; bounds advance by chunk - overlap', () => {
    const config = { ...four, overlapSeconds: 1 / 16000 };
    testScheduler.run(({ cold, expectObservable }) => {
      // hop 3: chunks [0,4) [3,7) [6,10) [9,11)
      const source = cold('  -a---b---|', { a: block(0, 5), b: block(5, 11) });
      const expected = '    -x---(yz)(w|)';
      expectObservable(source.pipe(chunkAudio(config, testScheduler))).toBe(expected, {
        x: chunk(0, 0, 4, false),
        y: chunk(1, 3, 4, false),
        z: chunk(2, 6, 4, false),
        w: chunk(3, 9, 2, true),
      });
    });
  });

  it('overlap: no chunk made of overlap alone (stream ends exactly at a chunk end)', () => {
    const config = { ...four, overlapSeconds: 2 / 16000 };
    testScheduler.run(({ cold, expectObservable }) => {
      // hop 2: [0,4) [2,6); after 6 samples everything is covered
      const source = cold('  a-b|', { a: block(0, 4), b: block(4, 6) });
      expectObservable(source.pipe(chunkAudio(config, testScheduler))).toBe('--x(y|)', {
        x: chunk(0, 0, 4, false),
        y: chunk(1, 2, 4, true),
      });
    });
  });

  it('a stream shorter than one chunk gives one partial chunk, last', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  --a--|', { a: block(0, 3) });
      expectObservable(source.pipe(chunkAudio({ ...four, source: 'up' }, testScheduler))).toBe('-----(x|)', {
        x: chunk(0, 0, 3, true, 'up'),
      });
    });
  });

  it('empty blocks change nothing', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  a-e-b-e|', { a: block(0, 3), e: new Int16Array(0), b: block(3, 5) });
      expectObservable(source.pipe(chunkAudio(four, testScheduler))).toBe('----x--(y|)', {
        x: chunk(0, 0, 4, false),
        y: chunk(1, 4, 1, true),
      });
    });
  });

  it('completes with nothing on an empty source', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold<Int16Array>('  ---|');
      expectObservable(source.pipe(chunkAudio(four, testScheduler))).toBe('---|');
      expectSubscriptions(source.subscriptions).toBe('^--!');
    });
  });

  it('propagates an error of the source and drops the unfinished chunk (no flush on error)', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  a--b--#', { a: block(0, 5), b: block(5, 7) }, new Error('truncated'));
      const subs = '        ^-----!';
      expectObservable(source.pipe(chunkAudio(four, testScheduler))).toBe('x-----#', { x: chunk(0, 0, 4, false) }, new Error('truncated'));
      expectSubscriptions(source.subscriptions).toBe(subs);
    });
  });

  it('a block that is not an Int16Array becomes a ChunkAudioError and unsubscribes the source', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  a-b-c', { a: block(0, 2), b: new Float32Array(3) as unknown as Int16Array, c: block(2, 4) });
      expectObservable(source.pipe(chunkAudio(four, testScheduler))).toBe(
        '--#',
        undefined,
        new ChunkAudioError('MEMTIDE_ERR_AUDIO_CHUNK_INPUT', 'chunkAudio expects Int16Array blocks of 16 kHz mono samples, got Float32Array'),
      );
      expectSubscriptions(source.subscriptions).toBe('^-!');
    });
  });

  it('bad config errors at subscription with MEMTIDE_ERR_AUDIO_CHUNK_CONFIG, before the source is subscribed', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  a|', { a: block(0, 4) });
      expectObservable(source.pipe(chunkAudio({ ...four, overlapSeconds: 4 / 16000 }, testScheduler))).toBe(
        '#',
        undefined,
        expect.objectContaining({ name: 'ChunkAudioError', code: 'MEMTIDE_ERR_AUDIO_CHUNK_CONFIG', message: expect.stringContaining('overlapSeconds') }),
      );
      expectObservable(source.pipe(chunkAudio({ ...four, chunkSeconds: 0 }, testScheduler))).toBe(
        '#',
        undefined,
        expect.objectContaining({ code: 'MEMTIDE_ERR_AUDIO_CHUNK_CONFIG', message: 'chunkSeconds must be at least one sample (1/16000 s), got 0' }),
      );
      expectSubscriptions(source.subscriptions).toBe([]);
    });
  });

  it('allows early unsubscription (nothing is flushed)', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  a-b-c-|', { a: block(0, 5), b: block(5, 9), c: block(9, 12) });
      const unsub = '       ^--!    ';
      expectObservable(source.pipe(chunkAudio(four, testScheduler)), unsub).toBe('x-y-', { x: chunk(0, 0, 4, false), y: chunk(1, 4, 4, false) });
      expectSubscriptions(source.subscriptions).toBe('^--!');
    });
  });

  it('every subscription chunks independently (state is per subscription)', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  a|', { a: block(0, 5) });
      const chunked = source.pipe(chunkAudio(four, testScheduler));
      const values = { x: chunk(0, 0, 4, false), y: chunk(1, 4, 1, true) };
      expectObservable(chunked).toBe('x(y|)', values);
      expectObservable(chunked).toBe('x(y|)', values);
    });
  });

  it('defaults to asyncScheduler (chunk bounds never depend on a clock)', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  a 999ms b|', { a: block(0, 2), b: block(2, 5) });
      expectObservable(source.pipe(chunkAudio(four))).toBe('- 999ms x(y|)', { x: chunk(0, 0, 4, false), y: chunk(1, 4, 1, true) });
    });
  });

  describe('buffers', () => {
    it('each chunk owns its buffer: full chunks a buffer of exactly the chunk, a partial last chunk an exact copy; no views of the input', () => {
      const input = block(0, 10);
      const chunks: AudioChunk[] = [];
      from([input])
        .pipe(chunkAudio(four))
        .subscribe({ next: (c) => chunks.push(c), error: (e: unknown) => expect.unreachable(String(e)) });
      expect(chunks.map((c) => c.samples.buffer.byteLength)).toEqual([8, 8, 4]);
      expect(new Set(chunks.map((c) => c.samples.buffer)).size).toBe(3);
      expect(chunks.every((c) => c.samples.buffer !== input.buffer)).toBe(true);
      // Changing the input afterwards does not change the chunks.
      input.fill(-1);
      expect(Array.from(chunks[0]!.samples)).toEqual([0, 1, 2, 3]);
    });

    it('stops reading a synchronous source at the first bad block', () => {
      let read = 0;
      const errors: unknown[] = [];
      from([block(0, 2), new Uint8Array(2) as unknown as Int16Array, block(2, 4)])
        .pipe(
          tap(() => (read += 1)),
          chunkAudio(four),
        )
        .subscribe({ error: (e: unknown) => errors.push(e) });
      expect(read).toBe(2);
      expect(errors).toEqual([expect.objectContaining({ code: 'MEMTIDE_ERR_AUDIO_CHUNK_INPUT' })]);
    });

    it('the pull-based chunkSamples gives the same chunks as the operator', () => {
      const blocks = [block(0, 3), block(3, 11), block(11, 12)];
      const viaOperator: AudioChunk[] = [];
      from(blocks)
        .pipe(chunkAudio({ ...four, overlapSeconds: 1 / 16000 }))
        .subscribe({ next: (c) => viaOperator.push(c), error: (e: unknown) => expect.unreachable(String(e)) });
      expect([...chunkSamples(blocks, { ...four, overlapSeconds: 1 / 16000 })]).toEqual(viaOperator);
      expect(viaOperator.map((c) => [c.firstSample, c.samples.length, c.last])).toEqual([
        [0, 4, false],
        [3, 4, false],
        [6, 4, false],
        [9, 3, true],
      ]);
    });
  });
});
