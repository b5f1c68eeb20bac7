import { from, tap, throwError } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import type { Alert, AlertSeverity } from '../src/model.js';
import type { AlertCondition } from '../src/operators/alertConditions.js';
import { recoveryDelayFor, throttleAlerts, ThrottleAlertsError, type ThrottleAlertsConfig } from '../src/operators/throttleAlerts.js';

/** One frame = 1 ms. groupWait 3, repeat 10, recovery 4 (×1.5 per flap, max 9). */
const cfg: ThrottleAlertsConfig = { groupWaitMs: 3, repeatIntervalMs: 10, recoveryDelayMs: 4, flapMultiplier: 1.5, maxRecoveryDelayMs: 9 };

function cond(active: boolean, severity: AlertSeverity = 'warning', key = 'budget:ollama', message?: string): AlertCondition {
  return {
    key,
    kind: 'budget',
    severity,
    active,
    component: 'ollama',
    title: `${key} ${active ? 'over' : 'back'}`,
    message: message ?? `${key} ${severity} ${active ? 'on' : 'off'}`,
    recommendations: active ? [{ action: `fix ${key}`, expectedSavingBytes: 1 }] : [],
    atMs: 0,
  };
}

/** The notification for condition `c`. */
function note(c: AlertCondition, status: Alert['status'], atMs: number, sinceMs: number, repeat = 0, severity?: AlertSeverity): Alert {
  return {
    key: c.key,
    kind: c.kind,
    severity: severity ?? c.severity,
    status,
    component: c.component,
    atMs,
    sinceMs,
    repeat,
    title: c.title,
    message: c.message,
    recommendations: status === 'firing' ? c.recommendations : [],
  };
}

/** For the flap tests: no repeat gets in the way. */
const noRepeat: ThrottleAlertsConfig = { ...cfg, repeatIntervalMs: 1000 };

const on = cond(true);
const off = cond(false);
const crit = cond(true, 'critical');
const offCrit = cond(false, 'critical');

