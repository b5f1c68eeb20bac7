/**
 * Model-based test of the throttleAlerts state machine: random sequences of
 * conditions turning on and off (with severities), time passing and config
 * changes, checked against the hygiene rules it promises.
 */
import fc from 'fast-check';
import { BehaviorSubject, Subject, VirtualTimeScheduler, type Subscription } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import { ALERT_SEVERITIES, type Alert, type AlertSeverity } from '../src/model.js';
import type { AlertCondition } from '../src/operators/alertConditions.js';
import { throttleAlerts, type ThrottleAlertsConfig } from '../src/operators/throttleAlerts.js';

const KEYS = ['pressure', 'leak:ollama'] as const;
type Key = (typeof KEYS)[number];
const rank = (s: AlertSeverity) => ALERT_SEVERITIES.indexOf(s);

interface KeyModel {
  active: boolean;
  severity: AlertSeverity;
  /** Start of the current continuous on (or off) stretch. */
  since: number;
  /** A firing went out and no resolved yet. */
  open: boolean;
  lastFiring: { atMs: number; severity: AlertSeverity } | null;
}

interface Model {
  now: number;
  config: ThrottleAlertsConfig;
  used: ThrottleAlertsConfig[];
  keys: Record<Key, KeyModel>;
}

interface Real {
  scheduler: VirtualTimeScheduler;
  conditions: Subject<AlertCondition>;
  config: BehaviorSubject<ThrottleAlertsConfig>;
  out: Alert[];
  errors: unknown[];
  subscription: Subscription;
}

const minOf = (m: Model, pick: (c: ThrottleAlertsConfig) => number) => Math.min(...m.used.map(pick));
const cap = (c: ThrottleAlertsConfig) => Math.max(c.maxRecoveryDelayMs, c.recoveryDelayMs);

/** Checks the notifications that came out, in order, against the model, and updates its episodes. */
function checkNotifications(model: Model, real: Real): Alert[] {
  expect(real.errors).toEqual([]);
  const fresh = real.out.splice(0);
  for (const alert of fresh) {
    const k = model.keys[alert.key as Key];
    expect(alert.atMs).toBeLessThanOrEqual(model.now);
    if (alert.status === 'resolved') {
      // Only after a firing, only while clear, only after the shortest recovery delay in force.
      expect(k.open, `resolved ${alert.key} without a firing`).toBe(true);
      expect(k.active).toBe(false);
      expect(alert.atMs - k.since).toBeGreaterThanOrEqual(minOf(model, (c) => c.recoveryDelayMs));
      k.open = false;
      k.lastFiring = null;
      continue;
    }
    expect(k.active, `firing ${alert.key} while the condition is off`).toBe(true);
    expect(alert.severity).toBe(k.severity);
    if (!k.open) {
      // First of an episode: the condition held at least group_wait (the shortest in force).
      expect(alert.repeat).toBe(0);
      expect(alert.atMs - k.since).toBeGreaterThanOrEqual(minOf(model, (c) => c.groupWaitMs));
      k.open = true;
    } else {
      expect(alert.repeat).toBeGreaterThan(0);
      const last = k.lastFiring;
      expect(last).not.toBeNull();
      // Within a repeat interval only a rise in severity notifies.
      if (last && alert.atMs - last.atMs < minOf(model, (c) => c.repeatIntervalMs)) {
        expect(rank(alert.severity), `${alert.key} notified twice within the repeat interval without a rise`).toBeGreaterThan(rank(last.severity));
      }
    }
    k.lastFiring = { atMs: alert.atMs, severity: alert.severity };
  }
  // Liveness under the config in force now: nothing overdue is left waiting.
  for (const key of KEYS) {
    const k = model.keys[key];
    const c = model.config;
    if (k.active && !k.open) expect(model.now - k.since, `${key} should have fired`).toBeLessThan(c.groupWaitMs);
    if (k.active && k.open && k.lastFiring) expect(model.now - k.lastFiring.atMs, `${key} should have repeated`).toBeLessThan(c.repeatIntervalMs);
    if (!k.active && k.open) expect(model.now - k.since, `${key} should have resolved`).toBeLessThan(cap(c));
  }
  return fresh;
}

function runTo(real: Real, target: number): void {
  real.scheduler.maxFrames = target;
  real.scheduler.flush();
  real.scheduler.frame = target;
}

