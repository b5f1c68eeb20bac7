/**
 * `server.updateIntervalMs` (set by the optimization profiles): the live
 * page's snapshot kinds (`sample`, `models`) are throttled per kind to one
 * frame per interval, always ending on the latest value; event kinds
 * (`pressure`, `alert`, `leak`) are never dropped; the interval is
 * hot-reloadable. Virtual time throughout; the tests assert frame counts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BehaviorSubject, NEVER, Subject, type Observable } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import type { MemtideConfig } from '../src/app/config.js';
import type { Memtide } from '../src/app/memtide.js';
import { createStateRoutes, throttleLatest } from '../src/app/routes/state.js';
import type { LoadedModel, MemorySample, PressureChange } from '../src/model.js';
import { silentLogger } from '../src/sinks/logger.js';
import { virtualScheduler } from './support/virtualTime.js';

const marbles = () => new TestScheduler((actual, expected) => expect(actual).toEqual(expected));

describe('throttleLatest (marbles)', () => {
  it('leading value at once, the latest of each window at its end, nothing when idle', () => {
    marbles().run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('a-b-c-------d--|');
      const subs = '       ^--------------!';
      expectObservable(source.pipe(throttleLatest(cold('x', { x: 3 })))).toBe('a--b--c-----d--|');
      expectSubscriptions(source.subscriptions).toBe(subs);
    });
  });

  it('a new interval applies from the next window', () => {
    marbles().run(({ cold, hot, expectObservable }) => {
      const interval$ = hot('x------y', { x: 2, y: 5 });
      const source = cold('  abcdefghijkl|');
      // Windows of 2 until y; i arrives after y, so its window lasts 5 and holds l until the source has completed.
      expectObservable(source.pipe(throttleLatest(interval$))).toBe('a-c-e-g-i----(l|)');
    });
  });

  it('passes errors of the source and of the interval on; unsubscribing ends the window timer', () => {
    marbles().run(({ cold, expectObservable, expectSubscriptions }) => {
      expectObservable(cold('a-b#').pipe(throttleLatest(cold('x', { x: 10 })))).toBe('a--#');
      expectObservable(cold('a-b-c').pipe(throttleLatest(cold('x-#', { x: 10 })))).toBe('a-#');
      const source = cold('a-b-c-d');
      expectObservable(source.pipe(throttleLatest(cold('x', { x: 2 }))), '^---!').toBe('a-b-');
      expectSubscriptions(source.subscriptions).toBe('^---!');
    });
  });
});

/** A fake page: the frames the SSE handler writes to it. */
function fakePage() {
  const chunks: string[] = [];
  const res = {
    writeHead: () => res,
    write: (text: string) => chunks.push(text) > 0,
    on: () => res,
    end: () => undefined,
  };
  const frames = () =>
    chunks
      .join('')
      .split('\n\n')
      .map((block) => /^event: (\w+)\ndata: (.*)$/s.exec(block))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ event: m[1]!, data: JSON.parse(m[2]!) as unknown }));
  return { res: res as unknown as ServerResponse, frames };
}

const sample = (timestampMs: number) => ({ timestampMs, system: {}, components: {}, processes: [], self: {} }) as unknown as MemorySample;
const configWith = (updateIntervalMs: number) => ({ server: { updateIntervalMs } }) as unknown as MemtideConfig;

