import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ComponentUsage, LeakDetected, LoadedModel, MemorySample, Recommendation } from '../src/model.js';
import {
  cheaperSampling,
  enableLowMemoryMode,
  lowerTranscriptionConcurrency,
  modelRamBytes,
  rankRecommendations,
  recommendForBudget,
  recommendForEngine,
  recommendForExhaustion,
  recommendForLeak,
  recommendForPressure,
  restartLeaking,
  roughBytes,
  selfBaselineKey,
  setCommand,
  shrinkContext,
  quantizeKvCache,
  smallerBatch,
  switchPreset,
  unloadIdleModel,
  type RecommendState,
} from '../src/operators/recommend.js';

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;
const HOUR = 3_600_000;
const NOW = 10 * HOUR;

function sample(totalBytes: number, components: Record<string, Partial<ComponentUsage> & { rssBytes: number }> = {}, self: Partial<MemorySample['self']> = {}): MemorySample {
  return {
    timestampMs: NOW,
    system: {
      totalBytes,
      availableBytes: totalBytes / 10,
      usedBytes: (totalBytes * 9) / 10,
      swapTotalBytes: 0,
      swapUsedBytes: 0,
      psi: null,
      physicalTotalBytes: totalBytes,
      cgroupLimitBytes: null,
    },
    components: Object.fromEntries(
      Object.entries(components).map(([name, u]) => [name, { pssBytes: null, pssAnonBytes: null, processCount: 1, ...u }]),
    ),
    processes: [],
    self: { pid: 7, rssBytes: 100 * MIB, heapUsedBytes: 30 * MIB, heapTotalBytes: 60 * MIB, externalBytes: 0, arrayBuffersBytes: 0, sampleCpuMs: 3, ...self },
  };
}

function state(overrides: Partial<RecommendState> = {}): RecommendState {
  return {
    nowMs: NOW,
    sample: sample(7.6 * GIB),
    pressure: 'high',
    models: [],
    leaks: [],
    baselines: {},
    preset: 'auto',
    componentBudgets: {},
    sampling: { intervalMs: 1000, pss: 'watched' },
    tunables: {},
    ...overrides,
  };
}

function model(name: string, sizeBytes: number, extra: Partial<LoadedModel> = {}): LoadedModel {
  return { name, sizeBytes, sizeVramBytes: 0, contextLength: null, inFlight: 0, idleSinceMs: NOW - 25 * 60_000, pinned: false, expiresAtMs: null, ...extra };
}

function leak(component: string, slopeBytesPerHour: number): LeakDetected {
  return { kind: 'leak', component, detectedAtMs: NOW - HOUR, slopeBytesPerHour, confidence: 0.9, projectedExhaustionMs: null };
}

