/** leakTrend properties over synthetic traces (10 s sampling): steps and offsets are never leaks; steady leaks are found. */
import fc from 'fast-check';
import { from, lastValueFrom, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { leaksSchema } from '../src/app/schema/leaks.js';
import type { LeakEvent } from '../src/model.js';
import { leakTrend, type LeakInput } from '../src/operators/leakTrend.js';

const config = leaksSchema.parse({});
const MB = 1e6;
const T0 = 1_700_000_000_000;
const STEP = 10_000;

function series(samples: number, bytes: (i: number) => number): LeakInput[] {
  return Array.from({ length: samples }, (_, i) => ({ timestampMs: T0 + i * STEP, components: { c: Math.max(0, Math.round(bytes(i))) }, availableBytes: 4e9 }));
}
const detect = (inputs: LeakInput[]): Promise<LeakEvent[]> => lastValueFrom(from(inputs).pipe(leakTrend(config), toArray()));

/** Deterministic noise from a seed (fast-check shrinks the seed, not a thousand numbers). */
function noise(seed: number, amplitude: number): (i: number) => number {
  return (i) => {
    const x = Math.sin((i + 1) * 12.9898 + seed * 78.233) * 43758.5453;
    return (x - Math.floor(x) - 0.5) * 2 * amplitude;
  };
}

describe('leakTrend properties', () => {
  it('a flat noisy trace with a constant offset and an isolated step (any size, any time) is never a leak', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 4000 }), // offset MB
        fc.integer({ min: -2000, max: 3000 }), // step MB
        fc.integer({ min: 10, max: 2100 }), // step at sample
        fc.integer({ min: 0, max: 1000 }), // noise seed
        fc.integer({ min: 1, max: 10 }), // noise MB
        async (offset, step, at, seed, amplitude) => {
          const n = noise(seed, amplitude * MB);
          const base = 200 * MB + offset * MB;
          const inputs = series(2160, (i) => base + (i >= at ? Math.max(step * MB, -base + 50 * MB) : 0) + n(i));
          expect((await detect(inputs)).filter((e) => e.kind === 'leak')).toEqual([]);
        },
      ),
      { numRuns: 12 },
    );
  });

  it('a steady leak of 30 MB/h or more is always found within 6 h, with a positive slope', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 30, max: 800 }), fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 1, max: 5 }), async (rate, seed, amplitude) => {
        const n = noise(seed, amplitude * MB);
        const inputs = series(2160, (i) => 400 * MB + ((i * STEP) / 3_600_000) * rate * MB + n(i));
        const leaks = (await detect(inputs)).filter((e) => e.kind === 'leak');
        expect(leaks.length).toBeGreaterThanOrEqual(1);
        expect(leaks[0]!.kind === 'leak' && leaks[0]!.slopeBytesPerHour).toBeGreaterThan(0);
      }),
      { numRuns: 10 },
    );
  });

  it('adding a constant to every sample does not change what is found', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 1, max: 3000 }), async (rate, offset) => {
        const f = (i: number) => 300 * MB + ((i * STEP) / 3_600_000) * rate * MB + noise(3, 2 * MB)(i);
        const plain = await detect(series(1440, f));
        const shifted = await detect(series(1440, (i) => f(i) + offset * MB));
        const kinds = (events: LeakEvent[]) => events.map((e) => `${e.kind}@${e.kind === 'leak' ? e.detectedAtMs : e.atMs}`);
        expect(kinds(shifted)).toEqual(kinds(plain));
      }),
      { numRuns: 8 },
    );
  });
});
