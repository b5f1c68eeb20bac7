import { fc, it as propIt } from '@fast-check/vitest';
import { Subject, VirtualTimeScheduler } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import { levelRank, PRESSURE_LEVELS, type PressureChange, type PressureLevel } from '../src/model.js';
import {
  ACTION_PLANS,
  COORDINATED_ACTIONS,
  coordinateActions,
  CoordinateActionsError,
  ONE_SHOT_ACTIONS,
  planFor,
  type CoordinateActionsConfig,
  type CoordinatedAction,
  type CoordinatorDecision,
} from '../src/operators/coordinateActions.js';

const change = (level: PressureLevel, reasons: string[] = []): PressureChange => ({ atMs: 0, level, previous: null, reasons });
const levels = { l: change('low'), m: change('medium'), h: change('high'), c: change('critical') };
const cfg = (level: CoordinateActionsConfig['level'], undoAfterMs = 5, lowMemory = false): CoordinateActionsConfig => ({ level, lowMemory, undoAfterMs });

const A = { U: 'unload-idle-models', L: 'lower-transcription-concurrency', S: 'shrink-caches', D: 'disable-live-summaries' } as const;
/** A decision, matched on what it is (not on its wording); `atMs` checked when given. */
const dec = (op: 'apply' | 'undo', action: keyof typeof A, level: PressureLevel, atMs?: number): CoordinatorDecision =>
  expect.objectContaining({ op, action: A[action], level, oneShot: action === 'U', ...(atMs !== undefined ? { atMs } : {}) }) as unknown as CoordinatorDecision;
/** Upper-case marble keys apply the action of that letter, lower-case ones undo it, all at `level`. */
const all = (keys: string, level: PressureLevel): Record<string, CoordinatorDecision> =>
  Object.fromEntries([...keys].map((k) => [k, dec(k === k.toUpperCase() ? 'apply' : 'undo', k.toUpperCase() as keyof typeof A, level)]));

