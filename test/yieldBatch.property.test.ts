/**
 * yieldBatch over arbitrary fact timelines (virtual time): a hold never
 * outlasts maxHoldMs, the model side idle for idleAfterMs with nothing
 * resident is always released, a hold always has a busy model side behind it,
 * and every emission changes `hold`.
 */
import { fc, it as propIt } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { yieldBatch, type BatchFacts, type BatchHold, type YieldBatchConfig } from '../src/operators/yieldBatch.js';
import { replaySteps, type TimedStep } from './support/virtualTime.js';

const GIB = 1024 ** 3;

const arbConfig = fc.record({
  enabled: fc.boolean(),
  idleAfterMs: fc.integer({ min: 0, max: 10 }),
  maxHoldMs: fc.integer({ min: 1, max: 40 }),
});
const arbFacts = fc.record({
  ollamaInFlight: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 3 })),
  residentModelBytes: fc.oneof(fc.constant(0), fc.constantFrom(1.5 * GIB, 3.5 * GIB)),
});
const arbSteps = fc.array(fc.record({ gap: fc.integer({ min: 0, max: 12 }), facts: arbFacts }), { minLength: 1, maxLength: 40 });

const simulate = (config: YieldBatchConfig, steps: ReadonlyArray<TimedStep<BatchFacts>>) => replaySteps((scheduler) => yieldBatch(config, scheduler), steps);

/** `hold` in force at `atMs`, after everything that happened at that instant. */
const holdAt = (out: readonly BatchHold[], atMs: number) => out.filter((h) => h.atMs <= atMs).at(-1)?.hold ?? false;

describe('yieldBatch (properties)', () => {
  propIt.prop([arbConfig, arbSteps])('never holds longer than maxHoldMs in one stretch', (config, steps) => {
    const { out, errors } = simulate(config, steps);
    expect(errors).toEqual([]);
    for (const [i, h] of out.entries()) {
      if (!h.hold) continue;
      // The cap timer always fires in a flushed virtual clock: every hold has its release.
      const release = out[i + 1];
      expect(release?.hold).toBe(false);
      expect(release!.atMs - h.atMs).toBeLessThanOrEqual(config.maxHoldMs);
    }
  });

  propIt.prop([arbConfig, arbSteps])('released whenever the model side has been idle for idleAfterMs with nothing resident', (config, steps) => {
    const { out, timeline } = simulate(config, steps);
    for (const [k, at] of timeline.entries()) {
      if (at.facts.ollamaInFlight > 0 || at.facts.residentModelBytes > 0) continue;
      // The idle grace runs from the first facts without a request after the last one with a request.
      let lastBusy = -1;
      for (let j = k; j >= 0; j -= 1) {
        if (timeline[j]!.facts.ollamaInFlight > 0) {
          lastBusy = j;
          break;
        }
      }
      const idleAt = lastBusy < 0 ? at.atMs : Math.max(at.atMs, timeline[lastBusy + 1]!.atMs + config.idleAfterMs);
      // Only when nothing but idle facts came in between.
      const between = timeline.filter((e, i) => i > k && e.atMs <= idleAt);
      if (between.some((e) => e.facts.ollamaInFlight > 0 || e.facts.residentModelBytes > 0)) continue;
      expect(holdAt(out, idleAt), `idle from ${idleAt}`).toBe(false);
    }
  });

  propIt.prop([arbConfig, arbSteps])('emits the state at the first facts, then only changes; holds only when enabled and the model side is busy', (config, steps) => {
    const { out, timeline } = simulate(config, steps);
    expect(out[0]?.atMs).toBe(timeline[0]!.atMs);
    for (let i = 1; i < out.length; i += 1) expect(out[i]!.hold).not.toBe(out[i - 1]!.hold);
    for (const h of out) {
      expect(h.reason.length).toBeGreaterThan(0);
      if (!h.hold) continue;
      expect(config.enabled).toBe(true);
      // A hold starts only on facts (timers only release): then a request is in flight, a model is resident,
      // or the first facts without a request after one came less than idleAfterMs ago.
      const now = timeline.filter((e) => e.atMs <= h.atMs);
      expect(now.at(-1)!.atMs).toBe(h.atMs);
      // (several facts may come in one instant: one of them)
      const busyNow = now.some((e) => e.atMs === h.atMs && (e.facts.ollamaInFlight > 0 || e.facts.residentModelBytes > 0));
      const recent = now.some((e, i) => e.facts.ollamaInFlight > 0 && (now[i + 1]?.atMs ?? h.atMs) + config.idleAfterMs > h.atMs);
      expect(busyNow || recent).toBe(true);
    }
  });
});
