// @vitest-environment happy-dom
/**
 * The React hooks (memtide/react) and the kit's DOM helpers, in happy-dom:
 * every hook releases what it holds on unmount (seed 7.1, 7.3): the
 * EventSource is closed, the asset cache disposed (its values released),
 * listeners and observers removed, animation frames cancelled.
 */
import { act, createElement, StrictMode, useEffect, type ReactElement } from 'react';
import { createRoot, type Root } from 'react-dom/client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AssetCache } from '../src/browser/assetCache.js';
import { checkRangeSupport, createRangeAudio, RangeAudioError } from '../src/browser/rangeAudio.js';
import { createVirtualList } from '../src/browser/virtualList.js';
import { useAssetCache, useMemoryPressure, useVirtualList, type MemoryPressureState } from '../src/react/index.js';

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

/** An EventSource that records what is done to it. */
class FakeEventSource {
  static instances: FakeEventSource[] = [];
  readonly listeners = new Map<string, Set<(event: MessageEvent) => void>>();
  closed = false;
  constructor(readonly url: string) {
    FakeEventSource.instances.push(this);
  }
  addEventListener(type: string, listener: (event: MessageEvent) => void): void {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type)?.add(listener);
  }
  removeEventListener(type: string, listener: (event: MessageEvent) => void): void {
    this.listeners.get(type)?.delete(listener);
  }
  close(): void {
    this.closed = true;
  }
  emit(type: string, data?: unknown): void {
    const event = new MessageEvent(type, { data: data === undefined ? undefined : JSON.stringify(data) });
    for (const listener of this.listeners.get(type) ?? []) listener(event);
  }
  get listenerCount(): number {
    return [...this.listeners.values()].reduce((n, set) => n + set.size, 0);
  }
}

let container: HTMLElement;
let root: Root;

function render(element: ReactElement): void {
  act(() => root.render(element));
}

beforeEach(() => {
  FakeEventSource.instances = [];
  container = document.createElement('div');
  document.body.append(container);
  root = createRoot(container);
});

afterEach(() => {
  container.remove();
  vi.restoreAllMocks();
});

describe('useMemoryPressure', () => {
  function Probe({ url, onState }: { url: string | null; onState: (s: MemoryPressureState) => void }) {
    const state = useMemoryPressure(url, { EventSourceImpl: FakeEventSource as unknown as typeof EventSource, withSamples: true });
    onState(state);
    return createElement('span', {}, state.level ?? 'none');
  }

  it('follows the pressure events and closes the EventSource (and its listeners) on unmount', () => {
    let state: MemoryPressureState | undefined;
    render(createElement(Probe, { url: '/api/events', onState: (s) => (state = s) }));
    const source = FakeEventSource.instances[0] as FakeEventSource;
    expect(source.url).toBe('/api/events');
    act(() => source.emit('open'));
    act(() => source.emit('pressure', { atMs: 1, level: 'high', previous: 'low', reasons: ['available 8% <= 10%'] }));
    expect(container.textContent).toBe('high');
    expect(state).toMatchObject({ level: 'high', previous: 'low', reasons: ['available 8% <= 10%'], connected: true });
    act(() => source.emit('sample', { timestampMs: 5, system: {}, components: {} }));
    expect(state?.sample?.timestampMs).toBe(5);
    act(() => source.emit('pressure', null));
    expect(state?.error).toMatch(/malformed pressure event/);
    act(() => source.emit('pressure', { level: 'purple', reasons: [], atMs: 2 }));
    expect(state?.level).toBe('high');
    expect(source.listenerCount).toBeGreaterThan(0);
    act(() => root.unmount());
    expect(source.closed).toBe(true);
    expect(source.listenerCount).toBe(0);
  });

  it('a new URL closes the old connection first; null disconnects', () => {
    render(createElement(Probe, { url: '/a', onState: () => undefined }));
    render(createElement(Probe, { url: '/b', onState: () => undefined }));
    const [a, b] = FakeEventSource.instances as [FakeEventSource, FakeEventSource];
    expect(a.closed).toBe(true);
    expect(b.closed).toBe(false);
    render(createElement(Probe, { url: null, onState: () => undefined }));
    expect(b.closed).toBe(true);
    expect(FakeEventSource.instances).toHaveLength(2);
    act(() => root.unmount());
  });
});