describe('coordinateActions (marbles)', () => {
  let testScheduler: TestScheduler;
  beforeEach(() => {
    testScheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  });

  it('basic: unloads idle models at high (one-shot, again on a re-rise); medium does nothing', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  -m--h----l------h--|', levels);
      expectObservable(source.pipe(coordinateActions(cfg('basic'), testScheduler))).toBe('----U-----------V--|', {
        U: dec('apply', 'U', 'high', 4),
        V: dec('apply', 'U', 'high', 16),
      });
      expectSubscriptions(source.subscriptions).toBe('^------------------!');
    });
  });

  it('basic at critical: also lowers transcription concurrency and shrinks caches; no live-summary action ever', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  -c 9ms l 19ms |', levels);
      // critical ends at 11: L and S undone 5 later (16); the one-shot unload is never undone
      expectObservable(source.pipe(coordinateActions(cfg('basic'), testScheduler))).toBe('-(ULS) 10ms (ls) 11ms |', { ...all('ULS', 'critical'), ...all('ls', 'low') });
    });
  });

  it('aggressive: everything but live summaries from high, live summaries at critical; undone with hysteresis', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  -h 9ms c 9ms h 9ms l 29ms |', levels);
      // 1: high; 11: critical (unload again: the level rose); 21: back to high (D undone 5 later, 26);
      // 31: low (L and S undone at 36)
      expectObservable(source.pipe(coordinateActions(cfg('aggressive'), testScheduler))).toBe('-(ULS) 5ms (VD) 11ms d 9ms (ls) 21ms |', {
        ...all('ULS', 'high'),
        V: dec('apply', 'U', 'critical', 11),
        D: dec('apply', 'D', 'critical', 11),
        d: dec('undo', 'D', 'high', 26),
        l: dec('undo', 'L', 'low', 36),
        s: dec('undo', 'S', 'low', 36),
      });
    });
  });

  it('maximum and low-memory mode act from medium with every action', () => {
    expect(planFor(cfg('basic', 5, true))).toEqual(ACTION_PLANS.maximum);
    testScheduler.run(({ cold, expectObservable }) => {
      const expected = '-----(ULSD)--|';
      expectObservable(cold('-l-m---------|', levels).pipe(coordinateActions(cfg('maximum'), testScheduler))).toBe('---(ULSD)----|', all('ULSD', 'medium'));
      expectObservable(cold('-l---m-------|', levels).pipe(coordinateActions(cfg('basic', 5, true), testScheduler))).toBe(expected, all('ULSD', 'medium'));
    });
  });

  it('a re-rise before undoAfterMs cancels the pending undo; the hysteresis starts again at the next fall', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      // maximum, undo after 5: falls at 7, rises at 10 (3 < 5: nothing undone, the unload repeats), falls at 13, undone at 18
      const source = cold('  -m 5ms l--m--l 9ms |', levels);
      expectObservable(source.pipe(coordinateActions(cfg('maximum'), testScheduler))).toBe('-(ULSD) 3ms V 7ms (lsd)|', {
        ...all('ULSD', 'medium'),
        V: dec('apply', 'U', 'medium', 10),
        ...all('lsd', 'low'),
      });
    });
  });

  it('pressure that falls in steps keeps one undo timer from the first fall below the trigger', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      // aggressive: L and S from high; high -> medium at 3 starts the wait, medium -> low at 5 does not restart it
      const source = cold('  -h-m-l-------|', levels);
      expectObservable(source.pipe(coordinateActions(cfg('aggressive'), testScheduler))).toBe('-(ULS)--(ls)-|', {
        ...all('ULS', 'high'),
        l: dec('undo', 'L', 'low', 8),
        s: dec('undo', 'S', 'low', 8),
      });
    });
  });

  it('undoAfterMs 0 undoes at once when pressure falls', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  -c-----m-----|', levels);
      expectObservable(source.pipe(coordinateActions(cfg('aggressive', 0), testScheduler))).toBe('-(ULSD)(lsd)-|', { ...all('ULSD', 'critical'), ...all('lsd', 'medium') });
    });
  });

  it('hot config: a plan change applies what the new plan wants at once and undoes the rest with hysteresis', () => {
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const config = hot('   a--b-------c--------', { a: cfg('basic'), b: cfg('maximum'), c: cfg('basic') });
      const source = cold('  -m------------------', levels);
      // basic at medium: nothing; maximum (3): everything; back to basic (11): L, S and D undone 5 later (16)
      expectObservable(source.pipe(coordinateActions(config, testScheduler))).toBe('---(ULSD) 7ms (lsd)', {
        ...all('ULSD', 'medium'),
        l: dec('undo', 'L', 'medium', 16),
        s: dec('undo', 'S', 'medium', 16),
        d: dec('undo', 'D', 'medium', 16),
      });
      expectSubscriptions(config.subscriptions).toBe('^-------------------');
    });
  });

  it('pressure before the first config waits for it', () => {
    testScheduler.run(({ cold, hot, expectObservable }) => {
      const config = hot('   ----a---', { a: cfg('basic') });
      const source = cold('  -h------', levels);
      expectObservable(source.pipe(coordinateActions(config, testScheduler))).toBe('----U---', { U: dec('apply', 'U', 'high', 4) });
    });
  });

  it('an invalid config is an error with a code naming the key; the source is not subscribed', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  -h-', levels);
      const bad = { ...cfg('basic'), undoAfterMs: -1 };
      expectObservable(source.pipe(coordinateActions(bad, testScheduler))).toBe(
        '#',
        undefined,
        expect.objectContaining({ code: 'MEMTIDE_ERR_COORDINATE_CONFIG', message: expect.stringContaining('undoAfterMs') }),
      );
      expectSubscriptions(source.subscriptions).toBe([]);
    });
    expect(new CoordinateActionsError('x')).toMatchObject({ name: 'CoordinateActionsError', code: 'MEMTIDE_ERR_COORDINATE_CONFIG' });
  });

  it('propagates an error of the source and drops pending undos', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  -c 9ms l 9ms #', levels, new Error('boom'));
      expectObservable(source.pipe(coordinateActions(cfg('aggressive', 15), testScheduler))).toBe('-(ULSD) 14ms #', all('ULSD', 'critical'), new Error('boom'));
      expectSubscriptions(source.subscriptions).toBe('^ 20ms !');
    });
  });

  it('propagates an error of the config and unsubscribes the source', () => {
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const config = hot('   a---#', { a: cfg('basic') }, new Error('bad config'));
      const source = cold('  -h-----', levels);
      expectObservable(source.pipe(coordinateActions(config, testScheduler))).toBe('-U--#', { U: dec('apply', 'U', 'high', 1) }, new Error('bad config'));
      expectSubscriptions(source.subscriptions).toBe('^---!');
      expectSubscriptions(config.subscriptions).toBe('^---!');
    });
  });

  it('completion drops pending undos (the caller restores what it changed)', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  -c 9ms l 9ms |', levels);
      expectObservable(source.pipe(coordinateActions(cfg('aggressive', 15), testScheduler))).toBe('-(ULSD) 14ms |', all('ULSD', 'critical'));
    });
  });

  it('allows early unsubscription: no undo fires after it', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  -h-l--------', levels);
      expectObservable(source.pipe(coordinateActions(cfg('aggressive'), testScheduler)), '^---!').toBe('-(ULS)', all('ULS', 'high'));
      expectSubscriptions(source.subscriptions).toBe('^---!');
    });
  });

  it('completes with nothing on an empty source', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold<PressureChange>('|');
      expectObservable(source.pipe(coordinateActions(cfg('maximum'), testScheduler))).toBe('|');
      expectSubscriptions(source.subscriptions).toBe('(^!)');
    });
  });

  it('carries the reasons and the plan in the decision; defaults to asyncScheduler (virtual inside run())', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  ---h-|', { h: change('high', ['available 17% <= 18%']) });
      expectObservable(source.pipe(coordinateActions(cfg('basic')))).toBe('---U-|', {
        U: { atMs: 3, op: 'apply', action: 'unload-idle-models', level: 'high', trigger: 'high', oneShot: true, reason: 'pressure high (available 17% <= 18%): optimization level basic acts from high' },
      });
    });
  });
});

