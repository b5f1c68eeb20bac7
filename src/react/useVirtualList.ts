/**
 * `useVirtualList`: which rows of a long list to render (seed 7.2, 7.3), for
 * React. Attach `ref` to the scrolling element, render `range.start` ..
 * `range.end - 1` absolutely positioned at `index * itemHeight` inside an
 * element of `range.totalHeight`. The scroll listener, the ResizeObserver and
 * a pending animation frame are all released on unmount.
 */
import { useCallback, useEffect, useState } from 'react';
import { computeVirtualRange, type VirtualRange } from '../browser/virtualList.js';

export interface UseVirtualListOptions {
  itemCount: number;
  itemHeight: number;
  overscan?: number;
}

export interface VirtualListState {
  /** Callback ref for the scrolling element. */
  ref: (element: HTMLElement | null) => void;
  range: VirtualRange;
  /** Scrolls so `index` is at the top. */
  scrollToIndex(index: number): void;
}

export function useVirtualList({ itemCount, itemHeight, overscan = 6 }: UseVirtualListOptions): VirtualListState {
  const [element, setElement] = useState<HTMLElement | null>(null);
  const [view, setView] = useState({ scrollTop: 0, viewportHeight: 0 });

  useEffect(() => {
    if (!element) return undefined;
    let frame: number | null = null;
    const measure = () => {
      frame = null;
      setView((v) =>
        v.scrollTop === element.scrollTop && v.viewportHeight === element.clientHeight
          ? v
          : { scrollTop: element.scrollTop, viewportHeight: element.clientHeight },
      );
    };
    const schedule = () => {
      if (frame === null) frame = requestAnimationFrame(measure);
    };
    measure();
    element.addEventListener('scroll', schedule, { passive: true });
    const observer = typeof ResizeObserver === 'function' ? new ResizeObserver(schedule) : null;
    observer?.observe(element);
    return () => {
      element.removeEventListener('scroll', schedule);
      observer?.disconnect();
      if (frame !== null) cancelAnimationFrame(frame);
    };
  }, [element]);

  const range = computeVirtualRange({ itemCount, itemHeight, overscan, ...view });
  const scrollToIndex = useCallback(
    (index: number) => {
      if (element) element.scrollTop = Math.max(0, Math.min(itemCount - 1, index)) * itemHeight;
    },
    [element, itemCount, itemHeight],
  );
  return { ref: setElement, range, scrollToIndex };
}
