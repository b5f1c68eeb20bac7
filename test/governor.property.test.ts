import fc from 'fast-check';
import { Subject, VirtualTimeScheduler } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { PRESSURE_LEVELS, levelRank, type PressureChange, type PressureLevel } from '../src/model.js';
import { chooseContext, type ContextForMemoryConfig, type ContextRequest } from '../src/operators/contextForMemory.js';
import { modelsSchema } from '../src/app/schema/models.js';
import { idleTimeoutOf, idleUnload, type IdleUnloadConfig, type IdleUnloadDecision, type ModelActivity } from '../src/operators/idleUnload.js';
import { planAdmission } from '../src/operators/models/admissionPlan.js';
import { effectiveIdleConfig, isPinned, keepAliveFor, modelBudgetBytes, presetBudgetBytes } from '../src/operators/models/governorPolicy.js';
import type { ModelFacts } from '../src/operators/models/modelMemory.js';
import { planBudget } from '../src/operators/lruBudget.js';
import { pressureResponse, type PressureDirective } from '../src/operators/pressureResponse.js';

const GB = 1e9;

const budgetModel = fc.record({
  name: fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f'),
  bytes: fc.integer({ min: 0, max: 8 * GB }),
  inFlight: fc.nat({ max: 2 }),
  pinned: fc.boolean(),
  lastUsedMs: fc.nat({ max: 1000 }),
});
const loadedSet = fc.uniqueArray(budgetModel, { selector: (m) => m.name, maxLength: 6 });

describe('lruBudget: planBudget properties', () => {
  it('an admitted load never leaves the set above budget, and evicts only idle unpinned models, least recently used first', () => {
    fc.assert(
      fc.property(loadedSet, fc.constantFrom('a', 'x'), fc.integer({ min: 0, max: 10 * GB }), fc.integer({ min: 0, max: 20 * GB }), (loaded, model, bytes, budget) => {
        const decision = planBudget({ loaded, load: { model, bytes } }, budget);
        const others = loaded.filter((m) => m.name !== model);
        const candidates = others.filter((m) => m.inFlight === 0 && !m.pinned).sort((a, b) => a.lastUsedMs - b.lastUsedMs || a.name.localeCompare(b.name));
        if (decision.kind === 'admit') {
          const after = others.filter((m) => !decision.evict.includes(m.name)).reduce((s, m) => s + m.bytes, 0) + bytes;
          expect(after).toBe(decision.totalAfterBytes);
          expect(after).toBeLessThanOrEqual(budget);
          // a prefix of the LRU order, and no longer than needed
          expect(decision.evict).toEqual(candidates.slice(0, decision.evict.length).map((m) => m.name));
          if (decision.evict.length > 0) expect(after + candidates[decision.evict.length - 1]!.bytes).toBeGreaterThan(budget);
        } else {
          const best = others.filter((m) => m.inFlight > 0 || m.pinned).reduce((s, m) => s + m.bytes, 0) + bytes;
          expect(best).toBeGreaterThan(budget);
          const pinned = others.filter((m) => m.pinned).reduce((s, m) => s + m.bytes, 0);
          expect(decision.reason).toBe(bytes + pinned > budget ? 'too-large' : 'busy');
        }
      }),
    );
  });

  it('more budget never turns an admission into a rejection', () => {
    fc.assert(
      fc.property(loadedSet, fc.integer({ min: 0, max: 10 * GB }), fc.integer({ min: 0, max: 20 * GB }), fc.integer({ min: 0, max: 5 * GB }), (loaded, bytes, budget, extra) => {
        const small = planBudget({ loaded, load: { model: 'x', bytes } }, budget);
        const large = planBudget({ loaded, load: { model: 'x', bytes } }, budget + extra);
        if (small.kind === 'admit') expect(large.kind).toBe('admit');
        if (small.kind === 'admit' && large.kind === 'admit') expect(large.evict.length).toBeLessThanOrEqual(small.evict.length);
      }),
    );
  });
});

const contextConfig = fc.record({
  allowedContextSizes: fc.uniqueArray(fc.constantFrom(1024, 2048, 4096, 8192, 16384, 32768, 65536), { minLength: 1, maxLength: 7 }),
  safetyMarginBytes: fc.integer({ min: 0, max: GB }),
  answerReserveTokens: fc.nat({ max: 2048 }),
  maxContext: fc.constantFrom(2048, 4096, 8192, 32768),
}) satisfies fc.Arbitrary<ContextForMemoryConfig>;

