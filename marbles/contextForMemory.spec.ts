import { from, tap } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import { contextForMemory, ContextForMemoryError, type ContextForMemoryConfig, type ContextRequest } from '../src/operators/contextForMemory.js';
import { kvBytesPerToken } from '../src/operators/models/modelMemory.js';

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;
/** llama3 8B: 32 layers, 8 KV heads, head_dim 128, f16 -> 128 KiB per token (modelMemory computes it). */
const LLAMA_KV = kvBytesPerToken({ blockCount: 32, headCountKv: 8, embeddingLength: 4096, headCount: 32, keyLength: null })!;

const cfg: ContextForMemoryConfig = {
  allowedContextSizes: [2048, 4096, 8192, 16384, 32768],
  safetyMarginBytes: 512 * MIB,
  answerReserveTokens: 1024,
  maxContext: 8192,
};

const ask = (promptTokens: number, availableBytes: number, extra: Partial<ContextRequest> = {}): ContextRequest => ({
  promptTokens,
  kvBytesPerToken: LLAMA_KV,
  availableBytes,
  trainedContext: 131_072,
  ...extra,
});
const chose = (atMs: number, numCtx: number, extra: Record<string, unknown> = {}) =>
  expect.objectContaining({ atMs, numCtx, kvBytes: numCtx * LLAMA_KV, ...extra }) as unknown;