function setUp(updateIntervalMs: number) {
  const scheduler = virtualScheduler();
  const samples = new Subject<MemorySample>();
  const pressure = new Subject<PressureChange>();
  const models = new Subject<readonly LoadedModel[]>();
  const config = new BehaviorSubject(configWith(updateIntervalMs));
  const memtide = {
    samples$: samples,
    pressure$: pressure,
    alerts$: NEVER,
    leaks$: NEVER,
    config$: config as Observable<MemtideConfig>,
    config: () => config.getValue(),
  } as unknown as Memtide;
  const module = createStateRoutes({ models$: models, scheduler })({ memtide, logger: silentLogger, config: () => config.getValue() });
  const route = (path: string) => module.routes.find((r) => r.path === path)!;
  const page = fakePage();
  void route('/api/events').handler({} as IncomingMessage, page.res, {}, new URL('http://localhost/api/events'));
  /** Emits `count` samples every `everyMs`, starting `offsetMs` after now (virtual), then runs the clock to the end. */
  const feed = (count: number, everyMs: number, offsetMs: number) => {
    const start = scheduler.now();
    for (let i = 0; i < count; i += 1) scheduler.schedule(() => samples.next(sample(start + offsetMs + i * everyMs)), offsetMs + i * everyMs);
    scheduler.flush();
  };
  const state = () => {
    let body: unknown;
    const res = { writeHead: () => res, end: (text: string) => (body = JSON.parse(text)), setHeader: () => res, getHeader: () => undefined };
    void route('/api/state').handler({} as IncomingMessage, res as unknown as ServerResponse, {}, new URL('http://localhost/api/state'));
    return body as { sample: MemorySample | null };
  };
  return { scheduler, samples, pressure, models, config, page, feed, state, close: () => module.close?.() };
}

const ofKind = (frames: Array<{ event: string; data: unknown }>, kind: string) => frames.filter((f) => f.event === kind);

describe('the live page feed', () => {
  it('sends at most one sample frame per server.updateIntervalMs, ending on the latest sample', () => {
    const t = setUp(1_000);
    // 100 samples, one every 100 ms, for 10 s: the first goes at once, then one per second (the latest of each second).
    t.feed(100, 100, 50);
    const frames = ofKind(t.page.frames(), 'sample');
    expect(frames).toHaveLength(11);
    expect((frames.at(-1)!.data as MemorySample).timestampMs).toBe(50 + 99 * 100);
    // /api/state is never behind the throttle.
    expect(t.state().sample?.timestampMs).toBe(50 + 99 * 100);
    t.close();
  });

  it('the interval is hot-reloadable from the config', () => {
    const t = setUp(1_000);
    t.feed(100, 100, 50);
    expect(ofKind(t.page.frames(), 'sample')).toHaveLength(11);
    t.config.next(configWith(5_000));
    t.feed(100, 100, 50);
    // 10 s at 5 s windows: the leading frame and two trailing ones.
    expect(ofKind(t.page.frames(), 'sample')).toHaveLength(11 + 3);
    t.config.next(configWith(0));
    t.feed(20, 100, 50);
    expect(ofKind(t.page.frames(), 'sample')).toHaveLength(11 + 3 + 20);
    t.close();
  });

  it('models are throttled the same way, per kind: a sample does not hold back a models frame', () => {
    const t = setUp(1_000);
    const start = t.scheduler.now();
    for (let i = 0; i < 50; i += 1) {
      t.scheduler.schedule(() => {
        t.samples.next(sample(start + i * 100));
        t.models.next([{ name: `m${i}` } as LoadedModel]);
      }, 10 + i * 100);
    }
    t.scheduler.flush();
    const frames = t.page.frames();
    expect(ofKind(frames, 'sample')).toHaveLength(6);
    expect(ofKind(frames, 'models')).toHaveLength(6);
    expect((ofKind(frames, 'models').at(-1)!.data as LoadedModel[])[0]!.name).toBe('m49');
    t.close();
  });

  it('event kinds are never dropped: every pressure change is sent', () => {
    const t = setUp(5_000);
    const levels = ['low', 'medium', 'high', 'critical', 'high', 'medium'] as const;
    levels.forEach((level, i) => t.scheduler.schedule(() => t.pressure.next({ atMs: i, level, previous: null } as unknown as PressureChange), i));
    t.scheduler.flush();
    expect(ofKind(t.page.frames(), 'pressure').map((f) => (f.data as PressureChange).level)).toEqual([...levels]);
    t.close();
  });
});