const contextRequest = fc.record({
  promptTokens: fc.nat({ max: 70_000 }),
  kvBytesPerToken: fc.constantFrom(0, 32 * 1024, 128 * 1024, 174_080),
  availableBytes: fc.integer({ min: -2 * GB, max: 40 * GB }),
  trainedContext: fc.option(fc.constantFrom(2048, 8192, 32768, 131_072), { nil: null }),
  currentNumCtx: fc.option(fc.constantFrom(2048, 3000, 4096, 8192, 16384), { nil: null }),
  maxContext: fc.option(fc.constantFrom(2048, 8192), { nil: null }),
}) satisfies fc.Arbitrary<ContextRequest>;

describe('contextForMemory: chooseContext properties', () => {
  it('is monotone in available memory', () => {
    fc.assert(
      fc.property(contextConfig, contextRequest, fc.integer({ min: 0, max: 20 * GB }), (config, request, more) => {
        const low = chooseContext(request, config);
        const high = chooseContext({ ...request, availableBytes: request.availableBytes + more }, config);
        expect(high.numCtx).toBeGreaterThanOrEqual(low.numCtx);
      }),
    );
  });

  it('never below what the prompt needs when any allowed size up to the trained context holds it; never above the trained context', () => {
    fc.assert(
      fc.property(contextConfig, contextRequest, (config, request) => {
        const choice = chooseContext(request, config);
        const need = request.promptTokens + config.answerReserveTokens;
        const cap = request.trainedContext ?? Infinity;
        const underCap = config.allowedContextSizes.filter((s) => s <= cap);
        // no allowed size under the trained context: the trained context itself is the one size
        const sizes = underCap.length > 0 || (request.currentNumCtx != null && request.currentNumCtx <= cap) ? underCap : [cap];
        const holdable = sizes.some((s) => s >= need) || (request.currentNumCtx != null && request.currentNumCtx >= need && request.currentNumCtx <= cap);
        if (holdable) {
          expect(choice.numCtx).toBeGreaterThanOrEqual(need);
          expect(choice.truncates).toBe(false);
        } else {
          expect(choice.truncates).toBe(true);
        }
        expect(choice.numCtx).toBeLessThanOrEqual(cap);
        if (choice.kept) expect(choice.numCtx).toBe(request.currentNumCtx);
        // a change of size only happens when the current one no longer holds the prompt or no longer fits
        if (!choice.kept && request.currentNumCtx != null && request.currentNumCtx <= cap && request.currentNumCtx >= need) {
          expect(request.currentNumCtx * request.kvBytesPerToken).toBeGreaterThan(request.availableBytes - config.safetyMarginBytes);
        }
      }),
    );
  });

  it('a chosen size that fits is not exceeded by another allowed size that also fits, within the ceiling', () => {
    fc.assert(
      fc.property(contextConfig, contextRequest, (config, request) => {
        const r = { ...request, currentNumCtx: null };
        const choice = chooseContext(r, config);
        const room = r.availableBytes - config.safetyMarginBytes;
        const ceiling = Math.max(choice.numCtx, r.maxContext ?? config.maxContext);
        const better = config.allowedContextSizes.filter(
          (s) => s > choice.numCtx && s <= ceiling && s <= (r.trainedContext ?? Infinity) && s * r.kvBytesPerToken <= room,
        );
        if (choice.kvBytes <= room) expect(better).toEqual([]);
      }),
    );
  });
});

