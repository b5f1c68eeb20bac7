import fc from 'fast-check';
import { Observable, Subject, timer, map } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { PRESSURE_LEVELS, type AudioChunk, type PressureChange, type PressureLevel } from '../src/model.js';
import {
  transcribeBounded,
  type ChunkTranscriber,
  type TranscribeBoundedConfig,
  type TranscribedChunk,
  type TranscribeStats,
} from '../src/operators/transcribeBounded.js';

function chunk(index: number, samples = 160): AudioChunk {
  return {
    source: 'p.wav',
    index,
    startMs: (index * samples) / 16,
    endMs: ((index + 1) * samples) / 16,
    firstSample: index * samples,
    sampleRate: 16000,
    samples: new Int16Array(samples),
    last: false,
  };
}

const pressure = (level: PressureLevel, atMs = 0): PressureChange => ({ atMs, level, previous: null, reasons: [] });

/** The documented rule, written independently of the operator's own helper. */
function concurrencyFor(level: PressureLevel, config: TranscribeBoundedConfig): number {
  if (level === 'critical') return config.criticalConcurrency;
  if (level === 'high') return config.highConcurrency ?? Math.max(1, Math.floor(config.maxConcurrent / 2));
  return config.maxConcurrent;
}

const configArb = fc.record({
  maxConcurrent: fc.integer({ min: 1, max: 4 }),
  maxQueuedChunks: fc.integer({ min: 1, max: 4 }),
  criticalConcurrency: fc.integer({ min: 0, max: 1 }),
  highConcurrency: fc.constant(null),
});

