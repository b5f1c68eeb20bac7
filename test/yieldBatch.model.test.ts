/**
 * Model-based test of yieldBatch (fc.commands + fc.modelRun, virtual time).
 *
 * What is modelled: the model side as the governor sees it (requests to
 * Ollama starting and ending, models loading and unloading, the same facts
 * polled again), virtual time passing by arbitrary amounts (short steps that
 * stop inside an idle grace or a hold, and long ones that cross idleAfterMs and
 * maxHoldMs), and live changes of the `optimization.batchYield` config
 * (enabled, idleAfterMs, maxHoldMs). Every fact command pushes the new facts
 * into the operator's input Subject; the operator runs on a
 * VirtualTimeScheduler that the commands drive with test/support/virtualTime's
 * `advance` (timers run one at a time, in time order).
 *
 * The model is plain TypeScript (no RxJS) and states the documented rules:
 * - busy = a request in flight, a model resident, or less than idleAfterMs
 *   since the last request ended (the grace runs from the first facts without
 *   a request after facts with one, with the idleAfterMs in force then; later
 *   facts without a request do not restart it);
 * - hold while busy, release otherwise;
 * - a hold lasts at most maxHoldMs in one stretch (the maxHoldMs in force now,
 *   so a shorter one applies to the hold in force); then released, and it
 *   stays released until the model side has been idle; the next busy period
 *   may hold again;
 * - disabled never holds; switching off and on again starts afresh;
 * - output only when `hold` changes; the first facts emit the current state.
 * The model works out *when* each change is due (timers only ever release, at
 * the end of an idle grace or at the cap), so after every command the
 * notifications that came out must be exactly the model's (atMs and hold), the
 * latest `hold` must be the model's, consecutive notifications must differ,
 * and the reason must name the cause (either cause when the grace ends at the
 * very instant the cap is due: the order of two timers due at once is not a
 * rule). After the run, a long quiet time must leave everything released, and
 * the generated runs as a whole must have reached every regime (cap by time
 * and by a shorter config, release at the end of a grace, a hold again after
 * a cap, off and on again while busy, a poll inside a grace).
 *
 * Why: the marbles pin a handful of timelines and the property test checks
 * invariants of whole timelines; neither interleaves the cap, the idle grace
 * and live config changes step by step against an independent statement of
 * the rules, which is where an off-by-one at a boundary or a forgotten reset
 * (cap not cleared when idle, grace restarted by a poll, a new maxHoldMs not
 * applied to the hold in force) would hide.
 */
import fc from 'fast-check';
import { BehaviorSubject, Subject, type Subscription, type VirtualTimeScheduler } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { yieldBatch, type BatchFacts, type BatchHold, type YieldBatchConfig } from '../src/operators/yieldBatch.js';
import { advance, virtualScheduler } from './support/virtualTime.js';

const GIB = 1024 ** 3;

interface Transition {
  atMs: number;
  hold: boolean;
}

/** A transition the model expects, with what its reason must name. */
interface Expected extends Transition {
  why: RegExp;
}

interface Model {
  now: number;
  config: YieldBatchConfig;
  /** The operator got an Observable of config (config commands allowed) or a plain object. */
  liveConfig: boolean;
  inFlight: number;
  /** Sizes of the resident models. */
  models: number[];
  factsSeen: boolean;
  /** null: no request since start; Infinity: a request in flight; else when the last request's idle grace ends. */
  graceEnd: number | null;
  /** The hold hit maxHoldMs: released until the model side has been idle. */
  capped: boolean;
  /** Start of the hold in force. */
  holdSince: number | null;
  /** Last `hold` notified (null: nothing yet). */
  hold: boolean | null;
  /** Transitions due since the last check. */
  expected: Expected[];
  /** Every transition so far. */
  log: Transition[];
  /** A hold of this run hit the cap at least once. */
  wasEverCapped: boolean;
}

interface Real {
  scheduler: VirtualTimeScheduler;
  facts: Subject<BatchFacts>;
  config: BehaviorSubject<YieldBatchConfig>;
  out: BatchHold[];
  errors: unknown[];
  lastHold: boolean | null;
  subscription: Subscription;
}

