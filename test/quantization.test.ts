import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  bitsPerWeight,
  chooseQuantization,
  normalizeModelName,
  parseModelTag,
  quantizationLevel,
  variantKey,
  type TagInfo,
} from '../src/operators/models/quantization.js';

const GB = 1e9;
const tag = (name: string, gb: number, quantization: string | null, parameterSize: string | null = '8.0B'): TagInfo => ({
  name,
  sizeBytes: gb * GB,
  quantization,
  parameterSize,
});

/** What `/api/tags` lists on a machine with three llama3.1 8B variants and two others. */
const TAGS: TagInfo[] = [
  tag('llama3.1:8b', 4.9, 'Q4_K_M'),
  tag('llama3.1:8b-instruct-q8_0', 8.5, 'Q8_0'),
  tag('llama3.1:8b-instruct-fp16', 16.1, 'F16'),
  tag('llama3.1:8b-text-q4_0', 4.7, 'Q4_0'),
  tag('gemma3:4b', 3.3, 'Q4_K_M', '4.3B'),
];

const fitsBelow = (gb: number) => (t: TagInfo) => (t.sizeBytes ?? Infinity) <= gb * GB;

describe('parseModelTag', () => {
  it('splits repository, tag and the quantization suffix', () => {
    expect(parseModelTag('llama3.1:8b-instruct-q8_0')).toEqual({
      name: 'llama3.1:8b-instruct-q8_0',
      repo: 'llama3.1',
      tag: '8b-instruct-q8_0',
      quantization: 'Q8_0',
      parts: ['8b', 'instruct'],
    });
    expect(parseModelTag('llama3.1:8b-instruct-q4_K_M').quantization).toBe('Q4_K_M');
    expect(parseModelTag('llama3.1:8b-instruct-fp16').quantization).toBe('F16');
    expect(parseModelTag('qwen2.5:7b-instruct-iq4_xs').quantization).toBe('IQ4_XS');
  });

  it('a tag without a quantization part, or a bare name, names none', () => {
    expect(parseModelTag('llama3.1:8b')).toMatchObject({ quantization: null, parts: ['8b'] });
    expect(parseModelTag('llama3.1')).toMatchObject({ name: 'llama3.1:latest', tag: 'latest', quantization: null });
    // "q4" alone is a size-like tag, not a suffix after a dash
    expect(parseModelTag('x:q4_0').quantization).toBeNull();
  });

  it('names without a tag get :latest; registry paths keep their slashes', () => {
    expect(normalizeModelName('gemma3')).toBe('gemma3:latest');
    expect(normalizeModelName('hf.co/user/repo:Q4_K_M')).toBe('hf.co/user/repo:Q4_K_M');
    expect(normalizeModelName('localhost:5000/user/model')).toBe('localhost:5000/user/model:latest');
  });
});

describe('levels', () => {
  it('None (F16/F32), Int8 (Q8_0, Q6_K), Int4 (Q5_*, Q4_*, lower)', () => {
    expect(['F32', 'F16', 'BF16'].map(quantizationLevel)).toEqual(['none', 'none', 'none']);
    expect(['Q8_0', 'Q6_K'].map(quantizationLevel)).toEqual(['int8', 'int8']);
    expect(['Q5_K_M', 'Q5_0', 'Q4_K_M', 'Q4_0', 'Q3_K_M', 'Q2_K', 'IQ4_XS'].map(quantizationLevel)).toEqual(Array(7).fill('int4'));
    expect(quantizationLevel('MXFP9')).toBeNull();
    expect(quantizationLevel(null)).toBeNull();
  });

  it('bits per weight follow the bytes-per-parameter table', () => {
    expect(bitsPerWeight('Q8_0')).toBe(8.5);
    expect(bitsPerWeight('q4_k_m')).toBeCloseTo(4.88, 2);
    expect(bitsPerWeight('IQ3_XXS')).toBe(3.5);
  });
});

describe('variantKey', () => {
  it('aliases of the same weights share a key; text, another size or another repo do not', () => {
    const key = variantKey(TAGS[0]!);
    expect(variantKey(TAGS[1]!)).toBe(key);
    expect(variantKey(TAGS[2]!)).toBe(key);
    expect(variantKey(TAGS[3]!)).not.toBe(key);
    expect(variantKey(TAGS[4]!)).not.toBe(key);
    expect(variantKey(tag('llama3.1:70b-instruct-q4_K_M', 40, 'Q4_K_M', '70.6B'))).not.toBe(key);
    // `latest` matches by the server's parameter_size
    expect(variantKey(tag('llama3.1:latest', 4.9, 'Q4_K_M'))).toBe(key);
  });
});

