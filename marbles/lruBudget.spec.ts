import { from, tap } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import { lruBudget, LruBudgetError, planBudget, type BudgetDecision, type BudgetModel, type BudgetRequest } from '../src/operators/lruBudget.js';

const GB = 1e9;
const model = (name: string, gb: number, lastUsedMs: number, extra: Partial<BudgetModel> = {}): BudgetModel => ({
  name,
  bytes: gb * GB,
  inFlight: 0,
  pinned: false,
  lastUsedMs,
  ...extra,
});
const req = (loaded: BudgetModel[], name: string, gb: number): BudgetRequest => ({ loaded, load: { model: name, bytes: gb * GB } });

const admit = (atMs: number, name: string, evict: string[], totalGb: number, budgetGb: number): BudgetDecision => ({
  kind: 'admit',
  model: name,
  evict,
  totalAfterBytes: totalGb * GB,
  budgetBytes: budgetGb * GB,
  atMs,
});
const reject = (atMs: number, name: string, reason: 'too-large' | 'busy', shortGb: number, budgetGb: number): BudgetDecision => ({
  kind: 'reject',
  model: name,
  reason,
  shortBytes: shortGb * GB,
  budgetBytes: budgetGb * GB,
  message: expect.any(String) as unknown as string,
  atMs,
});

const budget = (gb: number) => ({ budgetBytes: gb * GB });