describe('useAssetCache', () => {
  it('disposes the cache on unmount: every value released, the cache empty', () => {
    const released: string[] = [];
    let cache: AssetCache<{ id: string }> | undefined;
    function Owner() {
      const c = useAssetCache<{ id: string }>({ maxBytes: 1000, sizeOf: () => 10, release: (v) => released.push(v.id) });
      cache = c;
      useEffect(() => {
        c.set('a', { id: 'a' });
        c.set('b', { id: 'b' });
      }, [c]);
      return null;
    }
    render(createElement(Owner));
    expect(cache?.size).toBe(2);
    act(() => root.unmount());
    expect(released.sort()).toEqual(['a', 'b']);
    expect(cache?.isDisposed).toBe(true);
    expect(cache?.size).toBe(0);
  });

  it('survives StrictMode (mount, unmount, mount) with a live cache, and still disposes at the end', () => {
    const caches = new Set<AssetCache>();
    let current: AssetCache | undefined;
    function Owner() {
      const c = useAssetCache({ maxBytes: 1000 });
      current = c;
      caches.add(c);
      return null;
    }
    render(createElement(StrictMode, {}, createElement(Owner)));
    expect(current?.isDisposed).toBe(false);
    expect(current?.set('x', { y: 1 })).toBe(true);
    act(() => root.unmount());
    for (const c of caches) expect(c.isDisposed).toBe(true);
  });
});

describe('useVirtualList', () => {
  it('renders a bounded window of 100,000 rows, follows scrolling, and releases listener, observer and frame on unmount', async () => {
    const observers: Array<{ disconnect: ReturnType<typeof vi.fn> }> = [];
    vi.stubGlobal(
      'ResizeObserver',
      class {
        disconnect = vi.fn();
        observe = vi.fn();
        constructor() {
          observers.push(this);
        }
      },
    );
    const cancel = vi.spyOn(globalThis, 'cancelAnimationFrame');
    let viewport: HTMLElement | null = null;
    function List() {
      const { ref, range } = useVirtualList({ itemCount: 100_000, itemHeight: 20, overscan: 5 });
      const rows = [];
      for (let i = range.start; i < range.end; i++) rows.push(createElement('div', { key: i, 'data-row': i }, `row ${i}`));
      return createElement(
        'div',
        {
          ref: (el: HTMLElement | null) => {
            if (el) {
              Object.defineProperty(el, 'clientHeight', { configurable: true, value: 400 });
              viewport = el;
            }
            ref(el);
          },
        },
        createElement('div', { style: { height: range.totalHeight } }, rows),
      );
    }
    render(createElement(List));
    const el = viewport as unknown as HTMLElement;
    const removeListener = vi.spyOn(el, 'removeEventListener');
    expect(container.querySelectorAll('[data-row]').length).toBeLessThanOrEqual(21 + 10);
    expect(container.querySelector('[data-row="0"]')).not.toBeNull();
    el.scrollTop = 20 * 50_000;
    await act(async () => {
      el.dispatchEvent(new Event('scroll'));
      await new Promise((resolve) => setTimeout(resolve, 50));
    });
    expect(container.querySelector('[data-row="50000"]')).not.toBeNull();
    expect(container.querySelectorAll('[data-row]').length).toBeLessThanOrEqual(31);
    // A frame left pending at unmount must be cancelled.
    el.dispatchEvent(new Event('scroll'));
    act(() => root.unmount());
    expect(removeListener).toHaveBeenCalledWith('scroll', expect.any(Function));
    expect(observers[0]?.disconnect).toHaveBeenCalled();
    expect(cancel).toHaveBeenCalled();
    vi.unstubAllGlobals();
  });
});