/** How often the generated runs reached the interesting states (the test is not vacuous). */
const seen = {
  holds: 0,
  capReleases: 0,
  graceReleases: 0,
  holdAgainAfterCap: 0,
  capByConfig: 0,
  disabledWhileBusy: 0,
  reenabledWhileBusyAfterCap: 0,
  pollDuringGrace: 0,
};

const resident = (m: Model) => m.models.reduce((a, b) => a + b, 0);
const busy = (m: Model) => m.inFlight > 0 || resident(m) > 0 || (m.graceEnd !== null && m.now < m.graceEnd);

/** Applies the rules at `m.now`; records a transition when `hold` changes (or on the first facts). */
function settle(m: Model, cause: 'facts' | 'config' | 'timer'): void {
  if (!m.factsSeen) return;
  const capDue = m.holdSince !== null && m.now >= m.holdSince + m.config.maxHoldMs;
  let hold = false;
  let why: RegExp;
  if (!m.config.enabled) why = /batch yield is off/;
  else if (!busy(m)) {
    m.capped = false;
    // The grace ended at the very instant the cap was due: either timer may go first.
    why = capDue ? /no model resident|maxHoldMs/ : /no model resident/;
    if (cause === 'timer' && m.hold === true && !capDue) seen.graceReleases += 1;
  } else if (m.capped) why = /maxHoldMs/;
  else if (capDue) {
    m.capped = true;
    m.wasEverCapped = true;
    why = /maxHoldMs/;
    seen.capReleases += 1;
    if (cause === 'config') seen.capByConfig += 1;
  } else {
    hold = true;
    why = m.inFlight > 0 ? new RegExp(`\\(${m.inFlight} request\\(s\\) in flight\\)`) : resident(m) > 0 ? /of models resident/ : /last Ollama request less than/;
  }
  if (!hold) m.holdSince = null;
  else if (m.holdSince === null) m.holdSince = m.now;
  if (m.hold === null || hold !== m.hold) {
    m.expected.push({ atMs: m.now, hold, why });
    m.log.push({ atMs: m.now, hold });
    if (hold) seen.holds += 1;
    if (hold && m.wasEverCapped) seen.holdAgainAfterCap += 1;
  }
  m.hold = hold;
}

/** Checks what came out of the operator against the model. */
function check(m: Model, real: Real): void {
  expect(real.errors).toEqual([]);
  const fresh = real.out.splice(0);
  const expected = m.expected.splice(0);
  expect(
    fresh.map(({ atMs, hold }) => ({ atMs, hold })),
    `notifications (model now ${m.now}, hold since ${m.holdSince}, capped ${m.capped}, grace end ${m.graceEnd})`,
  ).toEqual(expected.map(({ atMs, hold }) => ({ atMs, hold })));
  for (const [i, h] of fresh.entries()) {
    expect(h.hold, 'two notifications in a row with the same hold').not.toBe(real.lastHold);
    real.lastHold = h.hold;
    expect(h.reason).toMatch(expected[i]!.why);
  }
  expect(real.lastHold).toBe(m.hold);
}

function pushFacts(m: Model, real: Real): void {
  m.factsSeen = true;
  if (m.inFlight > 0) m.graceEnd = Infinity;
  else if (m.graceEnd === Infinity) m.graceEnd = m.now + m.config.idleAfterMs;
  real.facts.next({ atMs: m.now, ollamaInFlight: m.inFlight, residentModelBytes: resident(m) });
  advance(real.scheduler, 0);
  settle(m, 'facts');
  check(m, real);
}

class StartRequest implements fc.Command<Model, Real> {
  check = () => true;
  run(m: Model, real: Real): void {
    m.inFlight += 1;
    pushFacts(m, real);
  }
  toString = () => 'startRequest';
}