describe('lruBudget (marbles)', () => {
  let testScheduler: TestScheduler;
  beforeEach(() => {
    testScheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  });

  it('admits a load that fits without evicting anything', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  -a-|', { a: req([model('x', 3, 0)], 'y', 4) });
      expectObservable(source.pipe(lruBudget(budget(8), testScheduler))).toBe('-A-|', { A: admit(1, 'y', [], 7, 8) });
      expectSubscriptions(source.subscriptions).toBe('^--!');
    });
  });

  it('evicts least recently used idle models first, only as many as needed', () => {
    const loaded = [model('new', 2, 30), model('old', 2, 10), model('mid', 2, 20)];
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  -a-b-|', { a: req(loaded, 'y', 3), b: req(loaded, 'z', 5) });
      expectObservable(source.pipe(lruBudget(budget(8), testScheduler))).toBe('-A-B-|', {
        A: admit(1, 'y', ['old'], 7, 8),
        B: admit(3, 'z', ['old', 'mid'], 7, 8),
      });
    });
  });

  it('never evicts a model with a request in flight or a pinned one; ties in age go by name', () => {
    const loaded = [model('busy', 2, 0, { inFlight: 1 }), model('pin', 2, 0, { pinned: true }), model('b', 2, 5), model('a', 2, 5)];
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  -a-|', { a: req(loaded, 'y', 4) });
      expectObservable(source.pipe(lruBudget(budget(9), testScheduler))).toBe('-A-|', { A: admit(1, 'y', ['a', 'b'], 8, 9) });
    });
  });

  it('rejects as busy when only requests in flight stand in the way', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  -a-|', { a: req([model('busy', 5, 0, { inFlight: 2 }), model('idle', 1, 0)], 'y', 4) });
      expectObservable(source.pipe(lruBudget(budget(8), testScheduler))).toBe('-R-|', { R: reject(1, 'y', 'busy', 1, 8) });
    });
  });

  it('rejects as too large when the model alone, or with the pinned ones, exceeds the budget', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  -a-b-|', { a: req([], 'huge', 9), b: req([model('pin', 5, 0, { pinned: true })], 'y', 4) });
      expectObservable(source.pipe(lruBudget(budget(8), testScheduler))).toBe('-A-B-|', {
        A: reject(1, 'huge', 'too-large', 1, 8),
        B: reject(3, 'y', 'too-large', 1, 8),
      });
    });
  });

  it('a reload of a loaded model replaces its bytes instead of adding them', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('  -a-|', { a: req([model('y', 5, 0), model('x', 2, 1)], 'y', 6) });
      expectObservable(source.pipe(lruBudget(budget(8), testScheduler))).toBe('-A-|', { A: admit(1, 'y', [], 8, 8) });
    });
  });

  it('hot config: a new budget applies from the next request; requests before the first value are dropped', () => {
    const loaded = [model('x', 3, 0)];
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const config = hot('   --b---s----', { b: budget(8), s: budget(5) });
      const source = cold('  a--a--a---|', { a: req(loaded, 'y', 4) });
      expectObservable(source.pipe(lruBudget(config, testScheduler))).toBe('---A--B---|', {
        A: admit(3, 'y', [], 7, 8),
        B: admit(6, 'y', ['x'], 4, 5),
      });
      expectSubscriptions(config.subscriptions).toBe('^---------!');
    });
  });

  it('invalid bytes become an LruBudgetError naming the field, and unsubscribe the source', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  -a-b-a', { a: req([], 'y', 1), b: req([model('x', Number.NaN, 0)], 'y', 1) });
      expectObservable(source.pipe(lruBudget(budget(8), testScheduler))).toBe(
        '-A-#',
        { A: admit(1, 'y', [], 1, 8) },
        new LruBudgetError('bytes of loaded model x must be a non-negative number, got NaN'),
      );
      expectSubscriptions(source.subscriptions).toBe('^--!');
    });
  });

  it('propagates an error of the source', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  -a-#', { a: req([], 'y', 1) }, new Error('boom'));
      expectObservable(source.pipe(lruBudget(budget(8), testScheduler))).toBe('-A-#', { A: admit(1, 'y', [], 1, 8) }, new Error('boom'));
      expectSubscriptions(source.subscriptions).toBe('^--!');
    });
  });

  it('propagates an error of the config and unsubscribes the source', () => {
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const config = hot('   c--#', { c: budget(8) }, new Error('bad config'));
      const source = cold('  -a-----', { a: req([], 'y', 1) });
      expectObservable(source.pipe(lruBudget(config, testScheduler))).toBe('-A-#', { A: admit(1, 'y', [], 1, 8) }, new Error('bad config'));
      expectSubscriptions(source.subscriptions).toBe('^--!');
      expectSubscriptions(config.subscriptions).toBe('^--!');
    });
  });

  it('allows early unsubscription', () => {
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const config = hot('   c-------', { c: budget(8) });
      const source = cold('  -a-a-a-|', { a: req([], 'y', 1) });
      const unsub = '       ^--!     ';
      expectObservable(source.pipe(lruBudget(config, testScheduler)), unsub).toBe('-A-', { A: admit(1, 'y', [], 1, 8) });
      expectSubscriptions(source.subscriptions).toBe('^--!');
      expectSubscriptions(config.subscriptions).toBe('^--!');
    });
  });

  it('completes with nothing on an empty source', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold<BudgetRequest>('|');
      expectObservable(source.pipe(lruBudget(budget(8), testScheduler))).toBe('|');
      expectSubscriptions(source.subscriptions).toBe('(^!)');
    });
  });

  it('stops reading a synchronous source at the first invalid request', () => {
    let read = 0;
    const errors: unknown[] = [];
    from([req([], 'y', -1), req([], 'y', 1)])
      .pipe(
        tap(() => (read += 1)),
        lruBudget(budget(8)),
      )
      .subscribe({ error: (e: unknown) => errors.push(e) });
    expect(read).toBe(1);
    expect(errors).toEqual([expect.objectContaining({ code: 'MEMTIDE_ERR_BUDGET_INPUT' })]);
  });

  it('planBudget names what stands in the way', () => {
    const busy = planBudget(req([model('llama', 5, 0, { inFlight: 1 })], 'gemma', 4), 8 * GB);
    expect(busy).toMatchObject({ kind: 'reject', reason: 'busy', message: expect.stringContaining('in flight on llama') });
    const pinned = planBudget(req([model('llama', 5, 0, { pinned: true })], 'gemma', 4), 8 * GB);
    expect(pinned).toMatchObject({ kind: 'reject', reason: 'too-large', message: expect.stringContaining('pinned') });
  });
});