describe('idleUnload properties (virtual time)', () => {
  type Step = { atMs: number; model: 'a' | 'b' | 'c'; kind: 'start' | 'end' | 'loaded' };
  const steps = fc.array(
    fc.record({ gap: fc.nat({ max: 30 }), model: fc.constantFrom('a' as const, 'b' as const, 'c' as const), kind: fc.constantFrom('start' as const, 'end' as const, 'loaded' as const) }),
    { maxLength: 40 },
  );

  it('decides only for idle unpinned models, exactly their timeout after they became idle, and never while in flight', () => {
    fc.assert(
      fc.property(steps, fc.integer({ min: 0, max: 40 }), fc.boolean(), (raw, timeout, pinB) => {
        // keep the sequence balanced: an end only when a start is open
        const open = { a: 0, b: 0, c: 0 };
        let at = 0;
        const script: Step[] = [];
        for (const s of raw) {
          at += s.gap;
          if (s.kind === 'end' && open[s.model] === 0) continue;
          if (s.kind === 'start') open[s.model] += 1;
          if (s.kind === 'end') open[s.model] -= 1;
          script.push({ atMs: at, model: s.model, kind: s.kind });
        }
        const config: IdleUnloadConfig = { idleTimeoutMs: timeout, pinned: pinB ? ['b'] : [], perModel: { c: { idleTimeoutMs: timeout * 2 } } };
        const scheduler = new VirtualTimeScheduler();
        const activity = new Subject<ModelActivity>();
        const decisions: IdleUnloadDecision[] = [];
        const inFlightAt = new Map<string, number>();
        // Assertions inside a subscriber would be swallowed by RxJS (reported asynchronously): record, then check.
        const inFlightAtDecision: number[] = [];
        const errors: unknown[] = [];
        activity.pipe(idleUnload(config, scheduler)).subscribe({
          next: (d) => {
            decisions.push(d);
            inFlightAtDecision.push(inFlightAt.get(d.model) ?? 0);
          },
          error: (e: unknown) => errors.push(e),
        });
        for (const s of script) {
          scheduler.schedule(() => {
            inFlightAt.set(s.model, (inFlightAt.get(s.model) ?? 0) + (s.kind === 'start' ? 1 : s.kind === 'end' ? -1 : 0));
            activity.next({ kind: s.kind, model: s.model });
          }, s.atMs);
        }
        scheduler.flush();
        expect(errors).toEqual([]);
        expect(inFlightAtDecision.every((n) => n === 0)).toBe(true);
        for (const d of decisions) {
          expect(pinB && d.model === 'b').toBe(false);
          expect(d.idleTimeoutMs).toBe(d.model === 'c' ? timeout * 2 : timeout);
          expect(d.atMs).toBe(d.idleSinceMs + d.idleTimeoutMs);
          // nothing happened to that model between becoming idle and the decision
          expect(script.some((s) => s.model === d.model && s.kind === 'start' && s.atMs > d.idleSinceMs && s.atMs < d.atMs)).toBe(false);
        }
        // every model that ended idle and unpinned got its decision once the timers ran out
        for (const model of ['a', 'b', 'c'] as const) {
          const touched = script.some((s) => s.model === model);
          if (!touched || open[model] > 0 || (pinB && model === 'b')) continue;
          const last = decisions.filter((d) => d.model === model).at(-1);
          expect(last, model).toBeDefined();
          expect(script.some((s) => s.model === model && s.kind !== 'loaded' && s.atMs > last!.atMs)).toBe(false);
        }
      }),
    );
  });
});

describe('pressureResponse properties', () => {
  it('holds loads exactly from a critical until the level is medium or lower; evicts by the current level', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...PRESSURE_LEVELS), { minLength: 1, maxLength: 30 }), fc.boolean(), (levels, pinnedToo) => {
        const subject = new Subject<PressureChange>();
        const out: PressureDirective[] = [];
        const errors: unknown[] = [];
        subject.pipe(pressureResponse({ unloadPinnedAtCritical: pinnedToo }, new VirtualTimeScheduler())).subscribe({ next: (d) => out.push(d), error: (e: unknown) => errors.push(e) });
        let hold = false;
        let last: PressureDirective | null = null;
        for (const level of levels) {
          subject.next({ atMs: 0, level, previous: null, reasons: [] });
          hold = level === 'critical' || (hold && levelRank(level) > levelRank('medium'));
          const evict = level === 'critical' ? (pinnedToo ? 'idle-all' : 'idle-unpinned') : level === 'high' ? 'idle-unpinned' : 'none';
          const current = out.at(-1)!;
          expect(current.holdLoads).toBe(hold);
          expect(current.evict).toBe(evict);
          if (last && current !== last) expect([current.holdLoads, current.evict]).not.toEqual([last.holdLoads, last.evict]);
          last = current;
        }
        expect(out.length).toBeLessThanOrEqual(levels.length);
        expect(errors).toEqual([]);
      }),
    );
  });

  it('the directive never asks for more than the level allows', () => {
    const rank: Record<PressureDirective['evict'], number> = { none: 0, 'idle-unpinned': 1, 'idle-all': 2 };
    fc.assert(
      fc.property(fc.array(fc.constantFrom<PressureLevel>(...PRESSURE_LEVELS), { minLength: 1, maxLength: 20 }), (levels) => {
        const subject = new Subject<PressureChange>();
        const out: PressureDirective[] = [];
        const errors: unknown[] = [];
        subject.pipe(pressureResponse({ unloadPinnedAtCritical: true }, new VirtualTimeScheduler())).subscribe({ next: (d) => out.push(d), error: (e: unknown) => errors.push(e) });
        for (const level of levels) {
          subject.next({ atMs: 0, level, previous: null, reasons: [] });
          expect(rank[out.at(-1)!.evict]).toBeLessThanOrEqual(Math.max(0, levelRank(level) - 1));
        }
        expect(errors).toEqual([]);
      }),
    );
  });
});