describe('throttleAlerts (marbles)', () => {
  let testScheduler: TestScheduler;

  beforeEach(() => {
    testScheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  });

  it('group_wait: the first notification goes out once the condition has held groupWaitMs', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  -a--------|', { a: on });
      const subs = '        ^---------!';
      expectObservable(source.pipe(throttleAlerts(cfg, testScheduler))).toBe('----F-----|', { F: note(on, 'firing', 4, 1) });
      expectSubscriptions(source.subscriptions).toBe(subs);
    });
  });

  it('the example of the TSDoc (groupWait 3, repeat 6, recovery 2)', () => {
    const doc: ThrottleAlertsConfig = { groupWaitMs: 3, repeatIntervalMs: 6, recoveryDelayMs: 2, flapMultiplier: 1.5, maxRecoveryDelayMs: 10 };
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  -A-a-A-------------a-----|', { A: on, a: off });
      expectObservable(source.pipe(throttleAlerts(doc, testScheduler))).toBe('--------F-----R------r---|', {
        F: note(on, 'firing', 8, 5, 0),
        R: note(on, 'firing', 14, 5, 1),
        r: note(off, 'resolved', 21, 5),
      });
    });
  });

  it('group_wait: a condition that clears within it never notifies (nor resolves)', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      // on 1..3, on 5..6, on 8..10: never 3 ms in a row
      const source = cold('  -a-xa-xa-x----------|', { a: on, x: off });
      expectObservable(source.pipe(throttleAlerts(cfg, testScheduler))).toBe('--------------------|');
    });
  });

  it('group_wait: clearing exactly at the deadline is too late (deadlines due now fire first)', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  a--x---------|', { a: on, x: off });
      //                                          F@3, x@3 starts the recovery, R@3+4
      expectObservable(source.pipe(throttleAlerts(cfg, testScheduler))).toBe('---F---R-----|', {
        F: note(on, 'firing', 3, 0),
        R: note(off, 'resolved', 7, 0),
      });
    });
  });

  it('dedupe: repeated active conditions do not notify again; the repeat goes out every repeatIntervalMs with the latest text', () => {
    const later = cond(true, 'warning', 'budget:ollama', 'newer text');
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  a-a-a-a-b 20ms |', { a: on, b: later });
      // F@3; repeats @13 and @23 (b@8 replaced the text); completes @29
      expectObservable(source.pipe(throttleAlerts(cfg, testScheduler))).toBe('---F 9ms R 9ms S-----|', {
        F: note(on, 'firing', 3, 0, 0),
        R: note(later, 'firing', 13, 0, 1),
        S: note(later, 'firing', 23, 0, 2),
      });
    });
  });

  it('one alert per key: keys have their own state machines', () => {
    const other = cond(true, 'critical', 'leak:backend');
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  a-o-a-o---|', { a: on, o: other });
      expectObservable(source.pipe(throttleAlerts(cfg, testScheduler))).toBe('---A-O----|', {
        A: note(on, 'firing', 3, 0),
        O: note(other, 'firing', 5, 2),
      });
    });
  });

  it('recovery: resolved goes out after recoveryDelayMs clear, with the recovery text, the highest notified severity and no steps', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  a---x-------|', { a: on, x: off });
      expectObservable(source.pipe(throttleAlerts(cfg, testScheduler))).toBe('---F----R---|', {
        F: note(on, 'firing', 3, 0),
        R: note(off, 'resolved', 8, 0),
      });
    });
  });

  it('recovery: coming back during the delay cancels the resolved notice, and is not notified again', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  a---x-a------|', { a: on, x: off });
      expectObservable(source.pipe(throttleAlerts(cfg, testScheduler))).toBe('---F---------|', { F: note(on, 'firing', 3, 0) });
    });
  });

  it('flap damping: each flap multiplies the recovery delay by 1.5 (4 → 6 → 9 = max)', () => {
    expect([0, 1, 2, 3].map((n) => recoveryDelayFor(cfg, n))).toEqual([4, 6, 9, 9]);
    testScheduler.run(({ cold, expectObservable }) => {
      // a@0 x@5 (R due 9) a@7 (flap 1) x@8 (R due 8+6) a@12 (flap 2) x@13 (R due 13+9 = 22)
      const source = cold('  a 4ms x 1ms a x 3ms a x 20ms |', { a: on, x: off });
      expectObservable(source.pipe(throttleAlerts(noRepeat, testScheduler))).toBe('3ms F 18ms R 11ms |', {
        F: note(on, 'firing', 3, 0),
        R: note(off, 'resolved', 22, 0),
      });
    });
  });

  it('flap damping: a flapping condition sends one firing and one resolved, however often it flaps', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      // 10 flaps of 2 ms on, 1 ms off after the first notification
      const source = cold('  a---x' + 'ax-'.repeat(10) + '----------|', { a: on, x: off });
      // flaps a@5 x@6, a@8 x@9, ..., a@32 x@33 (delay capped at 9) → R@42; completion at 45
      expectObservable(source.pipe(throttleAlerts(noRepeat, testScheduler))).toBe('---F 38ms R--|', {
        F: note(on, 'firing', 3, 0),
        R: note(off, 'resolved', 42, 0),
      });
    });
  });

  it('a flapping condition that is mostly on still repeats once per repeatIntervalMs, not once per flap', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  a---x' + 'ax-'.repeat(10) + '----------|', { a: on, x: off });
      // repeat due 13: a@14 comes back overdue → repeat at once; next due 24 (a@23 back before it) → repeat at 24
      expectObservable(source.pipe(throttleAlerts(cfg, testScheduler))).toBe('---F 10ms R 9ms S 17ms T--|', {
        F: note(on, 'firing', 3, 0, 0),
        R: note(on, 'firing', 14, 0, 1),
        S: note(on, 'firing', 24, 0, 2),
        T: note(off, 'resolved', 42, 0),
      });
    });
  });

  it('flap damping resets once the condition stays back longer than the current delay', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      // a@0 x@5 a@7 (flap 1, delay 6) ... stays back 7 ms ≥ 6 → x@14 uses the base delay 4 → R@18
      const source = cold('  a 4ms x 1ms a 6ms x 10ms |', { a: on, x: off });
      expectObservable(source.pipe(throttleAlerts(noRepeat, testScheduler))).toBe('3ms F 14ms R 6ms |', {
        F: note(on, 'firing', 3, 0),
        R: note(off, 'resolved', 18, 0),
      });
    });
  });

  it('escalation: a rise above the notified severity goes out at once; a fall waits for the repeat; a rise after that goes out again', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      // w@0 F@3 · c@5 → E@5 · w@6, c@7: no (critical already notified) · w@8 · repeat@15 (warning) · c@17 → E@17
      const source = cold('  a 4ms c a c a 8ms c 5ms |', { a: on, c: crit });
      expectObservable(source.pipe(throttleAlerts(cfg, testScheduler))).toBe('3ms F 1ms E 9ms R 1ms G 5ms |', {
        F: note(on, 'firing', 3, 0, 0),
        E: note(crit, 'firing', 5, 0, 1),
        R: note(on, 'firing', 15, 0, 2),
        G: note(crit, 'firing', 17, 0, 3),
      });
    });
  });

  it('escalation while pending does not notify early: the first notification carries the latest severity', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  a-c-------|', { a: on, c: crit });
      expectObservable(source.pipe(throttleAlerts(cfg, testScheduler))).toBe('---F------|', { F: note(crit, 'firing', 3, 0) });
    });
  });

  it('the resolved notice carries the highest severity notified (so severity filters see both ends)', () => {
    const offInfo = cond(false, 'info');
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  c--x-------|', { c: crit, x: offInfo });
      expectObservable(source.pipe(throttleAlerts(cfg, testScheduler))).toBe('---F---R---|', {
        F: note(crit, 'firing', 3, 0),
        R: note(offInfo, 'resolved', 7, 0, 0, 'critical'),
      });
    });
  });

  it('a rise during the recovery delay notifies at once (and counts as a flap)', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  a---x-c---y----------|', { a: on, x: off, c: crit, y: offCrit });
      // F@3 · x@4 · c@6 → E@6 (repeat 1) · y@10 → delay 6 (one flap) → R@16
      expectObservable(source.pipe(throttleAlerts(cfg, testScheduler))).toBe('---F--E---------R----|', {
        F: note(on, 'firing', 3, 0),
        E: note(crit, 'firing', 6, 0, 1),
        R: note(offCrit, 'resolved', 16, 0, 0, 'critical'),
      });
    });
  });

  it('hot reload: a shorter group_wait fires a running wait at once; a new repeat interval applies to the running repeat', () => {
    const quick: ThrottleAlertsConfig = { ...cfg, groupWaitMs: 1, repeatIntervalMs: 4 };
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const config = hot('   c-q----------', { c: cfg, q: quick });
      const source = cold('  a-----------|', { a: on });
      // a@0 pending until 3 under c; q@2: 0 + 1 <= 2 → F@2; repeats every 4: 6, 10; completes @12
      expectObservable(source.pipe(throttleAlerts(config, testScheduler))).toBe('--F---R---S-|', {
        F: note(on, 'firing', 2, 0, 0),
        R: note(on, 'firing', 6, 0, 1),
        S: note(on, 'firing', 10, 0, 2),
      });
      expectSubscriptions(config.subscriptions).toBe('^-----------!');
    });
  });

  it('hot reload: a longer recovery delay postpones a pending recovery', () => {
    const slow: ThrottleAlertsConfig = { ...cfg, recoveryDelayMs: 8, maxRecoveryDelayMs: 8 };
    testScheduler.run(({ cold, hot, expectObservable }) => {
      const config = hot('   c----s---------', { c: cfg, s: slow });
      const source = cold('  a---x---------|', { a: on, x: off });
      // x@4: due 8 under c; s@5: due 4 + 8 = 12
      expectObservable(source.pipe(throttleAlerts(config, testScheduler))).toBe('---F--------R-|', {
        F: note(on, 'firing', 3, 0),
        R: note(off, 'resolved', 12, 0),
      });
    });
  });

  it('conditions before the first config value are kept; their waits count from their arrival', () => {
    testScheduler.run(({ cold, hot, expectObservable }) => {
      const config = hot('   -----c---', { c: cfg });
      const source = cold('  ab-------|', { a: on, b: cond(true, 'warning', 'engine:rss') });
      expectObservable(source.pipe(throttleAlerts(config, testScheduler))).toBe('-----(FG)|', {
        F: note(on, 'firing', 5, 0),
        G: note(cond(true, 'warning', 'engine:rss'), 'firing', 5, 1),
      });
    });
  });

  it('completion drops pending waits (a shutdown is not a recovery)', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  a---x-|', { a: on, x: off });
      expectObservable(source.pipe(throttleAlerts(cfg, testScheduler))).toBe('---F--|', { F: note(on, 'firing', 3, 0) });
    });
  });

  it('propagates an error of the source and cancels the waits', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  a-#', { a: on }, new Error('boom'));
      expectObservable(source.pipe(throttleAlerts(cfg, testScheduler))).toBe('--#', undefined, new Error('boom'));
      expectSubscriptions(source.subscriptions).toBe('^-!');
    });
  });

  it('propagates an error of the config Observable and unsubscribes the source', () => {
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const config = hot('   c---#', { c: cfg }, new Error('bad config'));
      const source = cold('  a-------', { a: on });
      expectObservable(source.pipe(throttleAlerts(config, testScheduler))).toBe('---F#', { F: note(on, 'firing', 3, 0) }, new Error('bad config'));
      expectSubscriptions(source.subscriptions).toBe('^---!');
      expectSubscriptions(config.subscriptions).toBe('^---!');
    });
  });

  it('an invalid condition is a ThrottleAlertsError (MEMTIDE_ERR_ALERT_CONDITION) and unsubscribes the source', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  a-b-a', { a: on, b: { ...on, key: '' } });
      expectObservable(source.pipe(throttleAlerts(cfg, testScheduler))).toBe(
        '--#',
        undefined,
        expect.objectContaining({ name: 'ThrottleAlertsError', code: 'MEMTIDE_ERR_ALERT_CONDITION' }),
      );
      expectSubscriptions(source.subscriptions).toBe('^-!');
    });
    expect(new ThrottleAlertsError('x')).toBeInstanceOf(Error);
  });

  it('allows early unsubscription: no notification after it, timers cancelled', () => {
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const config = hot('   c---------', { c: cfg });
      const source = cold('  a---------|', { a: on });
      const unsub = '       ^--!       ';
      expectObservable(source.pipe(throttleAlerts(config, testScheduler)), unsub).toBe('---');
      expectSubscriptions(source.subscriptions).toBe('^--!');
      expectSubscriptions(config.subscriptions).toBe('^--!');
    });
  });

  it('completes with nothing on an empty source', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold<AlertCondition>('  |');
      expectObservable(source.pipe(throttleAlerts(cfg, testScheduler))).toBe('|');
      expectSubscriptions(source.subscriptions).toBe('(^!)');
    });
  });

  it('defaults to asyncScheduler (virtual inside run())', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  a----|', { a: on });
      expectObservable(source.pipe(throttleAlerts(cfg))).toBe('---F-|', { F: note(on, 'firing', 3, 0) });
    });
  });

  it('stops reading a synchronous source at the first invalid condition', () => {
    let read = 0;
    const errors: unknown[] = [];
    from([{ ...on, severity: 'fatal' as AlertSeverity }, on, on])
      .pipe(
        tap(() => (read += 1)),
        throttleAlerts(cfg),
      )
      .subscribe({ error: (e: unknown) => errors.push(e) });
    expect(read).toBe(1);
    expect(errors).toEqual([expect.objectContaining({ code: 'MEMTIDE_ERR_ALERT_CONDITION' })]);
  });

  it('never reads the source when the config has already failed', () => {
    let read = 0;
    const errors: unknown[] = [];
    from([on])
      .pipe(
        tap(() => (read += 1)),
        throttleAlerts(throwError(() => new Error('cfg'))),
      )
      .subscribe({ error: (e: unknown) => errors.push(e) });
    expect(read).toBe(0);
    expect(errors).toEqual([new Error('cfg')]);
  });
});