class SetCondition implements fc.Command<Model, Real> {
  constructor(
    readonly key: Key,
    readonly active: boolean,
    readonly severity: AlertSeverity,
  ) {}
  check = () => true;
  run(model: Model, real: Real): void {
    const k = model.keys[this.key];
    const rose = this.active && k.open && k.lastFiring !== null && rank(this.severity) > rank(k.lastFiring.severity);
    if (this.active !== k.active) k.since = model.now;
    k.active = this.active;
    if (this.active) k.severity = this.severity;
    real.conditions.next({
      key: this.key,
      kind: this.key === 'pressure' ? 'pressure' : 'leak',
      severity: this.severity,
      active: this.active,
      component: null,
      title: this.key,
      message: `${this.key} ${this.active ? 'on' : 'off'}`,
      recommendations: [],
      atMs: model.now,
    });
    runTo(real, model.now);
    const fresh = checkNotifications(model, real);
    // A rise above the last notified severity goes out at once.
    if (rose) expect(fresh.some((a) => a.key === this.key && a.status === 'firing' && a.atMs === model.now && a.severity === this.severity)).toBe(true);
  }
  toString = () => `Set(${this.key}, ${this.active ? 'on' : 'off'}, ${this.severity})`;
}

class Advance implements fc.Command<Model, Real> {
  constructor(readonly ms: number) {}
  check = () => true;
  run(model: Model, real: Real): void {
    model.now += this.ms;
    runTo(real, model.now);
    checkNotifications(model, real);
  }
  toString = () => `Advance(${this.ms})`;
}

class ChangeConfig implements fc.Command<Model, Real> {
  constructor(readonly config: ThrottleAlertsConfig) {}
  check = () => true;
  run(model: Model, real: Real): void {
    model.config = this.config;
    model.used.push(this.config);
    real.config.next(this.config);
    runTo(real, model.now);
    checkNotifications(model, real);
  }
  toString = () => `Config(${JSON.stringify(this.config)})`;
}

const configArb: fc.Arbitrary<ThrottleAlertsConfig> = fc
  .record({
    groupWaitMs: fc.constantFrom(0, 5, 30),
    repeatIntervalMs: fc.constantFrom(40, 200),
    recoveryDelayMs: fc.constantFrom(0, 10, 25),
    flapMultiplier: fc.constantFrom(1, 1.5, 2),
    extraMax: fc.constantFrom(0, 30, 100),
  })
  .map(({ extraMax, ...c }) => ({ ...c, maxRecoveryDelayMs: c.recoveryDelayMs + extraMax }));

const commandsArb = fc.commands(
  [
    fc.tuple(fc.constantFrom(...KEYS), fc.boolean(), fc.constantFrom(...ALERT_SEVERITIES)).map(([k, a, s]) => new SetCondition(k, a, s)),
    fc.integer({ min: 1, max: 60 }).map((ms) => new Advance(ms)),
    fc.constantFrom(1, 2, 3).map((n) => new Advance(n * 100)),
    configArb.map((c) => new ChangeConfig(c)),
  ],
  { maxCommands: 80 },
);

let live: Real | undefined;
afterEach(() => live?.subscription.unsubscribe());

function setup(initial: ThrottleAlertsConfig): { model: Model; real: Real } {
  const scheduler = new VirtualTimeScheduler();
  const conditions = new Subject<AlertCondition>();
  const config = new BehaviorSubject(initial);
  const real: Real = { scheduler, conditions, config, out: [], errors: [], subscription: undefined as never };
  real.subscription = conditions.pipe(throttleAlerts(config, scheduler)).subscribe({
    next: (a) => real.out.push(a),
    error: (e: unknown) => real.errors.push(e),
  });
  live = real;
  const off = (): KeyModel => ({ active: false, severity: 'info', since: 0, open: false, lastFiring: null });
  return { model: { now: 0, config: initial, used: [initial], keys: { pressure: off(), 'leak:ollama': off() } }, real };
}

describe('throttleAlerts: model-based (fc.commands)', () => {
  it('dedupes, waits, repeats, recovers and damps flaps as promised, under any sequence', () => {
    fc.assert(
      fc.property(configArb, commandsArb, (initial, commands) => {
        live?.subscription.unsubscribe();
        const { model, real } = setup(initial);
        fc.modelRun(() => ({ model, real }), commands);
        // Everything settles: after a long quiet time, every open episode of a clear condition has resolved.
        new Advance(1000).run(model, real);
        for (const key of KEYS) if (!model.keys[key].active) expect(model.keys[key].open).toBe(false);
      }),
      { numRuns: 250 },
    );
  });

  it('the checker is not vacuous: it catches an operator that notifies every change', () => {
    // A fake "throttle" that forwards every active condition as a firing breaks the group_wait rule.
    const { model, real } = setup({ groupWaitMs: 30, repeatIntervalMs: 200, recoveryDelayMs: 10, flapMultiplier: 1.5, maxRecoveryDelayMs: 40 });
    model.keys.pressure = { active: true, severity: 'warning', since: 0, open: false, lastFiring: null };
    real.out.push({ key: 'pressure', kind: 'pressure', severity: 'warning', status: 'firing', component: null, atMs: 0, sinceMs: 0, repeat: 0, title: '', message: '', recommendations: [] });
    expect(() => checkNotifications(model, real)).toThrow();
  });
});