describe('transcribeBounded (properties)', () => {
  it('with a pull source and any pressure schedule: every chunk comes out once, in order; concurrency and read-ahead stay bounded', () => {
    fc.assert(
      fc.property(
        configArb,
        fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 0, maxLength: 25 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 60 }), fc.constantFrom(...PRESSURE_LEVELS)), { maxLength: 6 }),
        (config: TranscribeBoundedConfig, durations, schedule) => {
          const scheduler = new TestScheduler(() => undefined);
          // Always end calm so paused work resumes.
          const steps = [...schedule].sort((a, b) => a[0] - b[0]);
          const lastAt = steps.length ? steps[steps.length - 1]![0] : 0;
          let level: PressureLevel = 'low';
          let running = 0;
          let read = 0;
          let emitted = 0;
          const violations: string[] = [];
          const results: TranscribedChunk[] = [];
          let error: unknown;
          let done = false;
          scheduler.run(() => {
            const pressure$ = new Observable<PressureChange>((s) => {
              const subs = [...steps, [lastAt + 1, 'low'] as const].map(([at, l]) =>
                scheduler.schedule(() => {
                  level = l;
                  s.next(pressure(l, at));
                }, at),
              );
              return () => subs.forEach((x) => x.unsubscribe());
            });
            const demand = new Subject<number>();
            let next = 0;
            const source = new Observable<AudioChunk>((s) => {
              const sub = demand.subscribe({
                next: (n) => {
                  for (let i = 0; i < n && next < durations.length; i += 1) {
                    read += 1;
                    if (read - emitted > config.maxQueuedChunks + config.maxConcurrent) violations.push(`read ahead ${read - emitted}`);
                    s.next(chunk(next));
                    next += 1;
                  }
                  if (next === durations.length) s.complete();
                },
                error: (e: unknown) => s.error(e),
              });
              return () => sub.unsubscribe();
            });
            const transcriber: ChunkTranscriber = {
              transcribe: (c) => {
                running += 1;
                if (running > concurrencyFor(level, config)) violations.push(`${running} running at ${level}`);
                return timer(durations[c.index]!, scheduler).pipe(
                  map(() => {
                    running -= 1;
                    return { text: String(c.index) };
                  }),
                );
              },
              unload: () => undefined,
            };
            source.pipe(transcribeBounded(transcriber, config, pressure$, { onDemand: (n) => demand.next(n) }, scheduler)).subscribe({
              next: (r) => {
                emitted += 1;
                results.push(r);
              },
              error: (e: unknown) => (error = e),
              complete: () => (done = true),
            });
          });
          expect(error).toBeUndefined();
          expect(done).toBe(true);
          expect(violations).toEqual([]);
          expect(results.map((r) => r.chunkIndex)).toEqual(durations.map((_, i) => i));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('batch hold toggled arbitrarily: the output equals the unheld output; nothing starts and nothing is read while held', () => {
    /** One run with a pull source over `durations`; `toggles` drive hold$ (then released for good). */
    const runOnce = (config: TranscribeBoundedConfig, durations: number[], toggles: Array<[number, boolean]>) => {
      const scheduler = new TestScheduler(() => undefined);
      const results: TranscribedChunk[] = [];
      const violations: string[] = [];
      let held = false;
      let error: unknown;
      let done = false;
      scheduler.run(() => {
        const steps = [...toggles].sort((a, b) => a[0] - b[0]);
        const lastAt = steps.length ? steps[steps.length - 1]![0] : 0;
        const hold$ = new Observable<boolean>((s) => {
          const subs = [...steps, [lastAt + 1, false] as const].map(([at, on]) =>
            scheduler.schedule(() => {
              held = on;
              s.next(on);
            }, at),
          );
          return () => subs.forEach((x) => x.unsubscribe());
        });
        const demand = new Subject<number>();
        let next = 0;
        const source = new Observable<AudioChunk>((s) => {
          const sub = demand.subscribe({
            next: (n) => {
              for (let i = 0; i < n && next < durations.length; i += 1) {
                s.next(chunk(next));
                next += 1;
              }
              if (next === durations.length) s.complete();
            },
            error: (e: unknown) => s.error(e),
          });
          return () => sub.unsubscribe();
        });
        const transcriber: ChunkTranscriber = {
          transcribe: (c) => {
            if (held) violations.push(`chunk ${c.index} started while held`);
            return timer(durations[c.index]!, scheduler).pipe(map(() => ({ text: `t${c.index}` })));
          },
          unload: () => undefined,
        };
        const hooks = {
          hold$,
          onDemand: (n: number) => {
            if (held) violations.push(`demand ${n} announced while held`);
            demand.next(n);
          },
        };
        source.pipe(transcribeBounded(transcriber, config, undefined, hooks, scheduler)).subscribe({
          next: (r) => results.push(r),
          error: (e: unknown) => (error = e),
          complete: () => (done = true),
        });
      });
      return { results, violations, error, done };
    };
    fc.assert(
      fc.property(
        configArb,
        fc.array(fc.integer({ min: 1, max: 8 }), { maxLength: 20 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 60 }), fc.boolean()), { maxLength: 10 }),
        (config, durations, toggles) => {
          const unheld = runOnce(config, durations, []);
          const held = runOnce(config, durations, toggles);
          expect(held.error).toBeUndefined();
          expect(held.done).toBe(true);
          expect(held.violations).toEqual([]);
          expect(held.results).toEqual(unheld.results);
          expect(held.results.map((r) => r.chunkIndex)).toEqual(durations.map((_, i) => i));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('with a push source: the queue never holds more than maxQueuedChunks; it either finishes in order or fails with OVERFLOW', () => {
    fc.assert(
      fc.property(configArb, fc.array(fc.tuple(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 1, max: 6 })), { maxLength: 20 }), (config, arrivals) => {
        const scheduler = new TestScheduler(() => undefined);
        const stats: TranscribeStats[] = [];
        const results: number[] = [];
        let error: { code?: string } | undefined;
        let done = false;
        scheduler.run(() => {
          const source = new Observable<AudioChunk>((s) => {
            let at = 0;
            const subs = arrivals.map(([gap], i) => {
              at += gap;
              return scheduler.schedule(() => s.next(chunk(i)), at);
            });
            subs.push(scheduler.schedule(() => s.complete(), at));
            return () => subs.forEach((x) => x.unsubscribe());
          });
          const transcriber: ChunkTranscriber = {
            transcribe: (c) => timer(arrivals[c.index]![1], scheduler).pipe(map(() => ({ text: '' }))),
            unload: () => undefined,
          };
          source.pipe(transcribeBounded(transcriber, config, undefined, { onStats: (s) => stats.push(s) }, scheduler)).subscribe({
            next: (r) => results.push(r.chunkIndex),
            error: (e: { code?: string }) => (error = e),
            complete: () => (done = true),
          });
        });
        for (const s of stats) {
          expect(s.queuedChunks).toBeLessThanOrEqual(config.maxQueuedChunks);
          expect(s.inFlight + s.reorderChunks).toBeLessThanOrEqual(config.maxConcurrent);
          expect(s.queuedSamples).toBe(s.queuedChunks * 160);
        }
        if (error) {
          expect(error.code).toBe('MEMTIDE_ERR_TRANSCRIBE_OVERFLOW');
          expect(results).toEqual(results.map((_, i) => i));
        } else {
          expect(done).toBe(true);
          expect(results).toEqual(arrivals.map((_, i) => i));
        }
      }),
      { numRuns: 300 },
    );
  });

  describe('model-based (fc.commands): offers, finishes and pressure in any order', () => {
    interface Model {
      config: TranscribeBoundedConfig;
      level: PressureLevel;
      queue: number[];
      running: number[];
      finished: Set<number>;
      emitted: number[];
      nextIndex: number;
      overflowed: boolean;
    }
    interface Real {
      source: Subject<AudioChunk>;
      pressure: Subject<PressureChange>;
      work: Map<number, Subject<{ text: string }>>;
      emitted: number[];
      stats: TranscribeStats | null;
      error: { code?: string } | null;
      demanded: number;
    }

    const limitOf = (m: Model) => concurrencyFor(m.level, m.config);
    /** The operator's rules, written plainly: emit in order, then start FIFO while slots are free. */
    function settle(m: Model): void {
      for (;;) {
        const head = m.emitted.length;
        if (!m.finished.has(head)) break;
        m.finished.delete(head);
        m.emitted.push(head);
      }
      while (m.queue.length > 0 && m.running.length + m.finished.size < limitOf(m)) m.running.push(m.queue.shift()!);
    }
    function check(m: Model, r: Real): void {
      if (m.overflowed) {
        expect(r.error?.code).toBe('MEMTIDE_ERR_TRANSCRIBE_OVERFLOW');
        return;
      }
      expect(r.error).toBeNull();
      expect(r.emitted).toEqual(m.emitted);
      expect(r.stats).toMatchObject({
        queuedChunks: m.queue.length,
        inFlight: m.running.length,
        reorderChunks: m.finished.size,
        completed: m.emitted.length,
        concurrency: limitOf(m),
        level: m.level,
      });
      expect([...r.work.keys()].sort((a, b) => a - b)).toEqual([...m.running, ...m.finished, ...m.emitted].sort((a, b) => a - b));
    }

    class Offer implements fc.Command<Model, Real> {
      check = (m: Readonly<Model>) => !m.overflowed;
      run(m: Model, r: Real) {
        const index = m.nextIndex;
        m.nextIndex += 1;
        const asked = r.demanded - index; // demand not yet met before this chunk
        if (asked <= 0 && m.queue.length >= m.config.maxQueuedChunks) m.overflowed = true;
        else {
          m.queue.push(index);
          settle(m);
        }
        r.source.next(chunk(index));
        check(m, r);
      }
      toString = () => 'offer';
    }
    class Finish implements fc.Command<Model, Real> {
      constructor(readonly pick: number) {}
      check = (m: Readonly<Model>) => !m.overflowed && m.running.length > 0;
      run(m: Model, r: Real) {
        const index = m.running[this.pick % m.running.length]!;
        m.running = m.running.filter((i) => i !== index);
        m.finished.add(index);
        settle(m);
        const w = r.work.get(index)!;
        w.next({ text: String(index) });
        w.complete();
        check(m, r);
      }
      toString = () => `finish(${this.pick})`;
    }
    class Pressure implements fc.Command<Model, Real> {
      constructor(readonly level: PressureLevel) {}
      check = (m: Readonly<Model>) => !m.overflowed;
      run(m: Model, r: Real) {
        m.level = this.level;
        settle(m);
        r.pressure.next(pressure(this.level));
        check(m, r);
      }
      toString = () => `pressure(${this.level})`;
    }

    it('matches the model', () => {
      fc.assert(
        fc.property(
          configArb,
          fc.commands(
            [
              fc.constant(new Offer()),
              fc.integer({ min: 0, max: 7 }).map((n) => new Finish(n)),
              fc.constantFrom(...PRESSURE_LEVELS).map((l) => new Pressure(l)),
            ],
            { maxCommands: 60 },
          ),
          (config, commands) => {
            const real: Real = { source: new Subject(), pressure: new Subject(), work: new Map(), emitted: [], stats: null, error: null, demanded: 0 };
            const transcriber: ChunkTranscriber = {
              transcribe: (c) => {
                const w = new Subject<{ text: string }>();
                real.work.set(c.index, w);
                return w;
              },
              unload: () => undefined,
            };
            const subscription = real.source
              .pipe(
                transcribeBounded(transcriber, config, real.pressure, {
                  onDemand: (n) => (real.demanded += n),
                  onStats: (s) => (real.stats = s),
                }),
              )
              .subscribe({ next: (x) => real.emitted.push(x.chunkIndex), error: (e: { code?: string }) => (real.error = e) });
            const model: Model = { config, level: 'low', queue: [], running: [], finished: new Set(), emitted: [], nextIndex: 0, overflowed: false };
            fc.modelRun(() => ({ model, real }), commands);
            subscription.unsubscribe();
          },
        ),
        { numRuns: 300 },
      );
    });
  });
});