// ---- properties ----------------------------------------------------------

interface Step {
  gap: number;
  level: PressureLevel;
}

/** Runs the operator over `steps` in virtual time; returns the decisions and the level function. */
function simulate(steps: readonly Step[], config: CoordinateActionsConfig) {
  const scheduler = new VirtualTimeScheduler();
  const pressure = new Subject<PressureChange>();
  const out: CoordinatorDecision[] = [];
  const errors: unknown[] = [];
  pressure.pipe(coordinateActions(config, scheduler)).subscribe({ next: (d) => out.push(d), error: (e: unknown) => errors.push(e) });
  const events: Array<{ atMs: number; level: PressureLevel }> = [];
  let t = 0;
  for (const step of steps) {
    t += step.gap;
    const at = t;
    events.push({ atMs: at, level: step.level });
    scheduler.schedule(() => pressure.next(change(step.level)), at);
  }
  const endMs = t + config.undoAfterMs + 1;
  scheduler.flush();
  const levelAt = (ms: number): PressureLevel | null => {
    let found: PressureLevel | null = null;
    for (const e of events) if (e.atMs <= ms) found = e.level;
    return found;
  };
  return { out, errors, endMs, levelAt, events };
}

const arbSteps = fc.array(fc.record({ gap: fc.integer({ min: 0, max: 12 }), level: fc.constantFrom(...PRESSURE_LEVELS) }), { maxLength: 40 });
const arbConfig = fc.record({ level: fc.constantFrom('basic', 'aggressive', 'maximum') as fc.Arbitrary<CoordinateActionsConfig['level']>, lowMemory: fc.boolean(), undoAfterMs: fc.integer({ min: 0, max: 15 }) });
const reversible = COORDINATED_ACTIONS.filter((a) => !ONE_SHOT_ACTIONS.has(a));

describe('coordinateActions (properties)', () => {
  propIt.prop([arbSteps, arbConfig])('never an undo without an apply; every apply is matched by at most one undo, and by one once pressure stays below', (steps, config) => {
    const { out, errors, levelAt, endMs } = simulate(steps, config);
    expect(errors).toEqual([]);
    for (const action of COORDINATED_ACTIONS) {
      const ops = out.filter((d) => d.action === action).map((d) => d.op);
      if (ONE_SHOT_ACTIONS.has(action)) {
        expect(ops.every((op) => op === 'apply')).toBe(true);
        continue;
      }
      ops.forEach((op, i) => expect(op).toBe(i % 2 === 0 ? 'apply' : 'undo'));
      const trigger = planFor(config)[action];
      const last = levelAt(endMs);
      if (trigger !== undefined && last !== null && levelRank(last) < levelRank(trigger)) expect(ops.length % 2).toBe(0);
    }
  });

  propIt.prop([arbSteps, arbConfig])('at any time the applied set is exactly the plan for the highest level seen within undoAfterMs', (steps, config) => {
    const { out, levelAt, endMs, events } = simulate(steps, config);
    const plan = planFor(config);
    for (let t = 0; t <= endMs; t += 1) {
      const applied = new Set<CoordinatedAction>();
      for (const d of out) {
        if (d.atMs > t || d.oneShot) continue;
        if (d.op === 'apply') applied.add(d.action);
        else applied.delete(d.action);
      }
      // the highest level in force at some instant of (t - undoAfterMs, t]: the one in force when the
      // window opens, and every change inside it (even one replaced at the same instant)
      const first = levelAt(config.undoAfterMs === 0 ? t : t - config.undoAfterMs);
      let highest = first === null ? -1 : levelRank(first);
      if (config.undoAfterMs > 0) {
        for (const e of events) if (e.atMs > t - config.undoAfterMs && e.atMs <= t) highest = Math.max(highest, levelRank(e.level));
      }
      const expected = reversible.filter((a) => plan[a] !== undefined && highest >= levelRank(plan[a]!));
      expect([...applied].sort(), `at ${t}`).toEqual(expected.sort());
    }
  });

  propIt.prop([arbSteps, arbConfig])('the one-shot unload happens on every rise into its level, and only then', (steps, config) => {
    const { out, levelAt } = simulate(steps, config);
    const trigger = planFor(config)['unload-idle-models']!;
    const expected: number[] = [];
    let previous: PressureLevel | null = null;
    let t = 0;
    for (const step of steps) {
      t += step.gap;
      const inForce = levelRank(step.level) >= levelRank(trigger);
      const wasInForce = previous !== null && levelRank(previous) >= levelRank(trigger);
      if (inForce && (!wasInForce || levelRank(step.level) > levelRank(previous!))) expected.push(t);
      previous = step.level;
    }
    expect(out.filter((d) => d.action === 'unload-idle-models').map((d) => d.atMs)).toEqual(expected);
    expect(levelAt(-1)).toBeNull();
  });
});