describe('createVirtualList (DOM helper)', () => {
  it('keeps a bounded pool of reused rows, scrolls by keyboard, and removes everything on dispose', async () => {
    const viewport = document.createElement('div');
    Object.defineProperty(viewport, 'clientHeight', { configurable: true, value: 300 });
    document.body.append(viewport);
    const created: HTMLElement[] = [];
    const list = createVirtualList({
      viewport,
      itemCount: 100_000,
      itemHeight: 30,
      overscan: 4,
      label: 'samples',
      createRow: () => {
        const row = document.createElement('div');
        created.push(row);
        return row;
      },
      renderRow: (row, index) => (row.textContent = `#${index}`),
    });
    const rows = () => viewport.querySelectorAll('[data-row]').length;
    expect(rows()).toBe(list.range.end - list.range.start);
    expect(rows()).toBeLessThanOrEqual(11 + 8);
    expect(viewport.getAttribute('role')).toBe('table');
    expect(viewport.getAttribute('aria-rowcount')).toBe('100000');
    viewport.dispatchEvent(new KeyboardEvent('keydown', { key: 'End' }));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(viewport.querySelector('[data-row="99999"]')?.textContent).toBe('#99999');
    expect(rows()).toBeLessThanOrEqual(11 + 8);
    for (let i = 0; i < 50; i++) {
      viewport.scrollTop = i * 2000;
      viewport.dispatchEvent(new Event('scroll'));
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(rows()).toBeLessThanOrEqual(11 + 8);
    }
    // Reused, not re-created: at most the first window plus each jump's non-overlapping part, never one per row seen.
    expect(created.length).toBeLessThan(51 * 19);
    list.setItemCount(5);
    expect(rows()).toBeLessThanOrEqual(5);
    list.dispose();
    expect(viewport.children.length).toBe(0);
    viewport.remove();
  });
});

describe('createRangeAudio', () => {
  it('points the element at the server URL and takes it apart on release', () => {
    const parent = document.createElement('div');
    const audio = createRangeAudio('/api/audio/meeting.wav', { parent, label: 'Meeting audio' });
    const element = audio.element;
    expect(element.getAttribute('src')).toBe('/api/audio/meeting.wav');
    expect(element.preload).toBe('none');
    expect(element.controls).toBe(true);
    expect(parent.contains(element)).toBe(true);
    const onPlay = vi.fn();
    audio.on('play', onPlay);
    const load = vi.spyOn(element, 'load').mockImplementation(() => undefined);
    vi.spyOn(element, 'pause').mockImplementation(() => undefined);
    audio.release();
    expect(element.hasAttribute('src')).toBe(false);
    expect(load).toHaveBeenCalled();
    expect(parent.contains(element)).toBe(false);
    element.dispatchEvent(new Event('play'));
    expect(onPlay).not.toHaveBeenCalled();
    expect(audio.released).toBe(true);
    audio.release(); // idempotent
  });

  it('refuses blob: and data: URLs (the pattern it replaces)', () => {
    expect(() => createRangeAudio('blob:http://x/abc')).toThrow(RangeAudioError);
    expect(() => createRangeAudio('data:audio/wav;base64,AAAA')).toThrow(/not a data: URL/);
  });

  it('checkRangeSupport asks for one byte and cancels the body', async () => {
    const cancel = vi.fn(async () => undefined);
    const fetchStub = vi.fn(async (_url: string, init: RequestInit) => {
      expect((init.headers as Record<string, string>).range).toBe('bytes=0-0');
      return {
        status: 206,
        headers: new Headers({ 'content-range': 'bytes 0-0/660000000', 'content-type': 'audio/wav' }),
        body: { cancel },
      } as unknown as Response;
    });
    const support = await checkRangeSupport('/api/audio/x.wav', fetchStub as unknown as typeof fetch);
    expect(support).toEqual({ ranges: true, status: 206, totalBytes: 660_000_000, contentType: 'audio/wav' });
    expect(cancel).toHaveBeenCalled();
  });
});
