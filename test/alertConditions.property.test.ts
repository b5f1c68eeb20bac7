import fc from 'fast-check';
import { VirtualTimeScheduler, from, map, tap } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { alertsSchema } from '../src/app/schema/alerts.js';
import { PRESSURE_LEVELS, levelRank, type LoadedModel, type MemorySample, type PressureLevel } from '../src/model.js';
import { alertConditions, type AlertCondition, type AlertConditionsConfig, type AlertInput } from '../src/operators/alertConditions.js';

const GIB = 1024 ** 3;
const BUDGET = 4 * GIB;
const MARGIN = 5;

function sample(ollamaPss: number | null, selfRss: number): MemorySample {
  return {
    timestampMs: 0,
    system: { totalBytes: 16 * GIB, availableBytes: 4 * GIB, usedBytes: 12 * GIB, swapTotalBytes: 0, swapUsedBytes: 0, psi: null, physicalTotalBytes: 16 * GIB, cgroupLimitBytes: null },
    components: ollamaPss === null ? {} : { ollama: { rssBytes: ollamaPss + GIB, pssBytes: ollamaPss, pssAnonBytes: ollamaPss / 2, processCount: 2 } },
    processes: [],
    self: { pid: 1, rssBytes: selfRss, heapUsedBytes: 1, heapTotalBytes: 1, externalBytes: 0, arrayBuffersBytes: 0, sampleCpuMs: 1 },
  };
}

const cfg: AlertConditionsConfig = {
  alerts: alertsSchema.parse({ componentBudgets: { ollama: BUDGET }, clearMarginPercent: MARGIN, pressureMinLevel: 'medium', engine: { maxRssBytes: GIB } }),
  sampling: { intervalMs: 3_600_000, pss: 'watched' },
  pressure: { preset: 'auto' },
  components: { engine: 'engine' },
};

const modelArb: fc.Arbitrary<LoadedModel> = fc.record({
  name: fc.constantFrom('llama3.1:8b', 'phi3:mini', 'qwen2.5:14b'),
  sizeBytes: fc.integer({ min: 0, max: 8 * GIB }),
  sizeVramBytes: fc.constant(0),
  contextLength: fc.option(fc.constantFrom(2048, 8192, 32768), { nil: null }),
  inFlight: fc.integer({ min: 0, max: 1 }),
  idleSinceMs: fc.option(fc.integer({ min: 0, max: 1000 }), { nil: null }),
  pinned: fc.boolean(),
  expiresAtMs: fc.constant(null),
});

const inputArb: fc.Arbitrary<AlertInput> = fc.oneof(
  {
    arbitrary: fc
      .tuple(fc.option(fc.integer({ min: 3 * GIB, max: 5 * GIB }), { nil: null }), fc.integer({ min: 0.5 * GIB, max: 1.5 * GIB }))
      .map(([pss, self]): AlertInput => ({ kind: 'sample', sample: sample(pss, self) })),
    weight: 4,
  },
  { arbitrary: fc.constantFrom(...PRESSURE_LEVELS).map((level): AlertInput => ({ kind: 'pressure', change: { atMs: 0, level, previous: null, reasons: [] } })), weight: 2 },
  {
    arbitrary: fc
      .tuple(fc.constantFrom('ollama', 'backend'), fc.boolean(), fc.option(fc.integer({ min: 0, max: 10 * 3_600_000 }), { nil: null }))
      .map(([component, leaking, projected]): AlertInput => ({
        kind: 'leak',
        event: leaking
          ? { kind: 'leak', component, detectedAtMs: 0, slopeBytesPerHour: 100 * 1024 ** 2, confidence: 0.8, projectedExhaustionMs: projected }
          : { kind: 'clear', component, atMs: 0, reason: 'growth ended' },
      })),
    weight: 1,
  },
  { arbitrary: fc.array(modelArb, { maxLength: 3 }).map((models): AlertInput => ({ kind: 'models', models })), weight: 1 },
);