describe('recommendations: specific steps from crafted states', () => {
  it('unloads the largest idle unpinned model, by the RAM it holds, with the command and the saving', () => {
    const models = [
      model('qwen2.5:14b', 9 * GIB, { pinned: true }),
      model('llama3.1:8b', 4.9 * GIB),
      model('phi3:mini', 2.3 * GIB),
      model('mixtral', 26 * GIB, { inFlight: 1, idleSinceMs: null }),
      model('gpu-only', 7 * GIB, { sizeVramBytes: 7 * GIB }),
    ];
    expect(unloadIdleModel(state({ models }))).toEqual({
      action: 'Unload the idle model llama3.1:8b (idle for 25m): frees about 4.9 GiB.',
      command: 'memtide models unload llama3.1:8b',
      expectedSavingBytes: 4.9 * GIB,
    });
  });

  it('counts only the RAM part of a partly offloaded model, and quotes odd names for the shell', () => {
    const models = [model("my model's", 6 * GIB, { sizeVramBytes: 4 * GIB }), model('small', 1.5 * GIB)];
    const step = unloadIdleModel(state({ models }));
    expect(step?.expectedSavingBytes).toBe(2 * GIB);
    expect(step?.command).toBe("memtide models unload 'my model'\\''s'");
    expect(modelRamBytes(models[0]!)).toBe(2 * GIB);
  });

  it('no unload advice when no model is idle (in flight, never finished, pinned, or all in VRAM)', () => {
    const models = [
      model('a', 4 * GIB, { inFlight: 2 }),
      model('b', 4 * GIB, { idleSinceMs: null }),
      model('c', 4 * GIB, { pinned: true }),
      model('d', 4 * GIB, { sizeVramBytes: 4 * GIB }),
    ];
    expect(unloadIdleModel(state({ models }))).toBeNull();
    expect(recommendForPressure(state({ models })).some((r) => r.command?.includes('models unload'))).toBe(false);
  });

  it('switches a preset made for a larger machine (alerts too late) and one made for a smaller one (too early)', () => {
    expect(switchPreset(state({ preset: '16gb' }))).toEqual({
      action:
        'Switch pressure.preset from 16gb to 8gb: this machine has 7.6 GiB (effective), so the 16gb lines (critical at 11% available) alert too late; 8gb is critical at 12%.',
      command: '--set pressure.preset=8gb',
    });
    expect(switchPreset(state({ preset: '4gb', sample: sample(32 * GIB) }))?.action).toContain('from 4gb to 16gb');
    expect(switchPreset(state({ preset: '4gb', sample: sample(32 * GIB) }))?.action).toContain('alert too early');
    expect(switchPreset(state({ preset: '8gb' }))).toBeNull();
    expect(switchPreset(state({ preset: 'auto' }))).toBeNull();
    expect(switchPreset(state({ preset: '16gb', sample: null }))).toBeNull();
  });

  it('lowers transcription concurrency by one, saving one worker\'s share of its component', () => {
    const s = state({
      sample: sample(8 * GIB, { audio: { rssBytes: 2 * GIB, pssBytes: 1.5 * GIB } }),
      tunables: { transcription: { concurrency: 3, component: 'audio' } },
    });
    expect(lowerTranscriptionConcurrency(s)).toEqual({
      // 1.5 GiB / 3 workers, to two significant digits (texts round measured amounts: see roughBytes)
      action: 'Lower transcription.maxConcurrent from 3 to 2: each worker holds about 510 MiB of audio.',
      command: '--set transcription.maxConcurrent=2',
      expectedSavingBytes: 510 * MIB,
    });
    expect(lowerTranscriptionConcurrency(state({ tunables: { transcription: { concurrency: 1, component: 'audio' } } }))).toBeNull();
    expect(lowerTranscriptionConcurrency(state())).toBeNull();
    // only under high or critical pressure
    expect(recommendForPressure({ ...s, pressure: 'medium' }).some((r) => r.command?.includes('transcription'))).toBe(false);
    expect(recommendForPressure(s).some((r) => r.command?.includes('transcription'))).toBe(true);
  });

  it('restarts a leaking component, freeing its growth since the baseline', () => {
    const s = state({
      sample: sample(8 * GIB, { backend: { rssBytes: 2 * GIB, pssBytes: 1.9 * GIB, pssAnonBytes: 1.6 * GIB } }),
      baselines: { backend: { bytes: 0.6 * GIB, atMs: NOW - 4 * HOUR - 10 * 60_000 } },
    });
    expect(restartLeaking(s, leak('backend', 250 * MIB))).toEqual({
      action: 'Restart backend: it grew 1.0 GiB in the last 4h10m (leaking about 250 MiB/h); a restart gives that back.',
      expectedSavingBytes: GIB,
    });
    // no baseline: the rate, no saving
    expect(restartLeaking(state(), leak('backend', 250 * MIB))).toEqual({ action: 'Restart backend: it is leaking about 250 MiB/h.' });
    expect(recommendForLeak(s, leak('backend', 250 * MIB))).toHaveLength(1);
  });

  it('halves the largest context above 4096 tokens; nothing for small or unknown contexts', () => {
    expect(shrinkContext(state({ models: [model('a', GIB, { contextLength: 8192 }), model('b', GIB, { contextLength: 32768 })] }))?.action).toBe(
      'Lower the context of b from 32768 to 16384 tokens (num_ctx): its KV cache, which grows with the context, halves.',
    );
    expect(shrinkContext(state({ models: [model('a', GIB, { contextLength: 4096 }), model('b', GIB)] }))).toBeNull();
  });

  it('advises a q8_0 KV cache while a model is loaded on an f16 server; nothing once q8_0, when unknown, or with no model', () => {
    const loaded = [model('small', GIB), model('llama3.2:3b', 3 * GIB, { contextLength: 4096 })];
    expect(quantizeKvCache(state({ models: loaded, tunables: { kvCacheType: 'f16' } }))).toEqual({
      action: 'Start Ollama with OLLAMA_FLASH_ATTENTION=1 and OLLAMA_KV_CACHE_TYPE=q8_0, then set models.kvCacheType to q8_0: the KV cache of llama3.2:3b (4096 tokens) and of every model loaded after it halves.',
      command: '--set models.kvCacheType=q8_0',
    });
    expect(quantizeKvCache(state({ models: loaded, tunables: { kvCacheType: 'q8_0' } }))).toBeNull();
    expect(quantizeKvCache(state({ models: loaded, tunables: {} }))).toBeNull();
    expect(quantizeKvCache(state({ models: [], tunables: { kvCacheType: 'f16' } }))).toBeNull();
    // Part of what high pressure and an over-budget model component get.
    const severe = recommendForPressure(state({ pressure: 'high', models: loaded, tunables: { kvCacheType: 'f16' } }));
    expect(severe.some((r) => r.command === '--set models.kvCacheType=q8_0')).toBe(true);
    expect(recommendForPressure(state({ pressure: 'medium', models: loaded, tunables: { kvCacheType: 'f16' } })).some((r) => r.command === '--set models.kvCacheType=q8_0')).toBe(false);
  });

  it('advises num_batch 128 while a model is loaded and the batch is larger (or Ollama\'s default); nothing at 128 or below, when unknown, or with no model', () => {
    const loaded = [model('llama3.2:3b', 3 * GIB, { contextLength: 4096 })];
    expect(smallerBatch(state({ models: loaded, tunables: { numBatch: null } }))).toEqual({
      action: "Set models.numBatch to 128 (now Ollama's 512): llama.cpp's compute buffer of every model shrinks to 25% (about 150 MB less resident for a 3B model), and prompts were measured no slower; each loaded model reloads once on its next request.",
      command: '--set models.numBatch=128',
    });
    expect(smallerBatch(state({ models: loaded, tunables: { numBatch: 256 } }))?.action).toContain('(now 256)');
    expect(smallerBatch(state({ models: loaded, tunables: { numBatch: 256 } }))?.action).toContain('shrinks to 50%');
    expect(smallerBatch(state({ models: loaded, tunables: { numBatch: 128 } }))).toBeNull();
    expect(smallerBatch(state({ models: loaded, tunables: { numBatch: 64 } }))).toBeNull();
    expect(smallerBatch(state({ models: loaded, tunables: {} }))).toBeNull();
    expect(smallerBatch(state({ models: [], tunables: { numBatch: null } }))).toBeNull();
    expect(recommendForPressure(state({ pressure: 'high', models: loaded, tunables: { numBatch: null } })).some((r) => r.command === '--set models.numBatch=128')).toBe(true);
    expect(recommendForPressure(state({ pressure: 'medium', models: loaded, tunables: { numBatch: null } })).some((r) => r.command === '--set models.numBatch=128')).toBe(false);
    expect(recommendForBudget(state({ models: loaded, tunables: { numBatch: null } }), 'ollama').some((r) => r.command === '--set models.numBatch=128')).toBe(true);
  });

  it('enables a low-memory mode only when the build has one and it is off', () => {
    expect(enableLowMemoryMode(state({ tunables: { lowMemoryMode: { setting: 'models.lowMemory', enabled: false } } }))).toEqual({
      action: 'Enable low-memory mode (models.lowMemory).',
      command: '--set models.lowMemory=true',
    });
    expect(enableLowMemoryMode(state({ tunables: { lowMemoryMode: { setting: 'models.lowMemory', enabled: true } } }))).toBeNull();
    expect(enableLowMemoryMode(state())).toBeNull();
  });

  it('nothing applies → no recommendation at all (no boilerplate)', () => {
    expect(recommendForPressure(state())).toEqual([]);
    expect(recommendForBudget(state(), 'frontend')).toEqual([]);
    expect(recommendForEngine(state(), 'cpu', 'engine')).toEqual([]);
    expect(recommendForEngine(state(), 'rss', 'engine')).toEqual([]);
    expect(recommendForEngine(state(), 'stalled', 'engine')).toEqual([]);
  });

  it('ranks by expected saving, largest first; steps without a saving come after, in rule order', () => {
    const s = state({
      preset: '16gb',
      sample: sample(7.6 * GIB, { audio: { rssBytes: 1.5 * GIB }, backend: { rssBytes: 3 * GIB } }),
      models: [model('llama3.1:8b', 4.7 * GIB, { contextLength: 16384 })],
      leaks: [leak('backend', 300 * MIB), leak('frontend', 40 * MIB)],
      baselines: { backend: { bytes: 1 * GIB, atMs: NOW - 6 * HOUR } },
      tunables: { transcription: { concurrency: 2, component: 'audio' }, lowMemoryMode: { setting: 'lowMemory', enabled: false } },
    });
    const steps = recommendForPressure(s);
    expect(steps.map((r) => [r.action.split(':')[0], r.expectedSavingBytes])).toEqual([
      ['Unload the idle model llama3.1', 4.7 * GIB],
      ['Restart backend', 2 * GIB],
      // 1.5 GiB / 2 workers = 768 MiB, to two significant digits
      ['Lower transcription.maxConcurrent from 2 to 1', 770 * MIB],
      ['Restart frontend', undefined],
      ['Lower the context of llama3.1', undefined],
      ['Enable low-memory mode (lowMemory).', undefined],
      ['Switch pressure.preset from 16gb to 8gb', undefined],
    ]);
  });

  it('budget: what shrinks that component, then raising the budget to what it needs', () => {
    const s = state({
      sample: sample(16 * GIB, { ollama: { rssBytes: 7 * GIB, pssBytes: 6.2 * GIB }, audio: { rssBytes: 1.2 * GIB } }),
      models: [model('llama3.1:8b', 4.7 * GIB, { contextLength: 8192 })],
      componentBudgets: { ollama: 5 * GIB, audio: 1 * GIB },
      tunables: { transcription: { concurrency: 2, component: 'audio' } },
    });
    expect(recommendForBudget(s, 'ollama')).toEqual([
      expect.objectContaining({ command: 'memtide models unload llama3.1:8b', expectedSavingBytes: 4.7 * GIB }),
      expect.objectContaining({ action: expect.stringContaining('from 8192 to 4096 tokens') }),
      {
        action: 'If ollama needs this much, raise alerts.componentBudgets.ollama from 5.0 GiB to 7.0 GiB.',
        command: '--set alerts.componentBudgets.ollama=7GiB',
      },
    ]);
    expect(recommendForBudget(s, 'audio').map((r) => r.command)).toEqual(['--set transcription.maxConcurrent=1', '--set alerts.componentBudgets.audio=1536MiB']);
    // within budget: nothing to raise
    expect(recommendForBudget({ ...s, componentBudgets: { ollama: 10 * GIB } }, 'ollama').some((r) => r.command?.startsWith('--set alerts'))).toBe(false);
  });

  it('exhaustion: restart the leaking component, and unloading an idle model buys time', () => {
    const s = state({
      sample: sample(8 * GIB, { ollama: { rssBytes: 6 * GIB } }),
      baselines: { ollama: { bytes: 5 * GIB, atMs: NOW - 2 * HOUR } },
      models: [model('phi3:mini', 2.3 * GIB)],
    });
    expect(recommendForExhaustion(s, leak('ollama', 500 * MIB)).map((r) => r.expectedSavingBytes)).toEqual([2.3 * GIB, GIB]);
  });

  it('engine: sampling costs → read PSS only for watched components and sample less often; RSS → restart the host with its growth', () => {
    const s = state({
      sample: { ...sample(8 * GIB), processes: new Array(300).fill(null) as never, self: { ...sample(8 * GIB).self, sampleCpuMs: 120, rssBytes: 700 * MIB } },
      sampling: { intervalMs: 1000, pss: 'all' },
      baselines: { [selfBaselineKey('engine')]: { bytes: 90 * MIB, atMs: NOW - 3 * HOUR } },
    });
    expect(cheaperSampling(s)).toEqual([
      {
        action: 'Set sampling.pss to watched: reading PSS of every process (~0.3 ms each, 300 processes) is most of the 120 ms a sample costs.',
        command: '--set sampling.pss=watched',
      },
      {
        action: 'Raise sampling.intervalMs from 1s to 3s: a sample costs 120 ms of CPU, 12% of a core.',
        command: '--set sampling.intervalMs=3s',
      },
    ]);
    expect(recommendForEngine(s, 'rss', 'engine')).toEqual([
      { action: 'Restart the process hosting memtide (pid 7): its RSS grew 610 MiB in the last 3h.', expectedSavingBytes: 610 * MIB },
    ]);
  });

  it('roughBytes: measured amounts to two significant digits in the binary unit formatBytes picks', () => {
    expect(roughBytes(512 * MIB)).toEqual({ bytes: 510 * MIB, text: '510 MiB' });
    expect(roughBytes(22.2 * MIB)).toEqual({ bytes: 22 * MIB, text: '22 MiB' });
    expect(roughBytes(1.04 * GIB)).toEqual({ bytes: GIB, text: '1.0 GiB' });
    expect(roughBytes(1.56 * GIB).text).toBe('1.6 GiB');
    expect(roughBytes(99.6 * MIB)).toEqual({ bytes: 100 * MIB, text: '100 MiB' });
    expect(roughBytes(9.96 * MIB)).toEqual({ bytes: 10 * MIB, text: '10 MiB' });
    expect(roughBytes(1023.9 * MIB)).toEqual({ bytes: 1020 * MIB, text: '1020 MiB' });
    expect(roughBytes(0)).toEqual({ bytes: 0, text: '0 B' });
    expect(roughBytes(123)).toEqual({ bytes: 120, text: '120 B' });
    expect(roughBytes(-300 * MIB)).toEqual({ bytes: -300 * MIB, text: '-300 MiB' });
  });

  it('roughBytes is within 5% (half a step of two digits), stable under jitter inside a step, and its own fixed point', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1024, max: 2 ** 50 }), (bytes) => {
        const rough = roughBytes(bytes);
        expect(Math.abs(rough.bytes - bytes)).toBeLessThanOrEqual(0.05 * bytes + 1);
        expect(roughBytes(rough.bytes)).toEqual(rough);
        expect(rough.text).toMatch(/^(\d\.\d|\d{2,4}) (KiB|MiB|GiB|TiB)$/);
      }),
    );
  });

  it('setCommand quotes values that are not plain words', () => {
    expect(setCommand('a.b', 'x y')).toBe('--set a.b="x y"');
    expect(setCommand('a.b', 3)).toBe('--set a.b=3');
  });
});