class EndRequest implements fc.Command<Model, Real> {
  check = (m: Readonly<Model>) => m.inFlight > 0;
  run(m: Model, real: Real): void {
    m.inFlight -= 1;
    pushFacts(m, real);
  }
  toString = () => 'endRequest';
}

class LoadModel implements fc.Command<Model, Real> {
  constructor(readonly bytes: number) {}
  // (at most two: the model side has to become idle now and then)
  check = (m: Readonly<Model>) => m.models.length < 2;
  run(m: Model, real: Real): void {
    m.models.push(this.bytes);
    pushFacts(m, real);
  }
  toString = () => `load(${this.bytes / GIB} GiB)`;
}

class UnloadModel implements fc.Command<Model, Real> {
  constructor(readonly pick: number) {}
  check = (m: Readonly<Model>) => m.models.length > 0;
  run(m: Model, real: Real): void {
    m.models.splice(this.pick % m.models.length, 1);
    pushFacts(m, real);
  }
  toString = () => `unload(#${this.pick})`;
}

/** The governor (or Ollama's keep_alive) unloads every model at once. */
class UnloadAll implements fc.Command<Model, Real> {
  check = (m: Readonly<Model>) => m.models.length > 0;
  run(m: Model, real: Real): void {
    m.models = [];
    pushFacts(m, real);
  }
  toString = () => 'unloadAll';
}

/** The same facts again (the next poll): must not restart the idle grace nor notify. */
class Poll implements fc.Command<Model, Real> {
  check = () => true;
  run(m: Model, real: Real): void {
    if (m.inFlight === 0 && m.graceEnd !== null && Number.isFinite(m.graceEnd) && m.graceEnd > m.now) seen.pollDuringGrace += 1;
    pushFacts(m, real);
  }
  toString = () => 'poll';
}

class Advance implements fc.Command<Model, Real> {
  constructor(readonly ms: number) {}
  check = () => true;
  run(m: Model, real: Real): void {
    const target = m.now + this.ms;
    // Timers only release: step through the grace end and the cap in time order.
    for (;;) {
      const due: number[] = [];
      if (m.graceEnd !== null && Number.isFinite(m.graceEnd) && m.graceEnd > m.now && m.graceEnd <= target) due.push(m.graceEnd);
      if (m.hold === true && m.holdSince !== null && m.holdSince + m.config.maxHoldMs <= target) due.push(m.holdSince + m.config.maxHoldMs);
      if (due.length === 0) break;
      m.now = Math.min(...due);
      settle(m, 'timer');
    }
    m.now = target;
    settle(m, 'timer');
    advance(real.scheduler, this.ms);
    expect(real.scheduler.now()).toBe(m.now);
    check(m, real);
  }
  toString = () => `advance(${this.ms})`;
}

/** A new config on the live config Observable: a given one, or the one in force with `enabled` flipped. */
class ChangeConfig implements fc.Command<Model, Real> {
  constructor(
    readonly next: (current: YieldBatchConfig) => YieldBatchConfig,
    readonly label: string,
  ) {}
  check = (m: Readonly<Model>) => m.liveConfig;
  run(m: Model, real: Real): void {
    const config = this.next(m.config);
    // Off and on again starts afresh: no cap carried over.
    if (m.config.enabled && !config.enabled) {
      m.capped = false;
      if (busy(m)) seen.disabledWhileBusy += 1;
    }
    if (!m.config.enabled && config.enabled && busy(m) && m.wasEverCapped) seen.reenabledWhileBusyAfterCap += 1;
    m.config = config;
    real.config.next(config);
    advance(real.scheduler, 0);
    settle(m, 'config');
    check(m, real);
  }
  toString = () => this.label;
}

const configArb: fc.Arbitrary<YieldBatchConfig> = fc.record({
  enabled: fc.oneof({ arbitrary: fc.constant(true), weight: 4 }, { arbitrary: fc.constant(false), weight: 1 }),
  idleAfterMs: fc.constantFrom(0, 2, 5, 15, 40),
  maxHoldMs: fc.constantFrom(1, 4, 10, 25, 60, 150),
});

