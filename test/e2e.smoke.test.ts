/**
 * `npm run bench:e2e` in miniature (bench/e2e/scenario.ts SMOKE_DAY): both
 * modes with every real process (the fake Ollama with real model memory,
 * the simulated Meetily with whisper.cpp, the memtide runner from dist/ with
 * its proxy, history and dashboard), a day of seconds. No memory target is
 * checked here (that is the benchmark's job); what is checked is that both
 * runs do all the work, nothing is lost, and that the governed run behaves
 * as governed: the model is unloaded after memtide's idle timeout while
 * Ollama's own keep-alive still holds it in the baseline.
 */
import { describe, expect, it } from 'vitest';
import { runE2e } from '../bench/e2e/run.js';
import { COMPONENTS } from '../bench/e2e/runMode.js';
import { SMOKE_DAY } from '../bench/e2e/scenario.js';

describe('bench:e2e smoke (a day of seconds, both modes)', () => {
  it('produces every transcript and summary in both runs, loses no request, and memtide unloads the idle model', async () => {
    const result = await runE2e({ scenario: SMOKE_DAY, checkTarget: false, log: () => undefined });

    for (const run of [result.baseline, result.memtide]) {
      expect(run.sim.items.map((i) => i.name)).toEqual(['smoke meeting', 'smoke recording']);
      for (const item of run.sim.items) {
        expect(item.transcripts, `${run.mode} ${item.name}`).toBe(item.expectedTranscripts);
        expect(item.expectedTranscripts).toBeGreaterThan(0);
        expect(item.emptyTranscripts).toBe(0);
        expect(item.summaryOk).toBe(true);
      }
      expect(run.sim.db).toEqual({ meetings: 2, transcripts: 2, summaries: 2 });
      expect(run.sim.requests.sent).toBeGreaterThanOrEqual(5);
      expect(run.sim.requests.answered).toBe(run.sim.requests.sent);
      expect(run.ollamaStats?.loads).toBeGreaterThanOrEqual(1);
      expect(run.sampler.samples.length).toBeGreaterThan(10);
    }
    expect(result.requestsLost).toBe(0);
    expect(result.problems).toEqual([]);
    expect(result.functional).toBe(true);

    // The memtide run really went through memtide: its proxy, dashboard feed and history.
    expect(result.memtide.sim.requests.byRoute['POST /v1/chat/completions']).toBe(2);
    expect(result.memtide.dashboard?.events.sample ?? 0).toBeGreaterThan(0);
    expect(result.memtide.history?.systemSamples ?? 0).toBeGreaterThan(0);
    expect(result.memtide.sampler.samples.some((s) => (s.components[COMPONENTS.memtide] ?? 0) > 0)).toBe(true);

    // At the end of the day (1 day minute after the last request, twice memtide's idle timeout) memtide has unloaded the model; Ollama alone still holds it.
    const modelAtEnd = (run: typeof result.baseline) => run.sampler.samples.at(-1)!.components[COMPONENTS.model] ?? 0;
    const modelPeak = (run: typeof result.baseline) => Math.max(...run.sampler.samples.map((s) => s.components[COMPONENTS.model] ?? 0));
    expect(modelPeak(result.baseline)).toBeGreaterThan(500e6);
    expect(modelAtEnd(result.baseline)).toBeGreaterThan(0.9 * modelPeak(result.baseline));
    expect(modelAtEnd(result.memtide)).toBeLessThan(0.1 * modelPeak(result.memtide));

    expect(result.text.split('\n').at(-1)).toMatch(/^peak_reduction=-?\d+\.\d\d mean_reduction=-?\d+\.\d\d requests_lost=0$/);
  }, 240_000);
});