describe('recommendations: properties', () => {
  const modelArb = fc.record({
    name: fc.stringMatching(/^[a-z][a-z0-9.:-]{0,12}$/),
    sizeBytes: fc.integer({ min: 0, max: 40 * GIB }),
    sizeVramBytes: fc.integer({ min: 0, max: 40 * GIB }),
    contextLength: fc.option(fc.constantFrom(2048, 4096, 8192, 32768, 131072), { nil: null }),
    inFlight: fc.integer({ min: 0, max: 3 }),
    idleSinceMs: fc.option(fc.integer({ min: 0, max: NOW }), { nil: null }),
    pinned: fc.boolean(),
    expiresAtMs: fc.constant(null),
  });
  const componentArb = fc.constantFrom('ollama', 'audio', 'backend', 'frontend', 'engine');
  const stateArb = fc.record({
    models: fc.array(modelArb, { maxLength: 5 }),
    leaks: fc.uniqueArray(fc.tuple(componentArb, fc.integer({ min: MIB, max: 2 * GIB })), { maxLength: 3, selector: ([c]) => c }),
    usage: fc.dictionary(componentArb, fc.integer({ min: 0, max: 16 * GIB })),
    baselines: fc.dictionary(componentArb, fc.integer({ min: 0, max: 16 * GIB })),
    budgets: fc.dictionary(componentArb, fc.integer({ min: GIB, max: 8 * GIB })),
    preset: fc.constantFrom('auto', '4gb', '8gb', '16gb') as fc.Arbitrary<RecommendState['preset']>,
    total: fc.integer({ min: 2 * GIB, max: 64 * GIB }),
    pressure: fc.constantFrom('low', 'medium', 'high', 'critical') as fc.Arbitrary<RecommendState['pressure']>,
    concurrency: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
  });

  type StateInput = typeof stateArb extends fc.Arbitrary<infer T> ? T : never;

  function build(x: StateInput): RecommendState {
    return state({
      models: x.models,
      leaks: x.leaks.map(([c, slope]) => leak(c, slope)),
      sample: sample(x.total, Object.fromEntries(Object.entries(x.usage).map(([c, rss]) => [c, { rssBytes: rss }]))),
      baselines: Object.fromEntries(Object.entries(x.baselines).map(([c, bytes]) => [c, { bytes, atMs: NOW - HOUR }])),
      componentBudgets: x.budgets,
      preset: x.preset,
      pressure: x.pressure,
      tunables: x.concurrency === undefined ? {} : { transcription: { concurrency: x.concurrency, component: 'audio' } },
    });
  }

  function all(s: RecommendState): Recommendation[][] {
    return [
      recommendForPressure(s),
      ...Object.keys(s.componentBudgets).map((c) => recommendForBudget(s, c)),
      ...s.leaks.map((l) => recommendForLeak(s, l)),
      ...s.leaks.map((l) => recommendForExhaustion(s, l)),
    ];
  }

  it('every step names a component, model or setting and a number from the state; savings are positive and ranked', () => {
    fc.assert(
      fc.property(stateArb, (x) => {
        const s = build(x);
        const names = [...s.models.map((m) => m.name), ...Object.keys(x.usage), ...s.leaks.map((l) => l.component), 'pressure.preset', 'transcription.maxConcurrent', 'num_ctx'];
        for (const list of all(s)) {
          const savings = list.map((r) => r.expectedSavingBytes ?? -1);
          expect(savings).toEqual([...savings].sort((a, b) => b - a));
          expect(new Set(list.map((r) => r.action)).size).toBe(list.length);
          for (const step of list) {
            expect(names.some((n) => step.action.includes(n)), step.action).toBe(true);
            expect(step.action).toMatch(/\d/);
            if (step.expectedSavingBytes !== undefined) expect(step.expectedSavingBytes).toBeGreaterThan(0);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('unload advice appears exactly when an idle unpinned model holds RAM, and names the largest one', () => {
    fc.assert(
      fc.property(stateArb, (x) => {
        const s = build(x);
        const idle = s.models.filter((m) => m.inFlight === 0 && m.idleSinceMs !== null && !m.pinned && modelRamBytes(m) > 0);
        const unloads = recommendForPressure(s).filter((r) => r.command?.startsWith('memtide models unload'));
        if (idle.length === 0) {
          expect(unloads).toEqual([]);
        } else {
          expect(unloads).toHaveLength(1);
          expect(unloads[0]?.expectedSavingBytes).toBe(Math.max(...idle.map(modelRamBytes)));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('rankRecommendations is a stable sort by saving that drops duplicate actions', () => {
    const stepArb = fc.record(
      { action: fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f'), expectedSavingBytes: fc.option(fc.integer({ min: 1, max: 5 }), { nil: undefined }) },
      { requiredKeys: ['action'] },
    );
    fc.assert(
      fc.property(fc.array(fc.option(stepArb, { nil: null }), { maxLength: 12 }), (generated) => {
        const steps: (Recommendation | null)[] = generated;
        const ranked = rankRecommendations(steps);
        const firsts = new Map<string, Recommendation>();
        for (const step of steps) if (step && !firsts.has(step.action)) firsts.set(step.action, step);
        expect(new Set(ranked)).toEqual(new Set(firsts.values()));
        for (let i = 1; i < ranked.length; i++) {
          const [a, b] = [ranked[i - 1]!, ranked[i]!];
          const [sa, sb] = [a.expectedSavingBytes ?? -1, b.expectedSavingBytes ?? -1];
          expect(sa).toBeGreaterThanOrEqual(sb);
          if (sa === sb) expect(steps.indexOf(a)).toBeLessThan(steps.indexOf(b));
        }
      }),
    );
  });
});