const commandsArb = fc.commands(
  [
    fc.constant(new StartRequest()),
    fc.constant(new EndRequest()),
    fc.constantFrom(1.5 * GIB, 3.5 * GIB).map((bytes) => new LoadModel(bytes)),
    fc.nat(3).map((pick) => new UnloadModel(pick)),
    fc.constant(new UnloadAll()),
    fc.constant(new Poll()),
    // inside a grace or a hold, and exactly onto the boundaries
    fc.integer({ min: 0, max: 12 }).map((ms) => new Advance(ms)),
    fc.constantFrom(1, 2, 4, 5, 10, 15, 25, 40, 60, 150).map((ms) => new Advance(ms)),
    // past every grace and most caps
    fc.integer({ min: 41, max: 300 }).map((ms) => new Advance(ms)),
    configArb.map((config) => new ChangeConfig(() => config, `config(${JSON.stringify(config)})`)),
    fc.constant(new ChangeConfig((c) => ({ ...c, enabled: !c.enabled }), 'toggleEnabled')),
  ],
  { maxCommands: 60, size: 'medium' },
);

function setup(initial: YieldBatchConfig, liveConfig: boolean): { model: Model; real: Real } {
  const scheduler = virtualScheduler();
  const facts = new Subject<BatchFacts>();
  const config = new BehaviorSubject(initial);
  const real: Real = { scheduler, facts, config, out: [], errors: [], lastHold: null, subscription: undefined as never };
  real.subscription = facts.pipe(yieldBatch(liveConfig ? config : initial, scheduler)).subscribe({
    next: (h) => real.out.push(h),
    error: (e: unknown) => real.errors.push(e),
  });
  const model: Model = {
    now: 0,
    config: initial,
    liveConfig,
    inFlight: 0,
    models: [],
    factsSeen: false,
    graceEnd: null,
    capped: false,
    holdSince: null,
    hold: null,
    expected: [],
    log: [],
    wasEverCapped: false,
  };
  return { model, real };
}

describe('yieldBatch: model-based (fc.commands)', () => {
  it('holds, releases, caps and re-arms as the rules say, after every step of any sequence', () => {
    fc.assert(
      fc.property(configArb, fc.boolean(), commandsArb, (initial, liveConfig, commands) => {
        const { model, real } = setup(initial, liveConfig);
        try {
          fc.modelRun(() => ({ model, real }), commands);
          // No hold outlives maxHoldMs (at most 150 here): after a long quiet time everything is released.
          new Advance(1000).run(model, real);
          if (model.factsSeen) expect(real.lastHold).toBe(false);
          else expect(real.lastHold).toBeNull();
        } finally {
          real.subscription.unsubscribe();
        }
      }),
      { numRuns: 300 },
    );
    // The generated runs reached every regime the rules talk about (not a vacuous pass).
    for (const [regime, count] of Object.entries(seen)) expect(count, `${regime} never reached: ${JSON.stringify(seen)}`).toBeGreaterThan(0);
  });

  it('agrees with the documented cap timeline (marbles: -i 21ms r 3ms z 5ms q 25ms)', () => {
    const { model, real } = setup({ enabled: true, idleAfterMs: 3, maxHoldMs: 20 }, true);
    const steps: Array<fc.Command<Model, Real>> = [
      new Advance(1),
      new LoadModel(3.5 * GIB),
      new Advance(22),
      new StartRequest(),
      new Advance(4),
      new EndRequest(),
      new UnloadModel(0),
      new Advance(6),
      new StartRequest(),
      new Advance(26),
    ];
    try {
      // each step checks the operator against the model
      for (const step of steps) step.run(model, real);
    } finally {
      real.subscription.unsubscribe();
    }
    // resident from 1: capped at 21; the request at 23 does not hold (capped); idle from 30 (27 + 3):
    // the cap is cleared; the request at 33 holds again, capped at 53
    expect(model.log).toEqual([
      { atMs: 1, hold: true },
      { atMs: 21, hold: false },
      { atMs: 33, hold: true },
      { atMs: 53, hold: false },
    ]);
  });
});
