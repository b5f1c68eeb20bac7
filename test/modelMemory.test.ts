import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BYTES_PER_PARAMETER,
  DEFAULT_OVERHEAD_BYTES,
  estimateModelMemory,
  graphBytes,
  kvBytesPerToken,
  kvCacheBytes,
  OLLAMA_DEFAULT_NUM_BATCH,
  overheadBytesFor,
  SizeCorrection,
  splitMapped,
  weightsBytes,
  type ModelFacts,
} from '../src/operators/models/modelMemory.js';

const GIB = 1024 ** 3;

/** llama3.1 8B as `/api/show` describes it (parameter_count of the real GGUF). */
const llama8b: ModelFacts = {
  name: 'llama3.1:8b',
  architecture: 'llama',
  parameterCount: 8_030_261_248,
  blockCount: 32,
  contextLength: 131_072,
  embeddingLength: 4096,
  headCount: 32,
  headCountKv: 8,
  keyLength: null,
  quantization: 'Q4_K_M',
  fileSizeBytes: null,
};

describe('model memory estimate (shared README, Ollama section)', () => {
  it('8B at Q4_K_M is 4.58 GiB of weights (within 1%)', () => {
    const weights = weightsBytes(llama8b)!;
    expect(Math.abs(weights / GIB - 4.58) / 4.58).toBeLessThan(0.01);
  });

  it('the bytes per parameter of the README', () => {
    expect(BYTES_PER_PARAMETER).toMatchObject({ F16: 2, Q8_0: 1.0625, Q6_K: 0.82, Q5_K_M: 0.71, Q4_K_M: 0.61, Q4_0: 0.5625 });
  });

  it('the GGUF file size wins over parameters x bytes per parameter', () => {
    expect(weightsBytes({ ...llama8b, fileSizeBytes: 4_920_753_328 })).toBe(4_920_753_328);
    expect(weightsBytes({ ...llama8b, quantization: 'Q8_0' })).toBe(Math.round(8_030_261_248 * 1.0625));
  });

  it('unknown quantization and no file size: no estimate (never a guess)', () => {
    expect(weightsBytes({ ...llama8b, quantization: 'MXFP9' })).toBeNull();
    expect(estimateModelMemory({ ...llama8b, parameterCount: null }, 4096)).toBeNull();
  });

  it('KV cache of llama3 8B shapes at 8192 ctx, f16, is exactly 1 GiB; q8_0 half, q4_0 a quarter', () => {
    expect(kvCacheBytes(llama8b, 8192)).toBe(GIB);
    expect(kvCacheBytes(llama8b, 8192, 'q8_0')).toBe(GIB / 2);
    expect(kvCacheBytes(llama8b, 8192, 'q4_0')).toBe(GIB / 4);
    expect(kvBytesPerToken(llama8b)).toBe(128 * 1024);
  });

  it('uses attention.key_length as head_dim when the GGUF has it (gemma3: 256, not 2560 / 8)', () => {
    const gemma = { blockCount: 34, headCountKv: 4, embeddingLength: 2560, headCount: 8, keyLength: 256 };
    expect(kvBytesPerToken(gemma)).toBe(2 * 34 * 4 * 256 * 2);
    expect(kvBytesPerToken({ ...gemma, keyLength: null })).toBe(2 * 34 * 4 * 320 * 2);
  });

  it('estimate = weights + KV + 512 MiB buffers; a missing shape counts no KV', () => {
    const est = estimateModelMemory(llama8b, 8192)!;
    expect(est.kvBytes).toBe(GIB);
    expect(est.overheadBytes).toBe(DEFAULT_OVERHEAD_BYTES);
    expect(est.totalBytes).toBe(est.weightsBytes + GIB + 512 * 1024 ** 2);
    expect(estimateModelMemory({ ...llama8b, blockCount: null }, 8192)!.kvBytes).toBe(0);
  });

  it('mapped (weights, use_mmap on) and anonymous bytes add up to the size', () => {
    expect(splitMapped(6 * GIB, 4.5 * GIB, true)).toEqual({ mappedBytes: 4.5 * GIB, anonymousBytes: 1.5 * GIB });
    expect(splitMapped(6 * GIB, 4.5 * GIB, false)).toEqual({ mappedBytes: 0, anonymousBytes: 6 * GIB });
    expect(splitMapped(4 * GIB, 4.5 * GIB, true)).toEqual({ mappedBytes: 4 * GIB, anonymousBytes: 0 });
    expect(splitMapped(4 * GIB, null, true)).toEqual({ mappedBytes: 0, anonymousBytes: 4 * GIB });
  });
});