describe('chooseQuantization', () => {
  it('auto keeps the requested tag when it fits and never goes above its level', () => {
    const choice = chooseQuantization({ requested: 'llama3.1:8b', tags: TAGS, preference: 'auto', fits: fitsBelow(100) });
    expect(choice).toMatchObject({ model: 'llama3.1:8b', switched: false, level: 'int4' });
  });

  it('auto goes down to a variant that fits when the requested one does not', () => {
    const choice = chooseQuantization({ requested: 'llama3.1:8b-instruct-fp16', tags: TAGS, preference: 'auto', fits: fitsBelow(10) });
    expect(choice).toMatchObject({ model: 'llama3.1:8b-instruct-q8_0', switched: true, level: 'int8', quantization: 'Q8_0' });
    const tighter = chooseQuantization({ requested: 'llama3.1:8b-instruct-fp16', tags: TAGS, preference: 'auto', fits: fitsBelow(6) });
    expect(tighter).toMatchObject({ model: 'llama3.1:8b', switched: true, level: 'int4' });
  });

  it('a preference is an upper bound: none may go up to F16 when it fits, int8 caps at Q8_0, int4 goes to Q4', () => {
    expect(chooseQuantization({ requested: 'llama3.1:8b', tags: TAGS, preference: 'none', fits: fitsBelow(20) }).model).toBe('llama3.1:8b-instruct-fp16');
    expect(chooseQuantization({ requested: 'llama3.1:8b', tags: TAGS, preference: 'int8', fits: fitsBelow(20) }).model).toBe('llama3.1:8b-instruct-q8_0');
    expect(chooseQuantization({ requested: 'llama3.1:8b-instruct-q8_0', tags: TAGS, preference: 'int4', fits: fitsBelow(20) }).model).toBe('llama3.1:8b');
  });

  it('nothing fits: the smallest allowed variant (the budget then evicts or refuses)', () => {
    const choice = chooseQuantization({ requested: 'llama3.1:8b-instruct-fp16', tags: TAGS, preference: 'auto', fits: () => false });
    expect(choice).toMatchObject({ model: 'llama3.1:8b', reason: expect.stringContaining('no variant fits') });
  });

  it('int4 asked but no int4 variant exists: the requested tag', () => {
    const tags = [tag('phi3:14b-medium-4k-instruct-q8_0', 14.8, 'Q8_0', '14.0B')];
    expect(chooseQuantization({ requested: tags[0]!.name, tags, preference: 'int4', fits: () => true })).toMatchObject({ switched: false });
  });

  it('a model the list does not have is passed through', () => {
    const choice = chooseQuantization({ requested: 'mistral:7b-instruct-q5_K_M', tags: TAGS, preference: 'int4', fits: () => true });
    expect(choice).toMatchObject({ model: 'mistral:7b-instruct-q5_K_M', switched: false, quantization: 'Q5_K_M', reason: 'not listed by /api/tags' });
  });

  it('property: the choice is a variant of the request, at or below the ceiling, and fits whenever any allowed variant fits', () => {
    const levelBits = { none: Infinity, int8: 8.5, int4: 5.99 } as const;
    fc.assert(
      fc.property(
        fc.constantFrom(...TAGS.map((t) => t.name)),
        fc.constantFrom('auto', 'none', 'int8', 'int4' as const),
        fc.double({ min: 0, max: 20, noNaN: true }),
        (requested, preference, room) => {
          const fits = fitsBelow(room);
          const choice = chooseQuantization({ requested, tags: TAGS, preference, fits });
          const req = TAGS.find((t) => t.name === requested)!;
          const chosen = TAGS.find((t) => t.name === choice.model)!;
          expect(variantKey(chosen)).toBe(variantKey(req));
          const ceiling = preference === 'auto' ? bitsPerWeight(req.quantization)! : levelBits[preference];
          const allowed = TAGS.filter((t) => variantKey(t) === variantKey(req) && bitsPerWeight(t.quantization)! <= ceiling);
          if (allowed.length > 0) expect(bitsPerWeight(chosen.quantization)!).toBeLessThanOrEqual(ceiling);
          if (allowed.some(fits)) {
            expect(fits(chosen)).toBe(true);
            // and it is the best one that fits
            const best = Math.max(...allowed.filter(fits).map((t) => bitsPerWeight(t.quantization)!));
            expect(bitsPerWeight(chosen.quantization)).toBe(best);
          }
        },
      ),
    );
  });
});
