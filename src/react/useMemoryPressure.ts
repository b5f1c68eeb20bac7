/**
 * `useMemoryPressure(url)`: the runner's pressure level, live, over its
 * server-sent events feed. One EventSource per mounted hook, closed on
 * unmount or when the URL changes (seed 7.1: nothing outlives the component).
 */
import { useEffect, useState } from 'react';
import { PRESSURE_LEVELS, type LiveSample, type PressureEvent, type PressureLevel } from '../browser/liveTypes.js';

export interface MemoryPressureState {
  level: PressureLevel | null;
  previous: PressureLevel | null;
  reasons: string[];
  /** When the level last changed (ms since the epoch); null before the first event. */
  atMs: number | null;
  /** The latest sample, when `withSamples` is set (the process list is not in the feed). */
  sample: LiveSample | null;
  /** The EventSource is open. It reconnects by itself after a drop. */
  connected: boolean;
  /** The last problem (a malformed event, the connection failing), cleared when it reopens. */
  error: string | null;
}

export interface UseMemoryPressureOptions {
  /** Also keep the latest `sample` event (one re-render a sample: off by default). */
  withSamples?: boolean;
  /** EventSource implementation (tests, or a polyfill); default the global one. */
  EventSourceImpl?: typeof EventSource;
}

const isObject = (data: unknown): data is Record<string, unknown> => typeof data === 'object' && data !== null && !Array.isArray(data);

function isPressureEvent(data: unknown): data is PressureEvent {
  return isObject(data) && (PRESSURE_LEVELS as readonly unknown[]).includes(data.level) && Array.isArray(data.reasons) && typeof data.atMs === 'number';
}

function isLiveSample(data: unknown): data is LiveSample {
  return isObject(data) && typeof data.timestampMs === 'number' && isObject(data.system) && isObject(data.components);
}

const INITIAL: MemoryPressureState = { level: null, previous: null, reasons: [], atMs: null, sample: null, connected: false, error: null };

/** `url`: the runner's feed, e.g. `http://127.0.0.1:7071/api/events`; null: not connected. */
export function useMemoryPressure(url: string | null, options: UseMemoryPressureOptions = {}): MemoryPressureState {
  const { withSamples = false, EventSourceImpl } = options;
  const [state, setState] = useState<MemoryPressureState>(INITIAL);

  useEffect(() => {
    if (!url) {
      setState(INITIAL);
      return undefined;
    }
    const Impl = EventSourceImpl ?? globalThis.EventSource;
    if (typeof Impl !== 'function') {
      setState({ ...INITIAL, error: 'EventSource is not available in this environment' });
      return undefined;
    }
    const source = new Impl(url);
    /** Parses and checks an event; a malformed one is reported, never thrown into React. */
    const parse = <T,>(event: MessageEvent, valid: (data: unknown) => data is T, apply: (data: T) => void) => {
      let data: unknown;
      try {
        data = JSON.parse(String(event.data));
      } catch (error) {
        setState((s) => ({ ...s, error: `malformed ${event.type} event: ${String(error)}` }));
        return;
      }
      if (valid(data)) apply(data);
      else setState((s) => ({ ...s, error: `malformed ${event.type} event: unexpected shape` }));
    };
    const onOpen = () => setState((s) => ({ ...s, connected: true, error: null }));
    const onError = () => setState((s) => ({ ...s, connected: false, error: `connection to ${url} failed; retrying` }));
    const onPressure = (event: MessageEvent) =>
      parse(event, isPressureEvent, (p) => setState((s) => ({ ...s, level: p.level, previous: p.previous, reasons: p.reasons, atMs: p.atMs })));
    const onSample = (event: MessageEvent) => parse(event, isLiveSample, (sample) => setState((s) => ({ ...s, sample })));
    source.addEventListener('open', onOpen);
    source.addEventListener('error', onError);
    source.addEventListener('pressure', onPressure as EventListener);
    if (withSamples) source.addEventListener('sample', onSample as EventListener);
    return () => {
      source.removeEventListener('open', onOpen);
      source.removeEventListener('error', onError);
      source.removeEventListener('pressure', onPressure as EventListener);
      source.removeEventListener('sample', onSample as EventListener);
      source.close();
    };
  }, [url, withSamples, EventSourceImpl]);

  return state;
}