const stepsArb = fc.array(fc.tuple(fc.integer({ min: 0, max: 600_000 }), inputArb), { maxLength: 60 });

/** Runs the steps synchronously in virtual time; returns every condition with the index of the step that produced it. */
function run(steps: [number, AlertInput][]): { out: [number, AlertCondition][]; error: unknown } {
  const scheduler = new VirtualTimeScheduler();
  const out: [number, AlertCondition][] = [];
  let index = -1;
  let error: unknown;
  from(steps)
    .pipe(
      tap(([dt]) => {
        scheduler.frame += dt;
        index += 1;
      }),
      map(([, input]) => input),
      alertConditions(cfg, scheduler),
    )
    .subscribe({ next: (c) => out.push([index, c]), error: (e: unknown) => (error = e) });
  return { out, error };
}

describe('alertConditions: properties', () => {
  it('per key: the first emission is active, an inactive one only follows an active one, and nothing repeats unchanged', () => {
    fc.assert(
      fc.property(stepsArb, (steps) => {
        const { out, error } = run(steps);
        expect(error).toBeUndefined();
        const last = new Map<string, AlertCondition>();
        for (const [, c] of out) {
          const previous = last.get(c.key);
          if (!c.active) expect(previous?.active, `${c.key} cleared without being active`).toBe(true);
          if (previous && previous.active && c.active) {
            const same = JSON.stringify([previous.severity, previous.title, previous.message, previous.recommendations]) ===
              JSON.stringify([c.severity, c.title, c.message, c.recommendations]);
            expect(same, `${c.key} re-emitted unchanged`).toBe(false);
          }
          if (!c.active) expect(c.recommendations).toEqual([]);
          last.set(c.key, c);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("after every step, each condition's last emitted state is what the rules say (pressure, leak, budget with hysteresis, engine RSS)", () => {
    fc.assert(
      fc.property(stepsArb, (steps) => {
        const { out } = run(steps);
        const state = new Map<string, boolean>();
        let level: PressureLevel | null = null;
        let budgetActive = false;
        let rssActive = false;
        const leaking = new Map<string, boolean>();
        steps.forEach(([, input], i) => {
          for (const [at, c] of out) if (at === i) state.set(c.key, c.active);
          const is = (key: string) => state.get(key) ?? false;
          if (input.kind === 'pressure') level = input.change.level;
          if (input.kind === 'leak') leaking.set(input.event.component, input.event.kind === 'leak');
          if (input.kind === 'sample') {
            const pss = input.sample.components.ollama?.pssBytes ?? 0;
            budgetActive = budgetActive ? pss > BUDGET * (1 - MARGIN / 100) : pss > BUDGET;
            const rss = input.sample.self.rssBytes;
            rssActive = rssActive ? rss > GIB * (1 - MARGIN / 100) : rss > GIB;
          }
          expect(is('pressure')).toBe(level !== null && levelRank(level) >= levelRank('medium'));
          for (const [component, on] of leaking) expect(is(`leak:${component}`), `leak:${component} at step ${i}`).toBe(on);
          expect(is('budget:ollama'), `budget at step ${i}`).toBe(budgetActive);
          expect(is('engine:rss')).toBe(rssActive);
        });
      }),
      { numRuns: 300 },
    );
  });

  it('severity follows the pressure level: medium info, high warning, critical critical', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...PRESSURE_LEVELS), { minLength: 1, maxLength: 20 }), (levels) => {
        const { out } = run(levels.map((level) => [1, { kind: 'pressure', change: { atMs: 0, level, previous: null, reasons: [] } }]));
        const expected = { low: 'info', medium: 'info', high: 'warning', critical: 'critical' } as const;
        for (const [i, c] of out) if (c.active) expect(c.severity).toBe(expected[levels[i]!]);
      }),
    );
  });
});