describe('governor policies (src/operators/models/governorPolicy.ts)', () => {
  const models = (input: Record<string, unknown> = {}) => modelsSchema.parse(input);

  it('default budget per preset: 1.5 / 4.5 GiB, and at least 8 GiB or half the memory on 16gb', () => {
    const GIB = 1024 ** 3;
    expect(presetBudgetBytes('4gb', null)).toBe(1.5 * GIB);
    expect(presetBudgetBytes('8gb', 8 * GIB)).toBe(4.5 * GIB);
    expect(presetBudgetBytes('16gb', 16 * GIB)).toBe(8 * GIB);
    expect(presetBudgetBytes('16gb', 64 * GIB)).toBe(32 * GIB);
    expect(presetBudgetBytes('16gb', null)).toBe(8 * GIB);
  });

  it('keep_alive: pinned forever; otherwise at least the idle timeout; a shorter client value is left alone', () => {
    fc.assert(
      fc.property(fc.option(fc.nat({ max: 86_400_000 }), { nil: null }), fc.option(fc.oneof(fc.nat({ max: 86_400_000 }), fc.constant(Infinity)), { nil: null }), (timeout, client) => {
        const keepAlive = keepAliveFor(timeout, client);
        if (timeout === null) {
          expect(keepAlive).toBe(-1);
        } else if (keepAlive === null) {
          expect(client).not.toBeNull();
        } else {
          expect(keepAlive * 1000).toBeGreaterThanOrEqual(timeout);
          if (client !== null) expect(client).toBeGreaterThan(timeout);
        }
      }),
    );
  });

  it('idle settings under pressure: every timeout capped at the grace; idle-all pins nothing; names normalised', () => {
    const config = models({ idleTimeoutMs: '10m', pressureGraceMs: '15s', pinned: ['gemma3'], perModel: { 'llama3.1:8b': { idleTimeoutMs: '1h' } } });
    const overrides = new Map([['qwen2.5:0.5b', true]]);
    const calm = effectiveIdleConfig(config, overrides, null);
    expect(idleTimeoutOf(calm, 'llama3.1:8b')).toBe(3_600_000);
    expect(idleTimeoutOf(calm, 'gemma3:latest')).toBeNull();
    expect(idleTimeoutOf(calm, 'qwen2.5:0.5b')).toBeNull();
    expect(idleTimeoutOf(calm, 'other:1b')).toBe(600_000);
    const high = effectiveIdleConfig(config, overrides, { evict: 'idle-unpinned' });
    expect(['llama3.1:8b', 'other:1b'].map((m) => idleTimeoutOf(high, m))).toEqual([15_000, 15_000]);
    expect(idleTimeoutOf(high, 'gemma3:latest')).toBeNull();
    const critical = effectiveIdleConfig(config, overrides, { evict: 'idle-all' });
    expect(['gemma3:latest', 'qwen2.5:0.5b', 'llama3.1:8b'].map((m) => idleTimeoutOf(critical, m))).toEqual([15_000, 15_000, 15_000]);
    // a runtime unpin beats the config's pin
    expect(isPinned(config, new Map([['gemma3:latest', false]]), 'gemma3')).toBe(false);
  });
});

