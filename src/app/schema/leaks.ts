/**
 * Config section `leaks`: the leak detector (`leakTrend`, docs/leaks.md).
 * The defaults are the ones `npm run bench:leaks` was tuned and held out
 * with: zero false positives on GC sawtooth, steps, warm-ups and batches, and
 * 10 / 30 / 100 / 600 MB/h leaks found within 4 h / at medians within 60 / 40
 * / 30 min. Every key is hot-reloadable; changing bucketMs or windowMs
 * restarts the windows (the floors already collected no longer fit).
 */
import { z } from 'zod';
import { bytes, componentName, duration } from '../schemaTypes.js';

const pValue = (fallback: number, description: string) => z.number().gt(0).max(0.2).default(fallback).describe(description);

const fastSchema = z
  .strictObject({
    enabled: z.boolean().default(true).describe('Run the fast path (steep leaks reported before the batch tolerance has passed).'),
    windowMs: duration(
      'Window of the fast path. Growth must be steady in each quarter of it, which a batch (allocating over at most a few minutes) is not.',
    ).prefault('24m'),
    minHourlyGrowthBytes: bytes('Growth per hour the fast path needs; slower leaks wait for the standard path.').prefault('450MB'),
    pValue: pValue(1e-4, 'Mann-Kendall one-sided p-value the fast window must reach.'),
    floorSpanMs: duration(
      'The fast path follows the running minimum of the bucket floors over this span, so GC cycles up to this long do not count as growth.',
    ).prefault('4m'),
  })
  .describe('Fast path for steep leaks (hundreds of MB per hour).')
  .prefault({});

const overrideSchema = z
  .strictObject({
    minHourlyGrowthBytes: bytes('Growth floor for this component.').optional(),
    persistence: z.number().int().min(1).max(100).optional().describe('Persistence (evaluations) for this component.'),
    pValue: z.number().gt(0).max(0.2).optional().describe('Mann-Kendall p-value for this component.'),
  })
  .describe('Overrides of the section for one component.');

export const leaksSchema = z
  .strictObject({
    enabled: z.boolean().default(true).describe('Run leak detection on every component (and on memtide itself, the engine component).'),
    bucketMs: duration(
      'Samples are reduced to one floor per bucket (second-smallest value): a GC sawtooth inside a bucket disappears, a leak raises every floor.',
    )
      .pipe(z.number().min(1000, 'at least 1s'))
      .prefault('1m'),
    evaluateEveryMs: duration('How often each component is evaluated (at a bucket boundary).').prefault('1m'),
    windowMs: duration(
      'Longest history a trend is judged on; memory per component is one floor per bucket of it. A gap in the samples restarts the window; restarts and known loads/unloads cut it (no floors across a cut are compared).',
    ).prefault('4h'),
    minSpanMs: duration('Shortest span of confirmed floors a detection of the standard path may rest on.').prefault('10m'),
    batchToleranceMs: duration(
      'Growth given back within this long is a batch, not a leak: evidence must be 3/4 of this old, with the newer floors continuing its trend and no memory returned since.',
    ).prefault('20m'),
    minHourlyGrowthBytes: bytes(
      'Growth floor: slower growth is never a leak. A span passes when its slope is at least half of this and within 15% of it or its upper error bound reaches it, and it grew by at least this much (an hour at the floor).',
    ).prefault('10MB'),
    pValue: pValue(0.001, 'Mann-Kendall one-sided p-value a window must reach (nominal: floors are decimated to near-independent points).'),
    persistence: z
      .number()
      .int()
      .min(1)
      .max(100)
      .default(3)
      .describe(
        'Positive evaluations in a row before a leak is reported (for a slow leak found on a long span: 70% of the last span/15 evaluations); as many in a row showing no growth clear it.',
      ),
    decelerationRatio: z
      .number()
      .gt(0)
      .max(1)
      .default(0.9)
      .describe(
        'Warm-up test: growth whose later half is significantly slower than this fraction of its earlier half (or whose middle bulges above its line, or which falls short of its trend since) is saturating, not leaking.',
      ),
    stepMinBytes: bytes(
      'Smallest level shift between neighbouring floors taken as a step (a model load or unload): the window is cut there; larger shifts are needed when the noise is larger (5 sigma).',
    ).prefault('20MB'),
    restartHoldMs: duration(
      'A fall below every floor of the preceding 2 x batchToleranceMs that holds this long is a restart: a reported leak is cleared and the window is cut there.',
    ).prefault('3m'),
    resetSettleMs: duration(
      'After a known load or unload (resets$: the window is cut there), samples of the component are ignored this long while memory settles.',
    ).prefault('1m'),
    gapResetMs: duration("A gap in a component's samples longer than this restarts its window.").prefault('10m'),
    fast: fastSchema,
    ignore: z.array(componentName).default([]).describe('Components never checked for leaks.'),
    components: z
      .record(componentName, overrideSchema)
      .prefault({})
      .describe('Per-component overrides, e.g. { "frontend": { "minHourlyGrowthBytes": "50MB" } } for a component that grows by design.'),
  })
  .refine((l) => l.windowMs >= l.batchToleranceMs + l.minSpanMs, {
    message: 'must be at least batchToleranceMs + minSpanMs',
    path: ['windowMs'],
  })
  .refine((l) => l.evaluateEveryMs >= l.bucketMs, { message: 'must be at least bucketMs', path: ['evaluateEveryMs'] })
  .describe('Leak detection (leakTrend): windows, floors, persistence.')
  .prefault({});
export type LeaksConfig = z.output<typeof leaksSchema>;