describe('contextForMemory (marbles)', () => {
  let testScheduler: TestScheduler;
  beforeEach(() => {
    testScheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  });

  it('KV per token of llama3 8B at f16 is 128 KiB (8192 tokens = 1 GiB)', () => {
    expect(LLAMA_KV * 8192).toBe(GIB);
  });

  it('picks the largest size up to maxContext whose KV cache fits, never below the prompt', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  -a-b-c-|', { a: ask(3000, 10 * GIB), b: ask(3000, 1.2 * GIB), c: ask(3000, 600 * MIB) });
      expectObservable(source.pipe(contextForMemory(cfg, testScheduler))).toBe('-A-B-C-|', {
        A: chose(1, 8192, { needTokens: 4024, fitsMemory: true, truncates: false, kept: false }),
        // 1.2 GiB - 512 MiB margin: 4096 (512 MiB) fits, 8192 (1 GiB) does not
        B: chose(3, 4096, { fitsMemory: true }),
        // nothing that holds the prompt fits: the smallest that does, flagged
        C: chose(5, 4096, { fitsMemory: false }),
      });
      expectSubscriptions(source.subscriptions).toBe('^------!');
    });
  });

  it('a prompt longer than maxContext still gets a size that holds it', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  -a-|', { a: ask(14_000, 600 * MIB) });
      expectObservable(source.pipe(contextForMemory(cfg, testScheduler))).toBe('-A-|', { A: chose(1, 16384, { needTokens: 15_024, fitsMemory: false }) });
    });
  });

  it('never above the trained context; a prompt that no size holds truncates', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  -a-b-|', { a: ask(1000, 100 * GIB, { trainedContext: 4096 }), b: ask(10_000, 100 * GIB, { trainedContext: 8192 }) });
      expectObservable(source.pipe(contextForMemory(cfg, testScheduler))).toBe('-A-B-|', {
        A: chose(1, 4096, { truncates: false }),
        B: chose(3, 8192, { truncates: true, reason: expect.stringContaining('more than any allowed size') }),
      });
    });
  });

  it('keeps the current size while it holds the prompt and fits; grows when it does not hold; shrinks when memory forces it', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  -a-b-c-|', {
        a: ask(3000, 2 * GIB, { currentNumCtx: 8192 }),
        b: ask(5000, 10 * GIB, { currentNumCtx: 4096 }),
        c: ask(1000, 1 * GIB, { currentNumCtx: 16384 }),
      });
      expectObservable(source.pipe(contextForMemory(cfg, testScheduler))).toBe('-A-B-C-|', {
        A: chose(1, 8192, { kept: true }),
        B: chose(3, 8192, { kept: false }),
        // 16384 (2 GiB) no longer fits 1 GiB - 512 MiB: the largest that does
        C: chose(5, 4096, { kept: false }),
      });
    });
  });

  it('a per-model maxContext overrides the config one; an unknown shape (0 bytes a token) fits whenever memory is above the margin', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  -a-b-|', { a: ask(100, 100 * GIB, { maxContext: 2048 }), b: ask(100, GIB, { kvBytesPerToken: 0 }) });
      expectObservable(source.pipe(contextForMemory(cfg, testScheduler))).toBe('-A-B-|', {
        A: chose(1, 2048),
        B: expect.objectContaining({ atMs: 3, numCtx: 8192, kvBytes: 0 }),
      });
    });
  });

  it('hot config: the latest sizes and ceiling apply from the next request; requests before the first value are dropped', () => {
    const wide = { ...cfg, maxContext: 32768 };
    const small = { ...cfg, allowedContextSizes: [1024, 2048, 4096] };
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const config = hot('   -c--w--s-----', { c: cfg, w: wide, s: small });
      const source = cold('  a-a--a--a---|', { a: ask(500, 100 * GIB) });
      expectObservable(source.pipe(contextForMemory(config, testScheduler))).toBe('--A--B--C---|', {
        A: chose(2, 8192),
        B: chose(5, 32768),
        C: chose(8, 4096),
      });
      expectSubscriptions(config.subscriptions).toBe('^-----------!');
    });
  });

  it('invalid input becomes a ContextForMemoryError naming the field, and unsubscribes the source', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      // 1 GiB free - 512 MiB margin: 4096 tokens (512 MiB) is the largest that fits
      const source = cold('  -a-b-a', { a: ask(10, GIB), b: ask(Number.NaN, GIB) });
      expectObservable(source.pipe(contextForMemory(cfg, testScheduler))).toBe(
        '-A-#',
        { A: chose(1, 4096) },
        new ContextForMemoryError('promptTokens must be a non-negative number, got NaN'),
      );
      expectSubscriptions(source.subscriptions).toBe('^--!');
    });
  });

  it('propagates an error of the source', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold<ContextRequest>('  -#', undefined, new Error('boom'));
      expectObservable(source.pipe(contextForMemory(cfg, testScheduler))).toBe('-#', undefined, new Error('boom'));
      expectSubscriptions(source.subscriptions).toBe('^!');
    });
  });

  it('propagates an error of the config and unsubscribes the source', () => {
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const config = hot('   c--#', { c: cfg }, new Error('bad config'));
      const source = cold('  -a-----', { a: ask(10, GIB) });
      expectObservable(source.pipe(contextForMemory(config, testScheduler))).toBe('-A-#', { A: chose(1, 4096) }, new Error('bad config'));
      expectSubscriptions(source.subscriptions).toBe('^--!');
      expectSubscriptions(config.subscriptions).toBe('^--!');
    });
  });

  it('allows early unsubscription', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  -a-a-a-|', { a: ask(10, GIB) });
      expectObservable(source.pipe(contextForMemory(cfg, testScheduler)), '^--!').toBe('-A-', { A: chose(1, 4096) });
      expectSubscriptions(source.subscriptions).toBe('^--!');
    });
  });

  it('completes with nothing on an empty source', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold<ContextRequest>('|');
      expectObservable(source.pipe(contextForMemory(cfg, testScheduler))).toBe('|');
      expectSubscriptions(source.subscriptions).toBe('(^!)');
    });
  });

  it('stops reading a synchronous source at the first invalid request', () => {
    let read = 0;
    const errors: unknown[] = [];
    from([ask(-1, GIB), ask(1, GIB)])
      .pipe(
        tap(() => (read += 1)),
        contextForMemory(cfg),
      )
      .subscribe({ error: (e: unknown) => errors.push(e) });
    expect(read).toBe(1);
    expect(errors).toEqual([expect.objectContaining({ code: 'MEMTIDE_ERR_CONTEXT_INPUT' })]);
  });
});