describe('planAdmission properties (src/operators/models/admissionPlan.ts)', () => {
  const cfg = modelsSchema.parse({});
  const facts: ModelFacts = {
    name: 'llama3.1:8b',
    architecture: 'llama',
    parameterCount: 8.03e9,
    blockCount: 32,
    contextLength: 131_072,
    embeddingLength: 4096,
    headCount: 32,
    headCountKv: 8,
    keyLength: null,
    quantization: 'Q4_K_M',
    fileSizeBytes: null,
  };
  const planned = fc.uniqueArray(
    fc.record({
      name: fc.constantFrom('a:1b', 'b:1b', 'c:1b', 'llama3.1:8b'),
      sizeBytes: fc.integer({ min: 0, max: 6 * GB }),
      numCtx: fc.option(fc.constantFrom(2048, 4096, 8192), { nil: null }),
      inFlight: fc.nat({ max: 2 }),
      estimated: fc.boolean(),
      unloading: fc.boolean(),
      pinned: fc.boolean(),
      lastUsedMs: fc.nat({ max: 1000 }),
    }),
    { selector: (m) => m.name, maxLength: 4 },
  );

  it('admits a load only within the budget; evicts only idle unpinned models; holds loads when told; never reloads a busy model', () => {
    fc.assert(
      fc.property(
        planned,
        fc.integer({ min: 0, max: 20 * GB }),
        fc.nat({ max: 20_000 }),
        fc.constantFrom('chat', 'openai-chat'),
        fc.boolean(),
        fc.option(fc.integer({ min: 0, max: 16 * GB }), { nil: null }),
        (models, budget, promptTokens, endpoint, hold, systemAvailableBytes) => {
          const plan = planAdmission({
            request: { model: 'llama3.1:8b', endpoint, promptTokens },
            config: cfg,
            budgetBytes: budget,
            models,
            facts,
            tags: null,
            correct: (_m, raw) => raw,
            lastKnownSize: () => null,
            hold: hold ? 'held' : null,
            systemAvailableBytes,
          });
          const { admit } = plan;
          const target = models.find((m) => m.name === admit.target);
          if (endpoint === 'openai-chat') expect(admit.inject).toBeNull();
          if (plan.verdict === 'admit' && admit.needsLoad) {
            expect(hold).toBe(false);
            expect(target?.inFlight ?? 0).toBe(0);
            if (admit.bytes !== null) {
              const others = models.filter((m) => m.name !== admit.target).reduce((s, m) => s + m.sizeBytes, 0);
              expect(others + admit.bytes).toBeLessThanOrEqual(budget);
            }
          }
          if (plan.verdict === 'evict') {
            for (const name of plan.evict) expect(models.find((m) => m.name === name)).toMatchObject({ inFlight: 0, pinned: false });
          }
          if (plan.verdict === 'refuse') {
            const pinnedBytes = models.filter((m) => m.pinned && m.name !== admit.target).reduce((s, m) => s + m.sizeBytes, 0);
            expect(admit.bytes! + pinnedBytes).toBeGreaterThan(budget);
          }
          if (admit.inject !== null) expect(admit.inject).toBeGreaterThanOrEqual(Math.min(promptTokens + cfg.answerReserveTokens, 32768));
        },
      ),
    );
  });

  it('a temporary cap never refuses what the budget admits: the load waits (saying what it misses) or fits the cap', () => {
    fc.assert(
      fc.property(planned, fc.integer({ min: 0, max: 20 * GB }), fc.integer({ min: 0, max: 20 * GB }), fc.nat({ max: 20_000 }), (models, budget, cap, promptTokens) => {
        const input = {
          request: { model: 'llama3.1:8b', endpoint: 'chat', promptTokens },
          config: cfg,
          models,
          facts,
          tags: null,
          correct: (_m: string, raw: number) => raw,
          lastKnownSize: () => null,
          hold: null,
          systemAvailableBytes: null,
        };
        const uncapped = planAdmission({ ...input, budgetBytes: budget });
        const capped = planAdmission({ ...input, budgetBytes: Math.min(budget, cap), uncappedBudgetBytes: budget });
        if (uncapped.verdict !== 'refuse') expect(capped.verdict).not.toBe('refuse');
        if (capped.verdict === 'wait' && capped.shortfallBytes !== undefined) {
          expect(cap).toBeLessThan(budget);
          expect(capped.shortfallBytes).toBeGreaterThan(0);
          expect(capped.reason).toContain('optimization.balanceBudgets');
        }
        if (capped.verdict === 'admit' && capped.admit.needsLoad && capped.admit.bytes !== null) {
          const others = models.filter((m) => m.name !== capped.admit.target).reduce((sum, m) => sum + m.sizeBytes, 0);
          expect(others + capped.admit.bytes).toBeLessThanOrEqual(Math.min(budget, cap));
        }
      }),
    );
  });

  it('modelBudgetBytes: budgetScale scales only the preset budget', () => {
    fc.assert(
      fc.property(fc.constantFrom('4gb', '8gb', '16gb') as fc.Arbitrary<'4gb' | '8gb' | '16gb'>, fc.double({ min: 0.1, max: 1, noNaN: true }), fc.option(fc.integer({ min: 1, max: 64 * GB }), { nil: null }), (preset, scale, explicit) => {
        const base = presetBudgetBytes(preset, 32 * GB);
        const value = modelBudgetBytes({ budgetBytes: explicit, budgetScale: scale }, preset, 32 * GB);
        if (explicit !== null) expect(value).toBe(explicit);
        else {
          expect(value).toBeLessThanOrEqual(base);
          expect(value).toBeGreaterThanOrEqual(Math.floor(base * 0.1));
          expect(Math.abs(value - base * scale)).toBeLessThanOrEqual(1);
        }
      }),
    );
  });
});
