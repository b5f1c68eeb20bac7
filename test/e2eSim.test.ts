/**
 * The simulated Meetily of bench:e2e decides how many summary requests a
 * meeting costs, and how big they are, the way Meetily does: from the
 * context `/api/show` reports (ollama/metadata.rs) and its character-based
 * chunking (summary/processor.rs). These pin that behaviour.
 */
import { describe, expect, it } from 'vitest';
import { FINAL_SYSTEM, chunkUserPrompt } from '../bench/e2e/sim/prompts.js';
import { chunkText, meetilyContextSize, meetilyTokenThreshold, roughTokenCount } from '../bench/e2e/sim/summarize.js';
import { LLAMA_3B } from '../bench/e2e/scenario.js';
import { showResponse } from './support/fakeOllamaWire.js';

describe('simulated Meetily: the context it believes a model has', () => {
  it('reads <family>.context_length from /api/show: the trained context, 131072 for llama3.2 straight from Ollama', () => {
    const show = showResponse(LLAMA_3B, new Date(0).toISOString());
    expect(meetilyContextSize(show, LLAMA_3B.name)).toBe(131_072);
    expect(meetilyTokenThreshold(131_072)).toBe(130_772);
  });

  it('takes a context rewritten by a proxy, then the Modelfile num_ctx, then its family table, then 4000', () => {
    expect(meetilyContextSize({ details: { family: 'llama' }, model_info: { 'llama.context_length': 1024 } }, 'x')).toBe(1024);
    expect(meetilyContextSize({ details: { family: 'llama' }, model_info: {}, modelfile: 'FROM x\nPARAMETER num_ctx 8192\n' }, 'x')).toBe(8192);
    expect(meetilyContextSize({ details: { family: 'qwen2' }, model_info: {} }, 'qwen2.5:0.5b')).toBe(8192);
    expect(meetilyContextSize({ details: { family: 'olmo' }, model_info: {} }, 'olmo:7b')).toBe(4000);
    expect(meetilyContextSize(null, 'mistral:7b')).toBe(8192);
  });
});

describe('simulated Meetily: chunking', () => {
  it('cuts at threshold - 300 tokens (0.35 a character) with overlap, and keeps every character', () => {
    const text = Array.from({ length: 400 }, (_, i) => `word${i}`).join(' ');
    const chunks = chunkText(text, 300, 100);
    expect(chunks.length).toBeGreaterThan(1);
    // ceil(300 / 0.35) characters, then ceil(x 0.35) tokens: Meetily can be one token over.
    for (const chunk of chunks) expect(roughTokenCount(chunk)).toBeLessThanOrEqual(301);
    expect(chunks[0]!.startsWith('word0 ')).toBe(true);
    expect(chunks.at(-1)!.endsWith('word399')).toBe(true);
    expect(chunkText(text, 10_000, 100)).toEqual([text]);
  });

  it('sends Meetily-sized prompts: the final report system prompt dominates a short meeting', () => {
    expect(roughTokenCount(FINAL_SYSTEM)).toBeGreaterThan(700);
    expect(roughTokenCount(chunkUserPrompt(''))).toBeGreaterThan(100);
  });
});