describe('SizeCorrection (learned from /api/ps)', () => {
  it('is 1 until something is observed; the first observation is taken whole', () => {
    const c = new SizeCorrection();
    expect(c.ratio('m')).toBe(1);
    expect(c.correct('m', 1000)).toBe(1000);
    c.observe('m', 1000, 1150);
    expect(c.ratio('m')).toBeCloseTo(1.15, 10);
    expect(c.correct('m', 2000)).toBe(2300);
    expect(c.ratio('other')).toBe(1);
  });

  it('converges to the true ratio under noise (within 2% after 30 readings)', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.8, max: 1.5, noNaN: true }),
        fc.array(fc.double({ min: -0.03, max: 0.03, noNaN: true }), { minLength: 30, maxLength: 60 }),
        (truth, noise) => {
          const c = new SizeCorrection();
          c.observe('m', 5e9, 5e9 * 1.9); // a first reading far off
          for (const n of noise) c.observe('m', 5e9, 5e9 * truth * (1 + n));
          expect(Math.abs(c.ratio('m') - truth) / truth).toBeLessThan(0.02);
        },
      ),
    );
  });

  it('each reading moves the ratio by alpha of the error (geometric convergence)', () => {
    const c = new SizeCorrection({ alpha: 0.5 });
    c.observe('m', 100, 100);
    c.observe('m', 100, 120);
    expect(c.ratio('m')).toBeCloseTo(1.1, 10);
    c.observe('m', 100, 120);
    expect(c.ratio('m')).toBeCloseTo(1.15, 10);
    expect(c.samples('m')).toBe(3);
  });

  it('clamps absurd readings and ignores empty ones', () => {
    const c = new SizeCorrection();
    c.observe('m', 100, 100_000);
    expect(c.ratio('m')).toBe(2);
    c.observe('z', 0, 100);
    c.observe('z', 100, 0);
    expect(c.samples('z')).toBe(0);
    expect(() => new SizeCorrection({ alpha: 0 })).toThrow(RangeError);
  });
});

describe('compute graph and num_batch (Ollama fs/ggml GraphSize, llama.cpp "CPU compute buffer size")', () => {
  /** llama3.2:3b as /api/show describes it. */
  const llama32 = { architecture: 'llama', embeddingLength: 3072, headCount: 24, vocabSize: 128_256 };
  const MIB = 1024 ** 2;

  it('llama3.2:3b at 4096 context: 256.5 MiB at batch 512 (the output term), a quarter of that at 128', () => {
    expect(graphBytes(llama32, 4096, 512)).toBe(4 * 512 * (3072 + 128_256));
    expect(graphBytes(llama32, 4096, 512)! / MIB).toBeCloseTo(256.5, 1);
    expect(graphBytes(llama32, 4096, 128)! / MIB).toBeCloseTo(64.1, 1);
  });

  it('llama with many heads at a long context: the attention term wins; other architectures: the output term', () => {
    expect(graphBytes(llama32, 16_384, 512)).toBe(4 * 512 * (1 + 4 * 3072 + 16_384 * 25));
    expect(graphBytes({ ...llama32, architecture: 'gemma3' }, 16_384, 512)).toBe(4 * 512 * (3072 + 128_256));
  });

  it('the batch is capped at the context, and an unknown vocabulary sizes nothing', () => {
    expect(graphBytes(llama32, 256, 512)).toBe(graphBytes(llama32, 256, 256));
    expect(graphBytes({ ...llama32, vocabSize: null }, 4096, 512)).toBeNull();
    expect(overheadBytesFor({ ...llama32, vocabSize: undefined }, 4096, 128)).toBe(DEFAULT_OVERHEAD_BYTES);
  });

  it('the buffers: the default at Ollama\'s 512 (or no batch), less the graph difference below it, never under a quarter', () => {
    expect(overheadBytesFor(llama32, 4096, null)).toBe(DEFAULT_OVERHEAD_BYTES);
    expect(overheadBytesFor(llama32, 4096, OLLAMA_DEFAULT_NUM_BATCH)).toBe(DEFAULT_OVERHEAD_BYTES);
    expect(overheadBytesFor(llama32, 4096, 128)).toBe(DEFAULT_OVERHEAD_BYTES - 4 * 384 * (3072 + 128_256));
    expect(overheadBytesFor({ ...llama32, vocabSize: 2_000_000 }, 4096, 1)).toBe(DEFAULT_OVERHEAD_BYTES / 4);
  });

  it('property: the buffers never shrink as the batch grows, and never fall under a quarter of the default', () => {
    fc.assert(
      fc.property(
        fc.record({ architecture: fc.constantFrom('llama', 'qwen2', 'gemma3'), embeddingLength: fc.integer({ min: 64, max: 16_384 }), headCount: fc.integer({ min: 1, max: 128 }), vocabSize: fc.integer({ min: 1000, max: 300_000 }) }),
        fc.integer({ min: 256, max: 131_072 }),
        fc.integer({ min: 1, max: 4096 }),
        fc.integer({ min: 1, max: 4096 }),
        (facts, numCtx, a, b) => {
          const [small, large] = a <= b ? [a, b] : [b, a];
          expect(overheadBytesFor(facts, numCtx, small)).toBeLessThanOrEqual(overheadBytesFor(facts, numCtx, large));
          expect(overheadBytesFor(facts, numCtx, small)).toBeGreaterThanOrEqual(DEFAULT_OVERHEAD_BYTES / 4);
        },
      ),
    );
  });
});
